"""The auto-regressive entropy model of the overfitted family (numpy only: the decoder needs no torch).

Each latent of each grid is coded under a quantized Laplace whose mean and log-scale a small MLP
(the ARM) predicts from K causal neighbours in the same grid (zero outside the grid). The MLP runs
in fixed point (codec.fixedpoint): the context enters with FRAC fractional bits, the hidden layers
are residual, h = relu(W h + b + h), width K, and the output layer gives (mu, s) with FRAC bits.
The mean is mu / 2^FRAC (clipped to the coder's range); the scale is SCALE_TABLE[k], where k
rounds s onto the log-spaced table in integer arithmetic. Encoder and decoder compute the same
integers on any machine, so the coder sees identical parameters.

Decoding order (wavefronts): latent (r, c) of a grid needs its neighbours (r + dy, c + dx) with
dy < 0, or dy = 0 and dx < 0. With t = c + slope * r and slope = 1 + max over dy < 0 of
floor(dx / -dy), every neighbour has a smaller t, so all latents with the same t (in every grid:
the grids do not see each other) are decoded in one batch. A 768x512 image with slope 3 takes
768 + 3 * 511 = 2,301 batches.

    grids (int) --contexts--> (P, K) --ARM (fixed point)--> (mean, scale index) --coder--> bytes

The grids are laid out in one zero-padded canvas (each grid below the previous one, all as wide as
the widest), so that one flat gather with the same offsets serves every grid.
"""

from __future__ import annotations

import numpy as np

from codec import fixedpoint as fp
from codec.coder import DEFAULT_RADIUS, LaplaceDecoder, LaplaceEncoder

FRAC = 8
"""Fractional bits of the ARM's activations and outputs."""
RADIUS = DEFAULT_RADIUS
"""Latents are coded in [-RADIUS, RADIUS] (values beyond are escaped by the coder)."""
LOG_MIN, LOG_STEP = -1178, 39
"""Log-scale table: s_k = (LOG_MIN + k LOG_STEP) / 2^FRAC, k = 0..63 (about -4.60 .. 4.99)."""
SCALE_INTS = (
    168379, 196087, 228355, 265933, 309695, 360659, 420009, 489126, 569617, 663354, 772515, 899641,
    1047686, 1220094, 1420873, 1654693, 1926990, 2244097, 2613386, 3043446, 3544277, 4127525, 4806753,
    5597754, 6518924, 7591681, 8840972, 10295846, 11990136, 13963238, 16261035, 18936959, 22053234,
    25682325, 29908621, 34830398, 40562106, 47237026, 55010373, 64062907, 74605130, 86882187, 101179562,
    117829719, 137219835, 159800798, 186097695, 216722022, 252385903, 293918649, 342286045, 398612802,
    464208719, 540599131, 629560386, 733161148, 853810503, 994313973, 1157938764, 1348489728, 1570397852,
    1828823285, 2129775333, 2480252195)
"""round(exp(s_k) * 2^24): written out, so that no machine's exp enters the coder (each value is at
least 6e-4 away from a rounding boundary; tests/test_overfit.py recomputes them)."""
SCALE_TABLE = np.array(SCALE_INTS, dtype=np.float64) / 2.0 ** 24
CONTEXT_SIZES = (6, 12, 24)


def context_offsets(k: int) -> np.ndarray:
    """(K, 2) causal neighbours (dy, dx): the K nearest to the latent (Euclidean, then raster order),
    which for K = 6, 12, 24 are whole rings (distance at most 2, sqrt 8 and 4)."""
    if k not in CONTEXT_SIZES:
        raise ValueError(f"ARM context size must be one of {CONTEXT_SIZES}, got {k}")
    causal = [(dy, dx) for dy in range(-5, 1) for dx in range(-5, 6) if dy < 0 or dx < 0]
    causal.sort(key=lambda o: (o[0] ** 2 + o[1] ** 2, o))
    return np.array(causal[:k], dtype=np.int64)


def wavefront_slope(offsets: np.ndarray) -> int:
    above = offsets[offsets[:, 0] < 0]
    return int(1 + max(np.floor_divide(dx, -dy) for dy, dx in above))


class Arm:
    """The fixed-point ARM: `hidden` residual layers (K -> K) and `out` (K -> 2)."""

    def __init__(self, hidden: list[fp.Layer], out: fp.Layer):
        k = out.weight.shape[1]
        if k not in CONTEXT_SIZES or out.weight.shape[0] != 2:
            raise ValueError(f"ARM output layer must be ({k} -> 2) with K in {CONTEXT_SIZES}")
        if any(layer.weight.shape != (k, k) for layer in hidden):
            raise ValueError(f"ARM hidden layers must be {k} x {k}")
        self.hidden, self.out, self.k = list(hidden), out, k
        self.offsets = context_offsets(k)
        self._layers = [layer.prepared(FRAC) for layer in self.hidden]
        self._out = out.prepared(FRAC)

    def params(self, context: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(P, K) integer latents -> (P,) float64 means on the 2^-FRAC grid and (P,) int64 indexes
        into SCALE_TABLE.

        Written out with in-place ufuncs (the decoder calls it once a wavefront, a thousand times a
        Kodak image, on about 500 contexts: call overhead, not arithmetic, is its cost); the
        integers are those of fp.Layer.linear: round to nearest (ties up), clip, residual, ReLU."""
        x = context * 2.0 ** FRAC
        for weight_t, bias, floor in self._layers:
            acc = x @ weight_t
            acc += bias
            if floor:
                np.floor(acc, out=acc)
            np.maximum(acc, -fp.LIMIT, out=acc)
            np.minimum(acc, fp.LIMIT, out=acc)
            acc += x
            x = np.maximum(acc, 0.0, out=acc)
        weight_t, bias, floor = self._out
        mu_s = x @ weight_t
        mu_s += bias
        if floor:
            np.floor(mu_s, out=mu_s)
        # the output's clip to +-LIMIT is implied: the mean's clip is tighter, and the index's
        # clip to the table absorbs any value beyond it (both are monotone)
        limit = RADIUS * 2.0 ** FRAC
        mean = np.maximum(mu_s[:, 0], -limit)
        np.minimum(mean, limit, out=mean)
        mean *= 2.0 ** -FRAC
        index = mu_s[:, 1].astype(np.int64)
        index += LOG_STEP // 2 - LOG_MIN
        index //= LOG_STEP
        np.maximum(index, 0, out=index)
        return mean, np.minimum(index, len(SCALE_INTS) - 1, out=index)


class Canvas:
    """The grids in one zero-padded canvas and their wavefront schedule.

    canvas: (rows, width) float64; grid g occupies rows top[g] .. top[g] + h_g, columns pad .. pad + w_g.
    order: flat canvas indexes of every latent, sorted by (t, grid, r, c); starts: the first entry of
    each wavefront step in `order`.
    """

    def __init__(self, shapes: list[tuple[int, int]], offsets: np.ndarray):
        pad_top = int(-offsets[:, 0].min())
        self.pad = int(np.abs(offsets[:, 1]).max())
        self.width = max(w for _, w in shapes) + 2 * self.pad
        self.shapes, self.top = shapes, []
        row = pad_top
        for h, _ in shapes:
            self.top.append(row)
            row += h + pad_top
        self.canvas = np.zeros((row, self.width))
        self.offsets = offsets[:, 0] * self.width + offsets[:, 1]  # (K,) flat
        slope = wavefront_slope(offsets)
        flat, time = [], []
        for (h, w), top in zip(shapes, self.top):
            r, c = np.divmod(np.arange(h * w), w)
            flat.append((top + r) * self.width + self.pad + c)
            time.append(c + slope * r)
        flat, time = np.concatenate(flat), np.concatenate(time)
        if time.size and time.max() < 2 ** 15:  # numpy's stable sort is a radix sort for 16-bit keys
            time = time.astype(np.int16)
        sort = np.argsort(time, kind="stable")
        self.order = flat[sort]
        self.starts = np.searchsorted(time[sort], np.arange(int(time.max(initial=-1)) + 2))

    def write(self, grids: list[np.ndarray]) -> None:
        for g, (top, (h, w)) in zip(grids, zip(self.top, self.shapes)):
            self.canvas[top:top + h, self.pad:self.pad + w] = g

    def read(self) -> list[np.ndarray]:
        return [self.canvas[top:top + h, self.pad:self.pad + w].astype(np.int32)
                for top, (h, w) in zip(self.top, self.shapes)]

    def contexts(self, flat: np.ndarray) -> np.ndarray:
        return self.canvas.ravel()[flat[:, None] + self.offsets[None, :]]


def tile_boxes(shapes: list[tuple[int, int]], tile: int) -> list[tuple[int, int, int, int, int]]:
    """(grid, row, column, height, width) of each tile: the grids cut into tile x tile squares
    (grid by grid, raster order; the last row and column shorter), or whole grids for tile 0.
    Tiles are coded independently (zero context outside each), so they decode side by side and a
    large image takes tile + slope * tile wavefronts instead of width + slope * height."""
    boxes = []
    for g, (h, w) in enumerate(shapes):
        th, tw = (tile, tile) if tile else (h, w)
        boxes += [(g, r, c, min(th, h - r), min(tw, w - c)) for r in range(0, h, th) for c in range(0, w, tw)]
    return boxes


def _split(grids: list[np.ndarray], tile: int) -> list[np.ndarray]:
    return [grids[g][r:r + h, c:c + w] for g, r, c, h, w in tile_boxes([x.shape for x in grids], tile)]


def _join(parts: list[np.ndarray], shapes: list[tuple[int, int]], tile: int) -> list[np.ndarray]:
    grids = [np.zeros(s, np.int32) for s in shapes]
    for part, (g, r, c, h, w) in zip(parts, tile_boxes(shapes, tile)):
        grids[g][r:r + h, c:c + w] = part
    return grids


def compress(grids: list[np.ndarray], arm: Arm, tile: int = 0) -> bytes:
    """Integer grids (each (h, w)) -> one Laplace stream in wavefront order (tiles side by side)."""
    grids = _split(grids, tile)
    canvas = Canvas([g.shape for g in grids], arm.offsets)
    canvas.write(grids)
    mean, index = arm.params(canvas.contexts(canvas.order))  # every context is known: one pass
    symbols = canvas.canvas.ravel()[canvas.order].astype(np.int32)
    encoder = LaplaceEncoder(SCALE_TABLE, RADIUS)
    for a, b in zip(canvas.starts[:-1], canvas.starts[1:]):
        encoder.encode(symbols[a:b], mean[a:b], index[a:b])
    return encoder.finish()


def decompress(data: bytes, shapes: list[tuple[int, int]], arm: Arm, tile: int = 0) -> list[np.ndarray]:
    """Mirror of `compress`: the grids of `shapes` (int32). FormatError on a corrupt stream."""
    canvas = Canvas([(h, w) for _, _, _, h, w in tile_boxes(shapes, tile)], arm.offsets)
    flat_canvas = canvas.canvas.ravel()
    decoder = LaplaceDecoder(data, SCALE_TABLE, RADIUS, what="latent")
    for a, b in zip(canvas.starts[:-1], canvas.starts[1:]):
        flat = canvas.order[a:b]
        mean, index = arm.params(canvas.contexts(flat))
        flat_canvas[flat] = decoder.decode_in_range(mean, index)
    decoder.finish()
    return _join(canvas.read(), shapes, tile)


def rate_bits(grids: list[np.ndarray], arm: Arm, tile: int = 0) -> float:
    """The ideal code length (bits) of the grids under the fixed-point ARM (no coder overhead)."""
    grids = _split(grids, tile)
    canvas = Canvas([g.shape for g in grids], arm.offsets)
    canvas.write(grids)
    mean, index = arm.params(canvas.contexts(canvas.order))
    return float(laplace_bits(canvas.canvas.ravel()[canvas.order], mean, SCALE_TABLE[index]).sum())


def laplace_bits(y: np.ndarray, mean, scale) -> np.ndarray:
    """Ideal bits of integers y under quantized Laplace(mean, scale) (broadcasting; each bin's
    probability floored at 2^-24)."""

    def cdf(v):
        z = (v - mean) / scale
        return np.where(z < 0, 0.5 * np.exp(np.minimum(z, 0)), 1 - 0.5 * np.exp(-np.maximum(z, 0)))

    return -np.log2(np.maximum(cdf(y + 0.5) - cdf(y - 0.5), 2.0 ** -24))
