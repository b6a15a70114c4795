"""Where a batch's outputs go: a local folder (written atomically by codec.atomic: a temporary
name, fsync, then a rename, so a killed worker never leaves a partial file) or an fsspec URL
(`s3://bucket/prefix`, `gs://...`; written with one `pipe_file`, a single PUT that object stores
make visible whole or not at all). `file://` URLs are local folders. Inputs given as URLs are
read through fsspec too.
"""

from __future__ import annotations

import os
from pathlib import Path

from codec.errors import InputError


def is_url(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def local_path(path: str) -> str:
    return path[len("file://"):] if path.startswith("file://") else path


class Storage:
    """The destination root (a folder or a URL); names are relative, '/'-separated."""

    def __init__(self, root: str):
        self.root = root
        self.remote = is_url(root)
        if self.remote:
            import fsspec

            self.fs, self.base = fsspec.core.url_to_fs(root)
        else:
            self.base = os.path.abspath(local_path(root))  # a worker's folder is not the driver's

    def url(self, name: str) -> str:
        return (self.root.rstrip("/") + "/" + name) if self.remote else str(Path(self.base) / name)

    def exists(self, name: str) -> bool:
        if self.remote:
            return self.fs.exists(self.base.rstrip("/") + "/" + name)
        return os.path.lexists(Path(self.base) / name)

    def write(self, name: str, data: bytes, overwrite: bool) -> None:
        """The whole output at once. Without `overwrite` an existing output is left alone: kept if
        it holds exactly these bytes (a retried job whose first attempt wrote it before its worker
        died), refused otherwise (InputError, exit class 2)."""
        if self.remote:
            path = self.base.rstrip("/") + "/" + name
            if not overwrite and self.fs.exists(path):
                self._same_or_refuse(name, self.fs.cat_file(path), data)
                return
            self.fs.pipe_file(path, data)
            return
        from codec.atomic import atomic_write

        dest = Path(self.base) / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            atomic_write(dest, data, force=overwrite)
        except InputError:
            if overwrite or not dest.is_file():
                raise
            self._same_or_refuse(name, dest.read_bytes(), data)

    def _same_or_refuse(self, name: str, existing: bytes, data: bytes) -> None:
        if existing != data:
            raise InputError(f"{self.url(name)} exists and was not written by this batch (use --force)")


def read_input(src: str, max_bytes: int) -> bytes:
    """An input's bytes (a local path or an fsspec URL), at most `max_bytes`."""
    from codec.io import read_bytes

    if not is_url(src):
        return read_bytes(local_path(src), max_bytes=max_bytes)
    import fsspec

    with fsspec.open(src, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        from codec.errors import LimitError

        raise LimitError(f"{src} is over {max_bytes} bytes")
    return data
