"""codec encode: images -> bitstreams."""

from __future__ import annotations

import contextlib
import functools
import os
import time
from typing import TYPE_CHECKING, List, Optional

import typer

from .batch import prepare, raise_if_failed, refuse_existing, run_batch, skip
from .options import DEFAULT_MEMORY, MAX_THREADS, THREADS_HELP
from .output import Output, read_stdin_bytes, refine_progress, write_stdout_bytes
from .paths import STDIO
from codec.errors import UsageError

if TYPE_CHECKING:
    from codec.pipeline.files import ImageRate

MAX_INPUT_BYTES = 1 << 30
KINDS = ("exif", "icc", "xmp")  # codec.metadata.KINDS, without importing it at start-up


EFFORT_HELP = (
    "Encode time spent on this image; any decoder reads the file. Measured on 8 Kodak photos (768x512) on 2 "
    "cores, default model: 0 = one pass, 0.3 s; 1 = 60 steps of stochastic Gumbel annealing of the latents, "
    "36 s, 6.6% fewer bits at equal PSNR; 2 = 400 steps, 95 s, 14.2% fewer bits; 3 = 1500 steps, about 5 min, "
    "17.3% fewer bits (2.5% fewer than AVIF). Hyperprior and M2T models (M2T: effort 1 gave 7% "
    "fewer bits on 2 photos, each step slower by the transformer pass). Overfitted model (-m overfit; effort 0 is 1): "
    "the whole decoder is fitted to the image, 1 = 1,900 steps of a small decoder (about 525 multiplications a "
    "pixel; from quality 60 up 1,550 of a medium one, 990), 2 = 4,600 of a medium one (990), 3 = 12,000 of a large one (2,240); see docs/RESEARCH.md. Combines with "
    "--target-size/--target-bpp (within 5% under the budget)."
)


def encode(
    inputs: List[str] = typer.Argument(..., help="Image files (PNG, JPEG, WebP, TIFF, BMP, ...; '-' reads stdin), folders of them or globs; or one video file (.mp4, .mkv, .avi, .y4m, ...)."),
    output: Optional[str] = typer.Option(None, "-o", "--output", help="Output file, directory (ends with '/'), or '-' for stdout."),
    model: Optional[str] = typer.Option(None, "-m", "--model", help="Model id (see `codec models`); default: the shipped default."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite existing outputs."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, max=MAX_THREADS, help=THREADS_HELP),
    max_pixels: int = typer.Option(268_435_456, "--max-pixels", min=1, help="Refuse images larger than this."),
    quality: Optional[float] = typer.Option(None, "--quality", "-q", min=0, max=100, help="0..100, higher is better (default 60). With no -m it picks the shipped model best at that rate (the default up to about 78, the high-rate model above; measured on Kodak, bytes and PSNR grow with it over the whole range)."),
    target_bpp: Optional[float] = typer.Option(None, "--target-bpp", min=0.0, help="Best quality whose whole file fits this many bits per pixel."),
    target_size: Optional[str] = typer.Option(None, "--target-size", help="Best quality whose whole file fits this size, e.g. 40KB, 1.5MiB."),
    effort: int = typer.Option(0, "--effort", "-e", min=0, max=3, help=EFFORT_HELP),
    step: Optional[float] = typer.Option(None, "--step", min=0.25, max=8.0, help="Single-rate models: quantisation step of the latents (1 = as trained)."),
    gop: int = typer.Option(32, "--gop", min=1, max=65535, help="Video: an intra frame every N frames (1 = all-intra)."),
    memory: int = typer.Option(None, "--memory", min=0, max=255, show_default=False, help=f"Video: keep the latents of up to N scenes (their intra frames, and the last frame before each cut until the next keyframe), so that a scene that returns is coded inter against what was seen before (default {DEFAULT_MEMORY}, chosen by measurement; 0 = none; recorded in the file, seeking still works; see docs/RESEARCH.md)."),
    frames: Optional[str] = typer.Option(None, "--frames", help="Video: frames A:B only (A included, B excluded)."),
    fps: Optional[str] = typer.Option(None, "--fps", help="Video: frame rate to record (default: the source's; 25 for frame folders)."),
    metadata: str = typer.Option("all", "--metadata", help="Photo metadata kept in the file and restored on decode: all, none, or a comma list of exif, icc, xmp. The ICC profile is carried, not applied (a wide-gamut photo keeps its colours); EXIF orientation is applied to the pixels and reset to 1."),
    skip_existing: bool = typer.Option(False, "--skip-existing", help="Leave outputs that exist alone (a rerun codes only what is missing)."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, max=64, help="Images coded at once, in processes that each load the model once and share the CPU threads."),
    quiet: bool = typer.Option(False, "--quiet", help="No messages on stderr but warnings and errors."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also say which model loaded and how long that took."),
    video: bool = typer.Option(False, "--video", help="Read the one input as a video: a folder, glob or %05d pattern of frames (a video file needs no flag). Without it a folder or glob is images."),
    device: str = typer.Option("cpu", "--device", help="Where the overfitted model's encoder optimises (-m overfit): cpu, or cuda on a machine with a GPU. The file is the same format; decoding is always on the CPU."),
) -> None:
    """Compress images into .bin bitstreams (or one video into a .bin video bitstream)."""
    from codec.videoio import is_video_file, is_video_source

    from .paths import expand_inputs

    if video and not all(src != STDIO and is_video_source(src) for src in inputs):
        raise UsageError("--video takes one video file, or a folder, glob or %05d pattern of frames")
    if video or any(src != STDIO and is_video_file(src) for src in inputs):
        if len(inputs) > 1:
            raise UsageError("encode one video at a time (several inputs are images only)")
        if target_bpp is not None or target_size is not None or effort or device != "cpu":
            raise UsageError("--target-size, --target-bpp, --effort and --device are for images; videos take --quality")
        if quality is not None and step is not None:
            raise UsageError("choose one of --quality, --step")
        memory = DEFAULT_MEMORY if memory is None else memory
        _encode_video(inputs[0], output, model=model, quality=quality, step=step, gop=gop, memory=memory, frames=frames, fps=fps,
                      force=force, threads=threads, max_pixels=max_pixels, json_out=json_out)
        return
    if frames is not None or fps is not None or memory is not None:
        raise UsageError("--frames, --fps and --memory are for video inputs")
    rate = _image_rate(quality, target_bpp, target_size, step, effort)
    _check_device(device)
    inputs = expand_inputs(inputs)  # a folder or a glob is its images
    keep = _metadata_kinds(metadata)
    out, outputs = prepare(inputs, output, ".bin", json_out=json_out, force=force, threads=threads, what="bitstream")
    _encode_images(list(zip(inputs, outputs)), out, model=model, rate=rate, force=force, max_pixels=max_pixels,
                   json_out=json_out, device=device, jobs=jobs, keep=keep)


def _metadata_kinds(text: str) -> frozenset:
    from codec.metadata import parse_selection

    try:
        return parse_selection(text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


DEVICES = ("cpu", "cuda")


def _check_device(device: str) -> None:
    if device not in DEVICES:
        raise UsageError(f"--device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UsageError("--device cuda: torch sees no CUDA GPU on this machine (use --device cpu)")


def _encode_video(src: str, output: str | None, *, model: str | None, quality: float | None, step: float | None,
                  gop: int, memory: int, frames: str | None, fps: str | None, force: bool, threads: int | None,
                  max_pixels: int, json_out: bool) -> None:
    """`codec encode CLIP`: one video into one video bitstream (a file, never stdout)."""
    from pathlib import Path

    from .video import encode_video, parse_fps, parse_window

    if output is None and not Path(src).exists():  # a glob or %05d pattern names no file
        raise UsageError(f"{src} is a frame pattern: name the bitstream with -o FILE")
    window, rate = parse_window(frames), parse_fps(fps)
    out, outputs = prepare([src], output, ".bin", json_out=json_out, force=force, threads=threads, what="bitstream")
    if outputs[0] == STDIO:
        raise UsageError("a video bitstream is written to a file: give -o FILE")
    if skip(outputs[0], force, out):
        return
    row = encode_video(src, outputs[0], out=out, model=model, quality=quality, step=step, gop=gop, memory=memory,
                       window=window, fps=rate, force=force, max_pixels=max_pixels, json_out=json_out)
    if json_out:
        out.emit({"command": "encode", "kind": "video", **row})


def _image_rate(quality: float | None, target_bpp: float | None, target_size: str | None, step: float | None,
                effort: int) -> ImageRate:
    """The image rate options, refusing combinations that contradict each other."""
    from codec.pipeline.files import ImageRate
    from codec.pipeline.rate import parse_size

    chosen = [n for n, v in (("--quality", quality), ("--target-bpp", target_bpp), ("--target-size", target_size),
                              ("--step", step)) if v is not None]
    if len(chosen) > 1:
        raise UsageError(f"choose one of {', '.join(chosen)}")
    import math

    if target_bpp is not None and not (math.isfinite(target_bpp) and target_bpp > 0):
        raise UsageError(f"--target-bpp must be a positive finite number, got {target_bpp}")
    try:
        max_bytes = parse_size(target_size) if target_size is not None else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return ImageRate(quality=quality, step=step, effort=effort, target_bpp=target_bpp, max_bytes=max_bytes)


def _encode_images(pairs: list[tuple[str, str]], out: Output, *, model: str | None, rate: ImageRate, force: bool,
                   max_pixels: int, json_out: bool, device: str = "cpu", jobs: int = 1,
                   keep: frozenset = frozenset(KINDS)) -> None:
    """`codec encode IMAGES`: each (input, output) pair with one model, loaded once; failures collected."""
    from codec.pipeline import load_model

    model = rate.model_for(model)  # with no -m, -q goes to the shipped model best at it
    t0 = time.perf_counter()
    loaded = load_model(model)
    load_seconds = time.perf_counter() - t0
    from codec.pipeline.image import device_options
    from codec.registry import family_of

    try:
        device_options(family_of(loaded), device)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    out.detail(f"model {loaded.model_id} loaded in {load_seconds:.2f} s")
    one = functools.partial(_encode_image, loaded, out=out, rate=rate, force=force, max_pixels=max_pixels, device=device,
                            keep=keep)
    worker = functools.partial(_encode_worker, loaded.model_id, json_out, rate=rate, force=force, max_pixels=max_pixels,
                               device=device, keep=keep)
    result = run_batch(pairs, one, out, "encoding", jobs=jobs, worker=worker)
    if json_out:
        out.emit({"command": "encode", "model_id": loaded.model_id, "load_seconds": round(load_seconds, 4),
                  **result.report()})
    raise_if_failed(result, len(pairs))


def _encode_worker(model_id: str, json_out: bool, src: str, dst: str, **options) -> dict:
    """`_encode_image` in a worker process of `--jobs`: the model loads once per process (cached)."""
    from codec.pipeline import load_model

    return _encode_image(load_model(model_id), src, dst, out=Output(json_out), **options)


def _encode_image(loaded, src: str, dst: str, *, out: Output, rate: ImageRate, force: bool, max_pixels: int,
                  device: str = "cpu", keep: frozenset = frozenset(KINDS)) -> dict:
    """One image to one bitstream (or stdout); returns its row of the --json report. `keep`: the
    metadata kinds carried (codec.metadata), counted in the file and in a --target-size budget."""
    from codec.atomic import atomic_write
    from codec.pipeline.files import encode_file, long_encode

    refuse_existing(dst, force)
    source = read_stdin_bytes(MAX_INPUT_BYTES, flag=None) if src == STDIO else src
    with refine_progress(out, src) if long_encode(loaded, rate) else contextlib.nullcontext() as on_progress:
        enc = encode_file(loaded, source, rate, max_pixels=max_pixels, keep=keep, device=device,
                          on_progress=on_progress)
    for note in enc.warnings:
        out.warn(note)
    if not enc.fits:
        overhead = enc.metadata_bytes
        out.warn(f"{src}: even the lowest quality needs {len(enc.data)} bytes, over the target of "
                 f"{rate.budget(enc.height, enc.width)}" + (f" ({overhead} of them metadata: --metadata none drops it)"
                                                            if overhead else ""))
    data, h, w = enc.data, enc.height, enc.width
    if dst == STDIO:
        write_stdout_bytes(data)
    else:
        atomic_write(dst, data, force=force)
    row = {
        "input": src, "output": dst, "width": w, "height": h, "bytes": len(data),
        "bpp": len(data) * 8 / (h * w), "encode_seconds": round(enc.seconds, 4),
        "quality": rate.asked_quality(), "quality_field": enc.quality_field, "metadata_bytes": enc.metadata_bytes,
        "input_bytes": 0 if src == STDIO else os.path.getsize(src), "output_bytes": len(data),
    }
    out.say(f"{src} -> {dst}: {w}x{h}, {len(data)} bytes, {row['bpp']:.4f} bpp, {enc.seconds:.2f} s")
    return row
