"""The entropy model of a mean-scale hyperprior, in one place: z under frozen factorized tables, y
under Gaussians whose mean and scale h_s computes from the decoded z (Balle et al. 2018).

    z -round(z - median)-> z_sym --FactorizedTables--> bytes
    z_hat = z_sym + median -h_s (float64, CPU)-> mean, scale -snap-> mean_q, scale index
    y_sym = round((y - mean_q) / step) --GaussianConditional--> bytes

`parameters` is the one function both sides call: integer input, float64 arithmetic on CPU, outputs
snapped to grids, so the encoder codes with exactly the parameters the decoder computes from the
bytes alone. The tables are built once at export (`tables_of`) and stored with the weights under
TABLE_PREFIX.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from codec.entropy.factorized import FactorizedDensity, FactorizedTables
from codec.entropy.gaussian import GaussianConditional, snap_means, snap_scales

TABLE_PREFIX = "tables."


def tables_of(density: FactorizedDensity) -> dict[str, torch.Tensor]:
    """The coding tables of a trained model, as stored in its weights file (computed at export)."""
    z = FactorizedTables.build(density)
    return {
        TABLE_PREFIX + "z_pmf": z.pmf,
        TABLE_PREFIX + "z_offsets": z.offsets,
        TABLE_PREFIX + "scale_table": GaussianConditional.default().table,
    }


@dataclass(frozen=True)
class HyperpriorEntropy:
    """z tables, the Gaussian conditional of y and the float64 parameter path h_s."""

    z: FactorizedTables
    y: GaussianConditional
    median: torch.Tensor  # (N,) float32, the factorized density's per-channel median
    h_s64: nn.Module  # float64 copy of h_s

    @classmethod
    def of(cls, density: FactorizedDensity, h_s: nn.Module, tensors: dict[str, torch.Tensor]) -> HyperpriorEntropy:
        """From a loaded module's density and h_s and the stored tables."""
        return cls(
            z=FactorizedTables(tensors[TABLE_PREFIX + "z_pmf"], tensors[TABLE_PREFIX + "z_offsets"]),
            y=GaussianConditional(tensors[TABLE_PREFIX + "scale_table"]),
            median=density.quantiles[:, 0, 1].detach().clone(),
            h_s64=copy.deepcopy(h_s).double().eval().requires_grad_(False),
        )

    def z_symbols(self, z: torch.Tensor) -> np.ndarray:
        """(1, N, h, w) hyper-latents -> (N, h, w) int32 symbols around the medians."""
        return torch.round(z - self.median.view(1, -1, 1, 1))[0].to(torch.int32).numpy()

    def compress_z(self, z_sym: np.ndarray) -> bytes:
        return self.z.compress(z_sym)

    def decompress_z(self, data: bytes, height: int, width: int) -> np.ndarray:
        """(N, height, width) int32 z symbols of a stream."""
        return self.z.decompress(data, (self.z.channels, height, width))

    @torch.no_grad()
    def parameters(self, z_sym: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """z symbols (N, h, w) -> snapped means (1, M, 4h, 4w) float32 and raw scales (same, float64).

        The scales are snapped by `scale_index` once the quantisation step is known."""
        z_hat = torch.from_numpy(z_sym.astype(np.float64))[None] + self.median.double().view(1, -1, 1, 1)
        mean, scale = self.h_s64(z_hat).chunk(2, dim=1)
        return snap_means(mean), scale.abs()

    def scale_index(self, scale: torch.Tensor, enc_step: torch.Tensor) -> np.ndarray:
        """Table indexes (M, 4h, 4w) of the scale of round((y - mean) / enc_step), enc_step (M,)."""
        return snap_scales(scale / enc_step.view(1, -1, 1, 1), self.y.table)[0].numpy()
