"""The inputs of a batch, streamed: a folder (walked, recursively), a glob, or a manifest (CSV,
JSON lines or Parquet) listing them. Nothing here holds the whole list: a manifest of millions of
rows is read a row (or a Parquet batch) at a time, so the driver's memory stays flat.

Each input becomes a `Job`: `key` (the input as the source names it: the results table's key),
`src` (where a worker reads it: an absolute path, since a worker's folder is not the driver's, or an
fsspec URL) and `out` (the output's name relative to
the destination). Output names keep the source's tree: `photos/a/b.png` under `photos/` gives
`a/b.bin`; a manifest row may name its output (column `output`), else a relative input path
keeps its path (`a/b.png` -> `a/b.bin`), an absolute one its path under the root
(`/data/x.png` -> `data/x.bin`) and a URL its bucket and key (`s3://bkt/k.png` -> `bkt/k.bin`).
"""

from __future__ import annotations

import csv
import glob
import json
import os
import posixpath
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterator

from codec.errors import InputError, UsageError
from codec.io import IMAGE_EXTENSIONS

MANIFEST_SUFFIXES = (".csv", ".jsonl", ".ndjson", ".parquet")
PATH_COLUMNS = ("path", "input", "src")
BITSTREAM_SUFFIXES = (".bin",)


@dataclass(frozen=True)
class Job:
    key: str
    src: str
    out: str


def is_manifest(source: str) -> bool:
    return Path(source).suffix.lower() in MANIFEST_SUFFIXES and Path(source).is_file()


def iter_jobs(source: str, suffix: str, decode: bool = False) -> Iterator[Job]:
    """The jobs of `source` in a stable order; output names end in `suffix` (".bin", ".png").
    `decode`: inputs are bitstreams (.bin) instead of images."""
    wanted = BITSTREAM_SUFFIXES if decode else IMAGE_EXTENSIONS
    if source == "":
        raise UsageError("the batch's source is empty")
    if is_manifest(source):
        yield from _manifest_jobs(Path(source), suffix)
    elif Path(source).is_dir():
        root = Path(source)
        for path in walk(root, wanted):
            yield Job(str(path), os.path.abspath(path), _renamed(path.relative_to(root).as_posix(), suffix))
    elif glob.has_magic(source) and not os.path.lexists(source):
        root = Path(_glob_root(source))
        for name in glob.iglob(source, recursive=True):
            path = Path(name)
            if path.suffix.lower() in wanted and path.is_file():
                yield Job(name, os.path.abspath(name), _renamed(_relative(path, root), suffix))
    elif Path(source).is_file():
        raise UsageError(f"{source}: a batch takes a folder, a glob or a manifest ({', '.join(MANIFEST_SUFFIXES)}); "
                         "for one file use codec encode / decode")
    else:
        raise InputError(f"{source}: no such folder, manifest or matching glob")


def walk(root: Path, wanted: tuple[str, ...]) -> Iterator[Path]:
    """Files under `root` with a wanted suffix, depth first, each folder's entries sorted (one
    folder listed at a time; hidden entries, such as the atomic writer's temporaries, left out)."""
    with os.scandir(root) as it:
        entries = sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield from walk(Path(entry.path), wanted)
        elif Path(entry.name).suffix.lower() in wanted and entry.is_file():
            yield Path(entry.path)


def _glob_root(pattern: str) -> str:
    """The folder before a glob's first wildcard ("a/b/*/*.png" -> "a/b")."""
    parts = PurePosixPath(pattern).parts
    fixed = [p for p in parts[:next(i for i, p in enumerate(parts) if glob.has_magic(p))]]
    return str(PurePosixPath(*fixed)) if fixed else "."


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name


def _renamed(relative: str, suffix: str) -> str:
    """`relative` with its suffix replaced (string operations: a manifest has millions of rows)."""
    return posixpath.splitext(relative)[0] + suffix


def output_name(src: str, suffix: str) -> str:
    """A manifest row's default output name (see the module's docstring)."""
    path = src.split("://", 1)[1] if "://" in src else src
    parts = [x for x in path.split("/") if x not in ("", ".")]
    if not parts or ".." in parts:
        raise UsageError(f"{src}: name its output in the manifest's 'output' column (a path with '..' cannot be mirrored)")
    return _renamed("/".join(parts), suffix)


def _manifest_jobs(manifest: Path, suffix: str) -> Iterator[Job]:
    base = str(manifest.parent)
    for n, row in enumerate(manifest_rows(manifest), start=1):
        src = next((str(row[c]) for c in PATH_COLUMNS if row.get(c) not in (None, "")), None)
        if src is None:
            raise UsageError(f"{manifest}: row {n} names no input (a column {' / '.join(PATH_COLUMNS)})")
        out = str(row.get("output") or "") or output_name(src, suffix)
        if out.startswith("/") or ".." in out.split("/"):
            raise UsageError(f"{manifest}: row {n}: an output must be a relative path inside the destination, got {out}")
        where = src if "://" in src else os.path.abspath(os.path.join(base, src))
        yield Job(src, where, out)


def manifest_rows(manifest: Path) -> Iterator[dict]:
    """The rows of a manifest as dicts, one at a time."""
    suffix = manifest.suffix.lower()
    if suffix == ".parquet":
        yield from _parquet_rows(manifest)
        return
    with manifest.open(newline="", encoding="utf-8") as f:
        if suffix == ".csv":
            yield from csv.DictReader(f)
            return
        for n, line in enumerate(f, start=1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise UsageError(f"{manifest}: line {n} is not JSON ({exc.msg})") from None
                yield row if isinstance(row, dict) else {"path": row}


def _parquet_rows(manifest: Path) -> Iterator[dict]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UsageError("a Parquet manifest needs pyarrow: pip install 'codec[cluster]'") from None
    parquet = pq.ParquetFile(manifest)
    columns = [c for c in parquet.schema_arrow.names if c in (*PATH_COLUMNS, "output")]
    for batch in parquet.iter_batches(batch_size=4096, columns=columns):
        yield from batch.to_pylist()


def count_jobs(source: str, decode: bool = False) -> int:
    """How many jobs `source` holds (one streaming pass; for the progress bar's ETA)."""
    return sum(1 for _ in iter_jobs(source, ".x", decode))
