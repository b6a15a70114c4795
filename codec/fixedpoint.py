"""Exact integer arithmetic for the decoders that must agree on every machine (numpy only, no torch).

The overfitted family's networks (its entropy model and its synthesis) run in fixed point: a value
v is stored as the integer v * 2^F for a known number of fractional bits F, a weight w as
w * 2^q with its module's shift q. The integers are held in float64 arrays so that numpy's BLAS
does the products: every product and every partial sum is an integer below 2^53, which float64
represents exactly, so the result does not depend on the order of summation, the thread count, the
SIMD kernel or the machine. That bound is kept by construction, not hoped for: weights are at
most 2^WEIGHT_BITS in magnitude (checked when a file is read), activations are clipped to
2^ACT_BITS after every layer, and a layer has at most MAX_FAN_IN inputs, so every sum stays below
2^(WEIGHT_BITS + ACT_BITS + log2 MAX_FAN_IN) <= 2^52.

    x (F bits) --@ W (q bits)--> acc (F + q bits) --+ b << (F + q - qb)--> round >> q --> y (F bits)

Rounding is to nearest with ties up (floor(acc / 2^q + 1/2)); division by a power of two and
floor are exact in float64.
"""

from __future__ import annotations

import numpy as np

WEIGHT_BITS = 15
"""|integer weight| <= 2^15 - 1."""
ACT_BITS = 30
"""Activations are clipped to [-2^30, 2^30] integer units after every layer."""
MAX_FAN_IN = 128
"""Inputs of one output (a 3x3 convolution of 14 channels has 126)."""
EXACT = 2.0 ** 52
LIMIT = 2.0 ** ACT_BITS
"""The clip of every layer's output (integer units)."""
assert WEIGHT_BITS + ACT_BITS + int(np.log2(MAX_FAN_IN)) <= 52


def quantize(values: np.ndarray, shift: int) -> np.ndarray:
    """Real values -> integers on the 2^-shift grid (round to nearest, ties to even), clipped to the
    weight range; float64 holding integers."""
    limit = 2.0 ** WEIGHT_BITS - 1
    return np.clip(np.round(np.asarray(values, np.float64) * 2.0 ** shift), -limit, limit)


def rescale(acc: np.ndarray, shift: int) -> np.ndarray:
    """acc (F + shift fractional bits) -> F fractional bits, rounded to nearest (ties up), clipped."""
    if shift:
        acc *= 2.0 ** -shift  # in place: the decoder calls this thousands of times a file
        acc += 0.5
    return _floor_clip(acc, shift)


def _floor_clip(acc: np.ndarray, floor) -> np.ndarray:
    if floor:
        np.floor(acc, out=acc)
    np.maximum(acc, -LIMIT, out=acc)  # two ufuncs: np.clip's wrapper costs more than the work at
    return np.minimum(acc, LIMIT, out=acc)  # the ARM's batch sizes


def align_bias(bias: np.ndarray, frac: int, weight_shift: int, bias_shift: int) -> np.ndarray:
    """An integer bias with `bias_shift` fractional bits, in the accumulator's frac + weight_shift
    bits (bias_shift <= frac + weight_shift, so the shift is a multiplication)."""
    if bias_shift > frac + weight_shift:
        raise ValueError(f"bias shift {bias_shift} is finer than the accumulator's {frac + weight_shift} bits")
    return bias * 2.0 ** (frac + weight_shift - bias_shift)


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, frac: int, weight_shift: int,
           bias_shift: int) -> np.ndarray:
    """(P, I) activations with `frac` bits -> (P, O) with `frac` bits: x @ weight.T + bias, exact.

    weight: (O, I) integers with `weight_shift` bits; bias: (O,) integers with `bias_shift` bits."""
    if weight.shape[1] > MAX_FAN_IN:
        raise ValueError(f"a layer of {weight.shape[1]} inputs exceeds the exact bound ({MAX_FAN_IN})")
    acc = x @ weight.T
    acc += align_bias(bias, frac, weight_shift, bias_shift)
    return rescale(acc, weight_shift)


def _linear_prepared(x: np.ndarray, weight_t: np.ndarray, bias: np.ndarray, floor: bool) -> np.ndarray:
    """`linear` with the layer prepared by `Layer.prepared`: clip(floor(x @ weight_t + bias))."""
    acc = x @ weight_t
    acc += bias
    return _floor_clip(acc, floor)


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0, out=x)


def upsample2x(x: np.ndarray, taps: np.ndarray, frac: int, shift: int, size: tuple[int, int]) -> np.ndarray:
    """(C, h, w) with `frac` bits -> (C, H, W), H <= 2h, W <= 2w: a separable, symmetric 2x
    transposed filter of 2T taps (`taps`: the T integers nearest-first, `shift` bits), replicate
    padding, one rounding after each direction.

    The filter c = (taps[T-1] .. taps[0], taps[0] .. taps[T-1]) is a transposed convolution of
    stride 2 whose input i sits between outputs 2i and 2i + 1:
    out[2i + p] = sum_j x[j] c[2(i - j) + T - 1 + p]  (bilinear: taps = (3/4, 1/4)).
    """
    out = _upsample_axis(x, taps, frac, shift, axis=1)[:, :size[0]]
    return _upsample_axis(out, taps, frac, shift, axis=2)[:, :, :size[1]]


def _upsample_axis(x: np.ndarray, taps: np.ndarray, frac: int, shift: int, axis: int) -> np.ndarray:
    t = len(taps)
    n = x.shape[axis]
    pad = [(0, 0)] * x.ndim
    pad[axis] = (t, t)
    padded = np.pad(x, pad, mode="edge")

    def at(offset: int) -> np.ndarray:  # x[i + offset] for i in 0..n-1 (a view)
        index = [slice(None)] * x.ndim
        index[axis] = slice(t + offset, t + offset + n)
        return padded[tuple(index)]

    shape = list(x.shape)
    shape[axis] = 2 * n
    out = np.empty(x.shape[:axis] + (n, 2) + x.shape[axis + 1:])
    for phase in (0, 1):
        index = [slice(None)] * out.ndim
        index[axis + 1] = phase
        target = out[tuple(index)]
        _phase(at, taps, phase, target)
        rescale(target, shift)
    return out.reshape(shape)


def _phase(at, taps: np.ndarray, phase: int, out: np.ndarray) -> None:
    """Output 2i + phase of the symmetric 2T-tap filter c (c[T-1-m] = c[T+m] = taps[m]), into out."""
    t = len(taps)
    first = True
    for j in range(-t, t + 1):  # input i + j contributes c[2(i - (i + j)) + T - 1 + phase] = c[T - 1 + phase - 2j]
        k = t - 1 + phase - 2 * j
        if 0 <= k < 2 * t:
            m = t - 1 - k if k < t else k - t
            if first:
                np.multiply(at(j), taps[m], out=out)
                first = False
            else:
                out += taps[m] * at(j)


class Layer:
    """One quantized layer: integer weight (O, I) or (O, C, 3, 3) with `weight_shift` fractional
    bits, integer bias (O,) with `bias_shift` bits. Checked on construction against the exact
    bounds (a file cannot make the arithmetic inexact)."""

    __slots__ = ("weight", "bias", "weight_shift", "bias_shift", "_prepared")

    def __init__(self, weight: np.ndarray, bias: np.ndarray, weight_shift: int, bias_shift: int):
        weight, bias = np.asarray(weight, np.float64), np.asarray(bias, np.float64)
        limit = 2.0 ** WEIGHT_BITS
        for name, arr in (("weight", weight), ("bias", bias)):
            if arr.size and (np.abs(arr).max() >= limit or not np.array_equal(arr, np.round(arr))):
                raise ValueError(f"{name} integers must lie within +-{int(limit) - 1}")
        if bias.shape != (weight.shape[0],):
            raise ValueError(f"bias shape {bias.shape} does not fit weight shape {weight.shape}")
        self.weight, self.bias = weight, bias
        self.weight_shift, self.bias_shift = int(weight_shift), int(bias_shift)
        self._prepared: dict = {}

    def prepared(self, frac: int) -> tuple[np.ndarray, np.ndarray, bool]:
        """The layer for inputs with `frac` bits as (weight.T * 2^-q contiguous, (aligned bias +
        2^(q-1)) * 2^-q, whether to floor) with q the weight shift, so that
        y = clip(floor(x @ weight.T * 2^-q + bias * 2^-q)) = `linear`'s integers with one pass less:
        scaling by a power of two is exact in float64 (every product and partial sum is the same
        integer times 2^-q, below 2^52 2^-q), so the rounding sees the same values in any order.
        With q = 0 there is no rounding (and no floor)."""
        if frac not in self._prepared:
            if self.weight.shape[1] > MAX_FAN_IN:
                raise ValueError(f"a layer of {self.weight.shape[1]} inputs exceeds the exact bound ({MAX_FAN_IN})")
            q = self.weight_shift
            half = 2.0 ** (q - 1) if q else 0.0
            self._prepared[frac] = (np.ascontiguousarray(self.weight.T) * 2.0 ** -q,
                                    (align_bias(self.bias, frac, q, self.bias_shift) + half) * 2.0 ** -q, q > 0)
        return self._prepared[frac]

    def linear(self, x: np.ndarray, frac: int) -> np.ndarray:
        """As `linear`, with the layer prepared once per `frac`."""
        return _linear_prepared(x, *self.prepared(frac))

    def linear_relu(self, x: np.ndarray, frac: int) -> np.ndarray:
        """relu(linear(x)) in place: relu(clip(v)) = min(max(v, 0), LIMIT), one pass less."""
        weight_t, bias, floor = self.prepared(frac)
        acc = x @ weight_t
        acc += bias
        if floor:
            np.floor(acc, out=acc)
        np.maximum(acc, 0.0, out=acc)
        return np.minimum(acc, LIMIT, out=acc)

    def conv3x3(self, x: np.ndarray, frac: int) -> np.ndarray:
        """(C, H, W) with `frac` bits -> (O, H, W): a 3x3 convolution with replicate padding, exact
        (weight (O, C, 3, 3) integers, the rounding of `linear`): the nine shifted views stacked into one (9C, H W) matrix and one product
        with the weight prepared as (O, 9C) * 2^-q (see `prepared`; one pass per view and one
        product instead of nine products, each adding into the accumulator)."""
        key = ("conv", frac)
        if key not in self._prepared:
            o, c = self.weight.shape[:2]
            if 9 * c > MAX_FAN_IN:
                raise ValueError(f"a 3x3 convolution of {c} channels exceeds the exact bound ({MAX_FAN_IN} inputs)")
            q = self.weight_shift
            half = 2.0 ** (q - 1) if q else 0.0
            self._prepared[key] = (self.weight.transpose(0, 2, 3, 1).reshape(o, 9 * c) * 2.0 ** -q,
                                   ((align_bias(self.bias, frac, q, self.bias_shift) + half) * 2.0 ** -q)[:, None], q > 0)
        weight, bias, floor = self._prepared[key]
        c, h, w = x.shape
        padded = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="edge")
        cols = np.empty((3, 3, c, h, w))
        for dy in range(3):
            for dx in range(3):
                cols[dy, dx] = padded[:, dy:dy + h, dx:dx + w]
        acc = weight @ cols.reshape(9 * c, h * w)
        acc += bias
        return _floor_clip(acc, floor).reshape(-1, h, w)

    def __repr__(self) -> str:
        return f"Layer({self.weight.shape}, shifts {self.weight_shift}/{self.bias_shift})"
