"""Effort levels: stochastic Gumbel annealing of the latents (SGA; Yang, Bamler, Mandt, NeurIPS 2020,
"Improving Inference for Neural Image Compression") with the decoder frozen. This module is the
family-independent part: the schedules, the relaxed rounding, the annealing loop and the tiles. What
a family adds is a `Problem` (its relaxed cost and its hard candidates): `sga_hyperprior.py`,
`sga_m2t.py`.

Higher effort spends encode time to lower this image's rate-distortion cost

    lambda * 255^2 * MSE(x, g_s(y_hat)) + (bits(y_hat | ...) + bits(z_hat)) / pixels

by Adam steps on v = y / step (y in quantisation steps) and u = z - median jointly. Rounding is
relaxed: each value becomes a Gumbel-softmax mix of floor and ceil whose logits are
-atanh(distance) / tau, and the temperature tau anneals from TAU_MAX towards zero (held for the
first T0 of the run, then exponential to TAU_END); the final latents are rounded hard. The best
hard-rounded point seen (checked every `check_every` steps in the second half, and effort 0's own
point) is kept, by the family's real coded cost, so a refined file never costs more than effort 0.

The file format and the decoder are unchanged: the refined latents are coded exactly as analysed
ones, with the entropy parameters recomputed on the float64 path from the final symbols. The
relaxed cost runs under bfloat16 autocast (the coding path never does), and g_s is compiled with
torch.compile for the longer levels (results/effort/speed.md measures both).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Callable, Protocol

import numpy as np
import torch

from codec.pipeline.allocator import retain_freed_memory
from codec.pipeline.compiling import CompiledOrEager
from codec.pipeline.precision import use_bf16

Progress = Callable[[int, int, float, float], None]  # (step, steps, bpp, PSNR dB) of the best point so far
Relaxed = Callable[[torch.Tensor, torch.Tensor, float, torch.Generator], torch.Tensor]  # (v, u, tau, gen) -> cost


@dataclass(frozen=True)
class Schedule:
    """One effort level: `steps` Adam steps at `lr` (in quantisation steps) with the annealing
    tau(t) = tau_max for t < t0 * steps, then tau_max * exp(-rate * (t - t0 * steps)), where the rate
    makes tau reach `tau_end` at the last relaxed step (steps - 2); the last step is hard rounding."""

    steps: int
    lr: float = 0.01
    t0: float = 0.35
    tau_max: float = 0.5
    tau_end: float = 0.05
    bf16: bool | None = None  # bfloat16 autocast; None: where the CPU computes it natively (codec.pipeline.precision)
    compile: bool = False
    check_every: int = 0  # hard-rounded evaluations in the second half (0: steps // 8)

    def tau(self, t: int) -> float:
        """The temperature at step t (0 = hard rounding at the last step)."""
        if t >= self.steps - 1:
            return 0.0
        start = self.t0 * self.steps
        if t < start:
            return self.tau_max
        rate = math.log(self.tau_max / self.tau_end) / max(1.0, self.steps - 2 - start)
        return self.tau_max * math.exp(-rate * (t - start))


EFFORTS: dict[int, Schedule | None] = {  # chosen by measurement: results/effort (README there)
    0: None,
    1: Schedule(steps=60, lr=0.02),
    2: Schedule(steps=400, lr=0.01, compile=True),
    3: Schedule(steps=1500, lr=0.01, compile=True),
}


def settings(effort: int) -> dict:
    """What an effort level does, for evaluation records and caches ({} for effort 0)."""
    schedule = EFFORTS.get(effort)
    if schedule is None:
        return {}
    # bf16 as this machine resolves it (True, as recorded before it followed the hardware, where the
    # CPU computes bfloat16 natively): a fit in float32 is another result
    return {"method": "sga", **asdict(replace(schedule, bf16=use_bf16(schedule.bf16)))}


def rate_lambda(model, rate) -> float:
    """The lambda this rate setting stands for: the level mix of a variable-rate model, or the
    trained lambda over step^2 for a single-rate one (rate ~ step^-2 scaling of the trade-off)."""
    cfg = model.module.config
    if cfg.variable_rate:
        t = rate.quality / 100.0 * (len(cfg.levels) - 1)
        lo = min(len(cfg.levels) - 2, int(math.floor(t)))
        a = t - lo
        return math.exp(math.log(cfg.levels[lo]) * (1 - a) + math.log(cfg.levels[lo + 1]) * a)
    return (cfg.lmbda or 0.0067) / rate.step**2


def file_cost(lam: float, original: np.ndarray, decoded: np.ndarray, nbytes: int) -> tuple[float, float, float]:
    """(lambda * MSE in 8-bit units + bpp, bpp, PSNR dB) of a whole file of `nbytes` that decodes to
    `decoded` (H, W, 3) uint8: the coded cost every family's effort levels lower."""
    mse = float(np.mean((decoded.astype(np.float64) - original) ** 2))
    bpp = 8.0 * nbytes / (original.shape[0] * original.shape[1])
    return lam * mse + bpp, bpp, float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def soft_round(v: torch.Tensor, tau: float, generator: torch.Generator) -> torch.Tensor:
    """SGA's relaxed rounding of v: floor(v) + w, w a two-class Gumbel-softmax sample at temperature
    tau with logits -atanh(v - floor) and -atanh(ceil - v) over tau; tau = 0 is hard rounding."""
    if tau <= 0:
        return torch.round(v)
    lo = torch.floor(v)
    frac = v - lo
    eps = 1e-5
    logits = torch.stack([-torch.atanh(frac.clamp(0, 1 - eps)), -torch.atanh((1 - frac).clamp(0, 1 - eps))], -1) / tau
    u = torch.rand(logits.shape, generator=generator, dtype=logits.dtype).clamp_(1e-10, 1 - 1e-10)
    w = torch.softmax((torch.log_softmax(logits, -1) - torch.log(-torch.log(u))) / tau, -1)
    return lo + w[..., 1]


_COMPILED: dict[int, CompiledOrEager] = {}


def synthesis(module, compile_it: bool):
    """g_s of an autoencoder, compiled once per process when asked (torch.compile, static shapes;
    eager where no compiler can build it)."""
    if not compile_it:
        return module.g_s
    key = id(module.g_s)
    if key not in _COMPILED:
        _COMPILED[key] = CompiledOrEager(module.g_s)
    return _COMPILED[key]


def distortion(g_s, y_hat: torch.Tensor, x: torch.Tensor, bf16: bool) -> torch.Tensor:
    """MSE in [0, 1] units between x (1, 3, h, w) and g_s(y_hat) cropped to it."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        x_hat = g_s(y_hat)
    return torch.mean((x_hat.float()[:, :, : x.shape[2], : x.shape[3]] - x) ** 2)


class Problem(Protocol):
    """One family's side of the annealing. Latents are (v, u): v (1, M, H/16, W/16) = y / step and
    u (1, N, H/64, W/64) = z - median (N may be 0); analyses carry `padded`, `height`, `width`,
    `pad_bottom`, `pad_right`."""

    def start(self, analysis) -> tuple[torch.Tensor, torch.Tensor]:
        """(v, u) to start from: y / step and the unrounded h_a(y) - median."""

    def latents(self, analysis) -> tuple[torch.Tensor, torch.Tensor]:
        """(v, u) an analysis codes: y / step and its z symbols."""

    def at(self, analysis, v: torch.Tensor, u: torch.Tensor):
        """The analysis that codes (v, u), u rounded hard (its side information recomputed)."""

    def relaxed(self, analysis, schedule: Schedule) -> Relaxed:
        """The differentiable cost of the image of `analysis` (per pixel, in lambda units)."""

    def evaluate(self, analysis) -> tuple[float, float, float]:
        """(coded cost, bpp, PSNR dB) of the file the family writes for `analysis`."""


TILE = 512  # pixels: images larger than TILE_ABOVE pixels (padded) are refined tile by tile
TILE_ABOVE = 1 << 20


def refine(problem: Problem, analysis, effort: int, *, seed: int = 0, on_progress: Progress | None = None,
           schedule: Schedule | None = None, tile: int = TILE, tile_above: int = TILE_ABOVE):
    """The analysis with its latents refined for `effort` (0: unchanged); `schedule` overrides the
    level's.

    Above `tile_above` pixels the image is refined in `tile`-pixel squares (aligned to z, each an
    image of its own: bounded memory), written back into the whole, and the whole is kept only if its
    coded cost is below effort 0's."""
    if effort not in EFFORTS:
        raise ValueError(f"effort must be one of {sorted(EFFORTS)}, got {effort}")
    schedule = schedule or EFFORTS[effort]
    if schedule is None:
        return analysis
    retain_freed_memory()
    gen = torch.Generator().manual_seed(seed)
    v, u = problem.start(analysis)
    hp, wp = analysis.padded.shape[:2]
    if hp * wp <= tile_above:
        return _anneal(problem, analysis, schedule, gen, v, u, on_progress)
    for r0 in range(0, hp, tile):
        for c0 in range(0, wp, tile):
            if r0 < analysis.height and c0 < analysis.width:
                _refine_tile(problem, analysis, schedule, gen, v, u, (r0, c0, tile), on_progress)
    whole = problem.at(analysis, v, u)
    return whole if problem.evaluate(whole)[0] < problem.evaluate(analysis)[0] else analysis


def _refine_tile(problem: Problem, analysis, schedule: Schedule, gen, v, u, where, on_progress) -> None:
    """Refines one square of the image as an image of its own; writes its latents into v and u."""
    r0, c0, size = where
    r1, c1 = min(r0 + size, analysis.padded.shape[0]), min(c0 + size, analysis.padded.shape[1])
    ys, zs = (slice(r0 // 16, r1 // 16), slice(c0 // 16, c1 // 16)), (slice(r0 // 64, r1 // 64), slice(c0 // 64, c1 // 64))
    height, width = min(r1, analysis.height) - r0, min(c1, analysis.width) - c0
    part = replace(analysis, padded=analysis.padded[r0:r1, c0:c1], height=height, width=width,
                   pad_bottom=r1 - r0 - height, pad_right=c1 - c0 - width)
    part = problem.at(part, v[:, :, ys[0], ys[1]], u[:, :, zs[0], zs[1]])
    out = _anneal(problem, part, schedule, gen, v[:, :, ys[0], ys[1]], u[:, :, zs[0], zs[1]], on_progress)
    v[:, :, ys[0], ys[1]], u[:, :, zs[0], zs[1]] = problem.latents(out)


def _anneal(problem: Problem, analysis, schedule: Schedule, gen, v0, u0, on_progress):
    relaxed = problem.relaxed(analysis, schedule)
    v = v0.detach().clone().requires_grad_(True)
    u = u0.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([v, u], lr=schedule.lr)
    best = (*problem.evaluate(analysis), analysis)  # effort 0's own file is the floor
    check = schedule.check_every or max(1, schedule.steps // 8)
    with torch.enable_grad():
        for t in range(schedule.steps - 1):
            cost = relaxed(v, u, schedule.tau(t), gen)
            opt.zero_grad(set_to_none=True)
            cost.backward()
            opt.step()
            if (t >= schedule.steps // 2 and (t + 1) % check == 0) or t == schedule.steps - 2:
                candidate = problem.at(analysis, v.detach(), u.detach())
                point = (*problem.evaluate(candidate), candidate)
                best = point if point[0] < best[0] else best
                if on_progress is not None:
                    on_progress(t + 2 if t == schedule.steps - 2 else t + 1, schedule.steps, best[1], best[2])
    return best[3]
