"""Image files in and out: Pillow decoding to 8-bit RGB, lossless encoding, padding and cropping.

Data flow:

    path | bytes ─► read_image ─► ImageInput.pixels (H, W, 3) uint8 ─► pad_to_multiple ─► pipeline
    pipeline ─► crop ─► (H, W, 3) uint8 ─► write_image | encode_image_bytes ─► atomic_write | stdout

Files are written through `codec.atomic` (temporary file, fsync, rename). Every failure a user
can cause becomes one of the errors in `codec.errors`, with a one-line message that names the
file. This module imports numpy and Pillow only (never torch), so the CLI can read and write
images without loading a model.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import stat
import struct
import threading
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError, features

from codec.atomic import atomic_write, check_destination, is_stream, one_line, os_error_text
from codec.container.format import MAX_CHUNK_BYTES_FLAG, image_signature
from codec.errors import FormatError, InputError, LimitError, UnsupportedError, UsageError
from codec.metadata import Metadata, from_pillow, save_options

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "ImageInput",
    "WRITE_FORMATS",
    "crop",
    "encode_image_bytes",
    "find_images",
    "pad_to_multiple",
    "read_at_most",
    "read_bytes",
    "read_image",
    "write_image",
]

DEFAULT_MAX_PIXELS = 268_435_456  # 16384 x 16384
"""Largest declared image area (width x height) that `read_image` accepts by default."""

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")
"""Suffixes (lower case) of the files a folder or a glob of images contributes (`find_images`)."""

WRITE_FORMATS = {".png": "PNG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP"}
"""Output suffix -> Pillow format. WebP is written lossless; TIFF with deflate when libtiff is present."""

STDIN_NAME = "standard input"
"""How messages name an image given as bytes (the CLI's `-`) when no other name is passed."""

# Errors that Pillow's decoders raise on damaged data; none of them means a bug in codec.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, IndexError)

# Raw modes of 16-bit samples (PNG "RGB;16B", TIFF "RGB;16N"), not 16-bit pixels (BMP "BGR;16").
_SIXTEEN_BIT = re.compile(r";16[BLN]$")

# Image.MAX_IMAGE_PIXELS is a Pillow global; read_image sets it for the duration of open + load.
_PILLOW_LIMIT_LOCK = threading.Lock()


@dataclass(frozen=True)
class ImageInput:
    """An image decoded for coding.

    Attributes:
        pixels: (H, W, 3) uint8 RGB array, C-contiguous and writable, EXIF orientation applied.
        source_format: Pillow's name of the file format ("PNG", "JPEG", ...), or "unknown".
        warnings: one-line notes on lossy conversions (16 bits to 8, dropped opaque alpha, ...).
        metadata: the file's EXIF (orientation reset to 1), RGB ICC profile and XMP (codec.metadata).
    """

    pixels: np.ndarray
    source_format: str
    warnings: tuple[str, ...] = ()
    metadata: Metadata = Metadata()

    @property
    def height(self) -> int:
        """Image height in pixels."""
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        """Image width in pixels."""
        return int(self.pixels.shape[1])


# ----------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------


def find_images(source: str, limit: int | None = None) -> list[Path]:
    """The image files a user names with `source`: a folder (its images, sorted, not recursive), a
    glob (`photos/*.png`, sorted), or one file. A folder or a glob is images, never a video.

    Raises:
        UsageError: nothing exists at `source`, or it holds no image.
    """
    import glob

    p = Path(source)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS and f.is_file())
    elif not p.exists() and glob.has_magic(source):
        files = sorted(Path(f) for f in glob.glob(source)
                       if Path(f).suffix.lower() in IMAGE_EXTENSIONS and os.path.isfile(f))
    elif p.is_file():
        files = [p]
    else:
        raise UsageError(f"{source}: no such file, folder or matching glob")
    if not files:
        raise UsageError(f"{source}: no images found")
    return files[:limit] if limit else files


def read_image(source: str | Path | bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS,
               name: str | None = None) -> ImageInput:
    """Decodes an image file (anything Pillow reads) to 8-bit RGB.

    Grayscale, palette, CMYK, YCbCr, LAB and HSV images are converted to RGB; 16-bit samples are
    scaled to 8 bits (value >> 8) with a warning. An alpha channel is refused unless it is fully
    opaque, in which case it is dropped with a warning. Animated and multi-page images are refused,
    except MPO (a JPEG with extra pictures such as a depth map), whose first picture is kept.

    The declared size is checked against `max_pixels` before any pixel data is decoded, so a
    decompression bomb costs only its header.

    Args:
        source: a path, or the raw bytes of an image file (the CLI passes stdin's bytes for `-`).
        max_pixels: largest accepted width x height.
        name: how messages name the image; defaults to the path, or "standard input" for bytes.

    Returns:
        The decoded image.

    Raises:
        InputError: the path is missing, a directory or unreadable.
        UnsupportedError: not an image, alpha that is not opaque, animated, or an unsupported depth.
        LimitError: the declared size is over `max_pixels`.
        FormatError: truncated or corrupt image data.
    """
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be positive, got {max_pixels}")
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _decode(io.BytesIO(bytes(source)), name or STDIN_NAME, max_pixels)
    path = Path(source)
    label = name or str(path)
    with _open_input(path, label) as fp:
        return _decode(fp, label, max_pixels)


def read_bytes(source: str | Path, *, max_bytes: int) -> bytes:
    """Reads a whole file (a bitstream) after checking its size against `max_bytes`.

    The size is checked with stat() before reading; files whose size stat cannot tell (pipes,
    /dev/stdin) are read up to `max_bytes` + 1 bytes and refused if that much arrives. Memory
    follows the bytes that arrive, never the limit (see `read_at_most`).

    Args:
        source: path of the file.
        max_bytes: largest accepted size in bytes.

    Returns:
        The file's bytes.

    Raises:
        InputError: the path is missing, a directory or unreadable.
        LimitError: the file is larger than `max_bytes`.
    """
    path = Path(source)
    label = str(path)
    with _open_input(path, label) as fp:
        size = os.fstat(fp.fileno()).st_size
        over = f"over the limit of {max_bytes} bytes; if you trust it, raise it with {MAX_CHUNK_BYTES_FLAG}"
        if size > max_bytes:
            raise LimitError(f"{label} is {size} bytes, {over}")
        try:
            data = read_at_most(fp, max_bytes + 1, expected=size)
        except OSError as exc:
            raise InputError(f"cannot read {label}: {os_error_text(exc)}") from None
    if len(data) > max_bytes:
        raise LimitError(f"{label} is {over}")
    return data


def read_at_most(fp: BinaryIO, limit: int, *, expected: int = 0) -> bytes:
    """Reads `fp` to its end or to `limit` bytes, whichever comes first.

    Python's read(n) allocates n bytes up front, so read(limit) would reserve the whole limit (a
    gigabyte by default) for a file of a few kilobytes. This reads `expected` + 1 bytes first (all
    of a regular file whose size stat told, in one piece), then 1 MiB pieces.
    """
    parts: list[bytes] = []
    total, step = 0, expected + 1
    while total < limit:
        part = fp.read(min(step, limit - total))
        if not part:
            break
        parts.append(part)
        total += len(part)
        step = 1 << 20
    return parts[0] if len(parts) == 1 else b"".join(parts)


@contextlib.contextmanager
def _open_input(path: Path, label: str) -> Iterator[BinaryIO]:
    """Opens `path` for reading, turning every failure into a one-line InputError."""
    try:
        fp = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except FileNotFoundError:
        raise InputError(f"{label}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{label} is a directory, not a file") from None
    except PermissionError:
        if path.is_dir():  # Windows reports a directory as a permission error
            raise InputError(f"{label} is a directory, not a file") from None
        raise InputError(f"{label}: permission denied") from None
    except OSError as exc:
        raise InputError(f"cannot open {label}: {os_error_text(exc)}") from None
    with fp:
        if stat.S_ISDIR(os.fstat(fp.fileno()).st_mode):
            raise InputError(f"{label} is a directory, not a file")
        yield fp


@contextlib.contextmanager
def _pillow_limit(max_pixels: int) -> Iterator[None]:
    """Makes Pillow's own bomb check follow `max_pixels` instead of its global default.

    Pillow raises DecompressionBombError above twice Image.MAX_IMAGE_PIXELS and warns above it.
    Setting the global to `max_pixels` lets a caller raise the limit (Pillow's default of about
    89 M pixels would otherwise refuse images that `--max-pixels` allows); the warning is silenced
    because read_image makes its own exact check. The global is restored afterwards, and a lock
    keeps concurrent read_image calls from restoring each other's value.
    """
    with _PILLOW_LIMIT_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = max_pixels
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _limit_error(label: str, size: str, max_pixels: int) -> LimitError:
    return LimitError(f"{label} is {size}, over the limit of {max_pixels} pixels "
                      f"(a decompression-bomb guard); --max-pixels raises it")


def _decode(fp: BinaryIO, label: str, max_pixels: int) -> ImageInput:
    """Opens, checks and loads one image from `fp`, then converts it to (H, W, 3) uint8."""
    notes: list[str] = []
    with _pillow_limit(max_pixels):
        try:
            im = Image.open(fp)
        except UnidentifiedImageError:
            raise _unreadable(fp, label) from None
        except Image.DecompressionBombError:
            raise _limit_error(label, f"more than {2 * max_pixels} pixels", max_pixels) from None
        except _DECODE_ERRORS as exc:
            raise _unreadable(fp, label, exc) from None
        fmt = im.format or "unknown"
        width, height = im.size
        if width < 1 or height < 1:
            raise FormatError(f"{label}: {fmt} image declares an empty size {width}x{height}")
        if width * height > max_pixels:  # declared size, before any pixel is decoded
            raise _limit_error(label, f"{width}x{height} = {width * height} pixels", max_pixels)
        try:
            frames = int(getattr(im, "n_frames", 1))
        except Image.DecompressionBombError:
            raise _limit_error(label, f"a frame of more than {2 * max_pixels} pixels", max_pixels) from None
        except _DECODE_ERRORS as exc:
            raise FormatError(f"{label}: truncated or corrupt {fmt} data ({one_line(exc)})") from None
        if frames > 1:
            if fmt != "MPO":
                raise UnsupportedError(f"{label} is animated or multi-page ({frames} frames); codec codes "
                                       f"single images only: extract one frame first")
            notes.append(f"{label}: MPO file holds {frames} pictures; only the first is coded")
            im.seek(0)
        if im.mode in ("RGB", "RGBA", "LA", "L") and any(_SIXTEEN_BIT.search(m) for m in _tile_rawmodes(im)):
            # Pillow decodes 16-bit RGB(A) to 8 bits by keeping the high byte, i.e. value >> 8.
            notes.append(f"{label}: 16-bit samples scaled to 8 bits (value >> 8)")
        try:
            im.load()
        except Image.DecompressionBombError:
            raise _limit_error(label, f"a tile of more than {2 * max_pixels} pixels", max_pixels) from None
        except _DECODE_ERRORS as exc:
            raise FormatError(f"{label}: truncated or corrupt {fmt} data ({one_line(exc)})") from None

    metadata = from_pillow(im, label)
    notes.extend(metadata.notes)
    im = _apply_orientation(im, label, notes)
    pixels = _to_rgb(im, label, notes)
    return ImageInput(pixels=pixels, source_format=fmt, warnings=tuple(notes), metadata=metadata)


def _unreadable(fp: BinaryIO, label: str, exc: BaseException | None = None) -> Exception:
    """The error for a file whose header Pillow cannot read (`exc`, or None when Pillow does not
    recognise it at all): empty, cut or damaged inside the header of a known format, or not an image."""
    fp.seek(0)
    head = fp.read(32)
    if not head:
        return UnsupportedError(f"{label} is empty (0 bytes), not an image")
    kind = image_signature(head)
    if exc is None and kind is None:
        return UnsupportedError(f"{label} is not an image Pillow can read")
    detail = "" if exc is None else f" ({one_line(exc)})"
    return FormatError(f"{label}: truncated or corrupt {kind or 'image'} header{detail}")


def _tile_rawmodes(im: Image.Image) -> list[str]:
    """Raw modes of the still undecoded tiles, which tell the sample depth in the file."""
    modes = []
    for tile in getattr(im, "tile", None) or ():
        args = tile[3] if len(tile) > 3 else None
        if isinstance(args, str):
            modes.append(args)
        elif isinstance(args, tuple) and args and isinstance(args[0], str):
            modes.append(args[0])
    return modes


def _apply_orientation(im: Image.Image, label: str, notes: list[str]) -> Image.Image:
    """Applies the EXIF orientation tag (so a portrait photo comes out upright)."""
    try:
        orientation = im.getexif().get(0x0112, 1)
    except Exception as exc:  # noqa: BLE001 - Pillow's EXIF parser raises many types on bad metadata
        notes.append(f"{label}: unreadable EXIF metadata ignored ({one_line(exc)})")
        return im
    if orientation in (2, 3, 4, 5, 6, 7, 8):
        return ImageOps.exif_transpose(im)
    return im


def _to_rgb(im: Image.Image, label: str, notes: list[str]) -> np.ndarray:
    """Converts a loaded image of any mode to a (H, W, 3) uint8 array, refusing real alpha."""
    if im.mode == "P":
        has_alpha = "transparency" in im.info or (im.palette is not None and "A" in im.palette.mode)
        im = im.convert("RGBA" if has_alpha else "RGB")
    elif im.mode == "PA":
        im = im.convert("RGBA")

    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        samples = np.asarray(im)  # (H, W) uint16, or int32 for mode I
        if im.mode == "I" and samples.size and (samples.min() < 0 or samples.max() > 65535):
            raise UnsupportedError(f"{label} has 32-bit integer samples outside 0..65535; "
                                   f"convert it to 8 or 16 bits first")
        gray = (samples.astype(np.uint32) >> 8).astype(np.uint8)  # (H, W)
        notes.append(f"{label}: 16-bit samples scaled to 8 bits (value >> 8)")
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))  # (H, W, 3)
    if im.mode == "F":
        raise UnsupportedError(f"{label} has 32-bit floating-point samples; convert it to 8 or 16 bits first")

    if "A" in im.getbands() or "a" in im.getbands():  # RGBA, LA, RGBa, La
        alpha = np.asarray(im.getchannel("A" if "A" in im.getbands() else "a"))
        if (alpha != 255).any():
            raise UnsupportedError(f"{label} has an alpha channel; codec does not code alpha yet: flatten it "
                                   f"first (for example `convert in.png -background white -flatten out.png`)")
        notes.append(f"{label}: alpha channel is fully opaque and was dropped")
    if im.mode != "RGB":
        im = im.convert("RGB")
    pixels = np.array(im, dtype=np.uint8)  # (H, W, 3), an owned copy
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise UnsupportedError(f"{label}: image mode {im.mode} cannot be converted to RGB")
    return pixels


# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------


def write_image(pixels: np.ndarray, dest: str | Path, *, force: bool = False, format: str | None = None,
                metadata: Metadata | None = None) -> int:
    """Writes an RGB image atomically, choosing the format from the suffix.

    Args:
        pixels: (H, W, 3) uint8 array.
        dest: output path; its suffix picks the format unless `format` is given.
        force: overwrite an existing file.
        format: "PNG", "BMP", "TIFF" or "WEBP" (lossless), overriding the suffix.
        metadata: EXIF / ICC / XMP written where the format holds them (codec.metadata.save_options).

    Returns:
        Number of bytes written.

    Raises:
        UsageError: an unknown suffix or format.
        InputError: `dest` exists without `force`, or its directory is missing.
        OutputError: the write failed (disk full, file too large, ...).
    """
    dest = Path(dest)
    if format is None:
        format = WRITE_FORMATS.get(dest.suffix.lower())
        if format is None and is_stream(dest):  # /dev/null, a FIFO: PNG, as on standard output
            format = "PNG"
        if format is None:
            raise UsageError(f"cannot tell the image format of {dest} from its suffix "
                             f"{dest.suffix or '(none)'!r}; use one of {', '.join(WRITE_FORMATS)}")
    if not is_stream(dest):
        check_destination(dest, force)  # fail before spending time on encoding
    return atomic_write(dest, encode_image_bytes(pixels, format, metadata), force=force)


def encode_image_bytes(pixels: np.ndarray, format: str = "PNG", metadata: Metadata | None = None) -> bytes:
    """Encodes an RGB image losslessly into the bytes of an image file (for stdout).

    Args:
        pixels: (H, W, 3) uint8 array.
        format: "PNG", "BMP", "TIFF" or "WEBP" (case-insensitive); WebP is written lossless.

    Returns:
        The encoded file.

    Raises:
        UsageError: an unknown format.
        UnsupportedError: the format cannot hold this image (WebP is limited to 16383 pixels a side).
    """
    name = format.upper()
    choices = sorted(set(WRITE_FORMATS.values()))
    if name not in choices:
        raise UsageError(f"unknown image format {format!r}; use one of {', '.join(choices)}")
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"expected a (H, W, 3) uint8 array, got {pixels.shape} {pixels.dtype}")
    options: dict[str, object] = {}
    if name == "WEBP":
        options = {"lossless": True, "quality": 100, "method": 4, "exact": True}
    elif name == "TIFF" and features.check("libtiff"):
        options = {"compression": "tiff_deflate"}
    if metadata is not None:
        options.update(save_options(metadata, name)[0])
    out = io.BytesIO()
    try:
        Image.fromarray(np.ascontiguousarray(pixels), mode="RGB").save(out, format=name, **options)
    except (OSError, ValueError) as exc:
        height, width = pixels.shape[:2]
        raise UnsupportedError(f"cannot encode a {width}x{height} image as {name}: {one_line(exc)}") from None
    return out.getvalue()


# ----------------------------------------------------------------------------------------------
# Padding
# ----------------------------------------------------------------------------------------------


def pad_to_multiple(pixels: np.ndarray, multiple: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Pads the bottom and right edges so height and width become multiples of `multiple`.

    Padding replicates the last row and column (np.pad mode="edge"), which costs fewer bits than
    zeros because it adds no edge for the transforms to code. The pipeline records the original
    height and width in the container header, so the decoder crops the padding away with `crop`.

    Args:
        pixels: (H, W) or (H, W, C) array.
        multiple: the model's stride (for example 64); at least 1.

    Returns:
        (padded, (pad_bottom, pad_right)); `padded` is `pixels` itself when no padding is needed.
    """
    if multiple < 1:
        raise ValueError(f"multiple must be at least 1, got {multiple}")
    if pixels.ndim not in (2, 3) or pixels.shape[0] < 1 or pixels.shape[1] < 1:
        raise ValueError(f"expected a non-empty (H, W) or (H, W, C) array, got shape {pixels.shape}")
    height, width = pixels.shape[:2]
    pad_bottom = -height % multiple
    pad_right = -width % multiple
    if pad_bottom == 0 and pad_right == 0:
        return pixels, (0, 0)
    widths = ((0, pad_bottom), (0, pad_right)) + ((0, 0),) * (pixels.ndim - 2)
    return np.pad(pixels, widths, mode="edge"), (pad_bottom, pad_right)


def crop(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Crops the top-left `height` x `width` region (the inverse of `pad_to_multiple`).

    Args:
        pixels: (H, W) or (H, W, C) array with H >= height and W >= width.
        height: rows to keep, at least 1.
        width: columns to keep, at least 1.

    Returns:
        A C-contiguous (height, width, ...) array.
    """
    if not (1 <= height <= pixels.shape[0] and 1 <= width <= pixels.shape[1]):
        raise ValueError(f"cannot crop {height}x{width} from an array of shape {pixels.shape}")
    return np.ascontiguousarray(pixels[:height, :width])


def centre_crop(pixels: np.ndarray, side: int) -> np.ndarray:
    """The central `side` x `side` square of an image (the whole image when a side is not larger),
    C-contiguous: the crops that development scripts fit and time."""
    h, w = pixels.shape[:2]
    if not side or min(h, w) <= side:
        return np.ascontiguousarray(pixels)
    r0, c0 = (h - side) // 2, (w - side) // 2
    return np.ascontiguousarray(pixels[r0:r0 + side, c0:c0 + side])
