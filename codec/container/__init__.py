"""The codec container: pure bytes in, frozen dataclasses out (spec: docs/FORMAT.md).

Layout of a file::

    preamble (16 bytes)   signature | u16 writer_version | u16 min_reader_version | u32 crc32
    HEAD chunk            header: size, padding, model id, weights hash, coder
    [meta chunk]          optional UTF-8 JSON
    ZSTR chunk            range-coded side information z
    YSTR chunk            range-coded latents y
    END  chunk            empty

    chunk = u32 length | 4-byte type | data | u32 crc32(type + data)

``write_container`` and ``read_container`` are mirrored; the reader checks every
length before slicing, every CRC before interpreting, and applies ``Limits``
before the caller allocates anything for the image. This package imports only
the standard library and ``codec.errors``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from codec.errors import FormatError, UnsupportedError

from .chunks import Header, pack_header, pack_meta, unpack_header, unpack_meta
from .format import (
    END,
    FORMAT_VERSION,
    HEAD,
    IMAGE_VERSION,
    KNOWN_CHUNK_TYPES,
    META,
    MIN_READER_VERSION,
    PREAMBLE_SIZE,
    SIGNATURE,
    YSTR,
    ZSTR,
    NETS,
    OVERFIT_VERSION,
    Limits,
    check_chunk_type,
    is_critical,
    pack_preamble,
    type_name,
    unpack_preamble,
)
from .framing import Chunk, frame_chunk, iter_chunks, read_chunk

__all__ = [
    "SIGNATURE",
    "FORMAT_VERSION",
    "IMAGE_VERSION",
    "MIN_READER_VERSION",
    "HEAD",
    "ZSTR",
    "YSTR",
    "NETS",
    "OVERFIT_VERSION",
    "END",
    "META",
    "Limits",
    "Header",
    "Chunk",
    "Container",
    "write_container",
    "read_container",
    "pack_header",
    "unpack_header",
    "add_chunks",
    "pack_meta",
    "unpack_meta",
    "frame_chunk",
    "read_chunk",
    "iter_chunks",
    "is_critical",
    "header_kind",
    "KIND_PROBE_BYTES",
    "describe",
]


@dataclass(frozen=True)
class Container:
    """A parsed, validated container.

    Attributes:
        writer_version: format version of the writer.
        min_reader_version: oldest reader version that can read the file.
        header: the parsed ``HEAD`` chunk.
        chunks: every chunk in file order, ``HEAD`` first and ``END`` last,
            unknown ancillary chunks included as raw data.
    """

    writer_version: int
    min_reader_version: int
    header: Header
    chunks: tuple[Chunk, ...]

    def find(self, chunk_type: bytes) -> bytes | None:
        """Data of the first chunk of ``chunk_type``, or None if there is none."""
        for chunk in self.chunks:
            if chunk.type == chunk_type:
                return chunk.data
        return None

    def get(self, chunk_type: bytes) -> bytes:
        """Data of the chunk of ``chunk_type``.

        Raises:
            FormatError: the file has no such chunk.
        """
        data = self.find(chunk_type)
        if data is None:
            raise FormatError(f"corrupt bitstream: required chunk {type_name(chunk_type)} is missing")
        return data

    def require(self, *chunk_types: bytes) -> None:
        """Check that every type in ``chunk_types`` is present.

        Raises:
            FormatError: naming the missing types.
        """
        present = {chunk.type for chunk in self.chunks}
        missing = [type_name(t) for t in chunk_types if t not in present]
        if missing:
            raise FormatError(f"corrupt bitstream: required chunk(s) {', '.join(missing)} missing")

    @property
    def streams(self) -> tuple[tuple[bytes, bytes], ...]:
        """(type, data) of the chunks between HEAD and END other than ``meta``, in file order."""
        return tuple((c.type, c.data) for c in self.chunks if c.type not in (HEAD, END, META))

    @property
    def meta(self) -> dict[str, Any] | None:
        """The ``meta`` JSON object; None when absent or unreadable (ancillary data is never fatal)."""
        data = self.find(META)
        if data is None:
            return None
        try:
            return unpack_meta(data)
        except FormatError:
            return None

    @property
    def size(self) -> int:
        """Total size of the file in bytes."""
        return self.chunks[-1].end


# --- container: write and read side by side -------------------------------------------------


def write_container(
    header: Header,
    streams: Iterable[tuple[bytes, bytes]],
    meta: dict[str, Any] | None = None,
    version: int = IMAGE_VERSION,
) -> bytes:
    """Serialize a container: preamble, HEAD, [meta], streams in order, END.

    Args:
        header: the image header.
        streams: (type, data) pairs, e.g. ``[(ZSTR, z_bytes), (YSTR, y_bytes)]``. Critical
            types must be known to this version (ZSTR, YSTR); ancillary types are free.
        meta: optional JSON-serializable dict stored in a ``meta`` chunk.
        version: writer and minimum reader version (IMAGE_VERSION; OVERFIT_VERSION for files with NETS).

    Raises:
        ValueError: an invalid header, stream type or meta.
    """
    min_reader = MIN_READER_VERSION if version == IMAGE_VERSION else version
    parts = [pack_preamble(version, min_reader), frame_chunk(HEAD, pack_header(header))]
    if meta is not None:
        parts.append(frame_chunk(META, pack_meta(meta)))
    seen: set[bytes] = set()
    for chunk_type, data in streams:
        chunk_type = check_chunk_type(chunk_type)
        if chunk_type in (HEAD, END, META):
            raise ValueError(f"{type_name(chunk_type)} cannot be passed as a stream")
        if is_critical(chunk_type) and chunk_type not in KNOWN_CHUNK_TYPES:
            raise ValueError(f"critical chunk type {type_name(chunk_type)} is unknown to format version "
                             f"{FORMAT_VERSION}; readers would refuse the file")
        if chunk_type in KNOWN_CHUNK_TYPES and chunk_type in seen:
            raise ValueError(f"stream {type_name(chunk_type)} given twice")
        seen.add(chunk_type)
        parts.append(frame_chunk(chunk_type, data))
    parts.append(frame_chunk(END, b""))
    return b"".join(parts)


def add_chunks(data: bytes, chunks: Iterable[tuple[bytes, bytes]]) -> bytes:
    """A complete container `data` with ancillary `chunks` (type, bytes) inserted before its END
    (photo metadata: codec.metadata). The file's coded streams are not touched.

    Raises:
        ValueError: a critical type, or a type the file already holds.
        FormatError: `data` is not a valid container.
    """
    container = read_container(data)
    present = {c.type for c in container.chunks}
    frames = []
    for chunk_type, payload in chunks:
        chunk_type = check_chunk_type(chunk_type)
        if is_critical(chunk_type) or chunk_type in present:
            raise ValueError(f"cannot add chunk {type_name(chunk_type)} to this file")
        present.add(chunk_type)
        frames.append(frame_chunk(chunk_type, payload))
    end = container.chunks[-1].offset
    return bytes(data[:end]) + b"".join(frames) + bytes(data[end:])


def read_container(data: bytes | bytearray | memoryview, limits: Limits = Limits()) -> Container:
    """Parse and validate a container.

    Raises:
        TypeError: ``data`` is not bytes-like.
        FormatError: not a bitstream, truncated, corrupt, or chunks out of order.
        UnsupportedError: a newer format version, kind video, or an unknown critical chunk.
        LimitError: a chunk or an image size over ``limits``.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"read_container takes bytes, bytearray or memoryview, got {type(data).__name__}")
    with memoryview(data) as view:
        buf = view.cast("B") if view.format != "B" or view.ndim != 1 else view
        return _read(buf, limits)


def _read(buf: memoryview, limits: Limits) -> Container:
    writer_version, min_reader_version = unpack_preamble(buf)
    chunks: list[Chunk] = []
    seen: set[bytes] = set()
    header: Header | None = None
    for chunk in iter_chunks(buf, PREAMBLE_SIZE, limits):
        name = type_name(chunk.type)
        if header is None:
            if chunk.type != HEAD:
                raise FormatError(f"corrupt bitstream: the first chunk is {name} at offset {chunk.offset}, "
                                  f"expected HEAD")
            header = unpack_header(chunk.data, limits)  # refuses a video HEAD: codec.container.video reads those
        elif chunk.type in KNOWN_CHUNK_TYPES:
            if chunk.type in seen:
                raise FormatError(f"corrupt bitstream: duplicate {name} chunk at offset {chunk.offset}")
        elif chunk.critical:
            raise UnsupportedError(
                f"unknown critical chunk {name} at offset {chunk.offset}: written by a newer or "
                f"different encoder (this reader supports container format version {FORMAT_VERSION})"
            )
        seen.add(chunk.type)
        chunks.append(chunk)
    end = chunks[-1]
    if end.data:
        raise FormatError(f"corrupt bitstream: END chunk at offset {end.offset} has {end.length} data bytes")
    if end.end != len(buf):
        raise FormatError(f"corrupt bitstream: {len(buf) - end.end} bytes after the END chunk "
                          f"at offset {end.end}")
    assert header is not None  # the END chunk cannot come first: HEAD is checked above
    return Container(writer_version=writer_version, min_reader_version=min_reader_version,
                     header=header, chunks=tuple(chunks))


KIND_PROBE_BYTES = PREAMBLE_SIZE + 9
"""Bytes `header_kind` needs: the preamble, the HEAD chunk's length and type, the kind byte."""


def header_kind(head: bytes) -> int | None:
    """The HEAD kind (0 image, 1 video) from a file's first KIND_PROBE_BYTES bytes, without any
    check beyond the signature and the chunk type; None when they do not look like a container.
    For choosing a reader only: the reader then checks everything."""
    if len(head) < KIND_PROBE_BYTES or head[: len(SIGNATURE)] != SIGNATURE:
        return None
    if head[PREAMBLE_SIZE + 4 : PREAMBLE_SIZE + 8] != HEAD:
        return None
    return head[PREAMBLE_SIZE + 8]


def describe(container: Container) -> dict[str, Any]:
    """A JSON-able summary for ``codec info``: versions, header fields and the chunk table."""
    h = container.header
    d = {
        "format": "codec container",
        "writer_version": container.writer_version,
        "min_reader_version": container.min_reader_version,
        "size": container.size,
        "header": {
            "kind": "image" if h.kind == 0 else h.kind,
            "width": h.width,
            "height": h.height,
            "pad_right": h.pad_right,
            "pad_bottom": h.pad_bottom,
            "bit_depth": h.bit_depth,
            "channels": h.channels,
            "quality": h.quality,
            "weights_sha256_prefix": h.weights_sha256_prefix.hex(),
            "model_id": h.model_id,
            "coder": h.coder,
            "coder_version": h.coder_version,
        },
        "meta": container.meta,
        "chunks": [
            {
                "type": c.type.decode("ascii"),
                "offset": c.offset,
                "length": c.length,
                "crc": f"{c.crc:08x}",
                "critical": c.critical,
                "known": c.type in KNOWN_CHUNK_TYPES,
            }
            for c in container.chunks
        ],
    }
    nets = container.find(NETS)
    if nets is not None:  # an overfitted image: its decoder's size and the bytes of networks and latents
        from .overfit import unpack_nets

        n = unpack_nets(nets)
        pixels = h.width * h.height
        latents = len(container.find(YSTR) or b"")
        d["overfitted"] = {
            "grids": n.grids, "arm_context": n.arm_context, "arm_hidden": n.arm_hidden, "taps": n.taps,
            "synthesis_widths": list(n.widths), "convs": n.convs, "tile": n.tile, "shifts": list(n.shifts),
            "network_bytes": len(nets), "latent_bytes": latents,
            "network_bpp": len(nets) * 8 / pixels, "latent_bpp": latents * 8 / pixels,
        }
    return d
