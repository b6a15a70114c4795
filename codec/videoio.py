"""Video files in and out: PyAV decoding to 8-bit RGB frames, lossless FFV1 output, frame folders.

Data flow:

    clip.mp4 | frames/ | 'frames/*.png' | 'frames/%05d.png'
        ─► open_video ─► MediaReader ─► (H, W, 3) uint8 RGB frames, one at a time ─► pipeline
    pipeline ─► (H, W, 3) uint8 frames ─► MediaWriter.write ... close()
        ─► out.mkv (FFV1, lossless) | out.y4m (YUV 4:4:4, not lossless) | out/%05d.png (one file a frame)

Reading streams: a reader holds the frame it returns and at most one decoded frame ahead, so a
long clip costs the memory of a frame or two. Writing is atomic: .mkv and .y4m go to a temporary
file beside the destination and are moved into place only by `MediaWriter.close`, so the
destination is never seen half written; numbered images are each written with
`codec.atomic.atomic_write`.

Every failure a user can cause becomes one of the errors in `codec.errors` with a one-line
message that names the file (and the frame); no exception of PyAV (`av.error.*`) escapes.
Like `codec.io`, this module never imports torch.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import weakref
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import av
import av.error
import numpy as np
from PIL import Image

from codec.atomic import (
    atomic_write,
    check_destination,
    create_temp,
    fsync_directory,
    move_into_place,
    one_line,
    os_error_text,
    write_error,
)
from codec.container.video import FPS_TERM_LIMIT
from codec.errors import FormatError, InputError, UnsupportedError, UsageError
from codec.io import DEFAULT_MAX_PIXELS, WRITE_FORMATS, _limit_error, encode_image_bytes, read_image

__all__ = [
    "DEFAULT_FPS",
    "VIDEO_EXTENSIONS",
    "VideoInfo",
    "MediaReader",
    "MediaWriter",
    "is_video_file",
    "is_video_source",
    "open_video",
    "open_writer",
]

VIDEO_EXTENSIONS: frozenset[str] = frozenset({
    ".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".y4m", ".mpg", ".mpeg", ".ts",
    ".m2ts", ".mts", ".ogv", ".wmv", ".flv", ".3gp",
})
"""Suffixes (lower case, with the dot) that `is_video_source` takes for video files. GIF is not one:
codec reads a GIF as an image (and refuses it when animated)."""

DEFAULT_FPS = Fraction(25)
"""Frame rate of frame folders and patterns, and of files that declare none, unless `fps` is given."""

FFV1_PIX_FMT = "bgr0"
"""Pixel format of .mkv output: 8-bit RGB, the only 8-bit RGB format FFmpeg's FFV1 encoder takes
(gbrp needs 9 bits or more). FFV1 codes it losslessly, so decoding gives back the input bit for bit."""

FFV1_OPTIONS = {"level": "3", "slicecrc": "1", "g": "1"}
"""FFV1 version 3 with a CRC in every slice and every frame a keyframe (the archival settings)."""

Y4M_PIX_FMT = "yuv444p"
"""Pixel format of .y4m output: full-resolution chroma, BT.601 limited range (untagged Y4M's usual reading)."""

# A printf integer field such as %d, %5d or %05d; %% is a literal percent sign.
_PRINTF_TOKEN = re.compile(r"%(%|0?\d*d)")

# Exceptions that PyAV raises for damaged or unreadable media; none of them means a bug in codec.
_AV_ERRORS = (av.error.FFmpegError, OSError, ValueError, EOFError)


# ----------------------------------------------------------------------------------------------
# Sources
# ----------------------------------------------------------------------------------------------


def is_video_file(source: str | Path) -> bool:
    """Whether `source` names a video file by its suffix (`VIDEO_EXTENSIONS`), existing or not: the
    CLI codes such an input as a video without being told; a folder, glob or %05d pattern of frames
    is a video only with `codec encode --video` (otherwise a folder or glob is images)."""
    return str(source) != "-" and Path(str(source)).suffix.lower() in VIDEO_EXTENSIONS


def is_video_source(source: str | Path) -> bool:
    """Tells whether `source` names a video rather than a single image.

    True for a path with a video suffix (`VIDEO_EXTENSIONS`, whether or not it exists), a
    directory (read as a folder of frames), and a pattern holding a glob character (`* ? [`) or a
    printf field such as `%05d`. An existing file whose suffix is not a video suffix is an image,
    even when its name holds `[` or `%d`.

    Args:
        source: a path or pattern as the user typed it; `-` (stdin) is not a video.

    Returns:
        Whether the CLI should code `source` as a video.
    """
    text = str(source)
    if text == "-":
        return False
    path = Path(text)
    if path.suffix.lower() in VIDEO_EXTENSIONS:
        return True
    if path.is_dir():
        return True
    if path.is_file():
        return False
    return _printf_field(text) is not None or glob.has_magic(text)


@dataclass(frozen=True)
class VideoInfo:
    """What a reader will deliver.

    Attributes:
        width: frame width in pixels.
        height: frame height in pixels.
        fps: frame rate; the container's average rate, `DEFAULT_FPS` for frame folders, or the
            `fps` given to `open_video`.
        frames: how many frames the reader yields (within the requested window) when known
            cheaply, from the container's frame count or the number of files; else None.
    """

    width: int
    height: int
    fps: Fraction
    frames: int | None


class MediaReader:
    """An iterator over the (H, W, 3) uint8 RGB frames of a video file or a frame folder, in display
    order (media in; the codec's own bitstreams are read by `codec.container.video.VideoReader`).

    Made by `open_video`. Each frame is a fresh C-contiguous, writable array. The reader is
    single pass, closes its file when exhausted, and is a context manager:

        with open_video("clip.mp4", frames=(0, 10)) as video:
            for frame in video:  # (H, W, 3) uint8
                ...

    Attributes:
        info: size, frame rate and frame count.
        source: the source as given to `open_video`, for messages.
    """

    def __init__(self, info: VideoInfo, source: str, first: tuple[str, np.ndarray],
                 rest: Iterator[tuple[str, np.ndarray]], on_close: Callable[[], None]) -> None:
        # Private: use open_video. `first` is the already decoded first frame of the window, as
        # (name for messages, pixels); `rest` yields the following ones; `on_close` frees the file.
        self.info = info
        self.source = source
        self._first_name = first[0]
        self._pending: np.ndarray | None = first[1]
        self._rest = rest
        self._on_close: Callable[[], None] | None = on_close

    def __iter__(self) -> Iterator[np.ndarray]:
        return self

    def __next__(self) -> np.ndarray:
        if self._pending is not None:
            frame, self._pending = self._pending, None
            return frame
        if self._on_close is None:
            raise StopIteration
        try:
            name, frame = next(self._rest)
        except BaseException:  # StopIteration at the end, or an error: either way the file is done
            self.close()
            raise
        if frame.shape[:2] != (self.info.height, self.info.width):
            self.close()
            raise InputError(f"{self.source}: {name} is {frame.shape[1]}x{frame.shape[0]}, but "
                             f"{self._first_name} is {self.info.width}x{self.info.height}; "
                             f"every frame of a video must have the same size")
        return frame

    def close(self) -> None:
        """Releases the file; later iteration yields nothing. Safe to call twice."""
        self._pending = None
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            with contextlib.suppress(*_AV_ERRORS):
                on_close()

    def __enter__(self) -> MediaReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_video(source: str | Path, *, frames: tuple[int, int | None] | None = None,
               fps: Fraction | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> MediaReader:
    """Opens a video, a folder of frames or a frame pattern for reading RGB frames.

    Sources, tried in this order:
        * a directory: its image files (any suffix Pillow opens; hidden files skipped), sorted by
          name with digit runs compared as numbers (`f2.png` before `f10.png`);
        * an existing file: a video that FFmpeg (PyAV) decodes, such as .mp4, .mkv, .avi, .y4m;
          frames are converted with `frame.to_ndarray(format="rgb24")`, honouring the colour space
          and range the stream declares;
        * a pattern with a printf field, `frames/%05d.png`: files numbered consecutively from 0,
          or from 1 when there is no 0;
        * a glob, `frames/*.png`: the matching files, sorted as for a directory.
    Image frames are read with `codec.io.read_image` (EXIF orientation applied, opaque alpha
    dropped, real alpha refused).

    The first frame of the window is decoded here, so a file that holds no decodable frame
    fails at once rather than in the middle of a pipeline.

    Args:
        source: the path or pattern.
        frames: (a, b) to read frames a..b-1 (0-based; b None reads to the end). Frames before a
            are decoded and dropped; decoding stops after frame b-1.
        fps: frame rate to report in `info.fps`, overriding the container's (or `DEFAULT_FPS`).
        max_pixels: largest accepted width x height of a frame (a decompression-bomb guard).

    Returns:
        A reader; close it (or use it in a `with` block) when done early.

    Raises:
        UsageError: a malformed window or frame rate.
        InputError: a missing or unreadable source, a pattern or folder without frames, a window
            beyond the end, or a frame whose size differs from the first (raised while iterating).
        UnsupportedError: not a video FFmpeg can read, no video stream, no decoder, or no frame.
        LimitError: a frame larger than `max_pixels` (the message names --max-pixels).
        FormatError: corrupt data in a frame (also while iterating).
    """
    start, stop = _check_window(frames)
    rate = None if fps is None else _check_fps(fps)
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be positive, got {max_pixels}")
    label = str(source)
    path = Path(source)
    if path.is_dir():
        paths = _folder_frames(path, label)
    elif path.is_file():
        return _open_file(path, label, start, stop, rate, max_pixels)
    elif _printf_field(label) is not None:
        paths = _printf_frames(label)
    elif glob.has_magic(label):
        paths = _glob_frames(label)
    elif os.path.lexists(path):
        raise InputError(f"{label} is not a regular file or directory")
    else:
        raise InputError(f"{label}: no such file or directory")
    return _open_images(paths, label, start, stop, rate, max_pixels)


def _check_window(frames: tuple[int, int | None] | None) -> tuple[int, int | None]:
    if frames is None:
        return 0, None
    try:
        start, stop = frames
    except (TypeError, ValueError):
        raise UsageError(f"frames must be a pair (first, end), got {frames!r}") from None
    if not isinstance(start, int) or start < 0:
        raise UsageError(f"the first frame must be an integer of at least 0, got {start!r}")
    if stop is not None and (not isinstance(stop, int) or stop <= start):
        raise UsageError(f"the end frame must be an integer above the first ({start}), got {stop!r}")
    return start, stop


def _check_fps(fps: Fraction | int | float | str) -> Fraction:
    try:
        rate = Fraction(fps) if not isinstance(fps, float) else Fraction(fps).limit_denominator(1_000_000)
    except (TypeError, ValueError, ZeroDivisionError):
        raise UsageError(f"frame rate must be a number, got {fps!r}") from None
    if rate <= 0:
        raise UsageError(f"frame rate must be positive, got {fps}")
    if rate.numerator >= FPS_TERM_LIMIT or rate.denominator >= FPS_TERM_LIMIT:  # FFmpeg's AVRational is int32
        raise UsageError(f"frame rate {rate} needs a numerator and a denominator below 2^31")
    return rate


def _window_size(total: int | None, start: int, stop: int | None) -> int | None:
    """Frames in [start, stop) of a source of `total` frames, when `total` is known."""
    if total is None:
        return None
    end = total if stop is None else min(stop, total)
    return max(0, end - start)


def _empty_window(label: str, total: int | None, start: int, stop: int | None) -> InputError:
    window = f"{start}..{'end' if stop is None else stop - 1}"
    count = "" if total is None else f" ({total} in all)"
    return InputError(f"{label} has no frame in the requested window {window}{count}")


# ----------------------------------------------------------------------------------------------
# Video files (PyAV)
# ----------------------------------------------------------------------------------------------


def _open_file(path: Path, label: str, start: int, stop: int | None, fps: Fraction | None,
               max_pixels: int) -> MediaReader:
    """Opens a video file with PyAV, checks its first stream, and decodes the first wanted frame."""
    try:
        # An absolute path keeps FFmpeg from reading "name:rest" as a protocol such as "http:".
        container = av.open(os.path.abspath(path), mode="r", metadata_errors="ignore")
    except FileNotFoundError:
        raise InputError(f"{label}: no such file") from None
    except PermissionError:
        raise InputError(f"{label}: permission denied") from None
    except _AV_ERRORS as exc:
        raise UnsupportedError(f"{label} is not a video file that FFmpeg can read "
                               f"({_av_message(exc)})") from None
    try:
        if not container.streams.video:
            raise UnsupportedError(f"{label} holds no video stream")
        stream = container.streams.video[0]
        context = stream.codec_context
        if context is None or context.codec is None:
            raise UnsupportedError(f"{label}: no decoder for its video codec")
        width, height = int(context.width or 0), int(context.height or 0)
        if width * height > max_pixels:  # declared size, before any frame is decoded
            raise _limit_error(label, f"{width}x{height} = {width * height} pixels a frame", max_pixels)
        rate = fps or _stream_rate(stream)
        total = int(stream.frames or 0) or None
        rest = _decode_frames(container, stream, label, start, stop)
        try:
            first = next(rest)
        except StopIteration:
            if start == 0:
                raise UnsupportedError(f"{label}: its video stream holds no frame that can be decoded") from None
            raise _empty_window(label, total, start, stop) from None
    except BaseException:
        with contextlib.suppress(*_AV_ERRORS):
            container.close()
        raise
    pixels = first[1]
    height, width = pixels.shape[:2]
    if width * height > max_pixels:  # the declared size may have been missing or wrong
        rest.close()
        raise _limit_error(label, f"{width}x{height} = {width * height} pixels a frame", max_pixels)
    count = _window_size(total, start, stop) or None  # 0 would contradict the decoded first frame
    info = VideoInfo(width=width, height=height, fps=rate, frames=count)
    return MediaReader(info, label, first, rest, rest.close)


def _stream_rate(stream: av.video.stream.VideoStream) -> Fraction:
    """The stream's average frame rate, else FFmpeg's guess, else `DEFAULT_FPS`."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return Fraction(rate)
    return DEFAULT_FPS


def _decode_frames(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                   label: str, start: int, stop: int | None) -> Iterator[tuple[str, np.ndarray]]:
    """Yields ("frame N", (H, W, 3) uint8) for frames start..stop-1; closes the file at the end."""
    index = 0
    try:
        try:
            for frame in container.decode(stream):
                if index >= start:
                    pixels = frame.to_ndarray(format="rgb24")  # (H, W, 3), may view the frame
                    yield f"frame {index}", np.array(pixels, dtype=np.uint8, order="C", copy=True)
                index += 1
                if stop is not None and index >= stop:
                    return
        except _AV_ERRORS as exc:
            raise FormatError(f"{label}: corrupt or undecodable video data at frame {index} "
                              f"({_av_message(exc)})") from None
    finally:
        with contextlib.suppress(*_AV_ERRORS):
            container.close()


def _av_message(exc: BaseException) -> str:
    """PyAV's message without the file name and errno it repeats ("[Errno 1094995529] ...: 'x'")."""
    text = getattr(exc, "strerror", None) if isinstance(exc, av.error.FFmpegError) else None
    return one_line(Exception(text)) if text else one_line(exc)


# ----------------------------------------------------------------------------------------------
# Frame folders and patterns (Pillow via codec.io)
# ----------------------------------------------------------------------------------------------


def _open_images(paths: list[Path], label: str, start: int, stop: int | None, fps: Fraction | None,
                 max_pixels: int) -> MediaReader:
    """Reads the first image of the window now and the others lazily, one at a time."""
    window = paths[start:stop]
    if not window:
        raise _empty_window(label, len(paths), start, stop)
    first = read_image(window[0], max_pixels=max_pixels).pixels
    height, width = first.shape[:2]
    info = VideoInfo(width=width, height=height, fps=fps or DEFAULT_FPS, frames=len(window))
    rest = ((str(p), read_image(p, max_pixels=max_pixels).pixels) for p in window[1:])
    return MediaReader(info, label, (str(window[0]), first), rest, rest.close)


def _natural_key(path: Path) -> list[object]:
    """Sort key comparing digit runs as numbers: frame2.png before frame10.png."""
    parts = re.split(r"(\d+)", path.name)
    return [(0, int(p), p) if p.isdigit() else (1, 0, p) for p in parts] + [(2, 0, str(path))]


def _image_suffixes() -> frozenset[str]:
    """Suffixes of the formats Pillow can open."""
    Image.init()
    return frozenset(ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)


def _folder_frames(folder: Path, label: str) -> list[Path]:
    suffixes = _image_suffixes()
    try:
        entries = list(folder.iterdir())
    except OSError as exc:
        raise InputError(f"cannot list {label}: {os_error_text(exc)}") from None
    paths = [p for p in entries
             if not p.name.startswith(".") and p.suffix.lower() in suffixes and p.is_file()]
    if not paths:
        raise InputError(f"{label} is a folder without image files (frames); "
                         f"give a video file, or a folder of PNG/JPEG frames")
    return sorted(paths, key=_natural_key)


def _glob_frames(pattern: str) -> list[Path]:
    paths = [Path(p) for p in glob.glob(pattern) if os.path.isfile(p)]
    if not paths:
        raise InputError(f"no file matches {pattern}")
    return sorted(paths, key=_natural_key)


def _printf_field(text: str) -> re.Match[str] | None:
    """The one printf integer field in `text` (such as %05d), or None when there is none."""
    fields = [m for m in _PRINTF_TOKEN.finditer(text) if m.group(1) != "%"]
    return fields[0] if fields else None


def _printf_name(pattern: str, number: int) -> str:
    """`pattern` with its printf field replaced by `number` and each %% by %."""
    fields = [m for m in _PRINTF_TOKEN.finditer(pattern) if m.group(1) != "%"]
    if len(fields) != 1:
        raise UsageError(f"pattern {pattern} must hold exactly one number field such as %05d, "
                         f"not {len(fields)}")

    def substitute(match: re.Match[str]) -> str:
        spec = match.group(1)
        return "%" if spec == "%" else f"{number:{spec[:-1]}d}"

    return _PRINTF_TOKEN.sub(substitute, pattern)


def _printf_frames(pattern: str) -> list[Path]:
    """Files pattern % 0, 1, 2 ... (or from 1), up to the first missing number."""
    first = 0 if os.path.isfile(_printf_name(pattern, 0)) else 1
    paths = []
    while os.path.isfile(name := _printf_name(pattern, first + len(paths))):
        paths.append(Path(name))
    if not paths:
        raise InputError(f"no file matches {pattern}: neither {_printf_name(pattern, 0)} "
                         f"nor {_printf_name(pattern, 1)} exists")
    return paths


# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------


class MediaWriter:
    """Writes (H, W, 3) uint8 RGB frames to a video file or numbered images, all or nothing (media
    out; the codec's own bitstreams are written by `codec.container.video.VideoWriter`).

    The destination picks the format:
        * `.mkv`: FFV1 (version 3, lossless) in Matroska, pixel format bgr0; reading it back with
          `open_video` gives exactly the frames written. The default lossless output.
        * `.y4m`: YUV4MPEG2, 4:4:4, BT.601 limited range. Y4M holds YUV, so the RGB -> YUV
          conversion is NOT lossless (samples come back within about 2 levels).
        * a printf pattern such as `frames/%05d.png`: one lossless image per frame, numbered from
          0, in any of `codec.io.WRITE_FORMATS` (PNG, BMP, TIFF, WebP); each file is written
          atomically with `codec.atomic.atomic_write`.

    Video files go to a temporary file beside `dest` that `close` flushes, fsyncs and moves into
    place; `abort` (or an exception inside a `with` block) removes it, so `dest` is either
    untouched or complete. Numbered images appear one by one; `abort` removes those written.
    Without `force` an existing destination (any file the pattern names) is refused when the
    writer is made, before any work is spent, and again when each file is moved into place.

        with open_writer("out.mkv", width, height, fps) as out:
            for frame in frames:
                out.write(frame)
        # committed here; an exception in the block would have discarded everything

    Attributes:
        dest: the destination as given.
        width, height: the frame size every written frame must have.
        fps: frame rate recorded in the file (not used for numbered images).
    """

    def __init__(self, dest: str | Path, width: int, height: int, fps: Fraction, *,
                 force: bool = False) -> None:
        for name, value in (("width", width), ("height", height)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.dest = dest
        self.width, self.height = int(width), int(height)
        self.fps = _check_fps(fps)
        self._count = 0
        self._state = "open"  # -> "closed" | "aborted"
        text = str(dest)
        suffix = Path(text).suffix.lower()
        self._sink: _ImageSink | _AvSink
        if _printf_field(text) is not None:
            self._sink = _ImageSink(text, force)
        elif suffix == ".mkv":
            self._sink = _AvSink(Path(text), "matroska", "ffv1", FFV1_PIX_FMT, FFV1_OPTIONS,
                                 self.width, self.height, self.fps, force)
        elif suffix == ".y4m":
            self._sink = _AvSink(Path(text), "yuv4mpegpipe", "rawvideo", Y4M_PIX_FMT, {},
                                 self.width, self.height, self.fps, force)
        else:
            raise UsageError(f"cannot write a video to {text}: use a .mkv file (lossless FFV1), "
                             f"a .y4m file (YUV 4:4:4, not lossless) or a numbered image pattern "
                             f"such as frames/%05d.png")

    def write(self, frame: np.ndarray) -> None:
        """Appends one frame.

        Args:
            frame: (height, width, 3) uint8 RGB array.

        Raises:
            ValueError: a frame of another shape or type, or a writer already closed.
            InputError, OutputError: the write failed; everything written is discarded.
        """
        if self._state != "open":
            raise ValueError(f"cannot write to a MediaWriter that is {self._state}")
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.shape != (self.height, self.width, 3):
            raise ValueError(f"expected a ({self.height}, {self.width}, 3) uint8 frame, "
                             f"got {frame.shape} {frame.dtype}")
        try:
            self._sink.write(np.ascontiguousarray(frame), self._count)
        except BaseException:
            self.abort()
            raise
        self._count += 1

    def close(self) -> int:
        """Finishes and commits the output. Safe to call twice.

        Returns:
            The number of frames written.

        Raises:
            ValueError: the writer was aborted.
            InputError: the destination appeared meanwhile (without force) or its folder vanished.
            OutputError: the write failed; nothing is left behind.
        """
        if self._state == "aborted":
            raise ValueError("cannot close a MediaWriter that was aborted")
        if self._state == "open":
            try:
                self._sink.commit()
            except BaseException:
                self.abort()
                raise
            self._state = "closed"
        return self._count

    def abort(self) -> None:
        """Discards everything written (no effect after a successful close)."""
        if self._state != "open":
            return
        self._state = "aborted"
        self._sink.abort()

    def __enter__(self) -> MediaWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is not None:
            self.abort()
        elif self._state == "open":
            self.close()


def open_writer(dest: str | Path, width: int, height: int, fps: Fraction, *,
                force: bool = False) -> MediaWriter:
    """Makes a `MediaWriter` (see there for the formats); the mirror of `open_video`."""
    return MediaWriter(dest, width, height, fps, force=force)


class _AvSink:
    """One video stream muxed by PyAV into a temporary file that commit() moves into place."""

    def __init__(self, dest: Path, muxer: str, codec: str, pix_fmt: str, options: dict[str, str],
                 width: int, height: int, fps: Fraction, force: bool) -> None:
        self.dest, self.force, self.pix_fmt = dest, force, pix_fmt
        check_destination(dest, force)  # fail before spending time on coding
        self.tmp, self._lock_fd = create_temp(dest.parent, dest)  # FFmpeg writes by name; we hold the lock
        # Removes the temporary file if the writer is dropped without close() or abort().
        self._finalizer = weakref.finalize(self, _discard_temp, self.tmp, self._lock_fd)
        self.container: av.container.OutputContainer | None = None
        try:
            self.container = av.open(os.path.abspath(self.tmp), mode="w", format=muxer)
            self.stream = self.container.add_stream(codec, rate=fps, options=options)
            self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, pix_fmt
        except _AV_ERRORS as exc:
            self.abort()
            raise self._error(exc) from None

    def write(self, pixels: np.ndarray, index: int) -> None:
        assert self.container is not None
        try:
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(format=self.pix_fmt)
            frame.pts = index  # in units of 1/fps, the stream's codec time base
            for packet in self.stream.encode(frame):
                self.container.mux(packet)
        except _AV_ERRORS as exc:
            raise self._error(exc) from None

    def commit(self) -> None:
        assert self.container is not None
        try:
            for packet in self.stream.encode():  # flush the encoder
                self.container.mux(packet)
            self.container.close()
            self.container = None
            fd = os.open(self.tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except _AV_ERRORS as exc:
            raise self._error(exc) from None
        check_destination(self.dest, self.force)
        move_into_place(self.tmp, self.dest, self.force)
        self._finalizer.detach()
        os.close(self._lock_fd)
        fsync_directory(self.dest.parent)

    def abort(self) -> None:
        if self.container is not None:
            with contextlib.suppress(*_AV_ERRORS):
                self.container.close()
            self.container = None
        self._finalizer()  # removes the temporary file and drops its lock, once

    def _error(self, exc: BaseException) -> Exception:
        if isinstance(exc, OSError) and exc.errno is not None and 0 < exc.errno < 4096:
            return write_error(self.dest, exc)
        return UnsupportedError(f"cannot write {self.dest}: {_av_message(exc)}")


class _ImageSink:
    """Numbered image files, each written atomically; abort() removes those written."""

    def __init__(self, pattern: str, force: bool) -> None:
        self.pattern, self.force = pattern, force
        suffix = Path(pattern).suffix.lower()
        self.format = WRITE_FORMATS.get(suffix)
        if self.format is None:
            raise UsageError(f"cannot tell the image format of {pattern} from its suffix "
                             f"{suffix or '(none)'!r}; use one of {', '.join(WRITE_FORMATS)}")
        first = Path(_printf_name(pattern, 0))
        check_destination(first, force)
        if not force:
            existing = _printf_matches(pattern)
            if existing:
                raise InputError(f"{existing[0]} exists; use --force to overwrite")
        self.written: list[Path] = []

    def write(self, pixels: np.ndarray, index: int) -> None:
        path = Path(_printf_name(self.pattern, index))
        atomic_write(path, encode_image_bytes(pixels, self.format), force=self.force)
        self.written.append(path)

    def commit(self) -> None:
        pass

    def abort(self) -> None:
        for path in self.written:
            _remove_quietly(path)
        self.written.clear()


def _printf_matches(pattern: str) -> list[str]:
    """Existing files that `pattern` could name with some number, sorted."""
    field = _printf_field(pattern)
    assert field is not None
    head, tail = pattern[:field.start()], pattern[field.end():]
    literal = lambda part: part.replace("%%", "%")  # noqa: E731
    candidates = glob.glob(glob.escape(literal(head)) + "*" + glob.escape(literal(tail)))
    number = re.compile(re.escape(literal(head)) + r" *\d+" + re.escape(literal(tail)))
    return sorted(p for p in candidates if number.fullmatch(p))


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _discard_temp(path: Path, lock_fd: int) -> None:
    """Removes a temporary file, then closes the descriptor that holds its lock."""
    _remove_quietly(path)
    os.close(lock_fd)
