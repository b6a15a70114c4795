"""Classical baselines for comparisons at equal file size: JPEG through Pillow (libjpeg).

    pixels ─► jpeg_at_size(max_bytes) ─► (JPEG file bytes, quality) ─► decode_jpeg ─► pixels

Pillow is imported here and nowhere near the codec's own bitstream path.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

__all__ = ["JPEG_QUALITIES", "SUBSAMPLING", "decode_jpeg", "encode_jpeg", "jpeg_at_size"]

JPEG_QUALITIES = range(1, 96)
"""Qualities searched by `jpeg_at_size`: 1..95 (above 95 libjpeg mostly adds bytes, not quality)."""

SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}
"""Chroma subsampling names -> Pillow's `subsampling` codes."""


def encode_jpeg(pixels: np.ndarray, quality: int, subsampling: str = "4:2:0") -> bytes:
    """(H, W, 3) uint8 RGB -> a baseline JPEG file at `quality` (Pillow defaults otherwise).

    Args:
        pixels: (H, W, 3) uint8 RGB array.
        quality: libjpeg quality, 1..95.
        subsampling: "4:4:4", "4:2:2" or "4:2:0".
    """
    if subsampling not in SUBSAMPLING:
        raise ValueError(f"unknown subsampling {subsampling!r}; use one of {', '.join(SUBSAMPLING)}")
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"expected a (H, W, 3) uint8 array, got {pixels.shape} {pixels.dtype}")
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels), mode="RGB").save(
        out, format="JPEG", quality=int(quality), subsampling=SUBSAMPLING[subsampling]
    )
    return out.getvalue()


def decode_jpeg(data: bytes) -> np.ndarray:
    """A JPEG file -> (H, W, 3) uint8 RGB array."""
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def jpeg_at_size(pixels: np.ndarray, max_bytes: int, subsampling: str = "4:2:0") -> tuple[bytes, int]:
    """The highest-quality JPEG whose whole file fits in `max_bytes`.

    JPEG size grows with quality in practice, so this binary-searches quality 1..95, encodes the
    answer's neighbour q+1, and verifies that the sizes of all qualities encoded so far (about
    eight) do not decrease with quality and that q+1 is over budget. If that check fails, it falls
    back to encoding every quality and taking the largest that fits. Each quality is encoded at
    most once. (A non-monotone step between two qualities that the search never visited would go
    unnoticed; none has been seen with libjpeg.)

    Args:
        pixels: (H, W, 3) uint8 RGB array.
        max_bytes: the byte budget (for example the size of our own file for the same image).
        subsampling: "4:4:4", "4:2:2" or "4:2:0".

    Returns:
        (JPEG file bytes, quality). When even quality 1 is larger than `max_bytes`, quality 1's
        bytes and 1 are returned, so the result is then OVER budget; callers that need a strict
        budget must compare len(data) with max_bytes.
    """
    cache: dict[int, bytes] = {}

    def size_at(q: int) -> int:
        if q not in cache:
            cache[q] = encode_jpeg(pixels, q, subsampling)
        return len(cache[q])

    lo, hi = JPEG_QUALITIES[0], JPEG_QUALITIES[-1]
    if size_at(lo) > max_bytes:
        return cache[lo], lo
    # invariant: size_at(lo) <= max_bytes; find the largest such quality assuming monotone size
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if size_at(mid) <= max_bytes:
            lo = mid
        else:
            hi = mid - 1
    best = lo
    if best < JPEG_QUALITIES[-1]:
        size_at(best + 1)
    sizes = [len(cache[q]) for q in sorted(cache)]  # every quality encoded so far, in order
    if all(s0 <= s1 for s0, s1 in zip(sizes, sizes[1:])) and (
        best == JPEG_QUALITIES[-1] or size_at(best + 1) > max_bytes
    ):
        return cache[best], best
    # fall back: a linear scan over every quality
    fitting = [q for q in JPEG_QUALITIES if size_at(q) <= max_bytes]
    best = max(fitting)
    return cache[best], best
