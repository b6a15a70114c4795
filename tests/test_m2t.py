"""M2T entropy model: the schedule, the masked one-pass forward against cached step-by-step
decoding, causality, and symbol round trips through the codec with a tiny config."""

from __future__ import annotations

import pytest
import torch

from codec.models.m2t import M2T, M2TConfig, StepDecoder, group_sizes, qlds_order, schedule


def tiny(seed: int = 0, **kw) -> M2T:
    torch.manual_seed(seed)
    model = M2T(M2TConfig(channels=6, width=16, layers=2, heads=2, patch=6, steps=4, **kw)).double().eval()
    with torch.no_grad():  # the head starts at zero; give it weights so parameters depend on the inputs
        model.head.weight.normal_(0, 0.3)
    return model


@pytest.mark.parametrize("patch", [4, 6, 16, 24])
def test_qlds_visits_every_position_once(patch):
    order = qlds_order(patch)
    assert len(order) == patch * patch and len(set(order)) == patch * patch
    assert qlds_order(patch) == order  # deterministic


@pytest.mark.parametrize("rows,cols", [(16, 16), (5, 16), (16, 3), (1, 1), (7, 11)])
def test_schedule_covers_every_valid_position_exactly_once(rows, cols):
    sched = schedule(16, 8, 2.2, rows, cols)
    want = sorted(r * 16 + c for r in range(rows) for c in range(cols))
    assert sorted(sched.positions.tolist()) == want
    assert sched.groups.tolist() == sorted(sched.groups.tolist())
    assert sched.bounds[0] == 0 and sched.bounds[-1] == rows * cols


def test_group_sizes_grow_and_sum_to_the_patch():
    sizes = group_sizes(256, 8, 2.2)
    assert sum(sizes) == 256 and len(sizes) == 8
    assert all(a < b for a, b in zip(sizes, sizes[1:]))
    assert sizes[0] <= 4  # the first step codes a few far-apart tokens
    full = schedule(16, 8, 2.2)
    first = full.positions[: full.bounds[1]].tolist()
    rows, cols = [p // 16 for p in first], [p % 16 for p in first]
    assert max(rows) - min(rows) >= 4 and max(cols) - min(cols) >= 4  # spread over the patch


def _decode_steps(model, sched, y, quality, cache=True, side=None):
    dec = StepDecoder(model, sched, quality, side, cache=cache)
    means, scales = [], []
    for s in range(dec.steps):
        m, sc = dec.predict(s)
        means.append(m)
        scales.append(sc)
        dec.push(s, y[:, sched.bounds[s] : sched.bounds[s + 1]])
    return torch.cat(means, 1), torch.cat(scales, 1)


@pytest.mark.parametrize("side", [False, True])
@pytest.mark.parametrize("rows,cols", [(6, 6), (5, 3)])
def test_cached_step_decoding_gives_the_parameters_of_the_masked_one_pass_forward(rows, cols, side):
    model = tiny(side=side)
    sched = schedule(6, 4, 2.2, rows, cols)
    y = torch.randn(3, sched.tokens, 6, dtype=torch.float64) * 4
    hp = (torch.randn_like(y), torch.rand_like(y) + 0.2) if side else None
    quality = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    with torch.no_grad():
        mean, scale = model(y, sched, quality, hp)
    for cache in (True, False):
        m, s = _decode_steps(model, sched, y, quality, cache, hp)
        torch.testing.assert_close(m, mean, rtol=0, atol=1e-12)
        torch.testing.assert_close(s, scale, rtol=0, atol=1e-12)


def test_an_untrained_side_stream_model_predicts_the_hyperprior_parameters():
    model = M2T(M2TConfig(channels=6, width=16, layers=2, heads=2, patch=6, steps=4, side=True)).double()
    sched = schedule(6, 4, 2.2)
    y = torch.randn(2, sched.tokens, 6, dtype=torch.float64)
    hp = (torch.randn_like(y), torch.rand_like(y) + 0.2)
    with torch.no_grad():
        mean, scale = model(y, sched, torch.tensor([0.2, 0.9], dtype=torch.float64), hp)
    torch.testing.assert_close(mean, hp[0])
    torch.testing.assert_close(scale, hp[1])


def test_without_the_mask_the_one_pass_forward_no_longer_matches_step_decoding():
    model = tiny()
    sched = schedule(6, 4, 2.2)
    y = torch.randn(2, sched.tokens, 6, dtype=torch.float64) * 4
    quality = torch.tensor([0.3, 0.7], dtype=torch.float64)
    m, _ = _decode_steps(model, sched, y, quality)
    with torch.no_grad():
        unmasked, _ = model(y, sched, quality, masked=False)
    assert (unmasked - m).abs().max() > 1e-3


def test_parameters_of_a_step_never_depend_on_tokens_of_that_step_or_later():
    model = tiny(1)
    sched = schedule(6, 4, 2.2)
    y = torch.randn(1, sched.tokens, 6, dtype=torch.float64) * 4
    quality = torch.tensor([0.5], dtype=torch.float64)
    with torch.no_grad():
        base, _ = model(y, sched, quality)
        for s in range(1, len(sched.bounds) - 2):  # change groups s.. : steps <= s must not move
            changed = y.clone()
            changed[:, sched.bounds[s] :] += 3.0
            out, _ = model(changed, sched, quality)
            torch.testing.assert_close(out[:, : sched.bounds[s + 1]], base[:, : sched.bounds[s + 1]], rtol=0, atol=1e-12)
            assert (out[:, sched.bounds[s + 1] :] - base[:, sched.bounds[s + 1] :]).abs().max() > 1e-6


def test_mt_forward_sees_only_visible_tokens():
    model = tiny(2)
    sched = schedule(6, 4, 2.2)
    y = torch.randn(1, sched.tokens, 6, dtype=torch.float64)
    visible = torch.zeros(1, sched.tokens, dtype=torch.bool)
    visible[:, :10] = True
    with torch.no_grad():
        a, _ = model.forward_mt(y, visible, sched, torch.tensor([0.5], dtype=torch.float64))
        y2 = y.clone()
        y2[:, 10:] += 5
        b, _ = model.forward_mt(y2, visible, sched, torch.tensor([0.5], dtype=torch.float64))
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


# --- through the codec ------------------------------------------------------------------------

import numpy as np  # noqa: E402

from codec.models.hyperprior import HyperpriorConfig, MeanScaleHyperprior  # noqa: E402
from codec.pipeline.image import compress, decompress  # noqa: E402


@pytest.mark.parametrize("side", [False, True])
@pytest.mark.parametrize("size", [(64, 64), (70, 150), (200, 90)])  # full and partial patches
def test_m2t_symbols_round_trip_exactly(tiny_m2t, size, side):
    model = tiny_m2t(side=side)
    pixels = np.random.default_rng(1).integers(0, 256, (*size, 3), dtype=np.uint8)
    enc = compress(model, pixels, quality=40)
    dec = decompress(enc.data, model)
    np.testing.assert_array_equal(dec.y_sym, enc.y_sym)
    assert dec.pixels.shape == pixels.shape
    assert np.abs(enc.y_sym).max() > 2  # the test codes more than zeros


def test_m2t_quality_orders_the_rate_and_decoding_needs_no_flag(tiny_m2t):
    model = tiny_m2t()
    pixels = np.random.default_rng(2).integers(0, 256, (64, 128, 3), dtype=np.uint8)
    sizes = [len(compress(model, pixels, quality=q).data) for q in (0, 50, 100)]
    assert sizes[0] < sizes[1] < sizes[2]


def test_m2t_stream_corruption_is_a_format_error():
    from codec.errors import FormatError
    from codec.container.steps import pack_steps, unpack_steps

    packed = pack_steps([b"ab", b"", b"cdef"])
    assert unpack_steps(packed, 3) == [b"ab", b"", b"cdef"]
    for bad in (packed[:-1], packed + b"x", b"", bytes([2]) + packed[1:]):
        with pytest.raises(FormatError):
            unpack_steps(bad, 3)


def test_m2t_training_runs_resumes_and_exports_a_model_that_codes(tmp_path, monkeypatch):
    import csv

    from PIL import Image

    from codec.cli.app import main
    from codec.train.export import export_module
    from codec.weights import load_model
    from codec.zoo import read_manifest

    wdir = tmp_path / "weights"
    monkeypatch.setenv("CODEC_WEIGHTS", str(wdir))
    torch.manual_seed(0)
    ae = MeanScaleHyperprior(HyperpriorConfig(N=8, M=12, levels=(0.002, 0.01, 0.05)))
    with torch.no_grad():
        ae.g_a[-1].weight.mul_(300.0)
    export_module(ae, "tiny-vr", folder=wdir)
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)).save(photos / f"p{i}.png")
    run = tmp_path / "run"
    args = ["train", "m2t", "--ae", "tiny-vr", "--data", str(photos), "--run-dir", str(run), "--config", "tiny-side",
            "--patch", "4", "--steps", "4", "--batch", "4", "--val-every", "2", "--threads", "1"]
    assert main([*args, "--max-steps", "3"]) == 0
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == 3
    assert main([*args, "--max-steps", "5"]) == 0  # resumes
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == 5
    rows = list(csv.DictReader(open(run / "log.csv")))
    assert any(r["val_bpp"] for r in rows)
    assert main(["train", "m2t-export", "--checkpoint", str(run / "checkpoint.pt"), "--model-id", "tiny-m2t"]) == 0
    assert read_manifest(wdir)["models"]["tiny-m2t"]["family"] == "m2t"
    model = load_model("tiny-m2t")
    pixels = rng.integers(0, 256, (80, 72, 3), dtype=np.uint8)
    enc = compress(model, pixels, quality=70)
    np.testing.assert_array_equal(decompress(enc.data).y_sym, enc.y_sym)  # model found from the header


def test_mt_objective_trains_and_validates_with_s_passes(tmp_path):
    from codec.train.m2t import rate_loss, validate

    tf = M2T(M2TConfig(channels=6, width=16, layers=1, heads=2, patch=4, steps=4))
    sched = schedule(4, 4, 2.2)
    y = torch.randn(3, 16, 6) * 3
    steps = torch.ones(3, 6)
    t = torch.tensor([0.0, 0.5, 1.0])
    for objective in ("m2t", "mt"):
        bpp, counted = rate_loss(tf, y, steps, t, sched, objective, torch.Generator().manual_seed(0))
        assert bpp.shape == (3,) and torch.isfinite(bpp).all()
        windows = y.transpose(1, 2).reshape(3, 1, 6, 4, 4)
        assert validate(tf, windows, steps, t, sched, objective) > 0


def test_m2t_learns_to_use_the_context_of_earlier_steps():
    """Tokens of a patch share one random vector: after a little training the last step, which sees
    most of the patch, must cost far fewer bits than the first, which sees nothing."""
    from codec.entropy.gaussian import gaussian_likelihood
    from codec.train.m2t import rate_loss

    torch.manual_seed(0)
    tf = M2T(M2TConfig(channels=4, width=32, layers=2, heads=2, patch=8, steps=4))
    sched = schedule(8, 4, 2.2)
    opt = torch.optim.Adam(tf.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(1)

    def batch(n=32):
        return (torch.randn(n, 1, 4, generator=gen) * 8).expand(n, sched.tokens, 4) + torch.randn(n, sched.tokens, 4, generator=gen) * 0.3

    steps, t = torch.ones(32, 4), torch.full((32,), 0.5)
    for _ in range(120):
        bpp, _ = rate_loss(tf, batch(), steps, t, sched, "m2t", gen)
        opt.zero_grad()
        bpp.mean().backward()
        opt.step()
    with torch.no_grad():
        y = batch()
        mean, scale = tf.eval()(y + torch.rand(y.shape, generator=gen) - 0.5, sched, t)
        bits = -torch.log2(gaussian_likelihood(y - mean, scale).clamp_min(1e-9)).sum(-1).mean(0)
    first, last = bits[: sched.bounds[1]].mean(), bits[sched.bounds[-2] :].mean()
    assert last < 0.5 * first, (float(first), float(last))


def test_m2t_target_size_lands_under_the_budget_and_decodes(tiny_m2t):
    from codec.pipeline.image import compress_to_size

    model = tiny_m2t(side=True)
    pixels = np.random.default_rng(3).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    lo, hi = len(compress(model, pixels, quality=0).data), len(compress(model, pixels, quality=100).data)
    budget = (lo + hi) // 2
    enc, fits = compress_to_size(model, pixels, budget)
    assert fits and len(enc.data) <= budget and len(enc.data) > lo
    np.testing.assert_array_equal(decompress(enc.data, model).y_sym, enc.y_sym)
