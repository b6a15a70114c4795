"""Conditional Gaussian for the main latents: training likelihood, the coding grid and the coder.

Training: likelihood of a unit bin of the residual r = y - mean under N(0, scale^2).
Coding: the mean is snapped to a grid of step 1/MEAN_STEPS and the scale to one of SCALE_LEVELS
log-spaced table entries (the smallest entry not below the predicted scale), on CPU in float64,
so both sides index identical parameters. The table is stored with the weights.

`GaussianConditional` holds the frozen table and is the one object the families code through:

    gc = GaussianConditional(table)          # (S,) float64, from the weights file
    index = gc.index(scale)                  # snapped scale indexes, numpy int64
    data = gc.compress(symbols, index)       # -> bytes (codec.coder, the only constriction user)
    symbols = gc.decompress(data, index)     # mirror
    gc.bits(symbols, scale)                  # the training-time rate estimate of the same symbols
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from codec import coder
from codec.entropy.factorized import LIKELIHOOD_FLOOR

SCALE_MIN = 0.11
SCALE_MAX = 256.0
SCALE_LEVELS = 64
MEAN_STEPS = 64


def scale_table(levels: int = SCALE_LEVELS, lo: float = SCALE_MIN, hi: float = SCALE_MAX) -> torch.Tensor:
    return torch.exp(torch.linspace(math.log(lo), math.log(hi), levels, dtype=torch.float64))


def gaussian_likelihood(residual: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """P(bin) of residual (any shape) under N(0, scale), scale bounded below by SCALE_MIN."""
    scale = scale.clamp_min(SCALE_MIN)
    r = residual.abs()
    upper = _std_normal_cdf((0.5 - r) / scale)
    lower = _std_normal_cdf((-0.5 - r) / scale)
    return (upper - lower).clamp_min(LIKELIHOOD_FLOOR)


def _std_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-x * (2**-0.5))


def snap_scales(scale: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Index of the smallest table entry >= scale (clamped to the table). int64, same shape."""
    s = scale.double().clamp(float(table[0]), float(table[-1]))
    step = (math.log(float(table[-1])) - math.log(float(table[0]))) / (len(table) - 1)
    idx = torch.ceil((torch.log(s) - math.log(float(table[0]))) / step - 1e-9)
    return idx.long().clamp(0, len(table) - 1)


def snap_means(mean: torch.Tensor) -> torch.Tensor:
    """Mean rounded to the grid 1/MEAN_STEPS, float32 (exactly representable)."""
    return (torch.round(mean.double() * MEAN_STEPS) / MEAN_STEPS).float()


def rd_round(residual: torch.Tensor, scale: torch.Tensor, lam: float) -> torch.Tensor:
    """Encoder-side rate-distortion rounding of residuals (in quantisation steps) coded under N(0, scale):
    each value takes round(r) or the integer one step nearer zero, whichever has the lower
    (r - s)^2 + lam * bits(s). lam = 0 is plain rounding (ties to even, as torch.round); the decoder
    never needs lam. float64, the shape of `residual`."""
    r = residual.double()
    s0 = torch.round(r)
    if lam <= 0:
        return s0
    s1 = s0 - torch.sign(s0)
    scale = scale.double()

    def cost(s):
        return (r - s) ** 2 - lam * torch.log2(gaussian_likelihood(s, scale))

    return torch.where(cost(s1) < cost(s0), s1, s0)


@dataclass(frozen=True)
class GaussianConditional:
    """Zero-mean quantized Gaussians of integer residuals, scales snapped to a frozen table.

    Encoder and decoder build it from the same stored table, so `index` gives both sides identical
    parameters. `encoder()`/`decoder()` code a stream in batches whose parameters depend on the
    batches before (token loops); `compress`/`decompress` code one batch."""

    table: torch.Tensor  # (S,) float64 standard deviations, log-spaced
    table_np: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "table", self.table.double().contiguous())
        object.__setattr__(self, "table_np", self.table.numpy())

    @classmethod
    def default(cls) -> GaussianConditional:
        """The table every model exports (`scale_table()`)."""
        return cls(scale_table())

    def index(self, scale: torch.Tensor) -> np.ndarray:
        """Indexes (same shape, int64) of the smallest table entries >= scale."""
        return snap_scales(scale, self.table).numpy()

    def scales(self, index: np.ndarray) -> torch.Tensor:
        """The table's scales at `index` (float64, same shape): what the coder uses."""
        return self.table[torch.from_numpy(np.asarray(index, dtype=np.int64))]

    def compress(self, symbols: np.ndarray, index: np.ndarray) -> bytes:
        return coder.encode_gaussian(symbols, index, self.table_np)

    def decompress(self, data: bytes, index: np.ndarray) -> np.ndarray:
        return coder.decode_gaussian(data, index, self.table_np)

    def encoder(self) -> coder.GaussianEncoder:
        return coder.GaussianEncoder(self.table_np)

    def decoder(self, data: bytes, what: str = "Gaussian") -> coder.GaussianDecoder:
        return coder.GaussianDecoder(data, self.table_np, what=what)

    @staticmethod
    def bits(symbols: torch.Tensor, scale: torch.Tensor) -> float:
        """Training-time rate estimate of `symbols` under N(0, scale): sum of -log2 P(bin)."""
        return float(-torch.log2(gaussian_likelihood(symbols.double(), scale.double())).sum())
