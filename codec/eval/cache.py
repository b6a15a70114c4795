"""Measured evaluation rows kept on disk, one JSON file a row, keyed by everything the row depends on:
the input's digest, the codec's identity (its `cache_identity` when it has one, else its name,
version and settings), the quality and any extra key (the GOP of a video). A long evaluation
interrupted or spread over sessions picks up where it stopped; cached rows say "cached": true and
keep the timings of the run that measured them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from codec.atomic import atomic_write


def row_key(input_digest: str, codec, quality, *extra) -> str:
    ident = getattr(codec, "cache_identity", None) or {"name": codec.name, "version": codec.version,
                                                         "settings": codec.settings}
    text = input_digest + json.dumps([ident, str(quality), *extra], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def read_row(cache: Path | None, key: str) -> dict | None:
    path = Path(cache) / f"{key}.json" if cache is not None else None
    if path is None or not path.exists():
        return None
    return {**json.loads(path.read_text()), "cached": True}


def write_row(cache: Path | None, key: str, row: dict) -> None:
    if cache is not None:
        Path(cache).mkdir(parents=True, exist_ok=True)
        atomic_write(Path(cache) / f"{key}.json", json.dumps(row).encode(), force=True)
