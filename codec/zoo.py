"""The model zoo: stable string ids -> weights file, sha256, config and measured figures.

Reads `weights/manifest.json` only (no torch), so `codec models` and `codec info` start fast.
Manifest shape::

    {"format": 1, "default": "<model id>",
     "models": {"<model id>": {"file": "<id>.safetensors", "sha256": "...", "bytes": 123,
                               "family": "hyperprior", "config": {...}, "training": {...},
                               "metrics": {"kodak": {...}}}}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from codec.errors import ModelError, WeightsError
from codec.settings import weights_dir

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class ModelEntry:
    model_id: str
    file: Path
    sha256: str
    family: str
    config: dict
    info: dict = field(default_factory=dict)  # the whole manifest entry (training, metrics, ...)

    @property
    def size(self) -> int:
        return self.file.stat().st_size if self.file.exists() else 0


def read_manifest(folder: Path | None = None) -> dict:
    folder = Path(folder) if folder else weights_dir()
    path = folder / MANIFEST
    if not path.exists():
        return {"format": 1, "default": None, "models": {}}
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise WeightsError(f"cannot read {path}: {exc}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("models"), dict):
        raise WeightsError(f"{path} is not a model manifest (no 'models' table)")
    return manifest


def write_manifest(manifest: dict, folder: Path | None = None) -> Path:
    folder = Path(folder) if folder else weights_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / MANIFEST
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
    return path


def list_models(folder: Path | None = None) -> list[ModelEntry]:
    folder = Path(folder) if folder else weights_dir()
    manifest = read_manifest(folder)
    return [_entry(folder, mid, e) for mid, e in manifest["models"].items()]


def default_model_id(folder: Path | None = None) -> str:
    manifest = read_manifest(folder)
    mid = manifest.get("default")
    if not mid:
        raise ModelError(f"no default model in {Path(folder or weights_dir()) / MANIFEST}; train and export one")
    return mid


def get_entry(model_id: str | None = None, folder: Path | None = None) -> ModelEntry:
    folder = Path(folder) if folder else weights_dir()
    manifest = read_manifest(folder)
    model_id = model_id or default_model_id(folder)
    if model_id not in manifest["models"]:
        known = ", ".join(sorted(manifest["models"])) or "none"
        raise ModelError(f"unknown model {model_id!r}; shipped models: {known}")
    return _entry(folder, model_id, manifest["models"][model_id])


def _entry(folder: Path, model_id: str, e: dict) -> ModelEntry:
    try:
        return ModelEntry(
            model_id=model_id, file=folder / Path(e["file"]).name, sha256=e["sha256"],
            family=e.get("family", "hyperprior"), config=e.get("config", {}), info=e,
        )
    except (KeyError, TypeError):
        raise WeightsError(f"manifest entry of {model_id!r} lacks 'file' or 'sha256'") from None


STARTS = "starts"
"""The manifest's table of encoder starting points: tensors an encoder begins its own optimisation
from (the overfitted family's starting networks, codec.pipeline.overfit_start), never needed to
decode and never listed as models. Entries have the models' shape (file, sha256, config, training,
metrics)."""


def get_start(name: str, folder: Path | None = None) -> ModelEntry | None:
    """The manifest's starting point `name`, or None where the manifest has none of that name."""
    folder = Path(folder) if folder else weights_dir()
    starts = read_manifest(folder).get(STARTS) or {}
    if not isinstance(starts, dict):
        raise WeightsError(f"{folder / MANIFEST}: '{STARTS}' is not a table")
    return _entry(folder, name, starts[name]) if name in starts else None
