"""Export a trained model to weights/: safetensors (parameters + frozen coding tables) and a
manifest entry (config, sha256, training facts). Refuses to replace an existing id without force.

    python -m codec.train.export --shards DIR --prefix lambda0.0067 --model-id ID --config base \
        --training '{"steps": ..., ...}' [--default] [--force]
    python -m codec.train.export --checkpoint RUN/checkpoint.pt ...
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import torch
from codec.models.hyperprior import HyperpriorConfig, MeanScaleHyperprior
from codec.settings import weights_dir
from codec.weights import serialize
from codec.zoo import read_manifest, write_manifest


def export_module(
    module: MeanScaleHyperprior, model_id: str, *, training: dict | None = None, folder: Path | None = None,
    make_default: bool = False, force: bool = False,
) -> dict:
    """Writes <folder>/<model_id>.safetensors and its manifest entry; returns the entry."""
    folder = Path(folder) if folder else weights_dir()
    manifest = read_manifest(folder)
    if model_id in manifest["models"] and not force:
        raise FileExistsError(f"model {model_id!r} already exists in {folder}; pass force to replace it")
    data, _ = serialize(module, model_id)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{model_id}.safetensors"
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    entry = {
        "file": path.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "family": "hyperprior",
        "config": module.config.to_dict(),
        "training": training or {},
        "metrics": manifest["models"].get(model_id, {}).get("metrics", {}) if force else {},
    }
    manifest["models"][model_id] = entry
    if make_default or not manifest.get("default"):
        manifest["default"] = model_id
    write_manifest(manifest, folder)
    return entry


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m codec.train.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--shards", help="folder of <prefix>_<i>.safetensors shards")
    src.add_argument("--checkpoint", help="a training checkpoint.pt")
    p.add_argument("--prefix", default="")
    p.add_argument("--model-id", required=True)
    p.add_argument("--config", default="base")
    p.add_argument("--lmbda", type=float, default=0.0, help="trained lambda of a single-rate model (shards)")
    p.add_argument("--training", default="{}", help="JSON facts about the run for the manifest")
    p.add_argument("--weights-dir", default=None)
    p.add_argument("--default", action="store_true")
    p.add_argument("--force", action="store_true")
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
    entry = export_module(module, a.model_id, training=json.loads(a.training), folder=a.weights_dir,
                          make_default=a.default, force=a.force)
    print(json.dumps({k: entry[k] for k in ("file", "sha256", "bytes")}))


if __name__ == "__main__":
    main()
