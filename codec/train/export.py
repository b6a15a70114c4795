"""Export a trained model to weights/: safetensors (parameters + frozen coding tables) and a
manifest entry (config, sha256, training facts, validation RD cost).

    codec train export --checkpoint RUN/checkpoint.pt --model-id ID [--default] [--force]
    codec train export --shards DIR --prefix lambda0.0067 --model-id ID --lmbda 0.0067 ...

An id that already exists is replaced only when the new model has a lower validation RD cost on
the held-back training crops (same rate configuration), or with --force.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import torch

from codec.errors import UsageError
from codec.models.hyperprior import HyperpriorConfig, MeanScaleHyperprior
from codec.settings import data_dir, weights_dir
from codec.train.args import ArgumentParser
from codec.weights import serialize
from codec.zoo import read_manifest, write_manifest


def write_model(data: bytes, model_id: str, fields: dict, *, folder: Path | None = None,
                make_default: bool = False, force: bool = False) -> dict:
    """Writes <folder>/<model_id>.safetensors atomically and its manifest entry (file, sha256, bytes
    + `fields`: family, config, training); refuses an existing id without force. Returns the entry."""
    folder = Path(folder) if folder else weights_dir()
    manifest = read_manifest(folder)
    if model_id in manifest["models"] and not force:
        raise FileExistsError(f"model {model_id!r} already exists in {folder}; pass force to replace it")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{model_id}.safetensors"
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    entry = {"file": path.name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), **fields, "metrics": {}}
    manifest["models"][model_id] = entry
    if make_default or (not manifest.get("default") and fields.get("family") != "vct"):  # video models: default_video
        manifest["default"] = model_id
    write_manifest(manifest, folder)
    return entry


def export_module(
    module: MeanScaleHyperprior, model_id: str, *, training: dict | None = None, folder: Path | None = None,
    make_default: bool = False, force: bool = False,
) -> dict:
    """Writes <folder>/<model_id>.safetensors and its manifest entry; returns the entry."""
    data, _ = serialize(module, model_id)
    return write_model(data, model_id, {"family": "hyperprior", "config": module.config.to_dict(),
                                        "training": training or {}},
                       folder=folder, make_default=make_default, force=force)


def _validation_crops(folder: Path, crop: int = 256) -> torch.Tensor:
    from codec.train.data import fixed_crops, list_images

    files = list_images(folder, "val") or list_images(folder, "train")
    return fixed_crops(files, crop)


def compare_with_existing(module: MeanScaleHyperprior, model_id: str, folder: Path, data: Path,
                          crop: int = 256) -> tuple[float, float]:
    """(new cost, existing cost) on the validation crops; UsageError when they cannot be compared."""
    from safetensors.torch import load_file

    from codec.train.loop import validation_cost
    from codec.zoo import get_entry

    entry = get_entry(model_id, folder)
    cfg = module.config
    old_levels = tuple(float(v) for v in entry.config.get("levels", ()))
    if old_levels != tuple(cfg.levels) or (not cfg.levels and float(entry.config.get("lmbda", 0)) != cfg.lmbda):
        raise UsageError(f"model {model_id!r} exists with another rate configuration; pass --force to replace it")
    old = MeanScaleHyperprior(HyperpriorConfig(**entry.config))
    own = old.state_dict()
    old.load_state_dict({k: v for k, v in load_file(str(entry.file)).items() if k in own and own[k].shape == v.shape})
    val = _validation_crops(data, crop)
    return (validation_cost(module, val, cfg.levels, cfg.lmbda), validation_cost(old, val, old_levels, cfg.lmbda))


def main(argv=None, prog: str = "python -m codec.train.export") -> None:
    p = ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--shards", help="folder of <prefix>_<i>.safetensors shards")
    src.add_argument("--checkpoint", help="a training checkpoint.pt")
    p.add_argument("--prefix", default="")
    p.add_argument("--model-id", required=True)
    p.add_argument("--config", default="base")
    p.add_argument("--lmbda", type=float, default=0.0, help="trained lambda of a single-rate model (shards)")
    p.add_argument("--training", default="{}", help="JSON facts about the run for the manifest")
    p.add_argument("--weights-dir", default=None)
    p.add_argument("--data", default=None, help="training photos whose held-back crops decide 'better' (default $CODEC_DATA/train)")
    p.add_argument("--val-crop", type=int, default=256, help="size of those crops")
    p.add_argument("--default", action="store_true")
    p.add_argument("--force", action="store_true", help="replace an existing id even if the new model is not better")
    a = p.parse_args(argv)
    base = HyperpriorConfig.preset(a.config)
    levels, lmbda = (), a.lmbda
    if a.shards:
        from codec.train.loop import load_shards

        state = load_shards(Path(a.shards), a.prefix)
    else:
        ckpt = torch.load(a.checkpoint, map_location="cpu", weights_only=True)
        state, run = ckpt["model"], ckpt.get("config", {})
        base = HyperpriorConfig.preset(run.get("config", a.config))
        levels = tuple(float(v) for v in run["levels"].split(",")) if run.get("levels") else ()
        lmbda = 0.0 if levels else run.get("lmbda", lmbda)
    module = MeanScaleHyperprior(HyperpriorConfig(N=base.N, M=base.M, levels=levels, lmbda=lmbda, act=base.act))
    module.load_state_dict(state, strict=True)
    training = json.loads(a.training)
    folder = Path(a.weights_dir) if a.weights_dir else weights_dir()
    replace = a.force
    if a.model_id in read_manifest(folder)["models"] and not a.force:
        new, old = compare_with_existing(module, a.model_id, folder, Path(a.data) if a.data else data_dir() / "train",
                                         a.val_crop)
        if new >= old:
            raise UsageError(f"model {a.model_id!r} exists and is not worse (validation RD cost {old:.4f}, "
                             f"this one {new:.4f}); pass --force to replace it")
        print(f"replacing {a.model_id}: validation RD cost {old:.4f} -> {new:.4f}")
        replace = True
    entry = export_module(module, a.model_id, training=training, folder=folder, make_default=a.default, force=replace)
    print(json.dumps({k: entry[k] for k in ("file", "sha256", "bytes")}))


if __name__ == "__main__":
    main()
