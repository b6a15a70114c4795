"""The model zoo: stable string ids -> weights file, sha256, config and measured figures.

Reads manifests only (no torch), so `codec models` and `codec info` start fast. Two folders are
merged (codec.settings): the primary one (a checkout's weights/, the installed package's shipped
weights, or $CODEC_WEIGHTS) and the user's, where `codec models install` copies models that do not
ship in the package. A model listed with no file in either folder is "not installed".
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
from codec.settings import user_weights_dir, weights_dir

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

    @property
    def installed(self) -> bool:
        return self.file.is_file()


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


def folders(folder: Path | None = None) -> list[Path]:
    """The folders whose manifests are merged: `folder` alone where given, else the primary weights
    folder then the user's."""
    if folder:
        return [Path(folder)]
    primary, user = weights_dir(), user_weights_dir()
    return [primary] if user.resolve() == primary.resolve() else [primary, user]


def _merged(table: str, folder: Path | None = None) -> dict[str, ModelEntry]:
    """Entries of manifest table `table` over folders(folder): the first folder that lists an id
    gives its entry, unless its file is missing there and a later folder has it."""
    found: dict[str, ModelEntry] = {}
    for place in folders(folder):
        entries = read_manifest(place).get(table) or {}
        if not isinstance(entries, dict):
            raise WeightsError(f"{place / MANIFEST}: '{table}' is not a table")
        for mid, e in entries.items():
            entry = _entry(place, mid, e)
            if mid not in found or (not found[mid].installed and entry.installed):
                found[mid] = entry
    return found


def list_models(folder: Path | None = None) -> list[ModelEntry]:
    return list(_merged("models", folder).values())


def default_model_id(folder: Path | None = None) -> str:
    manifest = read_manifest(folder)
    mid = manifest.get("default")
    if not mid:
        raise ModelError(f"no default model in {Path(folder or weights_dir()) / MANIFEST}; train and export one")
    return mid


def get_entry(model_id: str | None = None, folder: Path | None = None) -> ModelEntry:
    model_id = model_id or default_model_id(folder)
    models = _merged("models", folder)
    if model_id not in models:
        known = ", ".join(sorted(models)) or "none"
        raise ModelError(f"unknown model {model_id!r}; shipped models: {known}")
    return models[model_id]


def _entry(folder: Path, model_id: str, e: dict) -> ModelEntry:
    try:
        return ModelEntry(
            model_id=model_id, file=folder / Path(e["file"]).name, sha256=e["sha256"],
            family=e.get("family", "hyperprior"), config=e.get("config", {}), info=e,
        )
    except (KeyError, TypeError):
        raise WeightsError(f"manifest entry of {model_id!r} lacks 'file' or 'sha256'") from None


def entry_for_file(path: Path) -> ModelEntry:
    """The entry of a model file outside the zoo (`codec eval -c ours:DIR/x.safetensors`): the
    manifest.json beside it must list the file (an export's folder: `codec train export
    --weights-dir DIR`), since the file alone does not say how to build its model."""
    path = Path(path)
    manifest = read_manifest(path.parent)
    for mid, e in manifest["models"].items():
        if isinstance(e, dict) and Path(str(e.get("file", ""))).name == path.name:
            return _entry(path.parent, mid, e)
    raise WeightsError(f"{path}: no {MANIFEST} beside it lists this file (export the model with "
                       f"`codec train export --weights-dir DIR` and name DIR/<id>.safetensors)")


QUALITY = "quality"
"""The manifest's table of what `-q` means across the zoo (measured on Kodak, scripts/quality_routes.sh):

    "quality": {"routes": [{"model": "<id>", "up_to": 70}, {"model": "<id>", "up_to": 100}],
                "reference": {"<single-rate id>": 85}}

routes: with no model named, quality q goes to the first model whose `up_to` is at least q (each
model best at its rates, so bytes and PSNR grow with q across the zoo); reference: the quality at
which a single-rate model runs at its trained step 1 (60 where absent), every 20 halving the step."""


def quality_table(folder: Path | None = None) -> dict:
    table = read_manifest(folder or weights_dir()).get(QUALITY) or {}
    return table if isinstance(table, dict) else {}


def route_quality(quality: float, folder: Path | None = None) -> str | None:
    """The model `-q quality` goes to when no model is named (None: the default model)."""
    for route in quality_table(folder).get("routes") or []:
        if isinstance(route, dict) and quality <= float(route.get("up_to", 100)) and route.get("model"):
            return str(route["model"])
    return None


def quality_reference(model_id: str, default: float = 60.0) -> float:
    """The quality at which single-rate model `model_id` runs at step 1 (see QUALITY)."""
    value = (quality_table().get("reference") or {}).get(model_id)
    return float(value) if isinstance(value, (int, float)) else default


STARTS = "starts"
"""The manifest's table of encoder starting points: tensors an encoder begins its own optimisation
from (the overfitted family's starting networks, codec.pipeline.overfit_start), never needed to
decode and never listed as models. Entries have the models' shape (file, sha256, config, training,
metrics)."""


def get_start(name: str, folder: Path | None = None) -> ModelEntry | None:
    """The manifest's starting point `name`, or None where the manifest has none of that name."""
    return _merged(STARTS, folder).get(name)
