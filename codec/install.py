"""`codec models install DIR`: copy models that do not ship in the package into the user's weights
folder (codec.settings.user_weights_dir), each checked against its sha256 before it is copied.

DIR holds .safetensors files and, optionally, a manifest.json listing them (a checkout's weights/ or
a release folder). Without a manifest, the files are matched with the entries of the manifest this
copy of codec ships (by file name), so a model can only be installed with the hash codec expects.
An id the shipped manifest lists with another sha256 is refused: a file decodes only with the exact
weights its encoder used. Standard library only (no torch).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from codec.atomic import atomic_file
from codec.errors import InputError, WeightsError
from codec.settings import user_weights_dir, weights_dir
from codec.zoo import MANIFEST, STARTS, read_manifest, write_manifest

TABLES = ("models", STARTS)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fp:
        for block in iter(lambda: fp.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def install_models(source: Path, dest: Path | None = None) -> list[dict]:
    """Install every model of `source` that has its file there; returns one row per model
    (id, table, file, bytes, status: installed / present). Raises InputError for a source with
    nothing to install, WeightsError for a file whose sha256 is not the listed one."""
    source, dest = Path(source), Path(dest) if dest else user_weights_dir()
    if not source.is_dir():
        raise InputError(f"{source} is not a folder of model files")
    shipped = read_manifest(weights_dir())
    listing = read_manifest(source) if (source / MANIFEST).is_file() else shipped
    target = read_manifest(dest) if (dest / MANIFEST).is_file() else {"format": 1, "default": None, "models": {}}
    rows: list[dict] = []
    for table in TABLES:
        for mid, entry in (listing.get(table) or {}).items():
            try:
                name, sha = Path(entry["file"]).name, entry["sha256"]
            except (KeyError, TypeError):
                raise WeightsError(f"manifest entry of {mid!r} in {source} lacks 'file' or 'sha256'") from None
            path = source / name
            if not path.is_file():
                continue
            known = (shipped.get(table) or {}).get(mid)
            if known is not None and known.get("sha256") != sha:
                raise WeightsError(f"{mid!r} in {source} is not the model of that name this codec knows "
                                   f"(sha256 {sha[:12]}..., expected {known.get('sha256', '')[:12]}...)")
            actual = sha256_of(path)
            if actual != sha:
                raise WeightsError(f"{path} does not match its manifest: sha256 {actual}, expected {sha}")
            out = dest / name
            present = out.is_file() and sha256_of(out) == sha
            if not present:
                dest.mkdir(parents=True, exist_ok=True)
                with open(path, "rb") as src, atomic_file(out, force=True) as fp:
                    shutil.copyfileobj(src, fp, 1 << 20)
            target.setdefault(table, {})[mid] = dict(entry, file=name)
            rows.append({"id": mid, "table": table, "file": str(out), "bytes": path.stat().st_size,
                         "status": "present" if present else "installed"})
    if not rows:
        raise InputError(f"no model files in {source} (expected .safetensors files listed in its manifest.json "
                         f"or in codec's)")
    write_manifest(target, dest)
    return rows
