"""Export to weights/: the one entry point (`export`) that every family's export calls.

    family export (hyperprior, m2t, vct) ── model, training facts ──► export
        ──► <weights>/<model_id>.safetensors (atomic) + its weights/manifest.json entry

A family's export reads its run (`read_checkpoint`, `run_facts`, `transformer_of`), builds the
model from the trained modules (its pipeline module's `from_module(s)`) and calls `export`, which
serializes it and names its config through the family registry (`codec.registry`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from codec.errors import InputError, UsageError
from codec.settings import weights_dir
from codec.zoo import read_manifest, write_manifest


class ModelExistsError(UsageError, FileExistsError):
    """An export to a model id that exists, without force (a usage error on the command line)."""


def read_checkpoint(path) -> dict:
    """A training checkpoint (see `codec.train.loop.Checkpoint`) on the CPU; InputError if missing."""
    if not Path(path).is_file():
        raise InputError(f"no checkpoint at {path}")
    return torch.load(path, map_location="cpu", weights_only=True)


def run_facts(state: dict) -> dict:
    """The manifest's training facts every checkpoint holds: steps and minutes."""
    return {"steps": int(state["step"]), "minutes": round(float(state["elapsed"]) / 60, 1)}


def transformer_of(state: dict, model_class, config_class) -> torch.nn.Module:
    """The trained entropy transformer of an M2T or VCT checkpoint (its config under `tf_config`)."""
    tf = model_class(config_class(**state["tf_config"]))
    tf.load_state_dict(state["model"])
    return tf


def export(model, training: dict, *, folder: Path | None = None, make_default: bool = False,
           force: bool = False) -> dict:
    """Writes <folder>/<model_id>.safetensors of a model (`codec.family.Loaded`, e.g. a family's
    `from_module(s)` of freshly trained modules) atomically, and its manifest entry: file, sha256,
    bytes, family, config (the family's `serialize` and `config`), training facts. Refuses an
    existing id without `force` (ModelExistsError, a FileExistsError). The manifest's default of the model's kind
    (`default`, or `default_video` for video families) names it when `make_default` or when it
    names none yet. Returns the entry."""
    from codec.atomic import atomic_write
    from codec.registry import family_of

    folder = Path(folder) if folder else weights_dir()
    manifest = read_manifest(folder)
    if model.model_id in manifest["models"] and not force:
        raise ModelExistsError(f"model {model.model_id!r} already exists in {folder}; pass --force to replace it")
    family = family_of(model)
    data = family.serialize(model)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{model.model_id}.safetensors"
    atomic_write(path, data, force=True)
    entry = {"file": path.name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "family": family.name,
             "config": family.config(model), "training": training, "metrics": {}}
    manifest["models"][model.model_id] = entry
    default_key = "default_video" if family.kind == "video" else "default"
    if make_default or not manifest.get(default_key):
        manifest[default_key] = model.model_id
    write_manifest(manifest, folder)
    return entry


def export_module(module, model_id: str, *, training: dict | None = None, folder: Path | None = None,
                  make_default: bool = False, force: bool = False) -> dict:
    """A hyperprior module (`MeanScaleHyperprior`, e.g. one just trained) to
    <folder>/<model_id>.safetensors (parameters + frozen coding tables) and its manifest entry;
    returns the entry. The module itself is left as it was (a copy is exported). A run's export, which
    also decides whether it replaces an existing model, is `codec.train.hyperprior.export_hyperprior`."""
    import copy

    from codec.pipeline.hyperprior import from_module

    return export(from_module(copy.deepcopy(module), model_id), training or {}, folder=folder,
                  make_default=make_default, force=force)
