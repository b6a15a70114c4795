"""The overfitted family: exact fixed point, the ARM's wavefront coding, the networks in the file, the
encoder's fit, and decoding from the file alone (without torch)."""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from codec import fixedpoint as fp
from codec.container import read_container
from codec.container.overfit import Nets, pack_nets, unpack_nets
from codec.entropy import arm as arm_int
from codec.entropy import networks
from codec.errors import FormatError
from codec.models import overfit as model_lib
from codec.models.overfit_int import synthesize
from codec.pipeline import overfit
from codec.pipeline.image import compress, decompress, load_model
from codec.pipeline.overfit_fit import Fit, FitSchedule
from tests.conftest import make_smooth_image

TINY = overfit.Preset("small", 60, candidates=2, warmup=10)


def random_arm(k: int, seed: int = 0, hidden: int = 2) -> arm_int.Arm:
    rng = np.random.default_rng(seed)
    layers = [fp.Layer(np.round(rng.normal(0, 20, (k, k))), np.round(rng.normal(0, 10, k)), 8, 8) for _ in range(hidden)]
    return arm_int.Arm(layers, fp.Layer(np.round(rng.normal(0, 20, (2, k))), np.array([0.0, 300.0]), 8, 8))


@pytest.fixture(scope="module")
def coded():
    """A tiny odd-sized image fitted and coded once: (pixels, analysis, encoded)."""
    torch.manual_seed(0)
    pixels = make_smooth_image(23, 37, seed=3)
    rate = overfit.rate_for(quality=70)
    a = overfit.fit(overfit.Analysis(pixels), rate, TINY, seed=1)
    return pixels, a, overfit.encode(load_model("overfit"), a, rate)


# --- exact arithmetic --------------------------------------------------------------------------


def test_fixed_point_linear_is_the_exact_integer_result():
    rng = np.random.default_rng(0)
    x = np.round(rng.normal(0, 2 ** 20, (50, 24)))
    w = np.round(rng.normal(0, 2 ** 12, (7, 24)))
    b = np.round(rng.normal(0, 2 ** 6, 7))
    got = fp.linear(x, w, b, frac=8, weight_shift=10, bias_shift=6)
    xi, wi, bi = x.astype(object), w.astype(object), b.astype(object)
    acc = xi.dot(wi.T) + bi * 2 ** (8 + 10 - 6)
    want = np.array([[(int(v) + 2 ** 9) >> 10 for v in row] for row in acc], dtype=np.float64)  # floor(v/2^10 + 1/2)
    assert np.array_equal(got, np.clip(want, -2.0 ** fp.ACT_BITS, 2.0 ** fp.ACT_BITS))


def _exact_rescale(acc, q: int) -> np.ndarray:
    """Python integers: floor(acc / 2^q + 1/2) clipped to the activation range, as float64."""
    out = np.array([[(int(v) + (1 << q >> 1)) >> q for v in row] for row in acc], dtype=np.float64)
    return np.clip(out, -2.0 ** fp.ACT_BITS, 2.0 ** fp.ACT_BITS)


def test_prepared_layers_give_the_exact_integers_near_the_bounds():
    """The decoder's fast paths (weights scaled by 2^-q in float64, the bias in the product's
    units, relu fused with the clip, the 3x3 layer as one product over stacked views) against
    Python integers, with activations near 2^30 and weights near 2^15."""
    rng = np.random.default_rng(1)
    q, frac = 11, 8
    w = np.round(rng.uniform(-1, 1, (5, 14)) * (2 ** fp.WEIGHT_BITS - 1))
    b = np.round(rng.normal(0, 2 ** 10, 5))
    x = np.round(rng.uniform(-1, 1, (40, 14)) * 2.0 ** fp.ACT_BITS)
    layer = fp.Layer(w, b, q, 6)
    acc = x.astype(object).dot(w.astype(object).T) + b.astype(object) * 2 ** (frac + q - 6)
    want = _exact_rescale(acc, q)
    assert np.array_equal(layer.linear(x, frac), want)
    assert np.array_equal(layer.linear_relu(x.copy(), frac), np.maximum(want, 0))
    assert np.abs(want).max() == 2.0 ** fp.ACT_BITS  # the clip was exercised
    # 3x3: 14 channels (126 inputs, the bound), replicate padding
    cw = np.round(rng.uniform(-1, 1, (3, 14, 3, 3)) * (2 ** fp.WEIGHT_BITS - 1))
    conv = fp.Layer(cw, b[:3], q, 6)
    img = np.round(rng.uniform(-1, 1, (14, 5, 7)) * 2.0 ** 24)
    padded = np.pad(img, ((0, 0), (1, 1), (1, 1)), mode="edge").astype(object)
    acc = np.zeros((3, 35), dtype=object)
    for dy in range(3):
        for dx in range(3):
            acc += cw[:, :, dy, dx].astype(object).dot(padded[:, dy:dy + 5, dx:dx + 7].reshape(14, 35))
    acc += (b[:3].astype(object) * 2 ** (frac + q - 6))[:, None]
    assert np.array_equal(conv.conv3x3(img, frac), _exact_rescale(acc, q).reshape(3, 5, 7))


def test_arm_parameters_are_the_layers_integers():
    """Arm.params (written out for speed) equals the plain composition of Layer.linear."""
    arm = random_arm(12, seed=3)
    ctx = np.round(np.random.default_rng(2).normal(0, 40, (300, 12)))
    x = ctx * 2.0 ** arm_int.FRAC
    for layer in arm.hidden:
        x = np.maximum(layer.linear(x, arm_int.FRAC) + x, 0)
    mu_s = arm.out.linear(x, arm_int.FRAC)
    limit = arm_int.RADIUS * 2.0 ** arm_int.FRAC
    want_index = np.clip((mu_s[:, 1].astype(np.int64) - arm_int.LOG_MIN + arm_int.LOG_STEP // 2) // arm_int.LOG_STEP,
                         0, len(arm_int.SCALE_INTS) - 1)
    mean, index = arm.params(ctx)
    assert np.array_equal(mean, np.clip(mu_s[:, 0], -limit, limit) / 2.0 ** arm_int.FRAC)
    assert np.array_equal(index, want_index)
    assert len(set(index.tolist())) > 1 and np.abs(mean).max() > 0  # non-trivial parameters


def test_layer_refuses_weights_beyond_the_exact_bound():
    with pytest.raises(ValueError):
        fp.Layer(np.full((2, 2), 2.0 ** fp.WEIGHT_BITS), np.zeros(2), 8, 8)
    with pytest.raises(ValueError):
        fp.Layer(np.full((2, 2), 0.5), np.zeros(2), 8, 8)


def test_scale_table_is_the_rounded_exponential():
    want = [round(math.exp((arm_int.LOG_MIN + arm_int.LOG_STEP * k) / 256) * 2 ** 24) for k in range(64)]
    assert list(arm_int.SCALE_INTS) == want


def test_fixed_point_arm_matches_the_float_arm_within_its_rounding():
    """The entropy parameters the coder sees (fixed point) against the float ARM with the same
    quantized weights: means within 2^-6 and scale indexes within one step."""
    torch.manual_seed(0)
    k = 12
    net = model_lib.Arm(k, 2)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.3)
    shifts = model_lib.Shifts(arm=10, arm_bias=10)
    hidden = [model_lib._layer(l.weight, l.bias, 10, 10) for l in net.hidden]
    arm = arm_int.Arm(hidden, model_lib._layer(net.out.weight, net.out.bias, 10, 10))
    with torch.no_grad():  # the float network with the same (quantized) weights
        for layer, q in zip([*net.hidden, net.out], [*arm.hidden, arm.out]):
            layer.weight.copy_(torch.from_numpy(q.weight / 2 ** shifts.arm))
            layer.bias.copy_(torch.from_numpy(q.bias / 2 ** shifts.arm_bias))
    ctx = np.random.default_rng(1).integers(-6, 7, (500, k)).astype(np.float64)
    mean, index = arm.params(ctx)
    with torch.no_grad():
        mu, s = net(torch.from_numpy(ctx).float())
    assert np.abs(mean - mu.numpy()).max() < 2 ** -6
    float_index = np.clip(np.round((s.numpy() * 256 - arm_int.LOG_MIN) / arm_int.LOG_STEP), 0, 63)
    assert np.abs(index - float_index).max() <= 1


# --- coding ------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", arm_int.CONTEXT_SIZES)
def test_arm_round_trips_grids_of_odd_sizes(k):
    rng = np.random.default_rng(k)
    shapes = overfit.grid_shapes(29, 45, 4)
    grids = [np.round(rng.laplace(0, 3, s)).astype(np.int32) for s in shapes]
    grids[0][0, 0] = 700  # beyond the coder's range: escaped
    arm = random_arm(k, seed=k)
    data = arm_int.compress(grids, arm)
    back = arm_int.decompress(data, shapes, arm)
    assert all(np.array_equal(a, b) for a, b in zip(grids, back))
    assert len({int(v) for g in grids for v in g.ravel()}) > 5  # non-trivial symbols
    assert abs(8 * len(data) - arm_int.rate_bits(grids, arm)) < 0.02 * 8 * len(data) + 64


def test_wavefronts_only_use_decoded_neighbours():
    """Every context offset of a latent lies in an earlier wavefront: decoding in the schedule's
    order cannot read a latent before it is decoded (the test fails with a slope one too small)."""
    for k in arm_int.CONTEXT_SIZES:
        offsets = arm_int.context_offsets(k)
        slope = arm_int.wavefront_slope(offsets)
        assert all(dx + slope * dy < 0 for dy, dx in offsets)
        assert not all(dx + (slope - 1) * dy < 0 for dy, dx in offsets)


def test_tiles_round_trip_and_the_encoder_rate_sees_the_same_tile_borders():
    """Tiled coding (independent squares) round-trips, and the float model's rate with its tile mask
    matches the fixed-point ARM's on the same tiles, not on whole grids."""
    torch.manual_seed(0)
    config = replace(model_lib.PRESETS["medium"], tile=8)
    m = model_lib.OverfitModel(config, 37, 53, seed=1)
    with torch.no_grad():
        m.canvas.normal_(0, 3)
        for p in m.arm.parameters():
            p.normal_(0, 0.2)
        q = torch.round(m.canvas) * m.mask
        float_bits = float(m.rate_bits(q))
    nets = model_lib.quantized(m, model_lib.Shifts(12, 12, 12, 12, 12))
    grids = model_lib.latent_grids(m)
    tiled, whole = arm_int.rate_bits(grids, nets.arm, 8), arm_int.rate_bits(grids, nets.arm, 0)
    assert abs(float_bits - tiled) < 0.005 * tiled and abs(float_bits - whole) > 0.01 * whole
    data = arm_int.compress(grids, nets.arm, 8)
    back = arm_int.decompress(data, [g.shape for g in grids], nets.arm, 8)
    assert all(np.array_equal(a, b) for a, b in zip(grids, back))
    try:  # read as whole grids, the stream is another one: an error or other latents
        other = arm_int.decompress(data, [g.shape for g in grids], nets.arm, 0)
        assert not all(np.array_equal(a, b) for a, b in zip(grids, other))
    except FormatError:
        pass


def test_networks_round_trip():
    rng = np.random.default_rng(0)
    tensors = [np.round(rng.normal(0, s, shape)) for s, shape in ((30, (12, 12)), (2, (12,)), (900, (3, 3, 3, 3)))]
    indexes, data = networks.compress(tensors)
    back = networks.decompress(data, [t.shape for t in tensors], indexes)
    assert all(np.array_equal(a, b) for a, b in zip(tensors, back))
    assert indexes[0] != indexes[2]  # each tensor gets its own scale


def test_nets_chunk_round_trips_and_refuses_bad_fields():
    shape = Nets(5, 12, 2, 4, 2, 7, (32,), (9, 8, 8, 10, 7), (), b"")
    nets = replace(shape, scale_indexes=tuple(range(len(shape.tensor_shapes()))), stream=b"\x01\x02\x03\x04")
    assert unpack_nets(pack_nets(nets)) == nets and nets.tile == 128
    data = bytearray(pack_nets(nets))
    for at, value in ((0, 9), (1, 7), (3, 1), (5, 2), (6, 0), (7, 200), (8, 16)):
        bad = bytearray(data)
        bad[at] = value
        with pytest.raises(FormatError):
            unpack_nets(bytes(bad))
    with pytest.raises(FormatError):
        unpack_nets(bytes(data[:-1]))


# --- the family: encode, decode --------------------------------------------------------------


def test_decoder_reproduces_the_encoder_reconstruction(coded):
    pixels, a, enc = coded
    container = read_container(enc.data)
    chunk = unpack_nets(container.get(b"NETS"))
    nets = model_lib.quantized(a.fitted, model_lib.Shifts(*chunk.shifts))
    want = synthesize(nets, model_lib.latent_grids(a.fitted))
    got = decompress(enc.data)
    assert np.array_equal(got.pixels, want)
    assert got.pixels.shape == pixels.shape
    assert np.array_equal(got.y_sym, enc.y_sym) and len(np.unique(enc.y_sym)) > 2
    psnr = 10 * np.log10(255 ** 2 / np.mean((got.pixels.astype(float) - pixels) ** 2))
    assert psnr > 20


def strong_convs(coded):
    """(nets, grids, whole-image pixels) of the coded fixture with random, large 3x3 weights (so
    that every row next to a band's cut depends on its neighbours)."""
    _, a, enc = coded
    chunk = unpack_nets(read_container(enc.data).get(b"NETS"))
    nets = model_lib.quantized(a.fitted, model_lib.Shifts(*chunk.shifts))
    rng = np.random.default_rng(0)
    nets.convs = [fp.Layer(np.round(rng.normal(0, 60, c.weight.shape)), c.bias, c.weight_shift, c.bias_shift)
                  for c in nets.convs]
    grids = model_lib.latent_grids(a.fitted)
    return nets, grids, synthesize(nets, grids, rows=10 ** 6, threads=1)


def test_synthesis_in_bands_and_threads_gives_the_whole_image_pixels(coded):
    """Bands drop as many halo rows as there are 3x3 layers: a band cut anywhere, computed on any
    thread, must give the pixels of the one-band synthesis."""
    nets, grids, whole = strong_convs(coded)
    for rows, threads in ((1, 1), (2, 2), (5, 2), (7, 3)):
        assert np.array_equal(synthesize(nets, grids, rows=rows, threads=threads), whole), (rows, threads)


def test_synthesis_bands_fail_with_a_halo_one_row_short(coded, monkeypatch):
    """The check above can fail: with one halo row fewer than the 3x3 layers, rows next to a
    band's cut differ from the whole-image synthesis."""
    from codec.models import overfit_int

    nets, grids, whole = strong_convs(coded)
    monkeypatch.setattr(overfit_int, "halo_rows", lambda n: len(n.convs) - 1)
    assert not np.array_equal(synthesize(nets, grids, rows=5, threads=1), whole)


def test_decoding_needs_neither_torch_nor_weights(coded, tmp_path):
    _, _, enc = coded
    path = tmp_path / "x.bin"
    path.write_bytes(enc.data)
    code = (
        "import sys, builtins, hashlib\n"
        "real = builtins.__import__\n"
        "def guard(name, *a, **k):\n"
        "    if name.split('.')[0] == 'torch': raise ImportError('torch is blocked')\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = guard\n"
        "from codec.pipeline.image import decompress\n"
        f"print(hashlib.sha256(decompress(open({str(path)!r}, 'rb').read()).pixels.tobytes()).hexdigest())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={"CODEC_WEIGHTS": str(tmp_path / "none"), "PATH": "", "PYTHONPATH": ":".join(sys.path)})
    assert out.returncode == 0, out.stderr
    import hashlib

    assert out.stdout.strip() == hashlib.sha256(decompress(enc.data).pixels.tobytes()).hexdigest()


def test_fit_is_deterministic_for_a_seed(coded):
    pixels, a, enc = coded
    rate = overfit.rate_for(quality=70)
    again = overfit.encode(load_model("overfit"), overfit.fit(overfit.Analysis(pixels), rate, TINY, seed=1), rate)
    assert again.data == enc.data


def test_loss_falls_over_iterations():
    pixels = make_smooth_image(16, 24, seed=5)
    costs = []
    lam = 0.02
    fit = Fit(pixels, model_lib.PRESETS["small"], lam, FitSchedule(iterations=120, candidates=1, warmup=0, check_every=20))
    fit.run(on_progress=lambda i, n, bpp, psnr: costs.append(lam * 255 ** 2 * 10 ** (-psnr / 10) + bpp))
    assert costs[-1] < 0.85 * costs[0]


def test_quantization_proxy_tends_to_rounding_and_its_noise_to_uniform():
    from codec.pipeline.overfit_fit import kumaraswamy_noise, softround

    y = torch.linspace(-3, 3, 601)
    away = (y - y.floor() - 0.5).abs() > 0.05  # off the ties, where round itself jumps
    assert torch.allclose(softround(y, 0.01)[away], torch.round(y)[away], atol=1e-3)
    assert (softround(y, 5.0) - y).abs().max() < 0.01
    assert (softround(y, 0.3) - y).abs().max() > 0.1
    u = torch.rand(200_000, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(kumaraswamy_noise(u, 1.0), u - 0.5, atol=1e-6)
    peaked = kumaraswamy_noise(u, 2.0)
    assert peaked.min() >= -0.5 and peaked.max() <= 0.5
    assert peaked.std() < (u - 0.5).std() * 0.9
    counts = torch.histc(peaked, bins=10, min=-0.5, max=0.5)
    assert counts.argmax() in (4, 5)  # the mode at 0


def test_gaussian_noise_option_draws_normal_noise_of_the_scheduled_deviation():
    """noise="gaussian" (the default, Cool-chic's presets): the proxy's n is N(0, 1) times a
    deviation that goes linearly from gaussian[0] to gaussian[1] over the relaxed phase."""
    from codec.pipeline.overfit_fit import relax, softround

    pixels = make_smooth_image(40, 48, seed=2)
    fit = Fit(pixels, model_lib.PRESETS["small"], 0.02,
              FitSchedule(iterations=10, noise="gaussian", gaussian=(0.3, 0.1), temperature=(0.3, 0.1)))
    model = fit.start(0)
    u, t, a = fit.proxy_inputs(model, 0.0)
    assert float(a) == pytest.approx(0.3) and float(t) == pytest.approx(0.3)
    assert float(fit.proxy_inputs(model, 1.0)[2]) == pytest.approx(0.1)
    assert u.min() < -2 and u.max() > 2 and abs(float(u.std()) - 1) < 0.05  # normal, not U(0, 1)
    y = torch.linspace(-3, 3, u.numel()).reshape(u.shape)
    plain = softround(softround(y, 0.3), 0.3)
    assert torch.equal(relax(y, u, 0.3, 0.0, "softround", "gaussian"), plain)
    spread = (relax(y, u, 0.3, 0.3, "softround", "gaussian") - plain).std()
    assert 0.15 < float(spread) < 0.6  # the noise went in, scaled by a
    kumaraswamy = Fit(pixels, model_lib.PRESETS["small"], 0.02,
                      FitSchedule(iterations=10, noise="kumaraswamy")).proxy_inputs(model, 0.0)[0]
    assert kumaraswamy.min() >= 0 and kumaraswamy.max() <= 1  # C3's noise draws U(0, 1)


def test_gradient_clipping_bounds_each_step(monkeypatch):
    """clip > 0 (the default 0.1) clips the gradients' total norm to clip x lambda x 255^2 before
    each Adam step."""
    pixels = make_smooth_image(16, 24, seed=3)
    seen = []
    real = torch.nn.utils.clip_grad_norm_

    def spy(params, max_norm, *args, **kwargs):
        params = list(params)
        total = real(params, max_norm, *args, **kwargs)
        seen.append((float(total), max_norm, float(torch.sqrt(sum((p.grad ** 2).sum() for p in params if p.grad is not None)))))
        return total

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    lam = 0.02
    Fit(pixels, model_lib.PRESETS["small"], lam, FitSchedule(iterations=20, candidates=1, warmup=0, clip=1e-4)).run()
    assert len(seen) == 20
    assert all(m == pytest.approx(1e-4 * lam * 255 ** 2) for _, m, _ in seen)
    assert any(before > m * 1.5 for before, m, _ in seen)  # it did clip
    assert all(after <= m * 1.01 for _, m, after in seen)
    seen.clear()
    Fit(pixels, model_lib.PRESETS["small"], lam, FitSchedule(iterations=5, candidates=1, warmup=0, clip=0.0)).run()
    assert not seen  # clip=0 turns it off


def test_soap_option_preconditions_the_networks_and_keeps_adam_for_the_latents():
    """optimizer="soap": the networks' steps come from SOAP (Shampoo eigenbasis), the latents' from
    Adam; the fit still lowers its cost; an unknown optimiser is refused."""
    from pytorch_optimizer import SOAP

    from codec.pipeline.overfit_fit import optimisers

    pixels = make_smooth_image(16, 24, seed=5)
    lam = 0.02
    schedule = FitSchedule(iterations=120, candidates=1, warmup=0, check_every=20, optimizer="soap")
    fit = Fit(pixels, model_lib.PRESETS["small"], lam, schedule)
    fresh = fit.start(0)
    latent_opt, net_opt = optimisers(fresh, schedule)
    assert isinstance(latent_opt, torch.optim.Adam) and isinstance(net_opt, SOAP)
    assert [p for g in latent_opt.param_groups for p in g["params"]] == [fresh.canvas]
    costs = []
    model = fit.run(on_progress=lambda i, n, bpp, psnr: costs.append(lam * 255 ** 2 * 10 ** (-psnr / 10) + bpp))
    assert costs[-1] < 0.85 * costs[0]
    assert any("Q" in state for state in model._opt[1].state.values())  # preconditioner bases were built
    with pytest.raises(ValueError, match="unknown optimizer"):
        optimisers(model, FitSchedule(optimizer="sgd"))


def test_compiled_relaxed_step_matches_the_eager_one(monkeypatch):
    """The encoder's compiled step (taken for long fits) computes the eager loss and gradients; it
    must compile (no silent fall-back to eager) and take the proxy's t and a as tensors, so the
    annealing does not recompile it."""
    from codec.pipeline import compiling, overfit_fit

    if not compiling.can_compile():
        pytest.skip("no C++ compiler for torch.compile")
    pixels = make_smooth_image(19, 26, seed=4)
    monkeypatch.setattr(overfit_fit, "COMPILE_FROM", 0)
    fit = Fit(pixels, model_lib.PRESETS["small"], 0.02, FitSchedule(iterations=10))
    model = fit.start(0)
    with torch.no_grad():
        model.canvas.normal_(0, 2)
    compiled = fit.relaxed_loss(model)
    assert isinstance(compiled, compiling.CompiledOrEager)
    eager = replace_schedule(fit, compile=False).relaxed_loss(model)
    grads, graphs = [], []
    for progress in (0.0, 0.7):
        inputs = fit.proxy_inputs(model, progress)
        losses = []
        for fn in (compiled, eager):
            model.zero_grad()
            loss = fn(model.canvas, *inputs)
            loss.backward()
            losses.append(float(loss.detach()))
            grads.append(model.canvas.grad.clone())
        assert compiled.compiled is not None  # it compiled, and did not fall back
        graphs.append(torch._dynamo.utils.counters["stats"]["unique_graphs"])
        assert losses[0] == pytest.approx(losses[1], rel=1e-3)
        assert torch.allclose(grads[-2], grads[-1], rtol=0.05, atol=1e-3 * grads[-1].abs().max())
    assert grads[0].abs().sum() > 0 and not torch.equal(grads[0], grads[2])
    assert graphs[0] > 0 and graphs[1] == graphs[0]  # new t and a: no recompiling


def replace_schedule(fit: Fit, **changes) -> Fit:
    other = Fit.__new__(Fit)
    other.__dict__.update(fit.__dict__, schedule=replace(fit.schedule, **changes))
    return other


def test_corrupt_network_section_is_a_format_error(coded):
    _, _, enc = coded
    container = read_container(enc.data)
    chunk = unpack_nets(container.get(b"NETS"))
    from codec.container import NETS, OVERFIT_VERSION, YSTR, write_container

    def rewrite(payload: bytes) -> bytes:  # a NETS chunk with a valid CRC
        return write_container(container.header, [(NETS, payload), (YSTR, container.get(YSTR))], version=OVERFIT_VERSION)

    assert decompress(rewrite(pack_nets(chunk))).pixels.shape == (23, 37, 3)
    nets_at = enc.data.index(b"NETS")
    flipped = bytearray(enc.data)
    flipped[nets_at + 12] ^= 0x10
    payload = bytearray(pack_nets(chunk))
    payload[7 + len(chunk.widths)] = 16  # the ARM's shift beyond 15
    longer = pack_nets(chunk) + b"\0"  # the stream length no longer adds up
    for bad in (enc.data[: nets_at + 40], bytes(flipped), rewrite(bytes(payload)), rewrite(longer)):
        with pytest.raises(FormatError):
            decompress(bad)


def test_shifted_views_and_conv_match_the_plain_torch_ops():
    """The encoder's hand-written pieces (in-place gradient of the ARM's windows, 3x3 layers as a
    matrix product) against torch's own ops, values and gradients."""
    torch.manual_seed(0)
    x = torch.randn(9, 11, dtype=torch.float64, requires_grad=True)
    starts = [(0, 1), (2, 0), (1, 2), (2, 2)]
    got = model_lib.ShiftedViews.apply(x, starts, (7, 8))
    want = torch.stack([x[r:r + 7, c:c + 8] for r, c in starts], -1)
    g = torch.randn_like(want)
    (gx,) = torch.autograd.grad((got * g).sum(), x)
    (wx,) = torch.autograd.grad((want * g).sum(), x)
    assert torch.equal(got, want) and torch.allclose(gx, wx)
    img = torch.randn(3, 6, 7, dtype=torch.float64)
    w, b = torch.randn(3, 3, 3, 3, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    ref = torch.nn.functional.conv2d(torch.nn.functional.pad(img[None], (1, 1, 1, 1), mode="replicate"), w, b)[0]
    assert torch.allclose(model_lib.conv3x3(img, w, b).double(), ref.float().double(), atol=1e-5)


def test_cli_encodes_with_the_overfitted_model_and_decodes_the_file(tmp_path, monkeypatch):
    from PIL import Image
    from typer.testing import CliRunner

    from codec.cli.app import make_app

    monkeypatch.setitem(overfit.EFFORTS, 1, TINY)  # the plumbing, not the preset's 1,000 steps

    src = tmp_path / "small.png"
    Image.fromarray(make_smooth_image(20, 28, seed=2)).save(src)
    r = CliRunner().invoke(make_app(), ["encode", str(src), "--model", "overfit", "-q", "70", "-o", str(tmp_path / "a.bin")])
    assert r.exit_code == 0, r.stderr
    r = CliRunner().invoke(make_app(), ["decode", str(tmp_path / "a.bin"), "-o", str(tmp_path / "a.png")])
    assert r.exit_code == 0, r.stderr
    assert np.asarray(Image.open(tmp_path / "a.png")).shape == (20, 28, 3)


def test_device_option_is_checked_before_any_work(tmp_path):
    from PIL import Image
    from typer.testing import CliRunner

    from codec.cli.app import make_app
    from codec.pipeline.image import device_options
    from codec.registry import get

    src = tmp_path / "small.png"
    Image.fromarray(make_smooth_image(20, 28, seed=2)).save(src)
    r = CliRunner().invoke(make_app(), ["encode", str(src), "-m", "overfit", "--device", "tpu", "-o", str(tmp_path / "a.bin")])
    assert r.exit_code == 2 and "--device must be one of cpu, cuda" in r.stderr and not (tmp_path / "a.bin").exists()
    if not torch.cuda.is_available():
        r = CliRunner().invoke(make_app(), ["encode", str(src), "-m", "overfit", "--device", "cuda", "-o", str(tmp_path / "a.bin")])
        assert r.exit_code == 2 and "no CUDA GPU" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert device_options(get("overfit"), "cuda") == {"device": "cuda"} and device_options(get("overfit"), "cpu") == {}
    with pytest.raises(ValueError, match="not available for hyperprior models"):
        device_options(get("hyperprior"), "cuda")


def test_target_size_refits_from_the_previous_model_and_never_exceeds_the_budget(monkeypatch):
    from codec.pipeline.image import compress_to_size

    monkeypatch.setitem(overfit.EFFORTS, 1, replace(TINY, iterations=200))
    # refits of 50 steps move a 200-step fit of a tiny image only a little (its networks are half the
    # file): revision 10 landed on the third refit, a draft of revision 11 on the fifth (at 38.5 the file was
    # still 1,002 bytes for a budget of 952); the search's logic is the same with more refits
    monkeypatch.setattr(overfit, "TARGET_REFITS", 6)
    pixels = make_smooth_image(96, 128, seed=4)  # on 40x48 the networks are most of the file, whose
    model = load_model("overfit")  # size then hardly follows the quality
    first = overfit.encode(model, overfit.fit(overfit.Analysis(pixels), overfit.rate_for(60), overfit.EFFORTS[1]),
                           overfit.rate_for(60))
    budget = int(len(first.data) * 0.9)
    enc, fits = compress_to_size(model, pixels, budget)
    assert fits and len(enc.data) <= budget
    assert read_container(enc.data).header.quality < first.header.quality  # a lower quality was fitted
    assert decompress(enc.data).pixels.shape == pixels.shape
    small, fits = compress_to_size(model, pixels, 40)  # below any file: the smallest one, not fitting
    assert not fits and len(small.data) > 40


def test_info_shows_the_bytes_of_networks_and_latents():
    import json

    from typer.testing import CliRunner

    from codec.cli.app import make_app

    from codec.settings import REPO_ROOT

    path = REPO_ROOT / "tests" / "golden" / "overfit_coffee_128x96.bin"
    r = CliRunner().invoke(make_app(), ["info", str(path), "--json"])
    assert r.exit_code == 0, r.stderr
    d = json.loads(r.stdout)
    lengths = {c["type"]: c["length"] for c in d["chunks"]}
    o = d["overfitted"]
    assert (o["network_bytes"], o["latent_bytes"]) == (lengths["NETS"], lengths["YSTR"]) and o["grids"] >= 1
    r = CliRunner().invoke(make_app(), ["info", str(path)])
    assert "networks" in r.output and "latents" in r.output


def test_oversized_overfitted_image_is_refused_before_decoding(coded, monkeypatch):
    from codec.errors import LimitError

    _, _, enc = coded
    monkeypatch.setattr(overfit, "MAX_PIXELS", 23 * 37 - 1)
    with pytest.raises(LimitError):
        decompress(enc.data)
    with pytest.raises(LimitError):
        overfit.FAMILY.analyse(load_model("overfit"), np.zeros((23, 37, 3), np.uint8))


def test_a_level_takes_its_high_rate_decoder_from_its_quality_up(monkeypatch):
    """Effort 1 codes low qualities with the small decoder and high ones with the medium (its
    networks pay for themselves there); the file records which."""
    level = replace(TINY, iterations=20, candidates=1, warmup=0, high_size="medium", high_iterations=10, high_from=60.0)
    monkeypatch.setitem(overfit.EFFORTS, 1, level)
    assert level.at(59.99) is level and level.at(60.0).size == "medium" and level.at(60.0).iterations == 10
    pixels = make_smooth_image(24, 32, seed=6)
    model = load_model("overfit")
    for quality, size in ((40.0, "small"), (70.0, "medium")):
        data = compress(model, pixels, quality=quality, effort=1).data
        chunk = unpack_nets(read_container(data).get(b"NETS"))
        assert chunk.arm_context == model_lib.PRESETS[size].arm_context
        assert tuple(chunk.widths) == model_lib.PRESETS[size].widths
        assert decompress(data).pixels.shape == pixels.shape
    settings = overfit.FAMILY.effort_settings(1)
    assert settings["high"]["size"] == "medium" and settings["high"]["from_quality"] == 60.0
