"""Mean-scale hyperprior autoencoder (Balle et al. 2018; Minnen, Balle, Toderici 2018, without context).

Data flow (shapes for an input of H x W, both multiples of 64)::

    x (B,3,H,W) -g_a-> y (B,M,H/16,W/16) -h_a-> z (B,N,H/64,W/64)
    z -round-> z_hat ----------------------------------(factorized density, ZSTR)
    z_hat -h_s-> (mean, scale) (B,M,H/16,W/16)
    y -round(y - mean) + mean-> y_hat -------------------(Gaussian(mean, scale), YSTR)
    y_hat -g_s-> x_hat (B,3,H,W)

The transforms use GDN; the hyper transforms use leaky ReLU. Training uses "mixed" quantisation:
additive uniform noise for the rate terms, straight-through rounding for what the decoders see,
so the synthesis learns from the same y_hat it will get at test time.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from codec.entropy.factorized import FactorizedDensity
from codec.entropy.gaussian import SCALE_MIN, gaussian_likelihood
from codec.models.layers import GDN, conv, deconv

STRIDE = 64  # input alignment: y at 1/16, z at 1/64


@dataclass(frozen=True)
class HyperpriorConfig:
    """N: transform width; M: latent channels (y); the hyperlatent z has N channels."""

    N: int = 128
    M: int = 192
    levels: tuple = ()  # variable rate: the trained lambdas, lowest first (gain units per level)
    lmbda: float = 0.0  # single-rate models: the trained lambda (encoder-side refinement uses it)
    act: str = "gdn"  # nonlinearity of g_a / g_s: "gdn" (GDN / IGDN) or "relu" (cheaper per step)

    def __post_init__(self):
        object.__setattr__(self, "levels", tuple(float(v) for v in self.levels))

    @property
    def variable_rate(self) -> bool:
        return len(self.levels) > 1

    @classmethod
    def preset(cls, name: str) -> "HyperpriorConfig":
        presets = {"tiny": cls(N=8, M=12), "small": cls(N=96, M=128), "base": cls(N=128, M=192),
                   "small-gdn": cls(N=64, M=96), "small-relu": cls(N=64, M=96, act="relu"),
                   "base-relu": cls(N=128, M=192, act="relu")}
        if name not in presets:
            raise KeyError(f"unknown config {name!r}; valid: {', '.join(presets)}")
        return presets[name]

    @classmethod
    def tiny(cls) -> "HyperpriorConfig":
        return cls.preset("tiny")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["levels"] = list(self.levels)
        if not d["levels"]:
            del d["levels"]
        if not d["lmbda"]:
            del d["lmbda"]
        if d["act"] == "gdn":
            del d["act"]
        return d


def ste_round(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


@dataclass(frozen=True)
class ForwardResult:
    x_hat: torch.Tensor  # (B, 3, H, W), not clamped
    y_likelihoods: torch.Tensor  # (B, M, H/16, W/16)
    z_likelihoods: torch.Tensor  # (B, N, H/64, W/64)


class MeanScaleHyperprior(nn.Module):
    """g_a, g_s, h_a, h_s and the two entropy models. See the module docstring for the data flow."""

    def __init__(self, config: HyperpriorConfig = HyperpriorConfig()):
        super().__init__()
        self.config = config
        N, M = config.N, config.M
        if config.act not in ("gdn", "relu"):
            raise ValueError(f"unknown act {config.act!r}; valid: gdn, relu")

        def act(inverse: bool = False) -> nn.Module:
            return GDN(N, inverse=inverse) if config.act == "gdn" else nn.ReLU(inplace=True)

        self.g_a = nn.Sequential(conv(3, N), act(), conv(N, N), act(), conv(N, N), act(), conv(N, M))
        self.g_s = nn.Sequential(
            deconv(M, N), act(True), deconv(N, N), act(True), deconv(N, N), act(True), deconv(N, 3),
        )
        self.h_a = nn.Sequential(
            conv(M, N, 3, 1), nn.LeakyReLU(inplace=True), conv(N, N), nn.LeakyReLU(inplace=True), conv(N, N)
        )
        self.h_s = nn.Sequential(
            deconv(N, M), nn.LeakyReLU(inplace=True), deconv(M, M * 3 // 2), nn.LeakyReLU(inplace=True),
            conv(M * 3 // 2, M * 2, 3, 1),
        )
        self.z_density = FactorizedDensity(N)
        if config.variable_rate:
            # Gain units (Cui et al. 2021, "Asymmetric gained deep image compression"): per level a
            # per-channel gain applied to y - mean before rounding and a separate inverse gain after;
            # log-parametrised, initialised to a uniform quantisation step ~ (0.0067 / lambda)^0.5.
            init = torch.tensor([0.5 * math.log(lam / 0.0067) for lam in config.levels]).view(-1, 1)
            self.log_gain = nn.Parameter(init.repeat(1, M))
            self.log_inv_gain = nn.Parameter(-init.repeat(1, M))

    def entropy_parameters(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z_hat (B,N,h,w) -> mean, scale (B,M,4h,4w); scale >= SCALE_MIN."""
        mean, scale = self.h_s(z_hat).chunk(2, dim=1)
        return mean, scale.abs().clamp_min(SCALE_MIN)  # abs keeps the gradient alive near zero

    def gains(self, position: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gain and inverse gain (.., M) at level positions in [0, L-1] (fractional: log-linear mix)."""
        position = position.to(self.log_gain.dtype).clamp(0, len(self.config.levels) - 1)
        lo = position.floor().long().clamp(max=len(self.config.levels) - 2)
        a = (position - lo.to(position.dtype)).unsqueeze(-1)
        log_g = self.log_gain[lo] * (1 - a) + self.log_gain[lo + 1] * a
        log_ig = self.log_inv_gain[lo] * (1 - a) + self.log_inv_gain[lo + 1] * a
        return torch.exp(log_g), torch.exp(log_ig)

    def forward(self, x: torch.Tensor, level: torch.Tensor | None = None) -> ForwardResult:
        """level: (B,) integer level per image for variable-rate models (None otherwise)."""
        y = self.g_a(x).float()
        z = self.h_a(y)
        med = self.z_density.medians.view(1, -1, 1, 1)
        z_noisy = z + torch.empty_like(z).uniform_(-0.5, 0.5)
        z_likelihoods = self.z_density.likelihood(z_noisy)
        z_hat = ste_round(z - med) + med
        mean, scale = self.entropy_parameters(z_hat)
        residual = y - mean
        if self.config.variable_rate:
            g, ig = self.gains(level.to(y.device))
            g, ig = g[:, :, None, None], ig[:, :, None, None]
            scaled = residual * g
            y_likelihoods = gaussian_likelihood(scaled + torch.empty_like(y).uniform_(-0.5, 0.5), scale * g)
            y_hat = ste_round(scaled) * ig + mean
        else:
            y_likelihoods = gaussian_likelihood(residual + torch.empty_like(y).uniform_(-0.5, 0.5), scale)
            y_hat = ste_round(residual) + mean
        x_hat = self.g_s(y_hat)
        return ForwardResult(x_hat=x_hat.float(), y_likelihoods=y_likelihoods, z_likelihoods=z_likelihoods)

    def aux_loss(self) -> torch.Tensor:
        return self.z_density.aux_loss()
