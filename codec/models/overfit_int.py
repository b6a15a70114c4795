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


MLP_CHUNK = 16384
"""Pixels per matrix product of the per-pixel MLP in the decoder: a chunk's hidden activations
(16,384 x width x 8 bytes, 4 MB at width 32) stay in the cache across the layer's passes instead
of streaming a band's 26 MB five times (768x512, medium decoder, 2 cores of an AVX2 EPYC: the
upsampling and synthesis 0.26 s unchunked, 0.19-0.20 s in chunks of 4,096 to 16,384)."""


def synthesize(nets: Networks, grids: list[np.ndarray], rows: int = 128, threads: int = 1) -> np.ndarray:
    """Integer grids -> (H, W, 3) uint8. The MLP and the 3x3 layers run on bands of `rows` rows,
    `threads` bands at a time (numpy releases the GIL): each band is computed with as many extra
    rows on either side as there are 3x3 layers, which it then drops, so the pixels are the same
    integers whatever the band size and the thread count. One thread by default: on 2 quiet cores
    two measured 0.94x (numpy's BLAS already uses both; scripts/bench_overfit.py --decode)."""
    d = dense(nets, [np.asarray(g, np.float64) for g in grids])
    h = d.shape[1]
    bands = [(r, min(h, r + rows)) for r in range(0, h, rows)]
    out = np.empty((h, d.shape[2], 3), np.uint8)

    def band(lo_hi):
        lo, hi = lo_hi
        out[lo:hi] = _band(nets, d, lo, hi)

    if threads > 1 and len(bands) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(band, bands))
    else:
        for b in bands:
            band(b)
    return out


def halo_rows(nets: Networks) -> int:
    """Rows a band needs beyond its own on either side: one per 3x3 layer."""
    return len(nets.convs)


def _band(nets: Networks, d: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Rows lo..hi of the image, (hi - lo, W, 3) uint8, from the dense latents d (L, H, W)."""
    halo = halo_rows(nets)
    a, b = max(0, lo - halo), min(d.shape[1], hi + halo)
    c, w = d.shape[0], d.shape[2]
    x = d[:, a:b].reshape(c, -1).T  # (P, L)
    img = np.empty(((b - a) * w, 3))
    for p in range(0, len(x), MLP_CHUNK):  # per pixel: in chunks whose hidden activations stay in cache
        y = x[p:p + MLP_CHUNK]
        for i, layer in enumerate(nets.mlp):
            y = layer.linear_relu(y, FRAC) if i < len(nets.mlp) - 1 else layer.linear(y, FRAC)
        img[p:p + MLP_CHUNK] = y
    img = img.T.reshape(3, b - a, w)
    # replicate padding is right at the image's edges; inside the image the rows next to the band's
    # cut are wrong after each layer, one more row each time, and the halo is exactly what is dropped
    for i, conv in enumerate(nets.convs):
        img = img + conv.conv3x3(img, FRAC)
        if i < len(nets.convs) - 1:
            img = fp.relu(img)
    img = img[:, lo - a:img.shape[1] - (b - hi)]
    pixels = np.floor((img * 255 + 2.0 ** (FRAC - 1)) * 2.0 ** -FRAC)
    return np.clip(pixels, 0, 255).astype(np.uint8).transpose(1, 2, 0)
