"""Coding the integer weights of the overfitted family's networks (numpy only).

Every tensor (a layer's weight, its bias, a filter's taps) is coded under a zero-mean quantized
Laplace whose scale the encoder picks from codec.entropy.arm's SCALE_TABLE (the index that gives
the fewest bits, one byte in the file); the tensors follow each other, one batch each, in one
Laplace stream. Values beyond the coder's range are escaped (codec.coder).

    [int tensors] --pick scale index each--> (indexes, one stream) --decompress(shapes, indexes)--> [int tensors]
"""

from __future__ import annotations

import numpy as np

from codec.coder import LaplaceDecoder, LaplaceEncoder
from codec.entropy.arm import RADIUS, SCALE_TABLE, laplace_bits


def best_index(values: np.ndarray) -> int:
    """The scale index under which `values` cost the fewest ideal bits."""
    v = np.asarray(values, np.float64).ravel()
    if v.size == 0:
        return 0
    return int(np.argmin(laplace_bits(v[None], 0.0, SCALE_TABLE[:, None]).sum(axis=1)))


def compress(tensors: list[np.ndarray]) -> tuple[list[int], bytes]:
    """Integer tensors -> (scale index of each, stream)."""
    encoder = LaplaceEncoder(SCALE_TABLE, RADIUS)
    indexes = []
    for t in tensors:
        flat = np.asarray(t).ravel().astype(np.int64)
        index = best_index(flat)
        indexes.append(index)
        encoder.encode(flat.astype(np.int32), np.zeros(flat.size), np.full(flat.size, index))
    return indexes, encoder.finish()


def decompress(data: bytes, shapes: list[tuple[int, ...]], indexes: list[int]) -> list[np.ndarray]:
    """Mirror of `compress`: float64 arrays holding the integers. FormatError on a corrupt stream."""
    decoder = LaplaceDecoder(data, SCALE_TABLE, RADIUS, what="network")
    out = []
    for shape, index in zip(shapes, indexes):
        n = int(np.prod(shape))
        out.append(decoder.decode(np.zeros(n), np.full(n, index)).astype(np.float64).reshape(shape))
    decoder.finish()
    return out
