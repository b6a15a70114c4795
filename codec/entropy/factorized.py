"""Non-parametric factorized density for side information (Balle et al. 2018, appendix 6.1).

Each channel c has its own univariate cumulative density, a small monotone MLP
  F_c(x) = sigmoid(logits_c(x)),  logits_c = (softplus(H_K) ... tanh-gated ... softplus(H_1)) x.
The likelihood of an integer-centred bin is F(x + 0.5) - F(x - 0.5). Training adds uniform noise;
coding uses a probability table per channel frozen at export (`FactorizedTables.build`), stored
with the weights and read identically by both sides.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from codec import coder

LIKELIHOOD_FLOOR = 1e-9
TABLE_SCALE = 2.0**40  # the frozen pmf is rounded to the grid 1/TABLE_SCALE: the same table for any thread count or kernel


class FactorizedDensity(nn.Module):
    """Per-channel learned density. Shapes: x (B, C, H, W) -> likelihoods (B, C, H, W)."""

    def __init__(self, channels: int, filters=(3, 3, 3), init_scale: float = 10.0, tail_mass: float = 1e-9):
        super().__init__()
        self.channels = channels
        self.tail_mass = tail_mass
        dims = (1, *filters, 1)
        scale = init_scale ** (1.0 / (len(dims) - 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(dims) - 1):
            init = math.log(math.expm1(1.0 / scale / dims[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, dims[i + 1], 1) - 0.5))
            if i < len(dims) - 2:
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))
        # quantiles[c] = (lower tail, median, upper tail); learned by aux_loss only.
        self.quantiles = nn.Parameter(torch.tensor([-init_scale, 0.0, init_scale]).repeat(channels, 1, 1))

    def _logits_cumulative(self, x: torch.Tensor, stop_gradient: bool = False) -> torch.Tensor:
        # x: (C, 1, N) -> (C, 1, N)
        logits = x
        for i, matrix in enumerate(self.matrices):
            bias = self.biases[i]
            if stop_gradient:
                matrix, bias = matrix.detach(), bias.detach()
            logits = torch.matmul(F.softplus(matrix), logits) + bias
            if i < len(self.factors):
                factor = self.factors[i].detach() if stop_gradient else self.factors[i]
                logits = logits + torch.tanh(factor) * torch.tanh(logits)
        return logits

    def _bin_likelihood(self, v: torch.Tensor) -> torch.Tensor:
        lower = self._logits_cumulative(v - 0.5)
        upper = self._logits_cumulative(v + 0.5)
        sign = -torch.sign(lower + upper).detach()  # evaluate in the tail with better precision
        return torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))

    def likelihood(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        v = x.permute(1, 0, 2, 3).reshape(c, 1, -1)  # (C, 1, B*H*W)
        lik = self._bin_likelihood(v).clamp_min(LIKELIHOOD_FLOOR)
        return lik.reshape(c, b, h, w).permute(1, 0, 2, 3)

    @property
    def medians(self) -> torch.Tensor:
        return self.quantiles[:, 0, 1].detach()

    def aux_loss(self) -> torch.Tensor:
        """Moves the quantiles to the tails (tail_mass / 2 each side) and the median to the centre."""
        target = math.log(2.0 / self.tail_mass - 1.0)
        target = torch.tensor([-target, 0.0, target], device=self.quantiles.device)
        logits = self._logits_cumulative(self.quantiles, stop_gradient=True)
        return torch.abs(logits - target).sum()

    @torch.no_grad()
    def pmf_table(self, max_radius: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
        """Frozen coding table.

        Returns:
            offsets: (C,) int32, the integer that symbol 0 of channel c stands for, relative to the median.
            pmf: (C, L) float64 probabilities of symbols 0..L-1; symbol 0 and L-1 are escapes that
                 carry the tail mass below and above the range, the rest are unit bins around
                 round-offsets from the median. Rows are normalised.
        """
        med = self.quantiles[:, 0, 1]
        lo = torch.floor(self.quantiles[:, 0, 0] - med).clamp(-max_radius, 0).long()
        hi = torch.ceil(self.quantiles[:, 0, 2] - med).clamp(0, max_radius).long()
        radius = int(max(-lo.min().item(), hi.max().item(), 1))
        # a common symmetric range for all channels keeps the table rectangular
        ints = torch.arange(-radius, radius + 1, dtype=med.dtype, device=med.device)
        v = (med[:, None] + ints[None, :]).unsqueeze(1)  # (C, 1, L-2)
        inner = self._bin_likelihood(v).squeeze(1).double()
        lower_tail = torch.sigmoid(self._logits_cumulative((med - radius - 0.5).view(-1, 1, 1))).view(-1, 1).double()
        upper_tail = torch.sigmoid(-self._logits_cumulative((med + radius + 0.5).view(-1, 1, 1))).view(-1, 1).double()
        pmf = torch.cat([lower_tail, inner, upper_tail], dim=1).clamp_min(LIKELIHOOD_FLOOR)
        pmf = pmf / pmf.sum(dim=1, keepdim=True)
        offsets = torch.full((self.channels,), -radius - 1, dtype=torch.int32)
        return offsets, pmf.cpu()


@dataclass(frozen=True)
class FactorizedTables:
    """The frozen coding tables of a `FactorizedDensity` and the coder calls that use them.

    Symbols are integers around the per-channel median (z_sym = round(z - median)); `offsets[c]` is
    the symbol that table index 0 of channel c stands for (an escape, as is index L-1)."""

    pmf: torch.Tensor  # (C, L) float64
    offsets: torch.Tensor  # (C,) int32
    pmf_np: np.ndarray = field(init=False, repr=False, compare=False)
    offsets_np: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "pmf", self.pmf.double().contiguous())
        object.__setattr__(self, "offsets", self.offsets.int().contiguous())
        object.__setattr__(self, "pmf_np", self.pmf.numpy())
        object.__setattr__(self, "offsets_np", self.offsets.numpy())

    @classmethod
    def build(cls, density: FactorizedDensity) -> FactorizedTables:
        """The tables of a trained density, computed once at export (float64, on the grid 1/TABLE_SCALE)."""
        offsets, pmf = copy.deepcopy(density).double().pmf_table()
        return cls(torch.round(pmf.double() * TABLE_SCALE) / TABLE_SCALE, offsets.int())

    @property
    def channels(self) -> int:
        return self.pmf.shape[0]

    def compress(self, symbols: np.ndarray) -> bytes:
        """(C, ...) integer symbols -> bytes."""
        return coder.encode_categorical(symbols.reshape(symbols.shape[0], -1), self.pmf_np, self.offsets_np)

    def decompress(self, data: bytes, shape: tuple[int, ...]) -> np.ndarray:
        """Mirror of `compress`: int32 symbols of `shape` (C, ...)."""
        n = int(np.prod(shape[1:]))
        return coder.decode_categorical(data, self.pmf_np, self.offsets_np, n).reshape(shape)
