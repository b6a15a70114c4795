"""The video side of `codec encode`, `codec decode` and `codec info` (VCT models).

`codec encode clip.mp4` (any PyAV-readable video, .y4m, a folder, glob or printf pattern of frames)
streams frames through the encoder into a temporary file that appears at the output only complete;
`codec decode clip.bin` streams decoded frames into a lossless video (.mkv FFV1 by default, .y4m, or
`-o frames/%05d.png`). Memory holds a couple of frames, never the clip.
"""

from __future__ import annotations

import contextlib
import time
from fractions import Fraction

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from .output import Output
from codec.errors import UsageError


def parse_window(text: str | None) -> tuple[int, int | None] | None:
    """'A:B' (frames A..B-1), 'A:' or ':B' -> (A, B or None)."""
    if text is None:
        return None
    a, sep, b = text.partition(":")
    try:
        start = int(a) if a.strip() else 0
        stop = int(b) if b.strip() else None
    except ValueError:
        raise UsageError(f"--frames takes A:B (frame numbers, B excluded), got {text!r}") from None
    if not sep or start < 0 or (stop is not None and stop <= start):
        raise UsageError(f"--frames takes A:B with 0 <= A < B, got {text!r}")
    return start, stop


def parse_fps(text: str | None) -> Fraction | None:
    if text is None:
        return None
    try:
        fps = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise UsageError(f"--fps takes a number or a fraction such as 30000/1001, got {text!r}") from None
    if fps <= 0 or fps > 1000:
        raise UsageError(f"--fps must be within (0, 1000], got {text}")
    from codec.container.video import FPS_TERM_LIMIT

    if fps.numerator >= FPS_TERM_LIMIT or fps.denominator >= FPS_TERM_LIMIT:
        raise UsageError(f"--fps takes a numerator and a denominator below 2^31 (as video files hold them), "
                         f"got {text}")
    return fps


@contextlib.contextmanager
def frame_progress(out: Output, total: int | None, what: str):
    """A progress bar with frames per second and ETA on stderr (terminal only, not under --json).
    Yields advance()."""
    if out.json_mode or out.quiet or not out.err.is_terminal:
        yield lambda: None
        return
    bar = Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[fps]} fps"),
                   TimeRemainingColumn(), console=out.err, transient=True)
    t0 = time.perf_counter()
    with bar:
        task = bar.add_task(what, total=total, fps="-")
        done = 0

        def advance() -> None:
            nonlocal done
            done += 1
            bar.update(task, advance=1, fps=f"{done / max(time.perf_counter() - t0, 1e-9):.2f}")

        yield advance


def encode_video(src: str, dst: str, *, out: Output, model: str | None, quality: float | None, step: float | None,
                 gop: int, window: tuple[int, int | None] | None, fps: Fraction | None, force: bool,
                 max_pixels: int, json_out: bool, memory: int = 0) -> dict:
    from codec.atomic import atomic_file
    from codec.pipeline.video import compress_video, load_video_model
    from codec.videoio import open_video

    t0 = time.perf_counter()
    loaded = load_video_model(model)
    load_seconds = time.perf_counter() - t0
    with open_video(src, frames=window, fps=fps, max_pixels=max_pixels) as reader:
        info = reader.info
        with frame_progress(out, info.frames, "encoding") as advance, atomic_file(dst, force=force) as fp:
            try:
                stats = compress_video(loaded, reader, fp, width=info.width, height=info.height, fps=info.fps,
                                       quality=quality, step=1.0 if step is None else step, gop=gop,
                                       memory=memory, on_frame=lambda *_: advance())
            except ValueError as exc:
                raise UsageError(str(exc)) from None
    pixels = info.width * info.height * stats.frames
    row = {"input": src, "output": dst, "width": info.width, "height": info.height, "frames": stats.frames,
           "fps": str(info.fps), "gop": gop, "memory": memory, "intra_frames": stats.intra, "bytes": stats.bytes,
           "bpp": stats.bytes * 8 / pixels, "encode_seconds": round(stats.seconds, 3),
           "encode_fps": round(stats.frames / max(stats.seconds, 1e-9), 3), "model_id": loaded.model_id,
           "load_seconds": round(load_seconds, 4)}
    out.say(f"{src} -> {dst}: {stats.frames} frames {info.width}x{info.height} @ {info.fps} fps, {stats.bytes} bytes, "
            f"{row['bpp']:.4f} bpp, {stats.intra} intra, {row['encode_fps']:.2f} frames/s")
    return row


def decode_video(source, dst: str, *, out: Output, window: tuple[int, int | None] | None, salvage: bool,
                 force: bool, limits, json_out: bool) -> dict:
    """`source`: a probed video bitstream (cli.source.Bitstream)."""
    from codec.pipeline.video import VideoDecoder
    from codec.videoio import open_writer

    src = source.name
    with source.open() as fp:
        t0 = time.perf_counter()
        dec = VideoDecoder(fp, None, limits)
        load_seconds = time.perf_counter() - t0
        h = dec.header
        start, stop = window or (0, None)
        total = None
        if stop is not None:
            total = stop - start
        frames = 0
        t1 = time.perf_counter()
        with frame_progress(out, total, "decoding") as advance, \
                open_writer(dst, h.width, h.height, dec.video.fps, force=force) as writer:
            for _, pixels in dec.frames(start, stop, salvage=salvage):
                writer.write(pixels)
                frames += 1
                advance()
            if frames == 0:
                raise UsageError(f"no frame decoded from {src}" + (f": {dec.damage}" if dec.damage else ""))
        seconds = time.perf_counter() - t1
        size = fp.seek(0, 2)
    if dec.damage:
        out.warn(f"{src}: {dec.damage}; wrote the {frames} frames before it (--salvage)")
    row = {"input": src, "output": dst, "width": h.width, "height": h.height, "frames": frames,
           "first_frame": start, "fps": str(dec.video.fps), "bytes": size, "model_id": h.model_id,
           "decode_seconds": round(seconds, 3), "decode_fps": round(frames / max(seconds, 1e-9), 3),
           "load_seconds": round(load_seconds, 4), "damage": dec.damage}
    out.say(f"{src} -> {dst}: {frames} frames {h.width}x{h.height}, {row['decode_fps']:.2f} frames/s")
    return row


def video_info(source, limits) -> dict:
    """Header, VHDR, index and a per-frame table (mode, bytes) of a probed video bitstream
    (cli.source.Bitstream); every CRC checked."""
    from codec.container.video import MODE_NAMES, VideoReader

    with source.open() as fp:
        r = VideoReader(fp, limits)
        frames = [{"frame": f.number, "mode": MODE_NAMES[f.mode], "bytes": f.size,
                   "offset": f.offset} for f in r.frames()]
        index = r.index()
        h = r.header
    if index.frames != len(frames):
        from codec.errors import FormatError

        raise FormatError(f"corrupt bitstream: the index lists {index.frames} frames, the file holds {len(frames)}")
    return {
        "format": "codec container (video)", "writer_version": r.writer_version,
        "min_reader_version": r.min_reader_version, "size": r.size,
        "header": {"kind": "video", "width": h.width, "height": h.height, "pad_right": h.pad_right,
                   "pad_bottom": h.pad_bottom, "quality": h.quality, "model_id": h.model_id,
                   "weights_sha256_prefix": h.weights_sha256_prefix.hex(), "coder": h.coder,
                   "coder_version": h.coder_version},
        "fps": str(r.video.fps), "gop": r.video.gop, "memory": r.video.memory, "frames": len(frames),
        "gops": [{"first_frame": f, "offset": o} for f, o in index.gops],
        "bpp": r.size * 8 / max(1, h.width * h.height * len(frames)), "meta": r.meta, "frame_table": frames,
    }
