"""Chunk-level mutations of container files, and CRC repair so that a mutation reaches the parsers.

The container frames its contents as a 16-byte preamble (signature | u16 | u16 | u32 crc) followed by
chunks of ``u32 length | 4-byte type | data | u32 crc32`` (docs/FORMAT.md). A byte-level fuzzer rarely
changes that structure and nearly every mutation it makes dies at the first CRC check; the mutations
here duplicate, move or drop whole chunks or give one a huge length field, and `repair_crcs`
recomputes every CRC so that the damage gets past the checksums into the payload parsers, the entropy
decoders and the synthesis.

Pure bytes in, bytes out: this module imports no other codec module (scripts/fuzz_target.py imports it
before atheris instruments the decode path) and never atheris; `mutate_input` takes libFuzzer's byte
mutation as an argument.
"""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Callable

__all__ = ["CHUNK_OPS", "HUGE_LENGTHS", "chunk_spans", "mutate", "mutate_input", "repair_crcs"]

CHUNK_OPS = ("duplicate", "move", "drop", "huge_length")
HUGE_LENGTHS = (0xFFFFFFFF, 0x80000000, 0x7FFFFFFF, (1 << 20) + 1)
"""Length fields that overflow, go negative as i32, or just pass the 1 MiB chunk limit of the fuzz run."""

_U32 = struct.Struct("<I")
_PREAMBLE = 16  # signature | u16 | u16 | u32 crc
_FRAMING = 12  # u32 length | 4-byte type | data | u32 crc


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
    "drop" it, or set its length field to ``length`` ("huge_length"). Indexes wrap; no chunk, no change.

    Raises:
        ValueError: ``op`` is not one of CHUNK_OPS.
    """
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


def mutate_input(data: bytes, max_size: int, seed: int, byte_mutate: Callable[[bytes, int], bytes]) -> bytes:
    """The fuzzer's mutation of one input: a chunk-level one (a quarter of the seeds, when ``data`` has
    chunks) or ``byte_mutate``'s, then, for half of the seeds, `repair_crcs`.

    Args:
        data: the input to mutate.
        max_size: the most bytes the result may have.
        seed: libFuzzer's seed for this mutation; the same seed gives the same choices.
        byte_mutate: ``(data, max_size) -> bytes``, libFuzzer's own mutation (``atheris.Mutate``).

    Returns:
        At most ``max_size`` bytes.
    """
    rng = random.Random(seed)
    if rng.random() < 0.25 and chunk_spans(data):
        out = mutate(data, rng.choice(CHUNK_OPS), rng.randrange(64), rng.randrange(64), rng.choice(HUGE_LENGTHS))
    else:
        out = byte_mutate(data, max_size)
    if rng.random() < 0.5:
        out = repair_crcs(out)
    return out[:max_size]
