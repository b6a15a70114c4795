"""Training path on a tiny config: a few steps run, resume continues, export loads and codes."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from codec.entropy.factorized import FactorizedDensity
from codec.entropy.gaussian import gaussian_likelihood, scale_table, snap_scales
from codec.pipeline.image import compress, decompress
from codec.train.export import export_module
from codec.train.loop import TrainConfig, train
from codec.weights import load_entry
from codec.zoo import get_entry, read_manifest


@pytest.fixture()
def photo_dir(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(6):
        img = rng.integers(0, 256, (80, 96, 3), dtype=np.uint8)
        Image.fromarray(img).save(folder / f"img_{i}.png")
    return folder


def test_tiny_training_runs_resumes_and_exports_a_working_model(photo_dir, tmp_path):
    cfg = TrainConfig(data=str(photo_dir), run_dir=str(tmp_path / "run"), config="tiny", batch=2, crop=64,
                      max_steps=4, val_every=2, warmup_steps=2, threads=1)
    ckpt = train(cfg, resume=False, log=lambda s: None)
    state = torch.load(ckpt, weights_only=True)
    assert state["step"] == 4
    cfg.max_steps = 6
    train(cfg, resume=True, log=lambda s: None)
    assert torch.load(ckpt, weights_only=True)["step"] == 6
    rows = list(csv.DictReader(open(tmp_path / "run" / "log.csv")))
    assert rows and all(np.isfinite(float(r["loss"])) for r in rows)

    from codec.models.hyperprior import HyperpriorConfig, MeanScaleHyperprior

    module = MeanScaleHyperprior(HyperpriorConfig.tiny())
    module.load_state_dict(torch.load(ckpt, weights_only=True)["model"])
    wdir = tmp_path / "weights"
    export_module(module, "tiny-trained", training={"steps": 6}, folder=wdir)
    with pytest.raises(FileExistsError):
        export_module(module, "tiny-trained", folder=wdir)
    assert read_manifest(wdir)["default"] == "tiny-trained"
    model = load_entry(get_entry("tiny-trained", wdir))
    pixels = np.asarray(Image.open(photo_dir / "img_0.png"))
    enc = compress(model, pixels)
    np.testing.assert_array_equal(decompress(enc.data, model).y_sym, enc.y_sym)


def test_factorized_table_rows_are_normalised_with_escape_bins():
    torch.manual_seed(0)
    density = FactorizedDensity(4)
    offsets, pmf = density.pmf_table()
    assert pmf.shape[0] == 4 and pmf.shape[1] >= 3
    np.testing.assert_allclose(pmf.sum(1).numpy(), 1.0, rtol=1e-12)
    assert (pmf > 0).all()
    assert (offsets == -(pmf.shape[1] - 1) // 2).all()


def test_gaussian_bins_sum_to_one():
    r = torch.arange(-200, 201, dtype=torch.float64)
    for s in (0.11, 1.0, 7.3, 40.0):
        total = gaussian_likelihood(r, torch.full_like(r, s)).sum().item()
        assert abs(total - 1.0) < 1e-6


def test_scale_snapping_picks_the_smallest_table_entry_not_below():
    table = scale_table()
    s = torch.tensor([0.01, 0.11, 0.5, 3.0, 1e6], dtype=torch.float64)
    idx = snap_scales(s, table)
    assert idx[0] == 0 and idx[-1] == len(table) - 1
    for v, i in zip(s[1:-1], idx[1:-1]):
        assert table[i] >= v - 1e-12 and (i == 0 or table[i - 1] < v)
