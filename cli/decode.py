"""codec decode: bitstreams -> images."""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path
from typing import List, Optional

import typer

from .batch import prepare, raise_if_failed, refuse_existing, run_batch, skip
from .output import Output, write_stdout_bytes
from .options import MAX_THREADS, THREADS_HELP
from .paths import STDIO
from codec.errors import UsageError


def decode(
    inputs: List[str] = typer.Argument(..., help="Bitstreams written by `codec encode`; '-' reads stdin."),
    output: Optional[str] = typer.Option(None, "-o", "--output", help="Output image (.png, .bmp, .tif, .webp), directory (ends with '/'), or '-' for PNG on stdout; for a video: .mkv (FFV1, lossless; the default), .y4m, or frames/%05d.png."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite existing outputs."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, max=MAX_THREADS, help=THREADS_HELP),
    max_pixels: int = typer.Option(268_435_456, "--max-pixels", min=1, help="Refuse bitstreams of larger images."),
    max_dimension: int = typer.Option(1 << 16, "--max-dimension", min=1, help="Refuse widths or heights above this."),
    max_chunk_bytes: int = typer.Option(1 << 30, "--max-chunk-bytes", min=1, help="Refuse files and chunks above this size."),
    max_frames: int = typer.Option(1 << 24, "--max-frames", min=1, help="Video: refuse bitstreams of more frames."),
    frames: Optional[str] = typer.Option(None, "--frames", help="Video: decode frames A:B only (seeks to the GOP that holds A)."),
    salvage: bool = typer.Option(False, "--salvage", help="Video: on damage, keep the frames decoded before it (warning, exit 0)."),
    metadata: str = typer.Option("all", "--metadata", help="Photo metadata the file carries, restored into the image: all, none, or a comma list of exif, icc, xmp (PNG, WebP hold all three; TIFF exif and icc; BMP none)."),
    skip_existing: bool = typer.Option(False, "--skip-existing", help="Leave outputs that exist alone (a rerun decodes only what is missing)."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, max=64, help="Files decoded at once, in processes that each load a model once and share the CPU threads."),
    quiet: bool = typer.Option(False, "--quiet", help="No messages on stderr but warnings and errors."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also say which models loaded and how long that took."),
) -> None:
    """Decompress .bin bitstreams into images (or a video bitstream into a video)."""
    from codec.container import Limits
    from codec.container.chunks import KIND_VIDEO

    from .source import probe

    limits = Limits(max_pixels=max_pixels, max_dimension=max_dimension, max_chunk_bytes=max_chunk_bytes,
                    max_frames=max_frames)
    sources = {}
    if len(inputs) == 1:  # what the input is comes before anything about the output
        source = sources[inputs[0]] = probe(inputs[0], max_chunk_bytes)
        if source.kind == KIND_VIDEO:
            _decode_video(source, output, frames=frames, salvage=salvage, force=force, threads=threads,
                          limits=limits, json_out=json_out)
            return
    if frames is not None or salvage:
        raise UsageError("--frames and --salvage are for video bitstreams")
    from codec.metadata import parse_selection

    try:
        keep = parse_selection(metadata)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    out, outputs = prepare(inputs, output, ".png", json_out=json_out, force=force, threads=threads, what="image",
                           decoded=True)
    _decode_images(list(zip(inputs, outputs)), out, force=force, limits=limits, json_out=json_out, sources=sources,
                   jobs=jobs, keep=keep)


def _decode_video(source, output: str | None, *, frames: str | None, salvage: bool, force: bool,
                  threads: int | None, limits, json_out: bool) -> None:
    """`codec decode CLIP.bin`: one video bitstream into a video file or numbered frames (never stdout)."""
    from .video import decode_video, parse_window

    window = parse_window(frames)
    if output == STDIO or (source.name == STDIO and output is None):
        from codec.container.video import VideoReader

        with source.open() as fp:  # a damaged file is exit 3 before this usage error
            VideoReader(fp, limits)
        raise UsageError("a video is written to a file: give -o FILE (.mkv, .y4m or frames/%05d.png)")
    out, outputs = prepare([source.name], output, ".mkv", json_out=json_out, force=force, threads=threads,
                           what="video", decoded=True)
    if skip(outputs[0], force, out):
        return
    row = decode_video(source, outputs[0], out=out, window=window, salvage=salvage, force=force, limits=limits,
                       json_out=json_out)
    if json_out:
        out.emit({"command": "decode", "kind": "video", **row})


def _decode_images(pairs: list[tuple[str, str]], out: Output, *, force: bool, limits, json_out: bool,
                   sources: dict, jobs: int = 1, keep: frozenset = frozenset()) -> None:
    """`codec decode BITSTREAMS`: each (input, output) pair; each model loads once, failures collected."""
    from codec.io import WRITE_FORMATS

    from codec.atomic import is_stream

    for _, dst in pairs:
        if dst != STDIO and Path(dst).suffix.lower() not in WRITE_FORMATS and not is_stream(Path(dst)):
            raise UsageError(f"cannot write {dst}: choose an output ending in {', '.join(sorted(WRITE_FORMATS))}")
    load = _TimedLoad()
    one = functools.partial(_decode_image, out=out, force=force, limits=limits, load=load, sources=sources, keep=keep)
    worker = functools.partial(_decode_worker, json_out, force=force, limits=limits, keep=keep)
    result = run_batch(pairs, one, out, "decoding", jobs=jobs, worker=worker)
    out.detail(f"models loaded in {load.seconds:.2f} s")
    if json_out:
        out.emit({"command": "decode", "load_seconds": round(load.seconds, 4), **result.report()})
    raise_if_failed(result, len(pairs))


def _decode_worker(json_out: bool, src: str, dst: str, **options) -> dict:
    """`_decode_image` in a worker process of `--jobs` (models load once per process, cached)."""
    return _decode_image(src, dst, out=Output(json_out), load=_TimedLoad(), sources={}, **options)


class _TimedLoad:
    """Loads the model a header names (cached: each model loads once per run) and adds up the time."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self, model_id: str):
        from codec.weights import load_model

        t0 = time.perf_counter()
        loaded = load_model(model_id)
        self.seconds += time.perf_counter() - t0
        return loaded


def _decode_image(src: str, dst: str, *, out: Output, force: bool, limits, load: _TimedLoad, sources: dict,
                  keep: frozenset = frozenset()) -> dict:
    """One bitstream (or stdin) to one image (or PNG on stdout); returns its row of the --json report.
    `sources`: inputs already probed (read once: stdin and other streams hold their bytes); `keep`:
    the metadata kinds restored (codec.metadata)."""
    from codec.io import WRITE_FORMATS, encode_image_bytes, write_image
    from codec.pipeline.files import decode_file

    from .source import probe

    max_bytes = limits.max_chunk_bytes
    source = sources.get(src) or probe(src, max_bytes)
    refuse_existing(dst, force)
    data = source.read(max_bytes)
    image_format = "PNG" if dst == STDIO else WRITE_FORMATS.get(Path(dst).suffix.lower(), "PNG")
    dec = decode_file(data, load, limits, keep=keep, image_format=image_format)
    if dec.dropped:
        out.warn(f"{dst}: {image_format} cannot hold the file's {', '.join(dec.dropped)} metadata (PNG and WebP hold all)")
    if dst == STDIO:
        write_stdout_bytes(encode_image_bytes(dec.pixels, "PNG", dec.metadata))
    else:
        write_image(dec.pixels, dst, force=force, metadata=dec.metadata)
    h, w = dec.pixels.shape[:2]
    row = {
        "input": src, "output": dst, "width": w, "height": h, "bytes": len(data),
        "bpp": len(data) * 8 / (h * w), "model_id": dec.model_id, "decode_seconds": round(dec.seconds, 4),
        "input_bytes": len(data), "output_bytes": os.path.getsize(dst) if dst != STDIO and os.path.isfile(dst) else 0,
    }
    out.say(f"{src} -> {dst}: {w}x{h}, {row['bpp']:.4f} bpp, {dec.seconds:.2f} s")
    return row
