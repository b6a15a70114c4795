"""The batch driver: streams the source's jobs through an engine, exactly once per input across
reruns, with the results table as the ledger.

    source --iter_jobs--> job --table: done? skip : mark pending (committed)--> engine --> worker
    worker --row--> driver --table.record (batched commits)--> report

A job is marked pending (and committed) before it is dispatched, so after any kill the table
tells which outputs may exist: a rerun skips `done` rows (and `failed` ones unless retry_failed),
redoes `pending` ones, and may overwrite their outputs (every output is written whole, by an
atomic rename or a single PUT). An output that exists but that the table does not know is not
overwritten without `force`. A worker that dies under a job (SIGKILL, out of memory) loses
nothing: the job goes to a worker again, up to MAX_ATTEMPTS times, then is recorded as failed.
A model or weights error (exit class 5) stops the batch: it is not any one file's fault.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from typing import Callable

from codec.batch.engines import MAX_ATTEMPTS
from codec.batch.sources import iter_jobs
from codec.batch.table import ResultsTable
from codec.batch.worker import Settings
from codec.errors import ModelError

FLUSH_SECONDS = 0.5
FLUSH_ROWS = 256


@dataclass
class Progress:
    """Counts of this run, updated as jobs finish (what a progress bar shows)."""

    total: int | None = None
    done: int = 0
    failed: int = 0
    skipped: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    started: float = field(default_factory=time.perf_counter)

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.skipped


def run(source: str, settings: Settings, table_path: str, *, engine: str = "local", workers: int | None = None,
        address: str | None = None, retry_failed: bool = False, force: bool = False, dry_run: bool = False,
        total: int | None = None, on_event: Callable[[str, Progress, dict | None], None] | None = None) -> dict:
    """Runs (or with dry_run plans) the batch; returns the report (codec.batch.report)."""
    from codec.batch import report
    from codec.batch.engines import make_engine

    suffix = "." + settings.image_format.lower() if settings.decode else ".bin"
    table = ResultsTable(table_path, settings.identity(), readonly=dry_run)
    progress = Progress(total=total)
    emit = on_event or (lambda kind, p, row: None)
    try:
        if dry_run:
            return _plan(iter_jobs(source, suffix, settings.decode), table, progress, retry_failed)
        from codec.batch.storage import Storage

        url = Storage(settings.destination).url
        eng = make_engine(engine, settings, workers, address)
        try:
            table.start_run(engine, eng.workers)
            _drive(iter_jobs(source, suffix, settings.decode), eng, table, progress, retry_failed, force, emit, url)
        finally:
            eng.close()
            table.end_run()
        return report.build(table, progress, eng)
    finally:
        table.close()


def _plan(jobs, table: ResultsTable, progress: Progress, retry_failed: bool) -> dict:
    """A dry run: what a run would do, from the source and the table alone (nothing written)."""
    todo = 0
    for job in jobs:
        status = table.status(job.key)
        if status == "done" or (status == "failed" and not retry_failed):
            progress.skipped += 1
        else:
            todo += 1
    return {"schema": 1, "dry_run": True, "to_do": todo, "skipped": progress.skipped,
            "wall_seconds": round(time.perf_counter() - progress.started, 3)}


class _Ledger:
    """Finished rows waiting for the next batched commit."""

    def __init__(self, table: ResultsTable):
        self.table, self.rows, self.last = table, [], time.perf_counter()

    def add(self, row: dict) -> None:
        self.rows.append(row)
        if len(self.rows) >= FLUSH_ROWS or time.perf_counter() - self.last > FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.table.record(self.rows)
            self.rows = []
        self.last = time.perf_counter()


def _drive(jobs, eng, table: ResultsTable, progress: Progress, retry_failed: bool, force: bool, emit,
           url: Callable[[str], str]) -> None:
    """The loop; `url(name)` is an output's full path or URL, as the table records it."""
    ledger = _Ledger(table)
    try:
        for job in jobs:
            status = table.status(job.key)
            if status == "done" or (status == "failed" and not retry_failed):
                progress.skipped += 1
                emit("skipped", progress, {"key": job.key})
                continue
            owner = table.owner_of(url(job.out)) if status is None else None
            if owner is not None and owner != job.key:
                _finish(ledger, progress, emit, _conflict(table, job, owner))
                continue
            while eng.in_flight >= eng.slots:
                _collect(eng, ledger, progress, emit)
            table.mark_pending([(job.key, url(job.out))])
            eng.submit({**dataclasses.asdict(job), "attempt": 0, "overwrite": force or status is not None})
        while eng.in_flight:
            _collect(eng, ledger, progress, emit)
    finally:
        ledger.flush()


def _collect(eng, ledger: _Ledger, progress: Progress, emit) -> None:
    for job, row in eng.wait():
        if row is None:  # the worker died under it
            if job["attempt"] + 1 < MAX_ATTEMPTS:
                eng.submit({**job, "attempt": job["attempt"] + 1, "overwrite": True})
                continue
            row = {"key": job["key"], "status": "failed", "exit_class": 1, "attempts": MAX_ATTEMPTS,
                   "error": f"the worker died under this file {MAX_ATTEMPTS} times (killed, or out of memory)"}
        if row.get("exit_class") == ModelError.exit_code:
            ledger.add(row)
            ledger.flush()
            raise ModelError(f"stopped: {row.get('error')}")
        _finish(ledger, progress, emit, row)


def _finish(ledger: _Ledger, progress: Progress, emit, row: dict) -> None:
    ledger.add(row)
    if row["status"] == "done":
        progress.done += 1
        progress.bytes_in += row.get("bytes_in") or 0
        progress.bytes_out += row.get("bytes_out") or 0
    else:
        progress.failed += 1
    emit(row["status"], progress, row)


def _conflict(table: ResultsTable, job, owner: str) -> dict:
    """Two inputs of one batch named to one output: the second is failed (usage, exit class 2)."""
    marker = f"(conflict) {job.key}"
    table.mark_pending([(job.key, marker)])
    return {"key": job.key, "output": marker, "status": "failed", "exit_class": 2, "attempts": 0,
            "error": f"its output {job.out} is already {owner}'s (name outputs in a manifest's 'output' column)"}


def default_threads(engine: str, workers: int | None) -> int:
    """Torch threads per worker: the machine's cores shared among local workers; 1 per Ray actor
    (each actor holds one CPU of the cluster)."""
    if engine == "ray":
        return 1
    return max(1, (os.cpu_count() or 1) // max(1, workers or os.cpu_count() or 1))
