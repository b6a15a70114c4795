"""Effort levels (codec/pipeline/refine.py): stochastic Gumbel annealing of y and z with the decoder
frozen. The refined file is an ordinary file of the format; the refinement never costs more than
effort 0; the annealing ends in hard rounding; a seed fixes the result."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from codec.io import read_image
from codec.pipeline import hyperprior, m2t
from codec.pipeline.image import compress, decompress, load_model
from codec.pipeline.rate import rate_for
from codec.pipeline.refine import EFFORTS, Schedule, rate_lambda, soft_round
from codec.pipeline.tiles import synthesize

REPO = Path(__file__).resolve().parent.parent
TINY = Schedule(steps=40, lr=0.02, bf16=False, check_every=4)


@pytest.fixture(scope="module")
def crop():
    return read_image(REPO / "assets" / "coffee.png").pixels[80:208, 120:312]  # 192x128, held out


@pytest.fixture(scope="module")
def refined(crop):
    model = load_model(None)
    rate = rate_for(model, quality=50)
    family = hyperprior.FAMILY
    analysis = family.analyse(model, crop)
    out = family.refine(model, analysis, rate, 1, schedule=TINY)
    return model, rate, analysis, out


def test_the_refined_file_decodes_with_the_plain_decoder_to_the_encoders_reconstruction(refined):
    model, rate, analysis, out = refined
    enc = hyperprior.encode(model, out, rate)
    assert enc.header == hyperprior.encode(model, analysis, rate).header  # same format, same rate setting
    assert not np.array_equal(enc.y_sym, hyperprior.encode(model, analysis, rate).y_sym)  # the symbols moved
    dec = decompress(enc.data)  # the shipped decoder, the model found from the header
    np.testing.assert_array_equal(dec.z_sym, out.z_sym)
    np.testing.assert_array_equal(dec.y_sym, enc.y_sym)
    own = synthesize(model.module.g_s, hyperprior.dequantize(enc.y_sym, out.mean_q, rate), out.height, out.width)
    np.testing.assert_array_equal(dec.pixels, own)


def test_refinement_never_raises_the_coded_cost_of_effort_0(refined, crop):
    model, rate, analysis, out = refined
    lam = rate_lambda(model, rate)

    def cost(a):  # computed here from the file and the decoder's pixels, not by the refinement
        data = hyperprior.encode(model, a, rate).data
        mse = np.mean((decompress(data).pixels.astype(np.float64) - crop) ** 2)
        return lam * mse + 8 * len(data) / crop.shape[0] / crop.shape[1]

    assert cost(out) < cost(analysis)  # strictly lower on this crop: the refinement works
    bad = replace(TINY, lr=50.0)  # steps so large that every candidate is worse: effort 0 is kept
    kept = hyperprior.FAMILY.refine(model, analysis, rate, 1, schedule=bad)
    assert cost(kept) <= cost(analysis)


def test_the_annealing_reaches_hard_rounding_at_its_last_step():
    for schedule in [s for s in EFFORTS.values() if s is not None] + [TINY]:
        taus = [schedule.tau(t) for t in range(schedule.steps)]
        assert taus[0] == schedule.tau_max and taus[-1] == 0.0
        assert all(a >= b for a, b in zip(taus, taus[1:]))  # never warms up again
        assert taus[-2] == pytest.approx(schedule.tau_end)
    v = torch.linspace(-3.2, 3.2, 101, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(soft_round(v, 0.0, gen), torch.round(v))
    cold = soft_round(v, 0.02, gen)  # almost hard: within a hair of an integer, the nearer one unless near .5
    assert float((cold - torch.round(cold)).abs().max()) < 0.05
    clear = (v - torch.floor(v) - 0.5).abs() > 0.15
    assert float((cold - torch.round(v))[clear].abs().max()) < 0.05
    warm = soft_round(v, 0.5, gen)
    assert bool(((warm >= torch.floor(v)) & (warm <= torch.ceil(v))).all())
    assert float((warm - torch.round(v)).abs().max()) > 0.1  # relaxed: between the two integers


def test_a_fixed_seed_fixes_the_refined_latents(crop, refined):
    model, rate, analysis, out = refined
    again = hyperprior.FAMILY.refine(model, analysis, rate, 1, schedule=TINY)
    assert torch.equal(again.y, out.y) and np.array_equal(again.z_sym, out.z_sym)
    other = hyperprior.FAMILY.refine(model, analysis, rate, 1, schedule=TINY, seed=1)
    assert not torch.equal(other.y, out.y)


def test_effort_through_the_public_api_and_unknown_levels(crop):
    model = load_model(None)
    assert len(compress(model, crop, quality=50, effort=0).data) > 0
    with pytest.raises(ValueError, match="effort"):
        compress(model, crop, effort=9)


def test_target_size_with_effort_lands_within_five_percent_under_the_budget(crop):
    from codec.pipeline.image import compress_to_size

    model = load_model(None)
    budget = 1500
    seen = []
    enc, fits = compress_to_size(model, crop, budget, effort=1, on_progress=lambda *a: seen.append(a))
    assert fits and 0.95 * budget <= len(enc.data) <= budget
    assert seen and seen[-1][0] == seen[-1][1]  # the refinement reported its progress to the end
    plain, _ = compress_to_size(model, crop, budget)
    assert decompress(enc.data).pixels.shape == crop.shape
    assert enc.header.quality != plain.header.quality or not np.array_equal(enc.y_sym, plain.y_sym)


def test_the_cli_encodes_with_effort_and_a_target_size(crop, tmp_path):
    import json

    from PIL import Image
    from typer.testing import CliRunner

    from codec.cli.app import make_app

    src = tmp_path / "crop.png"
    Image.fromarray(crop).save(src)
    r = CliRunner().invoke(make_app(), ["encode", str(src), "-o", str(tmp_path / "a.bin"), "--effort", "1",
                                        "--target-size", "1500", "--json"])
    assert r.exit_code == 0, r.stderr
    assert 1425 <= json.loads(r.stdout)["bytes"] == (tmp_path / "a.bin").stat().st_size <= 1500
    r = CliRunner().invoke(make_app(), ["encode", str(src), "-o", str(tmp_path / "b.bin"), "--effort", "4"])
    assert r.exit_code == 2 and "effort" in r.stderr and "Traceback" not in r.stderr


@pytest.fixture(scope="module")
def m2t_refined(crop):
    model = load_model("m2t-vr")
    rate = rate_for(model, quality=40)
    analysis = m2t.analyse(model, crop)
    return model, rate, analysis, m2t.FAMILY.refine(model, analysis, rate, 1, schedule=TINY)


def test_m2t_refined_file_decodes_with_the_plain_decoder_and_codes_cheaper(m2t_refined, crop):
    model, rate, analysis, out = m2t_refined
    enc, plain = m2t.encode(model, out, rate), m2t.encode(model, analysis, rate)
    assert enc.header == plain.header and not np.array_equal(enc.y_sym, plain.y_sym)
    assert not np.array_equal(enc.z_sym, plain.z_sym)  # z moved too (the side stream of m2t-vr)
    dec = decompress(enc.data)  # the shipped decoder, the model found from the header
    np.testing.assert_array_equal(dec.y_sym, enc.y_sym)
    lam = rate_lambda(model, rate)

    def cost(data):  # from the file and the decoder's pixels, not from the refinement
        mse = np.mean((decompress(data).pixels.astype(np.float64) - crop) ** 2)
        return lam * mse + 8 * len(data) / crop.shape[0] / crop.shape[1]

    assert cost(enc.data) < cost(plain.data)
    assert m2t.coded_cost(model, out, rate)[0] == pytest.approx(cost(enc.data), rel=1e-9)


def test_m2t_without_side_stream_refines_y_alone_and_never_loses(tiny_m2t, smooth_image):
    model = tiny_m2t(side=False)
    pixels = smooth_image(64, 96)
    rate = rate_for(model, quality=50)
    analysis = m2t.analyse(model, pixels)
    out = m2t.FAMILY.refine(model, analysis, rate, 1, schedule=replace(TINY, steps=12))
    assert m2t.coded_cost(model, out, rate)[0] <= m2t.coded_cost(model, analysis, rate)[0]
    enc = m2t.encode(model, out, rate)
    np.testing.assert_array_equal(decompress(enc.data, model).y_sym, enc.y_sym)


def test_large_images_are_refined_tile_by_tile_and_still_never_lose(crop):
    model = load_model(None)
    rate = rate_for(model, quality=50)
    family = hyperprior.FAMILY
    analysis = family.analyse(model, crop)  # 192x128: tiles of 64 pixels make a 3 x 2 grid
    finished = []
    tiled = family.refine(model, analysis, rate, 1, schedule=TINY, tile=64, tile_above=0,
                          on_progress=lambda step, steps, bpp, psnr: finished.append(step) if step == steps else None)
    assert len(finished) == 6  # each tile refined as an image of its own
    cost = [hyperprior.coded_cost(model, a, rate)[0] for a in (analysis, tiled)]
    assert cost[1] <= cost[0]  # the whole is kept only if it codes cheaper than effort 0
    enc = hyperprior.encode(model, tiled, rate)
    np.testing.assert_array_equal(decompress(enc.data).y_sym, enc.y_sym)


def test_without_a_cxx_compiler_the_compiled_levels_run_eager(monkeypatch):
    from codec.pipeline import compiling

    g_s = torch.nn.Conv2d(2, 3, 1)
    y = torch.randn(1, 2, 4, 4)
    monkeypatch.setattr(compiling.shutil, "which", lambda name: None)
    plain = compiling.CompiledOrEager(g_s)
    assert plain.compiled is None and torch.equal(plain(y), g_s(y))

    def broken(*args, **kwargs):
        raise RuntimeError("InvalidCxxCompiler: no working C++ compiler found")

    monkeypatch.setattr(compiling.shutil, "which", lambda name: "/usr/bin/c++")
    monkeypatch.setattr(compiling.torch, "compile", lambda module, **kw: broken)
    failing = compiling.CompiledOrEager(g_s)
    assert failing.compiled is broken
    assert torch.equal(failing(y), g_s(y)) and failing.compiled is None  # fell back once, for good
