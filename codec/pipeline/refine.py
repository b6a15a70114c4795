"""Effort levels of the hyperprior family: stochastic Gumbel annealing of the latents (SGA; Yang,
Bamler, Mandt, NeurIPS 2020, "Improving Inference for Neural Image Compression") with the decoder
frozen.

Higher effort spends encode time to lower this image's rate-distortion cost

    lambda * 255^2 * MSE(x, g_s(y_hat)) + (bits(y_hat | z_hat) + bits(z_hat)) / pixels

by Adam steps on y (in quantisation steps) and z jointly, through h_s and g_s. Rounding is relaxed:
each value v becomes a Gumbel-softmax mix of floor(v) and ceil(v) whose logits are
-atanh(distance) / tau, and the temperature tau anneals from TAU_MAX towards zero (held for the
first T0 of the run, then exponential to TAU_END); the final latents are rounded hard. The best
hard-rounded point seen (checked every `check_every` steps in the second half, and effort 0's own
point) is kept, so a refined file never costs more than effort 0 in the cost above.

The file format and the decoder are unchanged: the refined z and y are coded exactly as analysed
ones (`hyperprior.encode`), with the entropy parameters recomputed in float64 from the final z.
g_s and h_s run under bfloat16 autocast (the coding path never does), and g_s is compiled with
torch.compile for the longer levels (results/effort/speed.md measures both).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Callable

import torch

from codec.entropy.gaussian import gaussian_likelihood

Progress = Callable[[int, int, float, float], None]  # (step, steps, bpp, PSNR dB) of the best point so far


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
    bf16: bool = True
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


_COMPILED: dict[int, torch.nn.Module] = {}


def _synthesis(module, compile_it: bool) -> torch.nn.Module:
    if not compile_it:
        return module.g_s
    key = id(module.g_s)
    if key not in _COMPILED:
        _COMPILED[key] = torch.compile(module.g_s, dynamic=False)
    return _COMPILED[key]


class _Objective:
    """The relaxed cost of one image and the hard cost of a candidate point, in one place."""

    def __init__(self, model, analysis, rate, schedule: Schedule):
        self.module, self.schedule = model.module, schedule
        self.h, self.w = analysis.height, analysis.width
        self.x = analysis.x[:, :, : self.h, : self.w]
        self.lam = rate_lambda(model, rate)
        self.step = rate.enc_step.float().view(1, -1, 1, 1)
        self.mult = rate.dec_mult.float().view(1, -1, 1, 1)
        self.median = model.entropy.median.view(1, -1, 1, 1)
        self.g_s = _synthesis(self.module, schedule.compile)

    def __call__(self, v: torch.Tensor, u: torch.Tensor, tau: float, gen: torch.Generator):
        """(cost, bits, mse) at latents v = y / step and u = z - median, rounded softly at tau."""
        z = soft_round(u, tau, gen) + self.median
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.schedule.bf16):
            mean, scale = self.module.entropy_parameters(z)
        mean, scale = mean.float(), scale.float()
        sym = soft_round(v - mean / self.step, tau, gen)
        bits = -torch.log2(gaussian_likelihood(sym, scale / self.step)).sum()
        bits = bits - torch.log2(self.module.z_density.likelihood(z)).sum()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.schedule.bf16):
            x_hat = self.g_s(sym * self.mult + mean)
        mse = torch.mean((x_hat.float()[:, :, : self.h, : self.w] - self.x) ** 2)
        return self.lam * 255.0**2 * mse + bits / (self.h * self.w), bits, mse


Evaluate = Callable[[object], tuple[float, float, float]]  # analysis -> (coded cost, bpp, PSNR dB)


TILE = 512  # pixels: images larger than TILE_ABOVE pixels (padded) are refined tile by tile
TILE_ABOVE = 1 << 20


def refine(model, analysis, rate, effort: int, evaluate: Evaluate, *, seed: int = 0,
           on_progress: Progress | None = None, schedule: Schedule | None = None, tile: int = TILE,
           tile_above: int = TILE_ABOVE):
    """The analysis with y and z refined for `effort` (0: unchanged). `evaluate(analysis)` is the
    family's coded cost of a candidate (whole file, decoded pixels); `schedule` overrides the level's.

    Above `tile_above` pixels the image is refined in `tile`-pixel squares (aligned to z, each an
    image of its own: bounded memory), written back into the whole, and the whole is kept only if its
    coded cost is below effort 0's."""
    if effort not in EFFORTS:
        raise ValueError(f"effort must be one of {sorted(EFFORTS)}, got {effort}")
    schedule = schedule or EFFORTS[effort]
    if schedule is None:
        return analysis
    gen = torch.Generator().manual_seed(seed)
    step = rate.enc_step.float().view(1, -1, 1, 1)
    with torch.no_grad():
        u = model.module.h_a(analysis.y) - model.entropy.median.view(1, -1, 1, 1)
    v = analysis.y / step
    hp, wp = analysis.padded.shape[:2]
    if hp * wp <= tile_above:
        return _refine_one(model, analysis, rate, schedule, evaluate, gen, v, u, on_progress)
    for r0 in range(0, hp, tile):
        for c0 in range(0, wp, tile):
            if r0 < analysis.height and c0 < analysis.width:
                _refine_tile(model, analysis, rate, schedule, evaluate, gen, v, u, (r0, c0, tile), on_progress)
    whole = _analysis_at(model, analysis, step, v, u)
    return whole if evaluate(whole)[0] < evaluate(analysis)[0] else analysis


def _refine_tile(model, analysis, rate, schedule: Schedule, evaluate: Evaluate, gen, v, u, where,
                 on_progress) -> None:
    """Refines one square of the image as an image of its own; writes its latents into v and u."""
    r0, c0, size = where
    r1, c1 = min(r0 + size, analysis.padded.shape[0]), min(c0 + size, analysis.padded.shape[1])
    ys, zs = (slice(r0 // 16, r1 // 16), slice(c0 // 16, c1 // 16)), (slice(r0 // 64, r1 // 64), slice(c0 // 64, c1 // 64))
    height, width = min(r1, analysis.height) - r0, min(c1, analysis.width) - c0
    part = replace(analysis, padded=analysis.padded[r0:r1, c0:c1], height=height, width=width,
                   pad_bottom=r1 - r0 - height, pad_right=c1 - c0 - width)
    step = rate.enc_step.float().view(1, -1, 1, 1)
    part = _analysis_at(model, part, step, v[:, :, ys[0], ys[1]], u[:, :, zs[0], zs[1]])
    out = _refine_one(model, part, rate, schedule, evaluate, gen,
                      v[:, :, ys[0], ys[1]], u[:, :, zs[0], zs[1]], on_progress)
    v[:, :, ys[0], ys[1]] = out.y / step
    u[:, :, zs[0], zs[1]] = torch.from_numpy(out.z_sym.astype("float32"))[None]


def _refine_one(model, analysis, rate, schedule: Schedule, evaluate: Evaluate, gen, v0, u0, on_progress):
    objective = _Objective(model, analysis, rate, schedule)
    v = v0.detach().clone().requires_grad_(True)
    u = u0.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([v, u], lr=schedule.lr)
    best = (*evaluate(analysis), analysis)  # effort 0's own file is the floor
    check = schedule.check_every or max(1, schedule.steps // 8)
    with torch.enable_grad():
        for t in range(schedule.steps - 1):
            cost, _, _ = objective(v, u, schedule.tau(t), gen)
            opt.zero_grad(set_to_none=True)
            cost.backward()
            opt.step()
            if (t >= schedule.steps // 2 and (t + 1) % check == 0) or t == schedule.steps - 2:
                candidate = _analysis_at(model, analysis, objective.step, v.detach(), u.detach())
                point = (*evaluate(candidate), candidate)
                best = point if point[0] < best[0] else best
                if on_progress is not None:
                    on_progress(t + 2 if t == schedule.steps - 2 else t + 1, schedule.steps, best[1], best[2])
    return best[3]


@torch.no_grad()
def _analysis_at(model, analysis, step: torch.Tensor, v: torch.Tensor, u: torch.Tensor):
    """The analysis holding latents v (y in steps), u (z - median) rounded hard: z symbols, the float64
    parameter path rerun."""
    t0 = time.perf_counter()
    z_sym = torch.round(u)[0].to(torch.int32).numpy()
    mean_q, scale = model.entropy.parameters(z_sym)
    return replace(analysis, y=(v * step).float(), z_sym=z_sym, mean_q=mean_q, scale=scale,
                   z_stream=model.entropy.compress_z(z_sym), seconds=analysis.seconds + time.perf_counter() - t0)
