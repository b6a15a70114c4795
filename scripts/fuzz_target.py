#!/usr/bin/env python3
"""Coverage-guided fuzz target (atheris, libFuzzer) over the container parser and the whole decode path.

    python scripts/fuzz_target.py [libFuzzer flags] CORPUS_DIR      # a campaign; see scripts/fuzz.sh
    python scripts/fuzz_target.py CRASH_FILE                         # replays one input

Each input is decoded the way `codec info` and `codec decode` would: an image through read_container,
describe and the image pipeline (entropy decoding and synthesis to pixels, every shipped image
family), a video (HEAD kind 1) through VideoDecoder, all its frames, then its last frame alone (a
window, found through the frame index). Contract: a successful decode gives pixels of the header's
size, and every refusal is a CodecError of exit code 3 (FormatError), 4 (UnsupportedError,
LimitError) or 5 (ModelError: a damaged model id or weights hash). Any other exception propagates,
so libFuzzer records a crash; a hang or a memory blow-up is caught by its `-timeout` and
`-rss_limit_mb`.

Mutations (`custom_mutator`): libFuzzer's own byte mutations, or one of the chunk-level ones of
`mutate` (duplicate, move or drop a chunk, a huge length field); then, half of the time, every
CRC is recomputed (`repair_crcs`) so that the mutation gets past the CRC checks into the payload
parsers, the entropy decoders and the synthesis; otherwise nearly every mutation dies there.

The decode runs under FUZZ_LIMITS, much tighter than the defaults, to keep each case fast: a
damaged size field with streams that still decode (an empty stream decodes to any number of
symbols) makes the decoder synthesise garbage at the declared size, 0.1 to 0.3 s per 256 x 256
frame on one core, so a video of 6 such frames decoded twice (in full, then up to its last frame)
stays within a few seconds, well inside a 10 s `-timeout`. `max_dimension` bounds the padded area
too (a 4096 x 16 frame is padded to 4096 x 64). The limits themselves are tested in
tests/test_container.py.

Importable without atheris (tests/test_fuzz.py runs `fuzz_one` over the corpus in the normal suite);
codec is imported lazily so that `main` can instrument it for coverage.
"""

from __future__ import annotations

import functools
import io
import json
import random
import struct
import sys
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from codec.errors import CodecError  # noqa: E402  (no other codec module before `main` instruments them)

if TYPE_CHECKING:
    from collections.abc import Iterator

    import numpy as np

    from codec.container import Limits
    from codec.pipeline.video import VideoDecoder

FUZZ_LIMITS = dict(max_pixels=1 << 16, max_dimension=1 << 10, max_chunk_bytes=1 << 20, max_frames=6)
"""At most 65,536 pixels a frame (e.g. 256 x 256), 1024 a side, 6 frames (codec.container.Limits fields)."""

ALLOWED_EXIT_CODES = frozenset({3, 4, 5})
CHUNK_OPS = ("duplicate", "move", "drop", "huge_length")
HUGE_LENGTHS = (0xFFFFFFFF, 0x80000000, 0x7FFFFFFF, (1 << 20) + 1)
DECODE_MODULES = ("codec.container", "codec.container.video", "codec.coder", "codec.weights",
                  "codec.pipeline.image", "codec.pipeline.m2t", "codec.pipeline.video")
"""Every module of the decode path (their imports come with them), imported under instrumentation."""

_U32 = struct.Struct("<I")
_PREAMBLE = 16  # signature | u16 | u16 | u32 crc
_FRAMING = 12  # u32 length | 4-byte type | data | u32 crc


# --- mutations ------------------------------------------------------------------------------------


def chunk_spans(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each chunk the framing walk finds after the preamble, CRCs and types unchecked;
    the walk stops at the first length that runs past the end."""
    spans, pos = [], _PREAMBLE
    while pos + _FRAMING <= len(data):
        end = pos + _FRAMING + _U32.unpack_from(data, pos)[0]
        if end > len(data):
            break
        spans.append((pos, end))
        pos = end
    return spans


def repair_crcs(data: bytes) -> bytes:
    """``data`` with the preamble CRC and the CRC of every chunk of `chunk_spans` recomputed; a valid
    file comes back unchanged."""
    out = bytearray(data)
    if len(out) >= _PREAMBLE:
        out[12:16] = _U32.pack(zlib.crc32(out[:12]))
    for start, end in chunk_spans(out):
        out[end - 4 : end] = _U32.pack(zlib.crc32(out[start + 4 : end - 4]))
    return bytes(out)


def mutate(data: bytes, op: str, i: int, j: int = 0, length: int = HUGE_LENGTHS[0]) -> bytes:
    """One chunk-level mutation of ``data``: "duplicate" chunk i at position j, "move" it there,
    "drop" it, or set its length field to ``length`` ("huge_length"). Indexes wrap; no chunk, no change."""
    spans = chunk_spans(data)
    if not spans:
        return data
    head, chunks = data[: spans[0][0]], [data[a:b] for a, b in spans]
    tail = data[spans[-1][1] :]
    i, j = i % len(chunks), j % (len(chunks) + 1)
    if op == "duplicate":
        chunks.insert(j, chunks[i])
    elif op == "move":
        chunks.insert(j, chunks.pop(i))
    elif op == "drop":
        del chunks[i]
    elif op == "huge_length":
        chunks[i] = _U32.pack(length) + chunks[i][4:]
    else:
        raise ValueError(f"unknown chunk mutation {op!r}; one of {', '.join(CHUNK_OPS)}")
    return head + b"".join(chunks) + tail


def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
    """libFuzzer's mutation or a chunk-level one, then, for half of the seeds, `repair_crcs`."""
    import atheris

    rng = random.Random(seed)
    if rng.random() < 0.25 and chunk_spans(data):
        out = mutate(data, rng.choice(CHUNK_OPS), rng.randrange(64), rng.randrange(64), rng.choice(HUGE_LENGTHS))
    else:
        out = atheris.Mutate(data, max_size)
    if rng.random() < 0.5:
        out = repair_crcs(out)
    return out[:max_size]


# --- the target -----------------------------------------------------------------------------------


@functools.cache
def fuzz_limits() -> Limits:
    """FUZZ_LIMITS as a codec.container.Limits."""
    from codec.container import Limits

    return Limits(**FUZZ_LIMITS)


def decode(data: bytes) -> int:
    """Decode ``data`` as `codec info` and `codec decode` would under FUZZ_LIMITS; the number of frames
    (1 for an image). Raises CodecError for a refused input, AssertionError for output that does not
    match the header."""
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


def main() -> None:
    import atheris

    with atheris.instrument_imports(include=["codec"]):
        load_models()
    atheris.Setup(sys.argv, fuzz_one, custom_mutator=custom_mutator)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
