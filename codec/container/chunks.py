"""Typed chunk payloads: the ``HEAD`` header and the ``meta`` JSON, each with mirrored pack/unpack.

``ZSTR`` and ``YSTR`` carry coder output as opaque bytes; their meaning is the
pipeline's (docs/FORMAT.md, "Stream chunks").

HEAD payload, container version 1 (little-endian; 25 fixed bytes, then 3 strings)::

    offset  size  field
    0       1     kind                   u8   0 = image, 1 = video (container version 2)
    1       4     width                  u32  original image width, >= 1
    5       4     height                 u32  original image height, >= 1
    9       2     pad_right              u16  < 64
    11      2     pad_bottom             u16  < 64
    13      1     bit_depth              u8   8
    14      1     channels               u8   3
    15      2     quality                u16  model-defined, 0 when unused
    17      8     weights_sha256_prefix  8 bytes
    25      1+n   model_id               u8 length + UTF-8, non-empty
    ...     1+n   coder                  u8 length + UTF-8
    ...     1+n   coder_version          u8 length + UTF-8
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

from codec.errors import FormatError, UnsupportedError

from .format import MAX_DIMENSION_FLAG, MAX_PIXELS_FLAG, Limits, limit_error

__all__ = [
    "Header",
    "KIND_IMAGE",
    "KIND_VIDEO",
    "MAX_PAD",
    "pack_header",
    "unpack_header",
    "pack_meta",
    "unpack_meta",
]

KIND_IMAGE = 0
KIND_VIDEO = 1  # video files (container version 2, codec.container.video)
MAX_PAD = 63
"""Largest pad_right / pad_bottom: padding reaches the next multiple of the model stride (<= 64)."""

_FIXED = struct.Struct("<BIIHHBBH8s")
HEADER_FIXED_SIZE = _FIXED.size  # 25
_U8_MAX = 0xFF


@dataclass(frozen=True)
class Header:
    """The ``HEAD`` chunk: what the decoder needs before it touches a stream.

    Attributes:
        kind: 0 = image, 1 = video.
        width: original image width in pixels, before padding.
        height: original image height in pixels, before padding.
        pad_right: columns of padding added on the right to reach the model stride; cropped by the decoder.
        pad_bottom: rows of padding added at the bottom; cropped by the decoder.
        bit_depth: bits per sample; 8.
        channels: samples per pixel; 3 (RGB).
        quality: model-defined quality index of variable-rate models; 0 when unused.
        weights_sha256_prefix: first 8 bytes of the sha256 of the weights file.
        model_id: stable zoo id of the model, e.g. ``"hyperprior-mse-q3"``.
        coder: entropy coder name, e.g. ``"constriction"``.
        coder_version: entropy coder version, e.g. ``"0.5.0"``.
    """

    kind: int
    width: int
    height: int
    pad_right: int
    pad_bottom: int
    bit_depth: int
    channels: int
    quality: int
    weights_sha256_prefix: bytes
    model_id: str
    coder: str
    coder_version: str

    @property
    def padded_width(self) -> int:
        """Width of the image the model sees: width + pad_right."""
        return self.width + self.pad_right

    @property
    def padded_height(self) -> int:
        """Height of the image the model sees: height + pad_bottom."""
        return self.height + self.pad_bottom


def _has_control(text: str) -> bool:
    return any(ch < " " or "\x7f" <= ch <= "\x9f" for ch in text)


def _pack_string(name: str, value: str) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"Header.{name} must be a str, got {type(value).__name__}")
    raw = value.encode("utf-8")
    if len(raw) > _U8_MAX:
        raise ValueError(f"Header.{name} is {len(raw)} bytes of UTF-8, over 255")
    if _has_control(value):
        raise ValueError(f"Header.{name} contains a control character: {value!r}")
    return bytes([len(raw)]) + raw


def _check_u(name: str, value: int, bits: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < (1 << bits):
        raise ValueError(f"Header.{name} must be an integer in [0, {(1 << bits) - 1}], got {value!r}")


# --- HEAD: write and read side by side -----------------------------------------------------


def pack_header(h: Header) -> bytes:
    """Serialize ``h`` as the ``HEAD`` payload.

    Raises:
        ValueError: a field this version cannot write or a reader would refuse.
    """
    for name, bits in (("kind", 8), ("width", 32), ("height", 32), ("pad_right", 16),
                       ("pad_bottom", 16), ("bit_depth", 8), ("channels", 8), ("quality", 16)):
        _check_u(name, getattr(h, name), bits)
    if h.kind not in (KIND_IMAGE, KIND_VIDEO):
        raise ValueError(f"Header.kind {h.kind} is not supported (0 = image, 1 = video)")
    if h.width < 1 or h.height < 1:
        raise ValueError(f"Header width and height must be >= 1, got {h.width}x{h.height}")
    if h.pad_right > MAX_PAD or h.pad_bottom > MAX_PAD:
        raise ValueError(f"Header padding must be <= {MAX_PAD}, got {h.pad_right}, {h.pad_bottom}")
    if h.bit_depth != 8 or h.channels != 3:
        raise ValueError(f"Header must be 8-bit, 3 channels, got {h.bit_depth}-bit, {h.channels} channels")
    prefix = h.weights_sha256_prefix
    if not isinstance(prefix, (bytes, bytearray)) or len(prefix) != 8:
        raise ValueError(f"Header.weights_sha256_prefix must be 8 bytes, got {prefix!r}")
    if not h.model_id:
        raise ValueError("Header.model_id must not be empty")
    fixed = _FIXED.pack(h.kind, h.width, h.height, h.pad_right, h.pad_bottom,
                        h.bit_depth, h.channels, h.quality, bytes(prefix))
    return (fixed + _pack_string("model_id", h.model_id) + _pack_string("coder", h.coder)
            + _pack_string("coder_version", h.coder_version))


def unpack_header(data: bytes | memoryview, limits: Limits = Limits(), allow_video: bool = False) -> Header:
    """Parse and validate a ``HEAD`` payload.

    Raises:
        FormatError: a short or overlong payload, or a field out of range.
        UnsupportedError: kind 1 (video) where an image is read (`allow_video` False).
        LimitError: width, height or width * height over ``limits``.
    """
    data = bytes(data)
    if len(data) >= 1 and data[0] == KIND_VIDEO and not allow_video:
        raise UnsupportedError("this file holds a video (HEAD kind 1), not an image: decode it with "
                               "`codec decode` (codec.pipeline.video)")
    if len(data) < HEADER_FIXED_SIZE:
        raise FormatError(f"corrupt HEAD: {len(data)} bytes, need at least {HEADER_FIXED_SIZE}")
    (kind, width, height, pad_right, pad_bottom, bit_depth, channels, quality,
     prefix) = _FIXED.unpack_from(data, 0)
    if kind not in (KIND_IMAGE, KIND_VIDEO):
        raise FormatError(f"corrupt HEAD: unknown kind {kind} (0 = image, 1 = video)")

    offset = HEADER_FIXED_SIZE
    strings = []
    for name in ("model_id", "coder", "coder_version"):
        if offset >= len(data):
            raise FormatError(f"corrupt HEAD: payload ends before the {name} string")
        n = data[offset]
        if offset + 1 + n > len(data):
            raise FormatError(f"corrupt HEAD: the {name} string runs past the payload")
        raw = data[offset + 1 : offset + 1 + n]
        offset += 1 + n
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError(f"corrupt HEAD: {name} is not valid UTF-8: {raw!r}") from None
        if _has_control(text):
            raise FormatError(f"corrupt HEAD: {name} contains a control character: {text!r}")
        strings.append(text)
    if offset != len(data):
        raise FormatError(f"corrupt HEAD: {len(data) - offset} unexpected bytes after the last field")
    model_id, coder, coder_version = strings
    if not model_id:
        raise FormatError("corrupt HEAD: empty model_id")

    if width < 1 or height < 1:
        raise FormatError(f"corrupt HEAD: image size {width}x{height}")
    if pad_right > MAX_PAD or pad_bottom > MAX_PAD:
        raise FormatError(f"corrupt HEAD: padding {pad_right}, {pad_bottom} over {MAX_PAD}")
    if bit_depth != 8:
        raise FormatError(f"corrupt HEAD: bit depth {bit_depth} (version 1 stores 8)")
    if channels != 3:
        raise FormatError(f"corrupt HEAD: {channels} channels (version 1 stores 3)")

    for what, value in (("width", width), ("height", height)):
        if value > limits.max_dimension:
            raise limit_error(f"the image {what}", value, limits.max_dimension, "max_dimension",
                              MAX_DIMENSION_FLAG)
    if width * height > limits.max_pixels:
        raise limit_error(f"the image size {width}x{height} in pixels", width * height,
                          limits.max_pixels, "max_pixels", MAX_PIXELS_FLAG)

    return Header(kind=kind, width=width, height=height, pad_right=pad_right, pad_bottom=pad_bottom,
                  bit_depth=bit_depth, channels=channels, quality=quality,
                  weights_sha256_prefix=prefix, model_id=model_id, coder=coder,
                  coder_version=coder_version)


# --- meta: write and read side by side -----------------------------------------------------


def pack_meta(meta: dict[str, Any]) -> bytes:
    """Serialize ``meta`` as compact UTF-8 JSON with sorted keys (deterministic bytes).

    Raises:
        ValueError: not a dict with str keys, or not JSON-serializable.
    """
    if not isinstance(meta, dict) or not all(isinstance(k, str) for k in meta):
        raise ValueError("meta must be a dict with str keys")
    try:
        text = json.dumps(meta, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"meta is not JSON-serializable: {e}") from None
    return text.encode("utf-8")


def unpack_meta(data: bytes | memoryview) -> dict[str, Any]:
    """Parse a ``meta`` payload: a UTF-8 JSON object.

    Raises:
        FormatError: not UTF-8, not JSON, or not an object.
    """
    try:
        value = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise FormatError(f"corrupt meta chunk: {type(e).__name__}: {e}") from None
    if not isinstance(value, dict):
        raise FormatError(f"corrupt meta chunk: a JSON {type(value).__name__}, expected an object")
    return value
