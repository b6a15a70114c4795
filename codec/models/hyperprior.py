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

    @classmethod
    def preset(cls, name: str) -> "HyperpriorConfig":
        presets = {"tiny": cls(N=8, M=12), "small": cls(N=96, M=128), "base": cls(N=128, M=192)}
        if name not in presets:
            raise KeyError(f"unknown config {name!r}; valid: {', '.join(presets)}")
        return presets[name]

    @classmethod
    def tiny(cls) -> "HyperpriorConfig":
        return cls.preset("tiny")

    def to_dict(self) -> dict:
        return asdict(self)


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
        self.g_a = nn.Sequential(
            conv(3, N), GDN(N), conv(N, N), GDN(N), conv(N, N), GDN(N), conv(N, M)
        )
        self.g_s = nn.Sequential(
            deconv(M, N), GDN(N, inverse=True), deconv(N, N), GDN(N, inverse=True),
            deconv(N, N), GDN(N, inverse=True), deconv(N, 3),
        )
        self.h_a = nn.Sequential(
            conv(M, N, 3, 1), nn.LeakyReLU(inplace=True), conv(N, N), nn.LeakyReLU(inplace=True), conv(N, N)
        )
        self.h_s = nn.Sequential(
            deconv(N, M), nn.LeakyReLU(inplace=True), deconv(M, M * 3 // 2), nn.LeakyReLU(inplace=True),
            conv(M * 3 // 2, M * 2, 3, 1),
        )
        self.z_density = FactorizedDensity(N)

    def entropy_parameters(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z_hat (B,N,h,w) -> mean, scale (B,M,4h,4w); scale >= SCALE_MIN."""
        mean, scale = self.h_s(z_hat).chunk(2, dim=1)
        return mean, scale.abs().clamp_min(SCALE_MIN)  # abs keeps the gradient alive near zero

    def forward(self, x: torch.Tensor) -> ForwardResult:
        y = self.g_a(x).float()
        z = self.h_a(y)
        med = self.z_density.medians.view(1, -1, 1, 1)
        z_noisy = z + torch.empty_like(z).uniform_(-0.5, 0.5)
        z_likelihoods = self.z_density.likelihood(z_noisy)
        z_hat = ste_round(z - med) + med
        mean, scale = self.entropy_parameters(z_hat)
        residual = y - mean
        y_likelihoods = gaussian_likelihood(residual + torch.empty_like(y).uniform_(-0.5, 0.5), scale)
        y_hat = ste_round(residual) + mean
        x_hat = self.g_s(y_hat)
        return ForwardResult(x_hat=x_hat.float(), y_likelihoods=y_likelihoods, z_likelihoods=z_likelihoods)

    def aux_loss(self) -> torch.Tensor:
        return self.z_density.aux_loss()
