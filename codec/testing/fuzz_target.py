"""The fuzz target: decode any bytes as `codec info` and `codec decode` would; pixels or a clean refusal.

An image goes through read_container, describe and the image pipeline (entropy decoding and synthesis
to pixels, every shipped image family); a video (HEAD kind 1) through VideoDecoder, all its frames,
then its last frame alone (a window, found through the frame index). Contract: a successful decode
gives pixels of the header's size, and every refusal is a CodecError of exit code 3 (FormatError),
4 (UnsupportedError, LimitError) or 5 (ModelError: a damaged model id or weights hash). `fuzz_one`
lets any other exception propagate, so libFuzzer (scripts/fuzz_target.py) records a crash and a test
(tests/test_fuzz.py) fails.

The decode runs under FUZZ_LIMITS, much tighter than the defaults, to keep each case fast: a damaged
size field with streams that still decode (an empty stream decodes to any number of symbols) makes the
decoder synthesise garbage at the declared size, 0.1 to 0.3 s per 256 x 256 frame on one core, so a
video of 6 such frames decoded twice (in full, then up to its last frame) stays within a few seconds,
well inside a 10 s `-timeout`. `max_dimension` bounds the padded area too (a 4096 x 16 frame is padded
to 4096 x 64). The limits themselves are tested in tests/test_container.py.

The decoder's modules are imported inside the functions, never at the top: scripts/fuzz_target.py
imports this module first and then `load_models` under atheris' instrumentation, which covers only
modules imported after it starts.
"""

from __future__ import annotations

import functools
import io
import json
from typing import TYPE_CHECKING

from codec.errors import CodecError

if TYPE_CHECKING:
    from collections.abc import Iterator

    import numpy as np

    from codec.container import Limits
    from codec.pipeline.video import VideoDecoder

__all__ = ["ALLOWED_EXIT_CODES", "DECODE_MODULES", "FUZZ_LIMITS", "decode", "fuzz_limits", "fuzz_one", "load_models"]

FUZZ_LIMITS = dict(max_pixels=1 << 16, max_dimension=1 << 10, max_chunk_bytes=1 << 20, max_frames=6)
"""At most 65,536 pixels a frame (e.g. 256 x 256), 1024 a side, 6 frames (codec.container.Limits fields)."""

ALLOWED_EXIT_CODES = frozenset({3, 4, 5})
DECODE_MODULES = ("codec.container", "codec.container.video", "codec.coder", "codec.weights",
                  "codec.pipeline.image", "codec.pipeline.m2t", "codec.pipeline.video")
"""Every module of the decode path (their imports come with them), imported under instrumentation."""


@functools.cache
def fuzz_limits() -> Limits:
    """FUZZ_LIMITS as a codec.container.Limits."""
    from codec.container import Limits

    return Limits(**FUZZ_LIMITS)


def decode(data: bytes) -> int:
    """Decode ``data`` as `codec info` and `codec decode` would under FUZZ_LIMITS.

    Returns:
        The number of frames (1 for an image).

    Raises:
        CodecError: the input is refused.
        AssertionError: the output does not match the header (a bug).
    """
    from codec.container import KIND_PROBE_BYTES, header_kind
    from codec.container.chunks import KIND_VIDEO

    if header_kind(data[:KIND_PROBE_BYTES]) == KIND_VIDEO:
        return _decode_video(data)
    return _decode_image(data)


def _decode_image(data: bytes) -> int:
    from codec.container import describe, read_container
    from codec.pipeline.image import decompress
    from codec.weights import load_model

    container = read_container(data, fuzz_limits())
    json.dumps(describe(container))
    h = container.header
    pixels = decompress(container, load_model(h.model_id)).pixels
    assert pixels.shape == (h.height, h.width, 3) and pixels.dtype.name == "uint8", pixels.shape
    return 1


def _decode_video(data: bytes) -> int:
    from codec.pipeline.video import VideoDecoder

    dec = VideoDecoder(io.BytesIO(data), None, fuzz_limits())
    count = _check_frames(dec, dec.frames(), 0)
    if count > 1:  # the last frame alone (`--frames N-1:N`): seeks through the index to the keyframe before it
        seek = VideoDecoder(io.BytesIO(data), dec.model, fuzz_limits())
        assert _check_frames(seek, seek.frames(count - 1, count), count - 1) == 1
    return count


def _check_frames(dec: VideoDecoder, frames: Iterator[tuple[int, np.ndarray]], first: int) -> int:
    """The number of frames, each checked: numbered from `first` on, of the header's size."""
    count = 0
    for number, pixels in frames:
        assert number == first + count, (number, first + count)
        assert pixels.shape == (dec.header.height, dec.header.width, 3) and pixels.dtype.name == "uint8"
        count += 1
    return count


def fuzz_one(data: bytes) -> None:
    """The fuzz target: a refusal with exit code 3, 4 or 5 is clean; any other exception propagates."""
    try:
        decode(data)
    except CodecError as exc:
        if exc.exit_code not in ALLOWED_EXIT_CODES:
            raise


def load_models() -> None:
    """Every module of the decode path and every shipped model, loaded once (the weights cache)."""
    import importlib

    for name in DECODE_MODULES:
        importlib.import_module(name)
    from codec.weights import load_model
    from codec.zoo import list_models

    for entry in list_models():
        load_model(entry.model_id)
