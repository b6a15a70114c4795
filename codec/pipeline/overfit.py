"""The overfitted family (C3 / Cool-chic; ../shared/REFERENCES.md 2.10): no trained weights; the encoder
fits latent grids and a small decoder to the one image and sends the quantized networks in the file.

    encode: pixels --Fit (torch, codec.pipeline.overfit_fit)--> float model
            --shifts chosen by the coded cost--> integer networks --------------------> NETS
            integer latent grids --ARM (fixed point), wavefronts----------------------> YSTR
    decode: NETS -> networks; YSTR -> grids (the same ARM) -> synthesis (fixed point) -> pixels

The decoder path (this module's `decode`, codec.entropy.arm, codec.models.overfit_int,
codec.fixedpoint) is numpy only and exact: the encoder's reconstruction is the decoder's, bit for
bit, on any machine. The "model" is built in (`builtin`): its id is "overfit" and its hash is that
of the family's fixed tables, so a file needs nothing but the format to decode.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from codec import coder
from codec import fixedpoint as fp
from codec.container import NETS, OVERFIT_VERSION, YSTR, Container, Header, write_container
from codec.container.overfit import Nets, pack_nets, unpack_nets
from codec.entropy import arm as arm_int
from codec.entropy import networks
from codec.errors import FormatError, LimitError
from codec.family import NO_SYMBOLS, Encoded, Family, Loaded
from codec.models.overfit_int import grid_shapes

MODEL_ID = "overfit"
DEFAULT_QUALITY = 60.0
BASE_LAMBDA = 0.0067
"""lambda at quality 60 (that of the default hyperprior); every 10 quality points double it, as a
single-rate model's step halves every 20 (lambda ~ step^-2)."""


@dataclass(frozen=True)
class Preset:
    """An effort level of this family: the decoder size and the optimisation schedule, and from
    quality `high_from` up another decoder (`high_size`, `high_iterations`: about the same time)."""

    size: str  # a name in codec.models.overfit.PRESETS
    iterations: int
    candidates: int = 3
    warmup: int = 100
    high_size: str = ""
    high_iterations: int = 0
    high_from: float = 101.0  # a quality (0..100); above 100: never

    def at(self, quality: float) -> "Preset":
        """The preset for one quality: this one, or its high-rate decoder from `high_from` up."""
        if self.high_size and quality >= self.high_from:
            return replace(self, size=self.high_size, iterations=self.high_iterations, high_size="")
        return self


EFFORTS = {  # effort 0 is effort 1. The decoder grows with the effort, not before: its networks
    # travel in the file (about 500 / 750 / 1,650 bytes small / medium / large), which low rates
    # cannot pay for. kodim04 at quality 40, about the same encode time: small 1,900 steps 5,209
    # bytes (networks 509) at 28.28 dB, coded cost 0.268; large 1,000 steps 6,410 bytes (networks
    # 1,678) at 28.02 dB, cost 0.302. Without the networks' bytes, on a 256x256 crop of kodim19 at
    # quality 60, the large decoder led per second of encoding (large 3,750 steps 0.715; medium
    # 6,000 0.743; large 12,000 0.668). One start: with the synthesis starting at the mean colour,
    # the warm-up among 3 starts of 100 steps lost to one start given the same steps (kodim04,
    # small decoder, quality 40: cost 0.2861 against 0.2677). From quality 60 up effort 1 takes the
    # medium decoder for 1,550 steps (the time of small's 1,900 on the AVX-512 machine of session
    # 10; 1.34x on an AVX2 one): whole kodim19 at quality 80, coded cost 1.354 (36,268 bytes,
    # 34.51 dB) against 1.440 (39,328 bytes, 34.36 dB), -5.9%; at quality 60 0.694 (14,748 bytes,
    # 30.43 dB) against 0.720 (16,408 bytes, 30.52 dB), -3.6%; a 256x256 crop of it at 40 +2.4%
    # (revision 9: every level starts its networks from the shipped starts, codec.pipeline.overfit_start:
    # whole kodim19, quality 40 small -4.9% coded cost, quality 60 medium -1.8%)
    1: Preset("small", 1900, candidates=1, warmup=0, high_size="medium", high_iterations=1550, high_from=60.0),
    2: Preset("medium", 4600, candidates=1, warmup=0),
    3: Preset("large", 12000, candidates=1, warmup=0),
}
DEFAULT_EFFORT = 1
MAX_PIXELS = 1 << 25
"""Largest overfitted image (about 33 MP): the decoder holds the upsampled latents of the whole
image in float64 (L x 8 bytes a pixel, 1.9 GB at this size), so both sides refuse larger ones."""
REVISION = 11
"""The encoder's revision: part of `effort_settings`, so evaluation caches never mix files of an
older optimisation with a newer one (raise it with every change to the fit or the shift search).
9: the networks start from the shipped starts (codec.pipeline.overfit_start).
10: the synthesis's output bias starts at the image's mean colour from a start too (revision 9's
medium start plateaued on kodim07 and kodim10 at quality 60 and 80).
11: Cool-chic 5's proxy schedule (normal noise 0.22 -> 0.15, temperature 0.35 -> 0.08) and gradient
clipping (codec.pipeline.overfit_fit: -2.8% and -2.2% BD-rate on four crops); a start's 3x3 layers
are dropped where they cut a channel off (revision 10 still lost kodim10 at quality 80 that way)."""


def _tables_hash() -> str:
    text = repr((arm_int.SCALE_INTS, arm_int.LOG_MIN, arm_int.LOG_STEP, arm_int.FRAC, OVERFIT_VERSION, "overfit-1"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class OverfitLoaded(Loaded):
    family = "overfit"


@dataclass(frozen=True)
class OverfitRate:
    """The rate of an overfitted file: the header's field is 1 + round(100 quality) (0: quality 60)."""

    field: int
    quality: float
    step: float = 1.0

    @property
    def lam(self) -> float:
        return BASE_LAMBDA * 2.0 ** ((self.quality - DEFAULT_QUALITY) / 10.0)


@dataclass
class Analysis:
    pixels: np.ndarray  # (H, W, 3) uint8
    fitted: object = None  # codec.models.overfit.OverfitModel once refined
    fitted_for: tuple = ()  # (lambda, effort, seed) the fit was made for
    seconds: float = 0.0
    progress: list = field(default_factory=list)


def rate_for(quality: float | None = None, step: float = 1.0) -> OverfitRate:
    if step != 1.0:
        raise ValueError("overfitted files take a quality (0..100), not a quantisation step")
    q = DEFAULT_QUALITY if quality is None else float(quality)
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"quality must be within 0..100, got {quality}")
    return OverfitRate(int(round(q * 100)) + 1, q)


def rate_from_field(value: int) -> OverfitRate:
    q = DEFAULT_QUALITY if value == 0 else (value - 1) / 100.0
    if not 0.0 <= q <= 100.0:
        raise FormatError(f"quality {q} in the header is outside 0..100")
    return OverfitRate(value, q)


# --- encoder -------------------------------------------------------------------------------------


def fit(a: Analysis, rate: OverfitRate, preset: Preset, seed: int = 0, on_progress=None, device: str = "cpu") -> Analysis:
    """The analysis with a model fitted to its pixels for the rate's lambda (the encoder's work), on
    a torch device (the fitted model comes back on the CPU)."""
    from codec.models.overfit import PRESETS
    from codec.pipeline.overfit_fit import Fit, FitSchedule
    from codec.pipeline.overfit_start import load_start

    t0 = time.perf_counter()
    preset = preset.at(rate.quality)
    schedule = FitSchedule(iterations=preset.iterations, candidates=preset.candidates, warmup=preset.warmup)
    start = load_start(preset.size)
    model = Fit(a.pixels, PRESETS[preset.size], rate.lam, schedule, seed, device,
                start=start.tensors if start else None).run(on_progress).cpu()
    return replace(a, fitted=model, fitted_for=(rate.lam, preset, seed), seconds=a.seconds + time.perf_counter() - t0)


SHIFT_REACH = 3  # the search tries each shift within +-3 of the current one


def choose_shifts(model, pixels: np.ndarray, lam: float):
    """The quantization shifts of the networks by the coded cost lambda * MSE + bpp, one field at a
    time from 8 (each within +-SHIFT_REACH of the current value, two passes). The ARM's shifts
    change only the latents' bits and the synthesis's only the pixels, so each part is computed
    once per value of its own shifts (memoised)."""
    from codec.models.overfit import Shifts, latent_grids, quantized
    from codec.models.overfit_int import synthesize

    grids = latent_grids(model)
    n_pixels = pixels.shape[0] * pixels.shape[1]
    ref = pixels.astype(np.float64)
    memo: dict = {}

    def part(key, compute):
        if key not in memo:
            memo[key] = compute()
        return memo[key]

    def cost(sh) -> float:
        try:
            nets = quantized(model, sh)
        except ValueError:  # weights beyond the integer range at this shift
            return math.inf
        latents = part(("arm", sh.arm, sh.arm_bias), lambda: arm_int.rate_bits(grids, nets.arm, model.config.tile))
        mse = part(("syn", sh.taps, sh.synthesis, sh.synthesis_bias),
                   lambda: float(np.mean((synthesize(nets, grids).astype(np.float64) - ref) ** 2)))
        return lam * mse + (latents + 8 * len(networks.compress(_tensors(nets))[1])) / n_pixels

    shifts = Shifts(8, 8, 8, 8, 8)
    best = cost(shifts)
    for _ in range(2):
        for name in ("arm", "arm_bias", "taps", "synthesis", "synthesis_bias"):
            now = getattr(shifts, name)
            for v in range(max(0, now - SHIFT_REACH), min(15, now + SHIFT_REACH) + 1):
                trial = replace(shifts, **{name: v})
                if trial.arm_bias > arm_int.FRAC + trial.arm or trial.synthesis_bias > 12 + trial.synthesis:
                    continue
                c = cost(trial)
                if c < best:
                    best, shifts = c, trial
    return shifts


TARGET_SLACK = 0.05  # a file within 5% under the budget is done
TARGET_REFITS = 3  # warm-started refits after the first fit, at most
RATE_EXPONENT = 0.4  # bytes ~ lambda^0.4 (the first step's guess; later steps use the secant)


def fit_to_size(model: OverfitLoaded, a: Analysis, max_bytes: int, effort: int, seed: int = 0,
                on_progress=None, device: str = "cpu") -> tuple[Encoded, bool]:
    """The largest file of at most `max_bytes`: one fit at quality 60, then up to TARGET_REFITS
    refits, each warm-started from the previous model for a quarter of the preset's iterations at
    the quality the size model predicts (bytes ~ lambda^RATE_EXPONENT, then the secant through the
    last two sizes in log space); stops once a file lands within TARGET_SLACK under the budget.
    Costs one fit plus at most 3/4 of one. The refits keep the first fit's decoder (the level's
    at quality 60). (smallest file, False) when none fits."""
    from codec.pipeline.overfit_fit import Fit, FitSchedule

    preset = EFFORTS[effort].at(DEFAULT_QUALITY)
    target = max_bytes * (1 - TARGET_SLACK / 2)
    q = DEFAULT_QUALITY
    fitted = fit(a, rate_for(q), preset, seed, on_progress, device)
    tried = [(q, encode(model, fitted, rate_for(q)))]
    for _ in range(TARGET_REFITS):
        size = len(tried[-1][1].data)
        if (1 - TARGET_SLACK) * max_bytes <= size <= max_bytes:
            break
        if len(tried) > 1 and len(tried[-2][1].data) != size:
            (q0, e0), (q1, _) = tried[-2], tried[-1]
            slope = (math.log2(size) - math.log2(len(e0.data))) / (q1 - q0) if q1 != q0 else RATE_EXPONENT / 10
            step = math.log2(target / size) / slope if slope > 0 else 10 * math.log2(target / size) / RATE_EXPONENT
        else:
            step = 10 * math.log2(target / size) / RATE_EXPONENT
        q_next = min(100.0, max(0.0, tried[-1][0] + step))
        if q_next == tried[-1][0]:
            break
        rate = rate_for(round(q_next, 2))
        schedule = FitSchedule(iterations=max(1, preset.iterations // 4), candidates=1, warmup=0)
        model_next = Fit(a.pixels, fitted.fitted.config, rate.lam, schedule, seed, device).resume(fitted.fitted, on_progress).cpu()
        fitted = replace(fitted, fitted=model_next, fitted_for=(rate.lam, preset, seed))
        tried.append((rate.quality, encode(model, fitted, rate)))
    fitting = [e for _, e in tried if len(e.data) <= max_bytes]
    if fitting:
        return max(fitting, key=lambda e: len(e.data)), True
    return min((e for _, e in tried), key=lambda e: len(e.data)), False


def _tensors(nets) -> list[np.ndarray]:
    out = []
    for layer in [*nets.arm.hidden, nets.arm.out]:
        out += [layer.weight, layer.bias]
    out += list(nets.taps)
    for layer in [*nets.mlp, *nets.convs]:
        out += [layer.weight, layer.bias]
    return out


def encode(model: OverfitLoaded, a: Analysis, rate: OverfitRate) -> Encoded:
    from codec.models.overfit import latent_grids, quantized

    if a.fitted is None or a.fitted_for[0] != rate.lam:
        a = fit(a, rate, EFFORTS[DEFAULT_EFFORT])
    t0 = time.perf_counter()
    m = a.fitted
    shifts = choose_shifts(m, a.pixels, rate.lam)
    nets = quantized(m, shifts)
    grids = latent_grids(m)
    indexes, stream = networks.compress(_tensors(nets))
    cfg = m.config
    chunk = Nets(len(grids), cfg.arm_context, cfg.arm_hidden, cfg.taps, cfg.convs, cfg.tile.bit_length() - 1 if cfg.tile else 0,
                 tuple(cfg.widths), shifts.as_tuple(), tuple(indexes), stream)
    h, w = a.pixels.shape[:2]
    header = Header(kind=0, width=w, height=h, pad_right=0, pad_bottom=0, bit_depth=8, channels=3,
                    quality=rate.field, weights_sha256_prefix=model.sha256_prefix, model_id=model.model_id,
                    coder=coder.coder_name(), coder_version=coder.coder_version())
    data = write_container(header, [(NETS, pack_nets(chunk)), (YSTR, arm_int.compress(grids, nets.arm, cfg.tile))],
                           version=OVERFIT_VERSION)
    return Encoded(data, header, NO_SYMBOLS, _flat(grids), a.seconds + time.perf_counter() - t0)


def _flat(grids: list[np.ndarray]) -> np.ndarray:
    """The grids as one (1, 1, N) int32 array (Encoded/Decoded carry symbols as 3-D arrays)."""
    return np.concatenate([g.ravel() for g in grids]).astype(np.int32)[None, None]


# --- decoder (numpy only) ------------------------------------------------------------------------


def networks_of(chunk: Nets):
    """The integer networks a NETS chunk codes (FormatError when they break the exact bounds)."""
    from codec.models.overfit_int import Networks

    ints = networks.decompress(chunk.stream, chunk.tensor_shapes(), list(chunk.scale_indexes))
    arm_s, arm_b, taps_s, syn_s, syn_b = chunk.shifts
    try:
        it = iter(ints)
        hidden = [fp.Layer(next(it), next(it), arm_s, arm_b) for _ in range(chunk.arm_hidden)]
        arm = arm_int.Arm(hidden, fp.Layer(next(it), next(it), arm_s, arm_b))
        taps = [next(it) for _ in range(chunk.grids - 1)]
        if any(np.abs(t).max() >= 2 ** fp.WEIGHT_BITS for t in taps):
            raise ValueError("upsampling taps beyond the integer range")
        mlp = [fp.Layer(next(it), next(it), syn_s, syn_b) for _ in range(len(chunk.widths) + 1)]
        convs = [fp.Layer(next(it), next(it), syn_s, syn_b) for _ in range(chunk.convs)]
    except ValueError as exc:
        raise FormatError(f"corrupt bitstream: NETS networks break the decoder's bounds ({exc})") from None
    return Networks(arm, taps, taps_s, mlp, convs)


def _check_size(height: int, width: int) -> None:
    if height * width > MAX_PIXELS:
        raise LimitError(f"overfitted images are limited to {MAX_PIXELS} pixels (this one has {height * width}): "
                         "the decoder keeps the whole upsampled latents in memory")


def decode(model: OverfitLoaded, container: Container, rate) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from codec.models.overfit_int import synthesize

    container.require(NETS, YSTR)
    header = container.header
    _check_size(header.height, header.width)
    if header.pad_right or header.pad_bottom:
        raise FormatError("corrupt bitstream: overfitted images have no padding")
    chunk = unpack_nets(container.get(NETS))
    nets = networks_of(chunk)
    grids = arm_int.decompress(container.get(YSTR), grid_shapes(header.height, header.width, chunk.grids), nets.arm,
                               chunk.tile)
    return synthesize(nets, grids), NO_SYMBOLS, _flat(grids)


class Overfit(Family):
    name = "overfit"
    kind = "image"
    efforts = (0, *EFFORTS)
    devices = ("cpu", "cuda")
    default_effort = DEFAULT_EFFORT  # there is no one-pass encode: effort 0 is the first level

    def builtin(self, model_id: str) -> OverfitLoaded:
        return OverfitLoaded(model_id=MODEL_ID, sha256=_tables_hash())

    def rate_for(self, model, quality=None, step=1.0) -> OverfitRate:
        return rate_for(quality, step)

    def rate_from_field(self, model, value: int) -> OverfitRate:
        return rate_from_field(value)

    def analyse(self, model, pixels):
        _check_size(*pixels.shape[:2])
        return Analysis(np.ascontiguousarray(pixels))

    def refine(self, model, analysis, rate, effort: int, seed: int = 0, on_progress=None, device: str = "cpu", **_):
        if effort not in EFFORTS:
            raise ValueError(f"effort {effort} is not a level of overfitted models (1..{max(EFFORTS)})")
        return fit(analysis, rate, EFFORTS[effort], seed, on_progress, device)

    def compress_to_size(self, model, pixels, max_bytes, effort, on_progress=None, device: str = "cpu"):
        _check_size(*pixels.shape[:2])
        return fit_to_size(model, Analysis(np.ascontiguousarray(pixels)), max_bytes, effort or DEFAULT_EFFORT,
                           on_progress=on_progress, device=device)

    def effort_settings(self, effort: int) -> dict:
        from codec.models.overfit import PRESETS
        from codec.pipeline.overfit_start import start_label
        from codec.pipeline.precision import use_bf16

        p = EFFORTS.get(effort or DEFAULT_EFFORT)
        high = {"high": {"size": p.high_size, "decoder": asdict(PRESETS[p.high_size]), "iterations": p.high_iterations,
                         "from_quality": p.high_from, "start": start_label(p.high_size)}} if p.high_size else {}
        # bfloat16 where the CPU computes it natively (the fits before it followed the hardware, so
        # recorded without the key); a float32 fit is another result, keyed apart
        precision = {} if use_bf16(None) else {"bf16": False}
        return {"size": p.size, "decoder": asdict(PRESETS[p.size]), "iterations": p.iterations,
                "candidates": p.candidates, "warmup": p.warmup, "start": start_label(p.size),
                "revision": REVISION, **high, **precision}

    def encode(self, model, analysis, rate) -> Encoded:
        return encode(model, analysis, rate)

    def decode(self, model, container, rate):
        return decode(model, container, rate)


FAMILY = Overfit()
