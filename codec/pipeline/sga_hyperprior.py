"""The hyperprior family's side of the effort levels (codec/pipeline/refine.py): the relaxed cost

    lambda * 255^2 * MSE(x, g_s(sym * mult + mean)) + (bits(sym | scale) + bits(z)) / pixels,
    z = soft_round(u) + median, (mean, scale) = h_s(z), sym = soft_round(v - mean / step)

and its hard candidates: z rounded, the float64 parameter path rerun, y = v * step.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Callable

import torch

from codec.entropy.gaussian import gaussian_likelihood
from codec.pipeline.precision import use_bf16
from codec.pipeline.refine import Schedule, distortion, rate_lambda, soft_round, synthesis


class HyperpriorProblem:
    """SGA of y and z through h_s and g_s for one model and rate; `evaluate` is the family's coded cost."""

    def __init__(self, model, rate, evaluate: Callable):
        self.model, self.rate, self.evaluate = model, rate, evaluate
        self.step = rate.enc_step.float().view(1, -1, 1, 1)
        self.mult = rate.dec_mult.float().view(1, -1, 1, 1)
        self.median = model.entropy.median.view(1, -1, 1, 1)

    @torch.no_grad()
    def start(self, analysis):
        return analysis.y / self.step, self.model.module.h_a(analysis.y) - self.median

    def latents(self, analysis):
        return analysis.y / self.step, torch.from_numpy(analysis.z_sym.astype("float32"))[None]

    @torch.no_grad()
    def at(self, analysis, v, u):
        t0 = time.perf_counter()
        z_sym = torch.round(u)[0].to(torch.int32).numpy()
        mean_q, scale = self.model.entropy.parameters(z_sym)
        return replace(analysis, y=(v * self.step).float(), z_sym=z_sym, mean_q=mean_q, scale=scale,
                       z_stream=self.model.entropy.compress_z(z_sym),
                       seconds=analysis.seconds + time.perf_counter() - t0)

    def relaxed(self, analysis, schedule: Schedule):
        module, bf16 = self.model.module, use_bf16(schedule.bf16)
        h, w = analysis.height, analysis.width
        x = analysis.x[:, :, :h, :w]
        lam = rate_lambda(self.model, self.rate)
        g_s = synthesis(module, schedule.compile)

        def cost(v, u, tau, gen):
            z = soft_round(u, tau, gen) + self.median
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                mean, scale = module.entropy_parameters(z)
            mean, scale = mean.float(), scale.float()
            sym = soft_round(v - mean / self.step, tau, gen)
            bits = -torch.log2(gaussian_likelihood(sym, scale / self.step)).sum()
            bits = bits - torch.log2(module.z_density.likelihood(z)).sum()
            mse = distortion(g_s, sym * self.mult + mean, x, bf16)
            return lam * 255.0**2 * mse + bits / (h * w)

        return cost
