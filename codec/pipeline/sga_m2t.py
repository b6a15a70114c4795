"""The M2T family's side of the effort levels (codec/pipeline/refine.py).

The coder quantises each token around the mean the transformer predicts from the tokens of earlier
steps, so the grid y is rounded to moves with y itself. The relaxed cost keeps the grid of the
previous Adam step (`grid`, detached) and scores the relaxed values with one teacher-forced pass,
which gives every step's parameters at once (the M2T training form of the same function):

    z = soft_round(u) + median, side = h_s(z)                  (models with a side stream)
    sym = soft_round(v - grid / step), y_hat = sym * mult + grid
    (mean, scale) = M2T(y_hat in schedule order, side)          per patch shape, all steps at once
    bits = -log2 P((y_hat - mean) / mult | scale / step) + bits(z)
    cost = lambda * 255^2 * MSE(x, g_s(y_hat)) + bits / pixels,  then grid <- mean

As the annealing settles, y_hat stops moving and the grid meets the coder's. Hard candidates are
coded by the real step loop (float64, snapped means) and judged by their real coded cost, so the
approximation can cost speed of convergence but never a worse file than effort 0.

Cost: the transformer pass and its gradient weigh about as much as g_s's on a Kodak image (2,880
tokens of width 192 through 4 layers: ~10 GFLOP forward), so an M2T step costs about 3x a
hyperprior step (h_s and g_s under bfloat16 autocast as there; the transformer in float32, which
measured faster than bfloat16 autocast on this CPU).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Callable

import torch

from codec.entropy.gaussian import gaussian_likelihood
from codec.models.m2t import patch_batches, schedule, token_index
from codec.pipeline.precision import use_bf16
from codec.pipeline.refine import Schedule, distortion, rate_lambda, soft_round, synthesis


class M2TProblem:
    """SGA of y (and z with a side stream) through h_s, the transformer and g_s, for one model and rate."""

    def __init__(self, model, rate, evaluate: Callable):
        self.model, self.rate, self.evaluate = model, rate, evaluate
        self.side = model.tf.config.side
        self.step = rate.enc_step.float().view(1, -1, 1, 1)
        self.mult = rate.dec_mult.float().view(1, -1, 1, 1)
        self.median = model.hp.entropy.median.view(1, -1, 1, 1)

    def _no_z(self, v: torch.Tensor) -> torch.Tensor:
        return torch.zeros(1, 0, v.shape[2] // 4, v.shape[3] // 4)

    @torch.no_grad()
    def start(self, analysis):
        y = analysis.y[None]
        if not self.side:
            return y / self.step, self._no_z(y)
        return y / self.step, self.model.module.h_a(y) - self.median

    def latents(self, analysis):
        v = analysis.y[None] / self.step
        return v, (torch.from_numpy(analysis.z_sym.astype("float32"))[None] if self.side else self._no_z(v))

    @torch.no_grad()
    def at(self, analysis, v, u):
        t0 = time.perf_counter()
        y = (v * self.step).float()[0]
        if not self.side:
            return replace(analysis, y=y)
        z_sym = torch.round(u)[0].to(torch.int32).numpy()
        mean_q, scale = self.model.hp.entropy.parameters(z_sym)
        return replace(analysis, y=y, side=(mean_q[0].double(), scale[0]), z_sym=z_sym,
                       z_stream=self.model.hp.entropy.compress_z(z_sym),
                       seconds=analysis.seconds + time.perf_counter() - t0)

    def relaxed(self, analysis, sched: Schedule):
        model, bf16 = self.model, use_bf16(sched.bf16)
        module, tf = model.module, model.tf
        h, w = analysis.height, analysis.width
        x = analysis.x[:, :, :h, :w]
        lam = rate_lambda(model, self.rate)
        g_s = synthesis(module, sched.compile)
        channels, rows, cols = analysis.y.shape
        cfg = tf.config
        jobs = []
        for (pr, pc), origins in patch_batches(rows, cols, cfg.patch).items():
            order = schedule(cfg.patch, cfg.steps, cfg.alpha, pr, pc)
            index = token_index(origins, pr, pc, cfg.patch, order.positions, cols)
            jobs.append((order, index, torch.full((len(origins),), float(self.rate.quality) / 100.0)))
        step = self.step.view(1, 1, -1)
        mult = self.mult.view(1, 1, -1)
        grid = self._initial_grid(analysis, jobs)

        def flat(t: torch.Tensor) -> torch.Tensor:  # (1, C, H, W) -> (H * W, C)
            return t[0].reshape(channels, -1).T

        def cost(v, u, tau, gen):
            nonlocal grid
            side, bits = None, 0.0
            if self.side:
                z = soft_round(u, tau, gen) + self.median
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    mean_s, scale_s = module.entropy_parameters(z)
                side = (flat(mean_s.float()), flat(scale_s.float()))
                bits = -torch.log2(module.z_density.likelihood(z)).sum()
            sym = soft_round(v - grid / self.step, tau, gen)
            y_hat = sym * self.mult + grid
            tokens = flat(y_hat)
            new_grid = torch.zeros_like(tokens)
            for order, index, quality in jobs:
                part = None if side is None else (side[0][index], side[1][index])
                mean, scale = tf(tokens[index], order, quality, part)  # float32: bfloat16 was 20% slower here
                r = (tokens[index] - mean) / mult
                bits = bits - torch.log2(gaussian_likelihood(r, scale / step)).sum()
                new_grid[index] = mean.detach()
            grid = new_grid.T.reshape(1, channels, rows, cols)
            mse = distortion(g_s, y_hat, x, bf16)
            return lam * 255.0**2 * mse + bits / (h * w)

        return cost

    @torch.no_grad()
    def _initial_grid(self, analysis, jobs) -> torch.Tensor:
        """The means one teacher-forced pass predicts from the unquantised y (1, C, H, W)."""
        channels, rows, cols = analysis.y.shape
        tokens = analysis.y.reshape(channels, -1).T
        side = None if analysis.side is None else tuple(t.float().reshape(channels, -1).T for t in analysis.side)
        grid = torch.zeros_like(tokens)
        for order, index, quality in jobs:
            part = None if side is None else (side[0][index], side[1][index])
            grid[index] = self.model.tf(tokens[index], order, quality, part)[0]
        return grid.T.reshape(1, channels, rows, cols)

