"""Settings read from the environment, with defaults relative to the repository or the installed package.

Weights are looked up in two folders (codec.zoo merges their manifests):
  * the primary folder, weights_dir(): $CODEC_WEIGHTS; else weights/ of the checkout this code runs
    from; else the weights shipped inside the installed package (codec/shipped, read through
    importlib.resources: the default image and video models and the encoders' starting points);
  * the user's folder, user_weights_dir(), where `codec models install DIR` puts the other models:
    $XDG_DATA_HOME/codec/weights, else ~/.local/share/codec/weights.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED = "shipped"
"""The folder inside the installed package that holds the shipped weights (pyproject.toml maps the
repository's weights/ there and selects the files)."""


def data_dir() -> Path:
    """Shared data folder: $CODEC_DATA, else ../shared/data beside the repository."""
    return Path(os.environ.get("CODEC_DATA", REPO_ROOT.parent / "shared" / "data"))


def in_checkout() -> bool:
    """Whether this code runs from a checkout of the repository (editable install or PYTHONPATH),
    not from an installed wheel."""
    return (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "weights").is_dir()


def weights_dir() -> Path:
    """The primary weights folder: $CODEC_WEIGHTS, else the checkout's weights/, else the package's."""
    if os.environ.get("CODEC_WEIGHTS"):
        return Path(os.environ["CODEC_WEIGHTS"])
    if in_checkout():
        return REPO_ROOT / "weights"
    return Path(str(resources.files("codec").joinpath(SHIPPED)))


def user_weights_dir() -> Path:
    """Models the user installed (`codec models install DIR`): $XDG_DATA_HOME/codec/weights, else
    ~/.local/share/codec/weights."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "codec" / "weights"
