"""The overfitted encoder's starting networks: learned by Reptile (codec.train.overfit_start),
exported to the manifest's starts, checked by sha256, copied into a model across grid counts, and
used by the encoder (recorded in its effort settings)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from codec.errors import WeightsError
from codec.models.overfit import PRESETS, OverfitModel
from codec.pipeline import overfit, overfit_start
from codec.pipeline.overfit_fit import Fit, FitSchedule
from codec.train.config import ExportConfig, OverfitStartTrainConfig
from codec.train.overfit_start import export_overfit_start, train_overfit_start
from tests.conftest import make_smooth_image


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A two-photo Reptile run on 40x40 crops, exported to a fresh weights folder: (run, weights)."""
    root = tmp_path_factory.mktemp("start")
    data = root / "photos"
    data.mkdir()
    for i in range(3):
        Image.fromarray(make_smooth_image(48, 56, seed=10 + i)).save(data / f"p{i}.png")
    cfg = OverfitStartTrainConfig(run_dir=str(root / "run"), data=str(data), images=2, crop=40, steps=12,
                                  qualities="50,70", threads=1)
    train_overfit_start(cfg, log=lambda _: None)
    weights = root / "weights"
    export_overfit_start(ExportConfig(checkpoint=str(root / "run" / "checkpoint.pt"),
                                      model_id="overfit-start-small", weights_dir=str(weights)))
    return cfg, weights


def test_reptile_run_resumes_where_it_stopped(trained, tmp_path):
    cfg, _ = trained
    state = torch.load(f"{cfg.run_dir}/checkpoint.pt", weights_only=True)
    assert state["visited"] == 2 and [row[1] for row in state["log"]] == [50.0, 70.0]
    more = train_overfit_start(OverfitStartTrainConfig(**{**cfg.__dict__, "images": 3}), log=lambda _: None)
    assert more["visited"] == 3 and more["log"][:2] == state["log"]  # the first two were not redone
    moved = [not torch.equal(more["theta"][k], state["theta"][k]) for k in state["theta"]]
    assert any(moved)  # the third photo moved the start


def test_exported_start_is_sha_checked_and_loaded(trained, monkeypatch):
    _, weights = trained
    monkeypatch.setenv("CODEC_WEIGHTS", str(weights))
    overfit_start._CACHE.clear()
    manifest = json.loads((weights / "manifest.json").read_text())
    entry = manifest["starts"]["overfit-start-small"]
    assert entry["config"]["size"] == "small" and entry["training"]["photos"] == 2 and not manifest["models"]
    start = overfit_start.load_start("small")
    assert start.sha256 == entry["sha256"] == overfit_start.start_sha256("small")
    assert overfit_start.load_start("medium") is None  # none ships: from scratch
    data = (weights / entry["file"]).read_bytes()
    (weights / entry["file"]).write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    overfit_start._CACHE.clear()
    try:
        with pytest.raises(WeightsError, match="does not match the manifest"):
            overfit_start.load_start("small")
    finally:
        (weights / entry["file"]).write_bytes(data)
        overfit_start._CACHE.clear()


def test_start_fills_the_grids_both_models_have():
    coarse = OverfitModel(PRESETS["small"], 40, 40, seed=1)  # 3 grids
    fine = OverfitModel(PRESETS["small"], 80, 80, seed=2)  # 4 grids
    assert (coarse.grid_count, fine.grid_count) == (3, 4)
    with torch.no_grad():
        for p in coarse.parameters():
            p.add_(1.0)
    fresh = fine.synthesis.mlp[0].weight.detach().clone()
    overfit_start.apply(fine, overfit_start.network_tensors(coarse))
    w = fine.synthesis.mlp[0].weight
    assert torch.equal(w[:, :3], coarse.synthesis.mlp[0].weight) and torch.equal(w[:, 3], fresh[:, 3])
    assert torch.equal(fine.taps[1], coarse.taps[1]) and torch.equal(fine.arm.out.weight, coarse.arm.out.weight)
    overfit_start.apply(coarse, overfit_start.network_tensors(fine))  # and back: the extra grid's parts dropped
    assert torch.equal(coarse.synthesis.mlp[0].weight, w[:, :3])


def test_start_of_another_decoder_size_is_refused():
    medium = OverfitModel(PRESETS["medium"], 40, 40)
    with pytest.raises(WeightsError, match="do not fit this decoder"):
        overfit_start.apply(medium, overfit_start.network_tensors(OverfitModel(PRESETS["small"], 40, 40)))


def test_encoder_starts_from_the_shipped_start_and_says_so(trained, monkeypatch):
    _, weights = trained
    pixels = make_smooth_image(24, 32, seed=4)
    lam = overfit.rate_for(quality=60).lam
    monkeypatch.setenv("CODEC_WEIGHTS", str(weights))
    overfit_start._CACHE.clear()
    start = overfit_start.load_start("small")
    fit = Fit(pixels, PRESETS["small"], lam, FitSchedule(iterations=1), start=start.tensors)
    model = fit.start(0)
    assert torch.equal(model.arm.out.weight, start.tensors["arm.out.weight"])
    # the output bias is the image's mean colour, not the start's average of photos (found: revision
    # 9's medium start left kodim07 at quality 80 on a 24.9 dB plateau, a channel cut off by a ReLU)
    if model.synthesis.convs[0].weight.any():  # the start's 3x3 layers kept
        assert torch.allclose(model.synthesis.mlp[-1].bias, fit.x.mean(dim=(1, 2)))
    settings = overfit.FAMILY.effort_settings(1)
    assert settings["start"] == start.sha256[:16] and settings["high"]["start"] == "none"
    seen = []
    monkeypatch.setattr(overfit_start, "apply", lambda m, t: seen.append(t))
    monkeypatch.setitem(overfit.EFFORTS, 1, overfit.Preset("small", 2, candidates=1, warmup=0))
    overfit.fit(overfit.Analysis(pixels), overfit.rate_for(quality=60), overfit.EFFORTS[1])
    assert seen and seen[0] is start.tensors
    monkeypatch.setenv("CODEC_WEIGHTS", str(weights / "absent"))
    assert overfit.FAMILY.effort_settings(1)["start"] == "none"
    overfit_start._CACHE.clear()


def test_fit_from_a_start_begins_where_the_start_is_good():
    """A start fitted to one crop of an image codes another crop of it better at once than a fresh
    model: the networks carry over (the point of shipping a start)."""
    image = make_smooth_image(48, 96, seed=8)
    left, right = np.ascontiguousarray(image[:, :48]), np.ascontiguousarray(image[:, 48:])
    lam = overfit.rate_for(quality=60).lam
    schedule = FitSchedule(iterations=150, candidates=1, warmup=0, compile=False)
    fitted = Fit(left, PRESETS["small"], lam, schedule).run()
    short = FitSchedule(iterations=30, candidates=1, warmup=0, compile=False)
    scratch = Fit(right, PRESETS["small"], lam, short)
    started = Fit(right, PRESETS["small"], lam, short, start=overfit_start.network_tensors(fitted))
    assert started.hard_cost(started.run())[0] < scratch.hard_cost(scratch.run())[0]


def test_a_start_whose_3x3_layers_cut_a_channel_off_loses_them():
    """A channel below zero at the ReLU between the 3x3 layers (zero latents: everywhere) gets no
    gradient; the encoder drops such a start's 3x3 layers (revision 11) and keeps harmless ones."""
    image = make_smooth_image(40, 48, seed=7)
    donor = OverfitModel(PRESETS["small"], 40, 48, seed=4)
    with torch.no_grad():
        donor.synthesis.convs[0].weight.normal_(0, 0.01)
    harmless = overfit_start.network_tensors(donor)
    cutting = {**harmless, "synthesis.convs.0.bias": torch.tensor([-5.0, 0.0, 0.0])}
    kept = Fit(image, PRESETS["small"], 0.02, FitSchedule(iterations=1), start=harmless).start(0)
    assert kept.synthesis.cut_channels() == 0
    assert torch.equal(kept.synthesis.convs[0].weight, harmless["synthesis.convs.0.weight"])
    raw = OverfitModel(PRESETS["small"], 40, 48)
    overfit_start.apply(raw, cutting)
    assert raw.synthesis.cut_channels() == 1  # as the start gives it
    dropped = Fit(image, PRESETS["small"], 0.02, FitSchedule(iterations=1), start=cutting).start(0)
    assert dropped.synthesis.cut_channels() == 0
    mean = torch.from_numpy(image.reshape(-1, 3).mean(axis=0) / 255.0).float()
    with torch.no_grad():  # with the 3x3 layers gone the synthesis starts exactly at the mean colour
        whole = dropped.image(torch.zeros_like(dropped.canvas)).mean(dim=(1, 2))
    assert torch.allclose(whole, mean, atol=1e-5)
    assert all(not c.weight.detach().any() and not c.bias.detach().any() for c in dropped.synthesis.convs)
    assert torch.equal(dropped.arm.out.weight, cutting["arm.out.weight"])  # the rest of the start kept
