"""Settings read from the environment, with defaults relative to the repository."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """Shared data folder: $CODEC_DATA, else ../shared/data beside the repository."""
    return Path(os.environ.get("CODEC_DATA", REPO_ROOT.parent / "shared" / "data"))


def weights_dir() -> Path:
    """Shipped weights: $CODEC_WEIGHTS, else weights/ in the repository."""
    return Path(os.environ.get("CODEC_WEIGHTS", REPO_ROOT / "weights"))
