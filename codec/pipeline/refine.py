"""Effort levels: encoder-side refinement of the latents with the decoder frozen.

Higher effort spends encode time to lower this image's rate-distortion cost
    lambda * 255^2 * MSE(x, g_s(y_hat)) + bits(y_hat | z) / pixels
by gradient steps on y (Adam, straight-through rounding of (y - mean) / step, the exact discrete
Gaussian rate of the rounded symbols). z, and so the entropy parameters, stay as analysed, so the
bitstream format and the decoder are unchanged: effort is invisible to the decoder.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from codec.entropy.gaussian import gaussian_likelihood
from codec.models.hyperprior import ste_round

EFFORT_ITERATIONS = {0: 0, 1: 10, 2: 30, 3: 80}
LR = 0.003  # Adam moves every element by about LR a step: small, so only symbols near a rounding boundary flip


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


def refine(model, analysis, rate, effort: int):
    """The analysis with y refined for `effort` (0: unchanged)."""
    if effort not in EFFORT_ITERATIONS:
        raise ValueError(f"effort must be one of {sorted(EFFORT_ITERATIONS)}, got {effort}")
    iterations = EFFORT_ITERATIONS[effort]
    if iterations == 0:
        return analysis
    g_s = model.module.g_s
    x = analysis.x  # (1, 3, Hp, Wp)
    h, w = analysis.height, analysis.width
    lam = rate_lambda(model, rate)
    enc_step = rate.enc_step.float().view(1, -1, 1, 1)
    dec_mult = rate.dec_mult.float().view(1, -1, 1, 1)
    mean = analysis.mean_q
    scale = (analysis.scale / rate.enc_step.view(1, -1, 1, 1)).float()
    y = analysis.y.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([y], lr=LR)
    best_cost, best_y = float("inf"), analysis.y
    with torch.enable_grad():
        for i in range(iterations + 1):
            sym = ste_round((y - mean) / enc_step)
            bits = -torch.log2(gaussian_likelihood(sym, scale)).sum()
            x_hat = g_s(sym * dec_mult + mean)[:, :, :h, :w]
            mse = torch.mean((x_hat - x[:, :, :h, :w]) ** 2)
            cost = lam * 255.0**2 * mse + bits / (h * w)
            if cost.item() < best_cost:  # keep the best point seen, never worse than effort 0
                best_cost, best_y = cost.item(), y.detach().clone()
            if i == iterations:
                break
            for group in opt.param_groups:
                group["lr"] = LR * 0.5 * (1 + math.cos(math.pi * i / iterations))
            opt.zero_grad()
            cost.backward()
            opt.step()
    return replace(analysis, y=best_y)
