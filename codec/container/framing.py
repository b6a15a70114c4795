"""Chunk framing: ``u32 length | 4-byte type | data | u32 crc32(type + data)``.

Write and read sides are mirrored: ``frame_chunk`` builds one chunk, ``read_chunk``
parses one, ``iter_chunks`` parses a sequence up to and including ``END``.
Every length is checked against the bytes that remain and against
``Limits.max_chunk_bytes`` before anything is sliced or copied; the CRC is
checked before the type or the data are interpreted, so a damaged chunk reads
as corrupt (FormatError), never as an unknown chunk.

``read_chunk`` is the one chunk reader of the package: images parse a memoryview of
the whole file, videos a ``FileBytes`` view of a seekable file that reads only the
chunk asked for.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from codec.errors import FormatError

from .format import (
    END,
    MAX_CHUNK_BYTES_FLAG,
    Limits,
    check_chunk_type,
    crc32,
    is_critical,
    limit_error,
    type_name,
    valid_chunk_type,
)

__all__ = ["Chunk", "CHUNK_OVERHEAD", "FileBytes", "frame_chunk", "read_chunk", "iter_chunks"]

_U32 = struct.Struct("<I")
_LENGTH_TYPE = struct.Struct("<I4s")
CHUNK_OVERHEAD = _LENGTH_TYPE.size + _U32.size  # 12 bytes around the data
_MAX_LENGTH = 0xFFFFFFFF


@dataclass(frozen=True)
class Chunk:
    """One parsed chunk.

    Attributes:
        type: the 4-byte type, e.g. ``b"YSTR"``.
        data: the payload (``length`` bytes).
        offset: file offset of the chunk's length field.
        crc: the stored (and verified) CRC-32 of type + data.
    """

    type: bytes
    data: bytes
    offset: int
    crc: int

    @property
    def length(self) -> int:
        """Length of the data in bytes."""
        return len(self.data)

    @property
    def end(self) -> int:
        """File offset just past this chunk's CRC."""
        return self.offset + CHUNK_OVERHEAD + len(self.data)

    @property
    def critical(self) -> bool:
        """Whether a reader that does not know this type must refuse the file."""
        return is_critical(self.type)


def frame_chunk(chunk_type: bytes, data: bytes | bytearray | memoryview) -> bytes:
    """Frame ``data`` as one chunk of ``chunk_type``.

    Raises:
        ValueError: an invalid type, or data longer than a u32 can count.
    """
    chunk_type = check_chunk_type(chunk_type)
    data = bytes(data)
    if len(data) > _MAX_LENGTH:
        raise ValueError(f"chunk {type_name(chunk_type)} is {len(data)} bytes, over the u32 length field")
    return _LENGTH_TYPE.pack(len(data), chunk_type) + data + _U32.pack(crc32(chunk_type, data))


class FileBytes:
    """A seekable binary file seen as read-only bytes: ``len()`` is the file's size and a slice
    ``[start:stop]`` reads just those bytes, so a reader holds one chunk at a time, not the file."""

    def __init__(self, fp: BinaryIO):
        self.fp = fp
        self.size = fp.seek(0, 2)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: slice) -> bytes:
        start, stop, _ = index.indices(self.size)
        self.fp.seek(start)
        return self.fp.read(max(0, stop - start))


def read_chunk(
    buf: memoryview | bytes | FileBytes, offset: int, limits: Limits = Limits(), what: str | None = None
) -> Chunk:
    """Parse the chunk whose length field is at ``offset`` of ``buf``.

    Args:
        buf: the whole file, or a ``FileBytes`` view of it.
        offset: where the chunk's length field is.
        limits: ``max_chunk_bytes`` bounds the length.
        what: what the chunk should hold ("frame 3", "the frame index"), named in errors.

    Raises:
        FormatError: truncated, a length past the end of the input, a CRC mismatch,
            or an invalid type.
        LimitError: a length over ``limits.max_chunk_bytes``.
    """
    remaining = max(0, len(buf) - offset)
    of = f" ({what})" if what else ""
    if remaining < _LENGTH_TYPE.size:
        raise FormatError(
            f"truncated bitstream: {remaining} bytes at offset {offset}, too few for a chunk header{of}"
        )
    length, chunk_type = _LENGTH_TYPE.unpack(buf[offset : offset + _LENGTH_TYPE.size])
    if length > remaining - CHUNK_OVERHEAD:
        raise FormatError(
            f"truncated or corrupt bitstream: chunk {type_name(chunk_type)} at offset {offset}{of} "
            f"declares {length} data bytes, which with {CHUNK_OVERHEAD} bytes of framing need "
            f"{length + CHUNK_OVERHEAD}, but only {remaining} remain"
        )
    if length > limits.max_chunk_bytes:
        raise limit_error(
            f"the length of chunk {type_name(chunk_type)} at offset {offset}{of}",
            length,
            limits.max_chunk_bytes,
            "max_chunk_bytes",
            MAX_CHUNK_BYTES_FLAG,
        )
    start = offset + _LENGTH_TYPE.size
    body = memoryview(buf[start : start + length + _U32.size])  # data | crc32
    view = body[:length]
    (stored,) = _U32.unpack(body[length:])
    actual = crc32(chunk_type, view)
    if stored != actual:
        raise FormatError(
            f"corrupt bitstream: CRC mismatch in chunk {type_name(chunk_type)} at offset {offset}{of} "
            f"(stored {stored:08x}, computed {actual:08x})"
        )
    if not valid_chunk_type(chunk_type):
        raise FormatError(f"corrupt bitstream: invalid chunk type {chunk_type!r} at offset {offset}{of}")
    return Chunk(type=chunk_type, data=bytes(view), offset=offset, crc=stored)


def iter_chunks(buf: memoryview, offset: int, limits: Limits = Limits()) -> Iterator[Chunk]:
    """Yield the chunks from ``offset`` on, stopping after ``END``.

    Only framing is checked here (bounds, limits, CRC, type syntax); order rules,
    known types and trailing bytes are the reader's (see ``codec.container.read_container``).

    Raises:
        FormatError: the input ends before an ``END`` chunk, or a chunk is damaged.
        LimitError: a chunk over ``limits.max_chunk_bytes``.
    """
    while True:
        if offset >= len(buf):
            raise FormatError(f"truncated bitstream: input ends at offset {offset} without an END chunk")
        chunk = read_chunk(buf, offset, limits)
        yield chunk
        if chunk.type == END:
            return
        offset = chunk.end
