"""Building blocks of the transforms: GDN and strided (de)convolutions.

GDN follows Balle, Laparra, Simoncelli, "Density modeling of images using a generalized
normalization transformation" (ICLR 2016), with the reparametrisation of Balle et al. 2018
(parameters kept above a pedestal through a lower bound whose gradient can pull back up).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class _LowerBound(torch.autograd.Function):
    """max(x, bound), letting gradients through where they would push x back above the bound."""

    @staticmethod
    def forward(ctx, x, bound):
        ctx.save_for_backward(x, bound)
        return torch.max(x, bound)

    @staticmethod
    def backward(ctx, grad):
        x, bound = ctx.saved_tensors
        pass_through = (x >= bound) | (grad < 0)
        return pass_through.type_as(grad) * grad, None


def lower_bound(x: torch.Tensor, bound: float) -> torch.Tensor:
    return _LowerBound.apply(x, torch.tensor(bound, dtype=x.dtype, device=x.device))


class GDN(nn.Module):
    """y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2); inverse=True gives IGDN (multiplies).

    The normalisation is computed in float32 even under autocast: it is a ratio of sums of squares
    and loses too much in bfloat16.
    """

    def __init__(self, channels: int, inverse: bool = False, beta_min: float = 1e-6, gamma_init: float = 0.1):
        super().__init__()
        self.inverse = inverse
        self._pedestal = 2.0**-36
        self._beta_bound = (beta_min + self._pedestal) ** 0.5
        self._gamma_bound = self._pedestal**0.5
        self.beta = nn.Parameter(torch.sqrt(torch.ones(channels) + self._pedestal))
        self.gamma = nn.Parameter(torch.sqrt(gamma_init * torch.eye(channels) + self._pedestal))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = x.float()
            c = x.shape[1]
            beta = lower_bound(self.beta, self._beta_bound) ** 2 - self._pedestal
            gamma = lower_bound(self.gamma, self._gamma_bound) ** 2 - self._pedestal
            norm = F.conv2d(x * x, gamma.view(c, c, 1, 1), beta)
            norm = torch.sqrt(norm) if self.inverse else torch.rsqrt(norm)
            return x * norm


def conv(in_ch: int, out_ch: int, kernel: int = 5, stride: int = 2) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2)


def deconv(in_ch: int, out_ch: int, kernel: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(
        in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, output_padding=stride - 1
    )
