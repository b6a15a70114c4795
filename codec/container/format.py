"""Constants of the container format: signature, versions, chunk types, limits.

The byte layout is specified in docs/FORMAT.md; this module holds the numbers
that the spec names, the preamble codec (``pack_preamble``/``unpack_preamble``)
and the friendly diagnosis of inputs that are not bitstreams at all.

Preamble (16 bytes, little-endian)::

    offset  size  field
    0       8     signature  b"\\x89CDC\\r\\n\\x1a\\n"
    8       2     writer_version      u16
    10      2     min_reader_version  u16
    12      4     crc32 of bytes 0..11
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from codec.errors import FormatError, LimitError, UnsupportedError

__all__ = [
    "SIGNATURE",
    "FORMAT_VERSION",
    "MIN_READER_VERSION",
    "PREAMBLE_SIZE",
    "HEAD",
    "ZSTR",
    "YSTR",
    "END",
    "META",
    "VHDR",
    "FRAM",
    "FIDX",
    "IMAGE_VERSION",
    "OVERFIT_VERSION",
    "NETS",
    "VIDEO_VERSION",
    "VIDEO_TZ_VERSION",
    "VIDEO_MEMORY_VERSION",
    "VIDEO_SCENE_VERSION",
    "KNOWN_CHUNK_TYPES",
    "Limits",
    "crc32",
    "is_critical",
    "check_chunk_type",
    "pack_preamble",
    "unpack_preamble",
    "image_signature",
    "sniff",
    "check_encodable",
]

SIGNATURE = b"\x89CDC\r\n\x1a\n"
"""8 bytes; like PNG's: the high bit catches 7-bit channels, CR LF catches newline conversion."""

FORMAT_VERSION = 6
"""The newest container version this module reads (2: video files, docs/FORMAT.md section 14; 3: video
frames whose side information is coded with the temporal prior, mode 2, section 14.1; 4: overfitted
images, with a NETS chunk, section 15; 5: video with a latent memory, mode 3, section 14.2; 6: the memory also keeps the frame a cut
leaves, section 14.3)."""

IMAGE_VERSION = 1
"""Images are written exactly as in version 1 (writer and minimum reader 1): every reader reads them."""

MIN_READER_VERSION = 1
"""The min_reader_version recorded in image files."""

VIDEO_VERSION = 2
"""Video files are written with writer and minimum reader version 2: a version-1 reader refuses them
with "needs a reader of version 2". Video files of models with a temporal prior of the side
information (frames of mode 2) are written with writer and minimum reader version 3
(VIDEO_TZ_VERSION): a version-2 reader refuses them the same way."""

VIDEO_TZ_VERSION = 3

VIDEO_MEMORY_VERSION = 5
"""Video files coded with a latent memory (VHDR records its size; frames of mode 3 code inter against
a memory entry) are written with writer and minimum reader version 5."""

VIDEO_SCENE_VERSION = 6
"""Video files with a latent memory whose intra and mode-3 frames may also store the frame before
them (the last frame of the scene a cut leaves; stored entries of inter frames last until the next
keyframe): writer and minimum reader version 6. Version-5 files still decode."""

OVERFIT_VERSION = 4
"""Overfitted images (a NETS chunk) are written with writer and minimum reader version 4."""

_PREAMBLE = struct.Struct("<8sHH")  # signature, writer_version, min_reader_version
_U32 = struct.Struct("<I")
PREAMBLE_SIZE = _PREAMBLE.size + _U32.size  # 16

# Chunk types. First letter uppercase = critical, lowercase = ancillary (as in PNG).
HEAD = b"HEAD"
"""Critical, first, exactly once: the image header (see chunks.pack_header)."""
ZSTR = b"ZSTR"
"""Critical, at most once: range-coded side information z (hyperprior)."""
YSTR = b"YSTR"
"""Critical, at most once: range-coded main latents y."""
END = b"END "
"""Critical, last, exactly once, empty."""
META = b"meta"
"""Ancillary, at most once: UTF-8 JSON object (encoder name, version, ...)."""

VHDR = b"VHDR"
"""Critical, video files only, once after HEAD: frame rate and GOP length."""
FRAM = b"FRAM"
"""Critical, video files only: one coded frame."""
FIDX = b"FIDX"
"""Critical, video files only, once before END: frame count and GOP index."""

NETS = b"NETS"
"""Critical, overfitted images only, at most once: the decoder's networks (codec.container.overfit)."""

EXIF = b"exif"
"""Ancillary, at most once: the photo's EXIF block (TIFF-structured bytes, orientation 1; codec.metadata)."""
ICCP = b"iccp"
"""Ancillary, at most once: the ICC colour profile of the RGB pixels (codec.metadata)."""
XMPD = b"xmpd"
"""Ancillary, at most once: the XMP packet (UTF-8 XML; codec.metadata)."""

KNOWN_CHUNK_TYPES = frozenset({HEAD, ZSTR, YSTR, NETS, END, META, EXIF, ICCP, XMPD})
"""Types an image reader understands; each may appear at most once."""

# Flags of the CLI that raise each limit; named in LimitError messages.
MAX_PIXELS_FLAG = "--max-pixels"
MAX_DIMENSION_FLAG = "--max-dimension"
MAX_CHUNK_BYTES_FLAG = "--max-chunk-bytes"
MAX_FRAMES_FLAG = "--max-frames"


@dataclass(frozen=True)
class Limits:
    """Decompression-bomb guards applied by the reader before anything is allocated.

    Attributes:
        max_pixels: largest width * height (of the unpadded image) accepted.
        max_chunk_bytes: largest chunk data length accepted.
        max_dimension: largest width or height accepted.
        max_frames: largest number of frames of a video accepted.
    """

    max_pixels: int = 268_435_456  # 2**28, e.g. 16384 x 16384
    max_chunk_bytes: int = 1 << 30
    max_dimension: int = 1 << 16
    max_frames: int = 1 << 24

    def __post_init__(self) -> None:
        for name in ("max_pixels", "max_chunk_bytes", "max_dimension", "max_frames"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Limits.{name} must be a positive integer, got {value!r}")


def crc32(*parts: bytes | memoryview) -> int:
    """CRC-32/ISO-HDLC (zlib.crc32, as in PNG) of the concatenation of ``parts``."""
    crc = 0
    for part in parts:
        crc = zlib.crc32(part, crc)
    return crc & 0xFFFFFFFF


def is_critical(chunk_type: bytes) -> bool:
    """True when a reader that does not know ``chunk_type`` must refuse the file."""
    return 0x41 <= chunk_type[0] <= 0x5A  # first byte 'A'..'Z'


def _is_letter(b: int) -> bool:
    return 0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A


def valid_chunk_type(chunk_type: bytes) -> bool:
    """Whether ``chunk_type`` is 4 bytes: an ASCII letter then letters or spaces."""
    return (
        len(chunk_type) == 4
        and _is_letter(chunk_type[0])
        and all(_is_letter(b) or b == 0x20 for b in chunk_type[1:])
    )


def check_chunk_type(chunk_type: bytes) -> bytes:
    """Return ``chunk_type`` as bytes, or raise ValueError if it is not a valid type (writer side)."""
    if not isinstance(chunk_type, (bytes, bytearray)) or not valid_chunk_type(bytes(chunk_type)):
        raise ValueError(
            f"chunk type must be 4 bytes, an ASCII letter then letters or spaces, got {chunk_type!r}"
        )
    return bytes(chunk_type)


def type_name(chunk_type: bytes) -> str:
    """Printable name of a chunk type for messages (non-ASCII bytes escaped, trailing spaces dropped)."""
    return repr(bytes(chunk_type))[2:-1].rstrip() or repr(bytes(chunk_type))


# --- preamble: write and read side by side -------------------------------------------------


def pack_preamble(writer_version: int = FORMAT_VERSION, min_reader_version: int = MIN_READER_VERSION) -> bytes:
    """The 16-byte preamble: signature, versions and their CRC."""
    if not (1 <= min_reader_version <= writer_version <= 0xFFFF):
        raise ValueError(
            f"need 1 <= min_reader_version <= writer_version <= 65535, "
            f"got {min_reader_version} and {writer_version}"
        )
    head = _PREAMBLE.pack(SIGNATURE, writer_version, min_reader_version)
    return head + _U32.pack(crc32(head))


def unpack_preamble(data: bytes | memoryview) -> tuple[int, int]:
    """Check the preamble at the start of ``data``; return (writer_version, min_reader_version).

    Raises:
        FormatError: not a bitstream (the message says what it looks like), truncated,
            or a preamble CRC mismatch.
        UnsupportedError: the file needs a newer reader.
    """
    if len(data) < len(SIGNATURE) or bytes(data[: len(SIGNATURE)]) != SIGNATURE:
        if len(data) < len(SIGNATURE) and bytes(data) == SIGNATURE[: len(data)]:
            if len(data) == 0:
                raise FormatError("not a codec bitstream: the input is empty")
            raise FormatError(f"truncated bitstream: {len(data)} bytes, shorter than the 8-byte signature")
        raise FormatError(f"not a codec bitstream: {sniff(data)}")
    if len(data) < PREAMBLE_SIZE:
        raise FormatError(f"truncated bitstream: {len(data)} bytes, shorter than the {PREAMBLE_SIZE}-byte preamble")
    _, writer_version, min_reader_version = _PREAMBLE.unpack_from(data, 0)
    (stored,) = _U32.unpack_from(data, _PREAMBLE.size)
    actual = crc32(data[: _PREAMBLE.size])
    if stored != actual:
        raise FormatError(
            f"corrupt bitstream: preamble CRC mismatch (stored {stored:08x}, computed {actual:08x})"
        )
    if min_reader_version > FORMAT_VERSION:
        raise UnsupportedError(
            f"this file needs a reader of container format version {min_reader_version} or newer "
            f"(written by format version {writer_version}); this reader supports version "
            f"{FORMAT_VERSION}: upgrade codec"
        )
    if min_reader_version < 1 or writer_version < min_reader_version:
        raise FormatError(
            f"corrupt bitstream: inconsistent versions (writer {writer_version}, "
            f"minimum reader {min_reader_version})"
        )
    return writer_version, min_reader_version


# --- diagnosis of inputs that are not bitstreams ------------------------------------------

_IMAGE_MAGICS: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
    (b"qoif", "QOI"),
    (b"\x00\x00\x00\x0cjXL \r\n\x87\n", "JPEG XL"),
    (b"\xff\x0a", "JPEG XL"),
    (b"P6", "PPM"),
)


def image_signature(head: bytes | memoryview) -> str | None:
    """The image format whose signature starts ``head`` ("PNG", "JPEG", "WebP", ...), or None."""
    head = bytes(head[:32])
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    if head[4:12] in (b"ftypavif", b"ftypheic", b"ftypheix", b"ftypmif1"):
        return "AVIF/HEIF"
    return next((name for magic, name in _IMAGE_MAGICS if head.startswith(magic)), None)


def sniff(data: bytes | memoryview) -> str:
    """Describe what ``data`` (which lacks the signature) looks like, for error messages."""
    head = bytes(data[:32])
    if not head:
        return "the input is empty"
    kind = image_signature(head)
    if kind is not None:
        article = "an" if kind[0] in "AEIOU" else "a"
        return f"it looks like {article} {kind} image (decode takes a bitstream; to compress an image use encode)"
    if head[4:8] == b"ftyp" or head[:4] == b"\x1aE\xdf\xa3":
        return "it looks like a video file, not a bitstream"
    if head[:1] == b"\x09" and head[1:4] == b"CDC":
        return "the signature's high bit was cleared: the file went through a 7-bit channel"
    if head.startswith(b"\x89CDC\n") or head.startswith(b"\x89CDC\r\r\n") or head.startswith(b"\x89CDC\r\n\x1a\r\n"):
        return "the signature's line endings were converted: the file was copied in text mode"
    if head.startswith(b"\x89CDC"):
        return "the signature is damaged"
    return f"the first bytes are {head[:8].hex(' ')}, expected {SIGNATURE.hex(' ')}"


def limit_error(what: str, value: int, limit: int, name: str, flag: str) -> LimitError:
    """A LimitError that names the limit and the CLI flag that raises it."""
    return LimitError(
        f"{what} is {value}, over the limit of {limit} (Limits.{name}); "
        f"if you trust this file, raise it with {flag}"
    )


def check_encodable(width: int, height: int, frames: int = 1, limits: Limits = Limits()) -> None:
    """Refuses, before anything is coded, a picture size (or frame count) that a reader with `limits`
    (by default the default decoder's) would refuse: an encoder never writes a file that
    `codec decode` without options cannot read.

    Raises:
        LimitError: naming the limit that the size or count is over.
    """
    checks = (
        ("the width", width, limits.max_dimension, "max_dimension", MAX_DIMENSION_FLAG),
        ("the height", height, limits.max_dimension, "max_dimension", MAX_DIMENSION_FLAG),
        (f"the size {width}x{height} in pixels", width * height, limits.max_pixels, "max_pixels", MAX_PIXELS_FLAG),
        ("the frame count", frames, limits.max_frames, "max_frames", MAX_FRAMES_FLAG),
    )
    for what, value, limit, name, flag in checks:
        if value > limit:
            raise LimitError(f"{what} is {value}, over the limit of {limit} (Limits.{name}) that decoders apply "
                             f"by default (codec decode {flag}): the encoder does not write a file they refuse")
