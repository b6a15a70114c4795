"""The overfitted family's decoder networks in exact fixed point (numpy only; codec.fixedpoint).

    grids (int) --upsample2x per level, FRAC bits--> dense (L, H, W) --MLP--> (3, H, W)
        --3x3 residual layers--> pixels = clip(round(255 x), 0, 255)

The same integers on every machine, so the decoder reproduces the encoder's reconstruction bit for
bit. `codec.models.overfit` is the float mirror the encoder optimises; `quantize` turns it into this.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codec import fixedpoint as fp
from codec.entropy import arm as arm_int

FRAC = 12
"""Fractional bits of the synthesis and upsampling activations."""


def grid_shapes(height: int, width: int, grids: int) -> list[tuple[int, int]]:
    """The latent grids of an image: grid i is ceil(H / 2^i) x ceil(W / 2^i)."""
    return [(-(-height // 2 ** i), -(-width // 2 ** i)) for i in range(grids)]


@dataclass
class Networks:
    """Everything an overfitted file carries besides the latents (see codec.container.overfit)."""

    arm: arm_int.Arm
    taps: list[np.ndarray]  # one (T,) integer filter a level, finest first (L - 1 of them)
    taps_shift: int
    mlp: list[fp.Layer]
    convs: list[fp.Layer]

    def layers(self) -> dict[str, list]:
        return {"arm": [*self.arm.hidden, self.arm.out], "upsampling": self.taps,
                "synthesis": [*self.mlp, *self.convs]}


def dense(nets: Networks, grids: list[np.ndarray]) -> np.ndarray:
    """Integer grids (finest first) -> (L, H, W) upsampled latents with FRAC bits."""
    one = 2.0 ** FRAC
    out = grids[-1][None] * one
    for i in range(len(grids) - 2, -1, -1):
        up = fp.upsample2x(out, nets.taps[i], FRAC, nets.taps_shift, grids[i].shape)
        out = np.concatenate([up, grids[i][None] * one])
    return out


def synthesize(nets: Networks, grids: list[np.ndarray], rows: int = 128) -> np.ndarray:
    """Integer grids -> (H, W, 3) uint8, in bands of `rows` rows for the MLP (memory)."""
    d = dense(nets, [np.asarray(g, np.float64) for g in grids])
    c, h, w = d.shape
    img = np.empty((3, h, w))
    for r in range(0, h, rows):
        x = d[:, r:r + rows].reshape(c, -1).T  # (P, L)
        for i, layer in enumerate(nets.mlp):
            x = layer.linear(x, FRAC)
            if i < len(nets.mlp) - 1:
                x = fp.relu(x)
        img[:, r:r + rows] = x.T.reshape(3, -1, w)
    for i, conv in enumerate(nets.convs):
        img = img + conv.conv3x3(img, FRAC)
        if i < len(nets.convs) - 1:
            img = fp.relu(img)
    pixels = np.floor((img * 255 + 2.0 ** (FRAC - 1)) * 2.0 ** -FRAC)
    return np.clip(pixels, 0, 255).astype(np.uint8).transpose(1, 2, 0)
