"""The overfitted family's encoder: optimise latents and networks on one image (torch, CPU).

    warm-up: a few random starts (the synthesis starting at the image's mean colour), the best one
             continues
    main:    latents relaxed as in C3 / Cool-chic: y~ = sr(sr(y, T) + n, T), sr Agustsson & Theis's
             soft rounding at a temperature T annealed 0.35 -> 0.08, n normal noise whose deviation
             goes 0.22 -> 0.15 (Cool-chic 5's schedule; revision 10 and C3: T 0.3 -> 0.1 and
             Kumaraswamy noise on (-1/2, 1/2) from peaked to uniform, -2.8% BD-rate on four 256x256
             crops at 1,500 steps, results/overfit/noise-r11.jsonl); y~ feeds both the rate and the
             synthesis. Adam with a cosine learning rate, the gradients' norm clipped (Cool-chic's
             0.1 on its scale: another -2.2%, clip-r11.jsonl); the best state (checked with hard
             rounding) kept.
             (Measured on a 256x256 crop of kodim19, 1,500 iterations: cost 0.811 against 1.050
             with additive uniform noise y + u, the proxy of Balle et al.; that proxy's rate at
             y + u stays far below the rate of round(y), so it trains a model that hard rounding
             then spoils.)
    final:   hard rounding (straight-through) at a low learning rate
    cost:    lambda * MSE (8-bit units) + bits per pixel, the convention of codec.pipeline.refine

Deterministic for a seed on a given machine and thread count (tests/test_overfit.py); the file
then decodes to the same pixels anywhere, whatever the encoder's machine was.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch

from codec.models.overfit import OverfitConfig, OverfitModel
from codec.pipeline.allocator import retain_freed_memory
from codec.pipeline.compiling import CompiledOrEager
from codec.pipeline.precision import use_bf16


@dataclass(frozen=True)
class FitSchedule:
    """How long and how an encode optimises (an effort preset is one of these and a decoder size)."""

    iterations: int = 2000
    candidates: int = 3  # random starts of the warm-up
    warmup: int = 100  # iterations each start gets before the best is kept
    lr: float = 1e-2  # networks
    latent_lr: float = 1e-1  # latents (in quantization bins: they must grow well past one bin)
    final_lr: float = 1e-4
    hard: float = 0.05  # share of the iterations with hard rounding at the end
    check_every: int = 50
    bf16: bool | None = None  # bfloat16 autocast for the matrix products (rate and pixels stay
    # float32); None: where the device computes bfloat16 natively (codec.pipeline.precision)
    proxy: str = "softround"  # "noise": y + u; "softround": sr(sr(y, T) + n, T), n drawn as `noise` says
    temperature: tuple[float, float] = (0.35, 0.08)  # soft-round temperature, start -> end (linear)
    kumaraswamy: tuple[float, float] = (2.0, 1.0)  # noise shape a (1: uniform), start -> end
    noise: str = "gaussian"  # the softround proxy's n: "gaussian" (Cool-chic's presets: normal noise
    # whose standard deviation goes `gaussian` start -> end) or "kumaraswamy" (C3; `kumaraswamy`)
    gaussian: tuple[float, float] = (0.22, 0.15)
    clip: float = 0.1  # the gradients' total norm clipped to clip x lambda x 255^2 (Cool-chic's 0.1 on
    # its scale, MSE on [0, 1] + lambda' bpp, which is our cost / (lambda x 255^2)); 0: off
    compile: bool = True  # torch.compile the relaxed cost where it pays (COMPILE_FROM)
    optimizer: str = "adam"  # the networks' optimiser: "adam", or "soap" (Cool-chic 5: Adam in the
    # eigenbasis of a Shampoo preconditioner, pytorch_optimizer's SOAP); the latents keep Adam
    betas: tuple[float, float] = (0.9, 0.999)  # both optimisers' moment decays (SOAP's own default: 0.95, 0.95)


COMPILE_FROM = 1 << 27
"""Pixels x iterations from which the relaxed cost is compiled: compiling takes about 30 s (a
Kodak image, 2 cores) and saves about half of each step; below this it would not pay back."""


def softround(y: torch.Tensor, t: float) -> torch.Tensor:
    """Agustsson & Theis's soft rounding: round(y) as t -> 0, y as t grows."""
    floor = torch.floor(y)
    return floor + 0.5 * torch.tanh((y - floor - 0.5) / t) / torch.tanh(torch.as_tensor(0.5 / t)) + 0.5


def kumaraswamy_noise(u: torch.Tensor, a: float) -> torch.Tensor:
    """u ~ U(0, 1) mapped to a Kumaraswamy(a, b) variable on (-1/2, 1/2) with its mode at 0
    (b chosen for that); a = 1 is uniform, larger a more peaked."""
    b = (2 ** a * (a - 1) + 1) / a
    return (1 - (1 - u) ** (1 / b)) ** (1 / a) - 0.5


def relax(canvas: torch.Tensor, u: torch.Tensor, t, a, proxy: str, noise: str = "kumaraswamy") -> torch.Tensor:
    """The relaxed canvas under a quantization proxy at temperature t; u of the canvas's shape is
    U(0, 1) (Kumaraswamy noise of shape a, or the "noise" proxy) or N(0, 1) (gaussian noise of
    standard deviation a); t and a floats or 0-d tensors (tensors keep a compiled step from
    recompiling)."""
    if proxy == "noise":
        return canvas + u - 0.5
    n = u * a if noise == "gaussian" else kumaraswamy_noise(u, a)
    return softround(softround(canvas, t) + n, t)


def straight_through(y: torch.Tensor) -> torch.Tensor:
    """round(y) forward, identity backward (the gradient of softround at the final temperature
    instead measured no better: cost 0.816 against 0.811 on the crop above)."""
    return y + (torch.round(y) - y).detach()


def optimisers(model: OverfitModel, schedule: FitSchedule) -> tuple[torch.optim.Optimizer, ...]:
    """The fit's optimisers: Adam for the latents, the schedule's choice for the networks (one Adam
    over both where that is Adam). Each group's `scale` multiplies the schedule's learning rate."""
    s = schedule
    nets = [p for n, p in model.named_parameters() if n != "canvas"]
    latents = {"params": [model.canvas], "scale": s.latent_lr / s.lr}
    if s.optimizer == "adam":
        return (torch.optim.Adam([latents, {"params": nets, "scale": 1.0}], lr=s.lr, betas=s.betas),)
    if s.optimizer == "soap":
        try:
            from pytorch_optimizer import SOAP
        except ImportError as e:
            raise ValueError("optimizer 'soap' needs pytorch_optimizer (pip install 'codec[research]')") from e

        # no weight decay (the networks' rate is counted by the file, not by a penalty); biases and
        # other vectors get Adam's update inside SOAP (precondition_1d off)
        return (torch.optim.Adam([latents], lr=s.lr, betas=s.betas),
                SOAP([{"params": nets, "scale": 1.0}], lr=s.lr, betas=s.betas, weight_decay=0.0))
    raise ValueError(f"unknown optimizer {s.optimizer!r} (adam, soap)")


class Fit:
    """One optimisation of an OverfitModel on pixels (H, W, 3) uint8 for lambda `lam`, on a torch
    device ("cpu", or "cuda" where a GPU is present: the same steps, other kernels)."""

    def __init__(self, pixels: np.ndarray, config: OverfitConfig, lam: float, schedule: FitSchedule, seed: int = 0,
                 device: str = "cpu", start: dict | None = None):
        retain_freed_memory()
        self.start_tensors = start  # starting networks (codec.pipeline.overfit_start), None: from scratch
        self.device = torch.device(device)
        self.bf16 = use_bf16(schedule.bf16, self.device.type)  # resolved here: not traceable in a compiled step
        self.x = (torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1))).float() / 255.0).to(self.device)
        self.h, self.w = pixels.shape[:2]
        self.config, self.lam, self.schedule, self.seed = config, lam, schedule, seed
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

    def cost(self, model: OverfitModel, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(loss, bpp, mse in 8-bit units) of the canvas q (quantized or relaxed)."""
        q = q * model.mask
        bpp = model.rate_bits(q) / (self.h * self.w)
        mse = torch.mean((model.image(q) - self.x) ** 2) * 255.0 ** 2
        return self.lam * mse + bpp, bpp, mse

    def proxy_inputs(self, model: OverfitModel, progress: float = 0.0) -> tuple[torch.Tensor, ...]:
        """(u, t, a) of one relaxed step, `progress` in [0, 1] of the relaxed phase."""
        s = self.schedule
        gaussian = s.proxy == "softround" and s.noise == "gaussian"
        draw = torch.randn if gaussian else torch.rand
        u = draw(model.canvas.shape, generator=self.generator, device=self.device)
        t = s.temperature[0] + (s.temperature[1] - s.temperature[0]) * progress
        a0, a1 = s.gaussian if gaussian else s.kumaraswamy
        a = a0 + (a1 - a0) * progress
        return u, torch.tensor(t, device=self.device), torch.tensor(a, device=self.device)

    def relaxed(self, model: OverfitModel, progress: float = 0.0) -> torch.Tensor:
        """The canvas under the schedule's quantization proxy, `progress` in [0, 1] of its phase."""
        return relax(model.canvas, *self.proxy_inputs(model, progress), self.schedule.proxy, self.schedule.noise)

    def autocast(self):
        """bfloat16 autocast for the matrix products on the fit's device (off with bf16=False)."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def relaxed_loss(self, model: OverfitModel):
        """loss(canvas, u, t, a) of a relaxed step, compiled when the fit is long enough to pay."""
        s = self.schedule

        def loss(canvas, u, t, a):
            with self.autocast():
                return self.cost(model, relax(canvas, u, t, a, s.proxy, s.noise))[0]

        if s.compile and self.h * self.w * s.iterations >= COMPILE_FROM:
            return CompiledOrEager(loss)
        return loss

    @torch.no_grad()
    def hard_cost(self, model: OverfitModel) -> tuple[float, float, float]:
        loss, bpp, mse = self.cost(model, torch.round(model.canvas))
        return float(loss), float(bpp), float(mse)

    def run(self, on_progress=None) -> OverfitModel:
        s = self.schedule
        starts = []
        for c in range(max(1, s.candidates)):
            model = self.start(self.seed * 1000 + c)
            self._optimise(model, 0, min(s.warmup, s.iterations), s.iterations, None)
            starts.append((self.hard_cost(model)[0], c, model))
        model = min(starts, key=lambda t: t[:2])[2]
        done = min(s.warmup, s.iterations)
        return self._optimise(model, done, s.iterations, s.iterations, on_progress)

    def start(self, seed: int) -> OverfitModel:
        """A fresh model: zero latents, the starting networks where the fit has them, and the
        synthesis's output bias at the image's mean colour. (With the default random bias a
        channel whose output starts negative is cut off by the ReLU between the 3x3 layers; the
        other channels then imitate it through the last layer for hundreds of iterations, a plateau
        near 23 dB on kodim23, until the cut path revives.)"""
        from codec.pipeline.overfit_start import apply

        model = OverfitModel(self.config, self.h, self.w, seed=seed)
        if self.start_tensors is not None:
            apply(model, self.start_tensors)
        # the image's mean colour also over a start's own bias (the photos' average): from the
        # medium start, kodim07 at quality 80 (centre 384x384, 800 steps) stayed at 24.9 dB, a
        # channel cut off by the ReLU between the 3x3 layers, against 34.4 dB with the mean colour
        # (34.9 dB from scratch); whole kodim07 and kodim10 files of revision 9 lost 1.3-5.3 dB so
        with torch.no_grad():
            synthesis, mean = model.synthesis, self.x.mean(dim=(1, 2))
            synthesis.mlp[-1].bias.copy_(mean)
            # and the start's 3x3 layers dropped where they cut a channel off, the MLP's image then
            # exactly the mean colour: whole kodim10 at quality 80 (medium start) had its red channel
            # below zero after the first 3x3 layer, 30.7 dB at the end of revision 10's 1,550 steps;
            # this way 34.5 dB after 300 steps. (Shifting the MLP's image to the mean colour where a
            # start's 3x3 layers stay lost 17% coded cost on whole kodim04 at quality 40.)
            if self.start_tensors is not None and synthesis.cut_channels():
                for conv in synthesis.convs:
                    conv.weight.zero_()
                    conv.bias.zero_()
                zero = synthesis.forward_mlp(torch.zeros(synthesis.mlp[0].in_features, 1, 1))[:, 0, 0]
                synthesis.mlp[-1].bias.add_(mean - zero)
        return model.to(self.device)

    def resume(self, start: OverfitModel, on_progress=None) -> OverfitModel:
        """A copy of a fitted model optimised further at this Fit's lambda (a warm start for another
        rate): the schedule's iterations without the warm-up; `start` is left as it was."""
        model = copy.deepcopy(start).to(self.device)
        model._opt = None
        return self._optimise(model, 0, self.schedule.iterations, self.schedule.iterations, on_progress)

    def _optimise(self, model: OverfitModel, first: int, last: int, total: int, on_progress) -> OverfitModel:
        """Iterations first..last of a schedule of `total`; returns the best state seen (hard cost)."""
        s = self.schedule
        opts = getattr(model, "_opt", None) or optimisers(model, s)
        model._opt = opts
        hard_from = int(total * (1 - s.hard))
        relaxed_loss = self.relaxed_loss(model)
        best = (math.inf, None)
        for i in range(first, last):
            progress = i / max(1, hard_from)
            if i < hard_from:
                lr = s.final_lr + 0.5 * (s.lr - s.final_lr) * (1 + math.cos(math.pi * min(1.0, progress)))
                loss = relaxed_loss(model.canvas, *self.proxy_inputs(model, min(1.0, progress)))
            else:
                lr = s.final_lr
                with self.autocast():
                    loss = self.cost(model, straight_through(model.canvas))[0]
            for opt in opts:
                for group in opt.param_groups:
                    group["lr"] = lr * group["scale"]
            model.zero_grad(set_to_none=True)
            loss.backward()
            if s.clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), s.clip * self.lam * 255.0 ** 2)
            for opt in opts:
                opt.step()
            if (i + 1) % s.check_every == 0 or i + 1 == last:
                hard = self.hard_cost(model)
                if hard[0] < best[0]:
                    best = (hard[0], copy.deepcopy(model.state_dict()))
                if on_progress:
                    on_progress(i + 1, total, hard[1], 10 * math.log10(255.0 ** 2 / max(hard[2], 1e-10)))
        if best[1] is not None and last == total:
            model.load_state_dict(best[1])
        return model
