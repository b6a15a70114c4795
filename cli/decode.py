"""codec decode: bitstreams -> images."""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import List, Optional

import typer

from cli.batch import mean_bpp, prepare, raise_if_failed, refuse_existing, run_batch
from cli.output import Output, read_stdin_bytes, write_stdout_bytes
from cli.paths import STDIO
from codec.errors import UsageError


def decode(
    inputs: List[str] = typer.Argument(..., help="Bitstreams written by `codec encode`; '-' reads stdin."),
    output: Optional[str] = typer.Option(None, "-o", "--output", help="Output image (.png, .bmp, .tif, .webp), directory (ends with '/'), or '-' for PNG on stdout; for a video: .mkv (FFV1, lossless; the default), .y4m, or frames/%05d.png."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite existing outputs."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads for the transforms."),
    max_pixels: int = typer.Option(268_435_456, "--max-pixels", min=1, help="Refuse bitstreams of larger images."),
    max_dimension: int = typer.Option(1 << 16, "--max-dimension", min=1, help="Refuse widths or heights above this."),
    max_chunk_bytes: int = typer.Option(1 << 30, "--max-chunk-bytes", min=1, help="Refuse files and chunks above this size."),
    max_frames: int = typer.Option(1 << 24, "--max-frames", min=1, help="Video: refuse bitstreams of more frames."),
    frames: Optional[str] = typer.Option(None, "--frames", help="Video: decode frames A:B only (seeks to the GOP that holds A)."),
    salvage: bool = typer.Option(False, "--salvage", help="Video: on damage, keep the frames decoded before it (warning, exit 0)."),
) -> None:
    """Decompress .bin bitstreams into images (or a video bitstream into a video)."""
    from codec.container import Limits

    from cli.video import is_video_bitstream

    limits = Limits(max_pixels=max_pixels, max_dimension=max_dimension, max_chunk_bytes=max_chunk_bytes,
                    max_frames=max_frames)
    if len(inputs) == 1 and is_video_bitstream(inputs[0]):
        _decode_video(inputs[0], output, frames=frames, salvage=salvage, force=force, threads=threads, limits=limits,
                      json_out=json_out)
        return
    if frames is not None or salvage:
        raise UsageError("--frames and --salvage are for video bitstreams")
    out, outputs = prepare(inputs, output, ".png", json_out=json_out, force=force, threads=threads, what="image")
    _decode_images(list(zip(inputs, outputs)), out, force=force, limits=limits, json_out=json_out)


def _decode_video(src: str, output: str | None, *, frames: str | None, salvage: bool, force: bool,
                  threads: int | None, limits, json_out: bool) -> None:
    """`codec decode CLIP.bin`: one video bitstream into a video file or numbered frames (never stdout)."""
    from cli.video import decode_video, parse_window

    window = parse_window(frames)
    out, outputs = prepare([src], output, ".mkv", json_out=json_out, force=force, threads=threads, what="video")
    if outputs[0] == STDIO:
        raise UsageError("a video is written to a file: give -o FILE (.mkv, .y4m or frames/%05d.png)")
    row = decode_video(src, outputs[0], out=out, window=window, salvage=salvage, force=force, limits=limits,
                       json_out=json_out)
    if json_out:
        out.emit({"command": "decode", "kind": "video", **row})


def _decode_images(pairs: list[tuple[str, str]], out: Output, *, force: bool, limits, json_out: bool) -> None:
    """`codec decode BITSTREAMS`: each (input, output) pair; each model loads once, failures collected."""
    from codec.io import WRITE_FORMATS

    for _, dst in pairs:
        if dst != STDIO and Path(dst).suffix.lower() not in WRITE_FORMATS:
            raise UsageError(f"cannot write {dst}: choose an output ending in {', '.join(sorted(WRITE_FORMATS))}")
    load = _TimedLoad()
    result = run_batch(pairs, functools.partial(_decode_image, out=out, force=force, limits=limits, load=load),
                       out, "decoding")
    if json_out:
        out.emit({
            "command": "decode", "load_seconds": round(load.seconds, 4), "files": result.done, "failed": result.failed,
            "bytes": sum(r["bytes"] for r in result.done),
            "bpp": mean_bpp(result.done),
        })
    raise_if_failed(result, len(pairs))


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


def _decode_image(src: str, dst: str, *, out: Output, force: bool, limits, load: _TimedLoad) -> dict:
    """One bitstream (or stdin) to one image (or PNG on stdout); returns its row of the --json report."""
    from codec.container import read_container
    from codec.io import encode_image_bytes, read_bytes, write_image
    from codec.pipeline import decompress

    refuse_existing(dst, force)
    max_bytes = limits.max_chunk_bytes
    data = read_stdin_bytes(max_bytes) if src == STDIO else read_bytes(src, max_bytes=max_bytes)
    container = read_container(data, limits)  # parsed and CRC-checked once
    header = container.header
    dec = decompress(container, load(header.model_id))
    if dst == STDIO:
        write_stdout_bytes(encode_image_bytes(dec.pixels, "PNG"))
    else:
        write_image(dec.pixels, dst, force=force)
    h, w = dec.pixels.shape[:2]
    row = {
        "input": src, "output": dst, "width": w, "height": h, "bytes": len(data),
        "bpp": len(data) * 8 / (h * w), "model_id": header.model_id, "decode_seconds": round(dec.seconds, 4),
    }
    out.say(f"{src} -> {dst}: {w}x{h}, {row['bpp']:.4f} bpp, {dec.seconds:.2f} s")
    return row
