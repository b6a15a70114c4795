"""The results table of a batch: one row per input, in SQLite.

Why SQLite, not Parquet: the table is written row by row while the job runs and must survive a
killed driver in a consistent state; SQLite gives transactions (a commit is all or nothing, WAL
journal), an index on the input so a rerun's "is this one done?" is one lookup among millions
without loading the table, and it is in Python's standard library. Parquet files are immutable
(appending means many small files and a compaction); they suit the analysis afterwards, which
any SQLite reader (the sqlite3 shell, pandas.read_sql, DuckDB) can export to.

Rows: `key` (the input as the source names it), `output`, `status` (pending: dispatched, not known
finished; done; failed), bytes in and out, size, bpp, the output's sha256, PSNR (optional), the
worker's seconds, the worker (host:pid), the error and its exit class (the CLI's exit codes),
attempts, the run that wrote it. Only the driver writes it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

SCHEMA = 1
COLUMNS = ("key", "output", "status", "bytes_in", "bytes_out", "width", "height", "bpp", "sha256", "psnr",
           "seconds", "worker", "error", "exit_class", "attempts", "run", "finished")
_CREATE = """
CREATE TABLE IF NOT EXISTS files (
    key TEXT PRIMARY KEY, output TEXT NOT NULL, status TEXT NOT NULL,
    bytes_in INTEGER, bytes_out INTEGER, width INTEGER, height INTEGER, bpp REAL, sha256 TEXT, psnr REAL,
    seconds REAL, worker TEXT, error TEXT, exit_class INTEGER, attempts INTEGER DEFAULT 0, run INTEGER,
    finished REAL);
CREATE INDEX IF NOT EXISTS files_status ON files(status);
CREATE UNIQUE INDEX IF NOT EXISTS files_output ON files(output);
CREATE TABLE IF NOT EXISTS runs (run INTEGER PRIMARY KEY, started REAL, ended REAL, engine TEXT, workers INTEGER);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT);
"""


class TableError(Exception):
    pass


class ResultsTable:
    """The table at `path` (created if missing); `settings` (a JSON-able dict) must match the
    settings the table was started with, so that one table never mixes two rates or models."""

    def __init__(self, path: str | Path, settings: dict | None = None, readonly: bool = False):
        self.path = Path(path)
        if readonly:
            if not self.path.exists():
                self.db = sqlite3.connect(":memory:")
                self.db.executescript(_CREATE)
            else:
                self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        else:
            self.db = sqlite3.connect(self.path, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_CREATE)
        if settings is not None:
            self._check_settings(settings, readonly)
        self.run = 0

    def _check_settings(self, settings: dict, readonly: bool) -> None:
        text = json.dumps(settings, sort_keys=True)
        row = self.db.execute("SELECT value FROM meta WHERE name='settings'").fetchone()
        if row is None:
            if not readonly:
                self.db.execute("INSERT INTO meta VALUES ('settings', ?), ('schema', ?)", (text, str(SCHEMA)))
                self.db.commit()
        elif row[0] != text:
            raise TableError(f"{self.path} belongs to a batch with other settings ({row[0]}); "
                             "use another destination or --table")

    def start_run(self, engine: str, workers: int) -> int:
        cur = self.db.execute("INSERT INTO runs (started, engine, workers) VALUES (?, ?, ?)",
                              (time.time(), engine, workers))
        self.db.commit()
        self.run = int(cur.lastrowid)
        return self.run

    def end_run(self) -> None:
        self.db.execute("UPDATE runs SET ended=? WHERE run=?", (time.time(), self.run))
        self.db.commit()

    def status(self, key: str) -> str | None:
        row = self.db.execute("SELECT status FROM files WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def owner_of(self, output: str) -> str | None:
        """The input whose output this is, if the table has one (outputs are unique per table)."""
        row = self.db.execute("SELECT key FROM files WHERE output=?", (output,)).fetchone()
        return row[0] if row else None

    def mark_pending(self, rows: list[tuple[str, str]]) -> None:
        """(key, output) of jobs about to be dispatched, committed before they are."""
        self.db.executemany(
            "INSERT INTO files (key, output, status, run) VALUES (?, ?, 'pending', ?) "
            "ON CONFLICT(key) DO UPDATE SET status='pending', run=excluded.run", [(k, o, self.run) for k, o in rows])
        self.db.commit()

    def record(self, rows: list[dict]) -> None:
        """Finished jobs (done or failed), in one transaction."""
        names = [c for c in COLUMNS if c not in ("key", "run", "finished")]
        sets = ", ".join("output=COALESCE(?, output)" if c == "output" else f"{c}=?" for c in names)
        sql = f"UPDATE files SET {sets}, run=?, finished=? WHERE key=?"
        now = time.time()
        self.db.executemany(sql, [(*[r.get(c) for c in names], self.run, now, r["key"]) for r in rows])
        self.db.commit()

    def query(self, sql: str, args: tuple = ()) -> list[tuple]:
        return self.db.execute(sql, args).fetchall()

    def close(self) -> None:
        self.db.close()
