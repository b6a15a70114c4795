"""Video files: the same preamble and chunk framing as images, read and written as a stream.

Layout (container format version 2 and 3; spec: docs/FORMAT.md section 14)::

    preamble              writer_version 2, min_reader_version 2 (version-1 readers refuse clearly);
                          3 and 3 for models with a temporal prior of z (mode 2 frames; version-2
                          readers refuse clearly)
    HEAD chunk            kind 1 (video): frame size, padding, quality, model id, weights hash, coder
    VHDR chunk            u32 fps_num | u32 fps_den | u16 gop  (fps terms 1..2^31 - 1)
    [meta chunk]          optional UTF-8 JSON
    FRAM chunk x n        one per frame, in display order (below)
    FIDX chunk            u32 frames | u32 gops | gops x (u32 first frame | u64 offset of its FRAM chunk)
                          | u32 length of this payload (so a reader finds FIDX from the end of the file);
                          version 5 and 6: every intra frame, each entry + u8 flag (1: a GOP starts
                          there) + u8 memory slot
    END  chunk            empty

    FRAM payload          u32 frame number | u8 mode (0 intra, 1 inter) | u8 n | n x u32 stream length
                          | the n streams
      version 3           varint frame number | u8 mode (0, 1, or 2: inter with z coded given the previous
                          frames' z) | u8 n | (n - 1) x varint stream length | the n streams (the last
                          one's length is what remains); varints are minimal unsigned LEB128, u32

Every frame is its own CRC-checked chunk, so a damaged or truncated file is diagnosed frame by
frame and what precedes the damage still decodes; the index lets a reader seek to the intra frame
that starts any GOP without reading what comes before. `VideoWriter` writes to a binary file
object frame by frame (the caller makes it atomic); `VideoReader` reads from a seekable one and
never holds more than one frame's chunk. Standard library only, like the rest of the container.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, BinaryIO

from codec.errors import FormatError, UnsupportedError

from .chunks import KIND_VIDEO, Header, pack_header, pack_meta, unpack_header, unpack_meta
from .format import (
    END,
    FIDX,
    FRAM,
    HEAD,
    MAX_FRAMES_FLAG,
    META,
    PREAMBLE_SIZE,
    VHDR,
    VIDEO_MEMORY_VERSION,
    VIDEO_SCENE_VERSION,
    VIDEO_TZ_VERSION,
    VIDEO_VERSION,
    Limits,
    is_critical,
    limit_error,
    pack_preamble,
    type_name,
    unpack_preamble,
)
from .framing import CHUNK_OVERHEAD, Chunk, FileBytes, frame_chunk, read_chunk

__all__ = ["INTRA", "INTER", "INTER_TZ", "INTER_MEM", "MODE_NAMES", "MAX_MEMORY", "FPS_TERM_LIMIT", "VideoHeader", "Frame", "FrameIndex",
           "VideoWriter", "VideoReader"]

INTRA, INTER, INTER_TZ, INTER_MEM = 0, 1, 2, 3
MODE_NAMES = {INTRA: "intra", INTER: "inter", INTER_TZ: "inter-tz", INTER_MEM: "inter-memory"}
_VHDR = struct.Struct("<IIH")
MAX_MEMORY = 255
"""Entries of a video's latent memory at most (a u8 in VHDR, version 5)."""
_FRAME_HEAD = struct.Struct("<IBB")
_U32 = struct.Struct("<I")
_GOP = struct.Struct("<IQ")
MAX_STREAMS = 32
FPS_TERM_LIMIT = 1 << 31
"""The frame rate's numerator and denominator are each below this: u32 fields, but media files (FFmpeg's
AVRational, Matroska, y4m) hold signed 32-bit terms, and a decoded video must be writable."""


@dataclass(frozen=True)
class VideoHeader:
    """The VHDR chunk: frame rate (as a fraction), the intra period, and the size of the latent
    memory (0: none; version 5 files add it as a u8, 1..255)."""

    fps: Fraction
    gop: int
    memory: int = 0

    def pack(self) -> bytes:
        fps = Fraction(self.fps)
        terms_fit = 0 < fps.numerator < FPS_TERM_LIMIT and fps.denominator < FPS_TERM_LIMIT
        if not terms_fit or not 1 <= self.gop <= 0xFFFF or not 0 <= self.memory <= MAX_MEMORY:
            raise ValueError(f"VHDR: fps {self.fps}, gop {self.gop} or memory {self.memory} out of range")
        return _VHDR.pack(fps.numerator, fps.denominator, self.gop) + (bytes([self.memory]) if self.memory else b"")

    @classmethod
    def unpack(cls, data: bytes) -> "VideoHeader":
        if len(data) not in (_VHDR.size, _VHDR.size + 1):
            raise FormatError(f"corrupt VHDR: {len(data)} bytes, expected {_VHDR.size} or {_VHDR.size + 1}")
        num, den, gop = _VHDR.unpack_from(data)
        if not (0 < num < FPS_TERM_LIMIT and 0 < den < FPS_TERM_LIMIT) or gop == 0:
            raise FormatError(f"corrupt VHDR: fps {num}/{den}, gop {gop} (fps terms must be 1..2^31-1)")
        memory = data[_VHDR.size] if len(data) > _VHDR.size else 0
        if len(data) > _VHDR.size and memory == 0:
            raise FormatError("corrupt VHDR: a memory of 0 entries written out")
        return cls(Fraction(num, den), gop, memory)


@dataclass(frozen=True)
class Frame:
    """One FRAM chunk: frame number, mode (INTRA or INTER), its streams, and where it sits."""

    number: int
    mode: int
    streams: tuple[bytes, ...]
    offset: int
    size: int  # bytes of the whole chunk, framing included

    def pack(self, version: int = VIDEO_VERSION) -> bytes:
        if self.mode not in MODE_NAMES or not 0 <= len(self.streams) <= MAX_STREAMS:
            raise ValueError(f"frame {self.number}: mode {self.mode} or {len(self.streams)} streams")
        if version >= VIDEO_TZ_VERSION:  # compact: varints, the last stream's length implied
            head = _uvarint(self.number) + bytes([self.mode, len(self.streams)])
            return head + b"".join(_uvarint(len(s)) for s in self.streams[:-1]) + b"".join(self.streams)
        head = _FRAME_HEAD.pack(self.number, self.mode, len(self.streams))
        return head + b"".join(_U32.pack(len(s)) for s in self.streams) + b"".join(self.streams)

    @classmethod
    def unpack(cls, data: bytes, offset: int, size: int, version: int = VIDEO_VERSION) -> "Frame":
        if version >= VIDEO_TZ_VERSION:
            number, pos = _read_uvarint(data, 0, f"frame at offset {offset}")
            if len(data) < pos + 2:
                raise FormatError(f"corrupt frame at offset {offset}: {len(data)} bytes")
            mode, n = data[pos], data[pos + 1]
            pos += 2
        else:
            if len(data) < _FRAME_HEAD.size:
                raise FormatError(f"corrupt frame at offset {offset}: {len(data)} bytes")
            number, mode, n = _FRAME_HEAD.unpack_from(data)
            pos = _FRAME_HEAD.size
        if mode not in MODE_NAMES or n > MAX_STREAMS:
            raise FormatError(f"corrupt frame {number} at offset {offset}: mode {mode}, {n} streams")
        lengths = []
        for _ in range(n - 1 if version >= VIDEO_TZ_VERSION and n else n):
            if version >= VIDEO_TZ_VERSION:
                length, pos = _read_uvarint(data, pos, f"frame {number} at offset {offset}")
            elif len(data) < pos + 4:
                raise FormatError(f"corrupt frame {number} at offset {offset}: stream table truncated")
            else:
                (length,), pos = _U32.unpack_from(data, pos), pos + 4
            lengths.append(length)
        if version >= VIDEO_TZ_VERSION and n:
            lengths.append(len(data) - pos - sum(lengths))
        if min(lengths, default=0) < 0 or pos + sum(lengths) != len(data):
            raise FormatError(f"corrupt frame {number} at offset {offset}: stream lengths do not add up")
        streams = []
        for length in lengths:
            streams.append(bytes(data[pos : pos + length]))
            pos += length
        return cls(number, mode, tuple(streams), offset, size)


def _uvarint(value: int) -> bytes:
    """LEB128 of an unsigned 32-bit value (1 to 5 bytes)."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_uvarint(data: bytes, pos: int, what: str) -> tuple[int, int]:
    """(value, next position) of a minimal LEB128 u32 at `pos`; FormatError if truncated, overlong or
    beyond 32 bits."""
    value = 0
    for i in range(5):
        if pos + i >= len(data):
            raise FormatError(f"corrupt {what}: truncated number")
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if (i and byte == 0) or value > 0xFFFFFFFF:
                raise FormatError(f"corrupt {what}: malformed number")
            return value, pos + i + 1
    raise FormatError(f"corrupt {what}: malformed number")


@dataclass(frozen=True)
class FrameIndex:
    """The FIDX chunk: the frame count and (first frame, chunk offset) of every GOP; in version 5
    (a latent memory) every intra frame is listed, each with a flag saying whether a GOP starts there
    and the memory slot it was stored in (`gops`: the GOP starts; `intra`: (frame, offset, slot) of
    every intra frame, what a seeking decoder rebuilds the memory from)."""

    frames: int
    gops: tuple[tuple[int, int], ...]
    intra: tuple[tuple[int, int, int], ...] = ()

    def pack(self, version: int = VIDEO_VERSION) -> bytes:
        if version >= VIDEO_MEMORY_VERSION:
            starts = set(self.gops)
            entries = b"".join(_GOP.pack(f, o) + bytes([(f, o) in starts, slot]) for f, o, slot in self.intra)
            body = _U32.pack(self.frames) + _U32.pack(len(self.intra)) + entries
        else:
            body = _U32.pack(self.frames) + _U32.pack(len(self.gops)) + b"".join(_GOP.pack(f, o) for f, o in self.gops)
        return body + _U32.pack(len(body) + 4)

    @classmethod
    def unpack(cls, data: bytes, limits: Limits, version: int = VIDEO_VERSION) -> "FrameIndex":
        if len(data) < 12 or _U32.unpack_from(data, len(data) - 4)[0] != len(data):
            raise FormatError("corrupt frame index (FIDX): bad length")
        frames, n = _U32.unpack_from(data, 0)[0], _U32.unpack_from(data, 4)[0]
        if frames > limits.max_frames:
            raise limit_error("the frame count", frames, limits.max_frames, "max_frames", MAX_FRAMES_FLAG)
        memory = version >= VIDEO_MEMORY_VERSION
        size = _GOP.size + 2 * memory
        if len(data) != 12 + n * size or n > frames:
            raise FormatError(f"corrupt frame index (FIDX): {n} entries in {len(data)} bytes for {frames} frames")
        entries = []
        for i in range(n):
            at = 8 + i * size
            f, o = _GOP.unpack_from(data, at)
            flag, slot = (data[at + _GOP.size], data[at + _GOP.size + 1]) if memory else (1, 0)
            entries.append((f, o, flag, slot))
        if any(flag > 1 for _, _, flag, _ in entries):
            raise FormatError("corrupt frame index (FIDX): a flag byte other than 0 or 1")
        gops = tuple((f, o) for f, o, flag, _ in entries if flag)
        if frames and not gops:  # frame 0 is always a keyframe
            raise FormatError(f"corrupt frame index (FIDX): no GOP for {frames} frames")
        in_order = all(b[0] > a[0] and b[1] > a[1] for a, b in zip(entries, entries[1:]))
        if entries and (not in_order or entries[0][0] != 0 or gops[0][0] != 0):
            raise FormatError("corrupt frame index (FIDX): GOPs out of order")
        if entries and entries[-1][0] >= frames:
            raise FormatError("corrupt frame index (FIDX): a GOP starts after the last frame")
        return cls(frames, gops, tuple((f, o, slot) for f, o, _, slot in entries) if memory else ())


# --- writing ----------------------------------------------------------------------------------


class VideoWriter:
    """Writes a video container to `fp` frame by frame: `add(mode, streams, keyframe)`, then `finish()`."""

    def __init__(self, fp: BinaryIO, header: Header, video: VideoHeader, meta: dict[str, Any] | None = None,
                 temporal_side: bool = False, scene_ends: bool = True):
        if header.kind != KIND_VIDEO:
            raise ValueError("a video container needs a HEAD of kind 1")
        self.fp, self.pos, self.frames, self.gops, self.intra = fp, 0, 0, [], []
        # mode 2 frames need version 3, a memory (mode 3 frames) version 6 (5: without scene ends)
        memory_version = VIDEO_SCENE_VERSION if scene_ends else VIDEO_MEMORY_VERSION
        self.version = memory_version if video.memory else VIDEO_TZ_VERSION if temporal_side else VIDEO_VERSION
        self._write(pack_preamble(self.version, self.version))
        self._write(frame_chunk(HEAD, pack_header(header)))
        self._write(frame_chunk(VHDR, video.pack()))
        if meta is not None:
            self._write(frame_chunk(META, pack_meta(meta)))

    def _write(self, data: bytes) -> int:
        self.fp.write(data)
        self.pos += len(data)
        return len(data)

    def add(self, mode: int, streams: list[bytes] | tuple[bytes, ...], keyframe: bool = False) -> int:
        """Appends frame number `frames`; a keyframe (intra, starting a GOP) enters the index. Returns
        the bytes written."""
        if keyframe:
            if mode != INTRA:
                raise ValueError("a keyframe must be intra")
            self.gops.append((self.frames, self.pos))
        if mode == INTRA and self.version >= VIDEO_MEMORY_VERSION:  # the memory's entries, for seeking
            slot_bytes = 2 if self.version >= VIDEO_SCENE_VERSION else 1
            if len(streams) != 3 or len(streams[2]) != slot_bytes:
                raise ValueError(f"an intra frame of a version-{self.version} video with a memory carries "
                                 f"{slot_bytes} slot byte(s) as a third stream")
            self.intra.append((self.frames, self.pos, streams[2][0]))
        elif not self.gops:
            raise ValueError("the first frame must be a keyframe")
        if mode == INTER_TZ and self.version < VIDEO_TZ_VERSION:
            raise ValueError("mode 2 frames need a writer opened with temporal_side=True (version 3)")
        if mode == INTER_MEM and self.version < VIDEO_MEMORY_VERSION:
            raise ValueError("mode 3 frames need a video header with a memory (version 5)")
        payload = Frame(self.frames, mode, tuple(streams), self.pos, 0).pack(self.version)
        self.frames += 1
        return self._write(frame_chunk(FRAM, payload))

    def finish(self) -> int:
        """Writes the index and END; returns the size of the file."""
        self._write(frame_chunk(FIDX, FrameIndex(self.frames, tuple(self.gops), tuple(self.intra)).pack(self.version)))
        self._write(frame_chunk(END, b""))
        return self.pos


# --- reading ----------------------------------------------------------------------------------


class VideoReader:
    """Reads a video container from a seekable binary file object.

        r = VideoReader(fp)                  # preamble, HEAD, VHDR, meta checked
        r.header, r.video, r.meta
        for frame in r.frames():             # FRAM chunks in order, each CRC-checked
            ...
        r.index()                            # FIDX, found from the end of the file

    Errors name the chunk and what it should hold: `FormatError("... at offset 4242 (frame 17) ...")`.
    """

    def __init__(self, fp: BinaryIO, limits: Limits = Limits()):
        self.fp, self.limits = fp, limits
        self._file = FileBytes(fp)
        self.size = len(self._file)
        writer, min_reader = unpack_preamble(self._file[0:PREAMBLE_SIZE])
        self.writer_version, self.min_reader_version = writer, min_reader
        head = self._chunk(PREAMBLE_SIZE, "the header")
        if head.type != HEAD:
            raise FormatError(f"corrupt bitstream: the first chunk is {type_name(head.type)}, expected HEAD")
        self.header = unpack_header(head.data, limits, allow_video=True)
        if self.header.kind != KIND_VIDEO:
            raise UnsupportedError("this file holds an image, not a video")
        self.video: VideoHeader | None = None
        self.meta: dict[str, Any] | None = None
        pos = head.end
        while True:
            chunk = self._chunk(pos, "the video header")
            ctype, data = chunk.type, chunk.data
            if ctype in (FRAM, FIDX, END):
                break
            if ctype == HEAD or (ctype == VHDR and self.video is not None):
                raise FormatError(f"corrupt bitstream: a second {type_name(ctype)} chunk at offset {pos}")
            if ctype == VHDR:
                self.video = VideoHeader.unpack(data)
            elif ctype == META:
                try:
                    self.meta = unpack_meta(data)
                except FormatError:
                    self.meta = None
            elif is_critical(ctype):
                raise UnsupportedError(f"unknown critical chunk {type_name(ctype)} at offset {pos}: written by a "
                                       f"newer or different encoder")
            pos = chunk.end
        if self.video is None:
            raise FormatError("corrupt bitstream: the video header (VHDR) is missing")
        if self.video.memory and self.min_reader_version < VIDEO_MEMORY_VERSION:
            raise FormatError(f"corrupt bitstream: a latent memory in a version {self.min_reader_version} file")
        self.first_frame_offset = pos

    def _chunk(self, offset: int, what: str) -> Chunk:
        """The chunk at `offset`, every check of `framing.read_chunk` done; errors name `what`."""
        return read_chunk(self._file, offset, self.limits, what)

    def frames(self, offset: int | None = None, first_number: int = 0) -> Iterator[Frame]:
        """FRAM chunks from `offset` (default: the first frame) up to the index; checks numbering."""
        pos = self.first_frame_offset if offset is None else offset
        expected = first_number
        while True:
            chunk = self._chunk(pos, f"frame {expected}")
            ctype = chunk.type
            if ctype == FRAM:
                if expected >= self.limits.max_frames:  # frame number `expected` is frame expected + 1
                    raise limit_error("the frame count", expected + 1, self.limits.max_frames, "max_frames",
                                      MAX_FRAMES_FLAG)
                frame = Frame.unpack(chunk.data, pos, chunk.end - pos, self.min_reader_version)
                if frame.number != expected:
                    raise FormatError(f"corrupt bitstream: frame {expected} expected at offset {pos}, "
                                      f"found frame {frame.number}")
                if frame.mode == INTER_TZ and self.min_reader_version < VIDEO_TZ_VERSION:
                    raise FormatError(f"corrupt bitstream: frame {expected} has mode 2, which version "
                                      f"{self.min_reader_version} files cannot hold")
                if frame.mode == INTER_MEM and not self.video.memory:
                    raise FormatError(f"corrupt bitstream: frame {expected} has mode 3 (inter against the "
                                      f"memory) in a video without a memory")
                yield frame
                expected += 1
            elif ctype in (FIDX, END):
                return
            elif ctype in (HEAD, VHDR):
                raise FormatError(f"corrupt bitstream: a {type_name(ctype)} chunk among the frames at offset {pos}")
            elif is_critical(ctype):
                raise UnsupportedError(f"unknown critical chunk {type_name(ctype)} at offset {pos}")
            pos = chunk.end

    def index(self) -> FrameIndex:
        """The frame index, located from the end of the file (END, then FIDX's trailing length)."""
        tail = CHUNK_OVERHEAD  # the empty END chunk
        if self.size < self.first_frame_offset + tail + CHUNK_OVERHEAD + 12:
            raise FormatError("truncated bitstream: no room for the frame index and END")
        if self._file[self.size - tail : self.size] != frame_chunk(END, b""):
            raise FormatError("truncated or corrupt bitstream: the file does not end with an END chunk "
                              "(decode with --salvage to recover the frames before the damage)")
        (length,) = _U32.unpack(self._file[self.size - tail - 8 : self.size - tail - 4])  # FIDX's last field
        start = self.size - tail - CHUNK_OVERHEAD - length
        if length > self.limits.max_chunk_bytes or start < self.first_frame_offset:
            raise FormatError("corrupt bitstream: bad frame index length")
        chunk = self._chunk(start, "the frame index")
        if chunk.type != FIDX or chunk.end != self.size - tail:
            raise FormatError("corrupt bitstream: the frame index (FIDX) is missing or misplaced")
        return FrameIndex.unpack(chunk.data, self.limits, self.min_reader_version)
