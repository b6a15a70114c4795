"""The overfitted encoder's starting networks, learned across training photos (Reptile; Nichol,
Achiam & Schulman 2018, "On First-Order Meta-Learning Algorithms").

    theta (networks) ──► for each photo in turn: a random crop, a quality from the list,
        fit `steps` iterations from theta (codec.pipeline.overfit_fit.Fit, latents from zero)
        ──► phi, the fitted networks;  theta <- theta + step_size x (phi - theta)
    ──► RUN/checkpoint.pt after every photo (resumable) ──► export_overfit_start: weights/ "starts"

The first photo starts from scratch. Validation photos (codec.train.data.is_validation) are never
visited. The result is the encoder's start for one decoder size (codec.pipeline.overfit_start).
"""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from codec.errors import InputError
from codec.train.config import ExportConfig, OverfitStartTrainConfig
from codec.train.data import load_photo, list_images

CHECKPOINT = "checkpoint.pt"


def crop_of(photo: np.ndarray, side: int, rng: random.Random) -> np.ndarray:
    """A random side x side crop (the whole photo where it is smaller)."""
    h, w = photo.shape[:2]
    r, c = rng.randrange(max(1, h - side + 1)), rng.randrange(max(1, w - side + 1))
    return np.ascontiguousarray(photo[r:r + side, c:c + side])


def train_overfit_start(cfg: OverfitStartTrainConfig, resume: bool = True, log=print, on_progress=None) -> dict:
    """Runs (or resumes) the Reptile loop of `cfg`; returns the final checkpoint state."""
    from codec.models.overfit import PRESETS
    from codec.pipeline.overfit import rate_for
    from codec.pipeline.overfit_fit import Fit, FitSchedule
    from codec.pipeline.overfit_start import network_tensors

    if cfg.size not in PRESETS:
        raise InputError(f"unknown decoder size {cfg.size!r}; sizes: {', '.join(PRESETS)}")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    run = Path(cfg.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    path = run / CHECKPOINT
    photos = list_images(cfg.data_folder(), "train")
    if not photos:
        raise InputError(f"no training photos in {cfg.data_folder()}")
    random.Random(cfg.seed).shuffle(photos)
    qualities = cfg.quality_list()
    state = {"theta": None, "visited": 0, "elapsed": 0.0, "config": asdict(cfg), "log": []}
    if resume and path.exists():
        state = torch.load(path, map_location="cpu", weights_only=True)
        log(f"resumed after {state['visited']} photos ({state['elapsed'] / 60:.1f} min)")
    t0 = time.perf_counter() - state["elapsed"]
    while state["visited"] < cfg.images and time.perf_counter() - t0 < 60 * cfg.max_minutes:
        i = state["visited"]
        rng = random.Random(cfg.seed * 1_000_003 + i)
        photo = photos[i % len(photos)]
        x = crop_of(load_photo(photo), cfg.crop, rng)
        quality = qualities[i % len(qualities)]
        # the shipped starts' proxy (revision 9: C3's Kumaraswamy noise, no clipping); Fit.start's
        # exact mean colour and its 3x3 guard are revision 11's (the shipped starts predate them)
        schedule = FitSchedule(iterations=cfg.steps, candidates=1, warmup=0, noise="kumaraswamy",
                               temperature=(0.3, 0.1), clip=0.0)
        fit = Fit(x, PRESETS[cfg.size], rate_for(quality).lam, schedule, seed=cfg.seed + i, start=state["theta"])
        model = fit.run()
        phi = network_tensors(model)
        theta = state["theta"]
        state["theta"] = phi if theta is None else {k: theta[k] + cfg.step_size * (phi[k] - theta[k]) for k in theta}
        loss, bpp, mse = fit.hard_cost(model)
        psnr = 10 * np.log10(255.0 ** 2 / max(mse, 1e-10))
        state["log"].append([photo.name, quality, round(bpp, 4), round(float(psnr), 3), round(loss, 5)])
        state["visited"] = i + 1
        state["elapsed"] = time.perf_counter() - t0
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(path)
        log(f"{i + 1}/{cfg.images} {photo.name} q{quality:g}: {bpp:.4f} bpp {psnr:.2f} dB cost {loss:.4f} "
            f"({state['elapsed'] / 60:.1f} min)")
        if on_progress:
            on_progress(state["visited"] / cfg.images, f"{state['visited']}/{cfg.images} photos")
    return state


def export_overfit_start(cfg: ExportConfig) -> dict:
    """The run's starting networks to <weights>/<model_id>.safetensors (atomic) and the manifest's
    "starts" table (codec.zoo.STARTS): file, sha256, bytes, config (the decoder size), training
    facts (the run's config, photos visited, minutes, and `cfg.training`). The id must be
    overfit-start-<size> of the run's size; an existing one is replaced only with force."""
    from safetensors.torch import save as save_safetensors

    from codec.atomic import atomic_write
    from codec.models.overfit import PRESETS
    from codec.pipeline.overfit_start import start_name
    from codec.train.export import ModelExistsError
    from codec.zoo import STARTS, read_manifest, write_manifest

    path = Path(cfg.checkpoint)
    if not path.is_file():
        raise InputError(f"no checkpoint at {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    size = state["config"]["size"]
    if state["theta"] is None:
        raise InputError(f"{path} has visited no photo yet")
    if cfg.model_id != start_name(size):
        raise InputError(f"a start of the {size} decoder is named {start_name(size)!r}, not {cfg.model_id!r}")
    folder = cfg.folder()
    manifest = read_manifest(folder)
    starts = manifest.setdefault(STARTS, {})
    if cfg.model_id in starts and not cfg.force:
        raise ModelExistsError(f"start {cfg.model_id!r} already exists in {folder}; pass --force to replace it")
    data = save_safetensors({k: v.contiguous() for k, v in sorted(state["theta"].items())})
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{cfg.model_id}.safetensors"
    atomic_write(out, data, force=True)
    run = state["config"]
    training = {"method": "Reptile over training crops", "photos": state["visited"],
                "minutes": round(state["elapsed"] / 60, 1), **{k: run[k] for k in
                ("crop", "steps", "step_size", "qualities", "seed")},
                "data": run["data"] or "train/ of $CODEC_DATA (default ../shared/data), validation photos held back",
                "visited": [row[0] for row in state["log"]], **cfg.facts()}
    entry = {"file": out.name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
             "family": "overfit-start", "config": {"size": size, "decoder": asdict(PRESETS[size])},
             "training": training, "metrics": {}}
    starts[cfg.model_id] = entry
    write_manifest(manifest, folder)
    return entry
