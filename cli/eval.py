"""codec eval: rate-distortion sweeps of our models and the classical codecs, BD-rates, plot, CI check."""

from __future__ import annotations

import json
import math
import shlex
import sys
from pathlib import Path
from typing import List, Optional

import typer

from .output import Output
from codec.errors import CodecError, UnsupportedError, UsageError

DEFAULT_CODECS = ["ours", "jpeg", "webp", "avif", "jxl", "jpeg2000"]


def eval_(
    source: str = typer.Argument(..., help="A folder of images, a glob, or one image."),
    codecs: List[str] = typer.Option(None, "--codec", "-c", help="jpeg, jpeg444, webp, avif, jxl, jpeg2000, x265, ours:<model_id>[@settings][;effort=N]; repeatable (default: ours and all classical but x265)."),
    anchor: Optional[str] = typer.Option(None, "--anchor", help="BD-rate anchor (default: the first classical codec; published:<name> allowed)."),
    published: Optional[str] = typer.Option(None, "--published", help="Comma-separated published curves to overlay, e.g. vtm,bpg444."),
    output: Path = typer.Option(Path("eval-out"), "--output", "-o", help="Folder for results.json, table.md, rd.png, rd-ms-ssim.png and compressai/*.json."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Images in parallel processes."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N images."),
    check: Optional[Path] = typer.Option(None, "--check", help="Baseline results.json: fail if our BD-rate against it is worse than --tolerance."),
    tolerance: float = typer.Option(1.0, "--tolerance", help="Allowed BD-rate loss in percent for --check (finite, at least 0)."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
    video: bool = typer.Option(False, "--video", help="Video mode: SOURCE is a folder of clips, a glob or one clip; codecs ours, ours-intra, x264, x265."),
    frames: int = typer.Option(32, "--frames", min=1, help="Video: frames per clip (a fixed window)."),
    start: int = typer.Option(0, "--start", min=0, help="Video: first frame of the window."),
    gop: int = typer.Option(32, "--gop", min=1, help="Video: intra period of every codec (keyint for x264/x265)."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Folder of measured rows to reuse (same pixels or frames, codec identity, quality, GOP): a long evaluation resumes where it stopped."),
) -> None:
    """Rate-distortion evaluation against the classical codecs (whole-file bpp, PSNR, MS-SSIM, BD-rate)."""
    if not math.isfinite(tolerance) or tolerance < 0:  # NaN would pass every check
        raise UsageError(f"--tolerance takes a finite BD-rate loss in percent of at least 0, got {tolerance}")
    if video:
        return _eval_video(source, codecs, anchor, output, limit, frames, start, gop, json_out, cache)
    from codec.eval import published as pub
    from codec.eval.report import build_results, check as run_check, write
    from codec.eval.sweep import points_per_image, run_sweep
    from codec.io import find_images

    out = Output(json_out)
    built = _build_codecs(list(codecs) if codecs else list(DEFAULT_CODECS), out)
    baseline = _read_baseline(check) if check is not None else None
    curves_pub = pub.load([n.strip() for n in published.split(",") if n.strip()]) if published else {}
    anchors = _image_anchors(anchor, built, curves_pub)
    images = find_images(source, limit)
    total = len(images) * points_per_image(specs_for(built))
    out.say(f"{len(images)} images x {total // len(images)} points: {', '.join(c.name for c in built)}")
    with out.progress(total, "eval") as advance:
        rows = run_sweep(specs_for(built), images, jobs=jobs, on_image=lambda name, n: advance(name, n), cache=cache)
    results = build_results(rows, built, curves_pub, anchors, [p.name for p in images], _command_line("codec eval"))
    paths = write(results, output)
    out.say(paths["table"].read_text().split("\nPer quality point")[0])
    out.say(f"wrote {paths['json']}, {paths['table']}, {paths['plot']}, {paths['plot_ms_ssim']} and "
            f"{output / 'compressai'}/ (one CompressAI-style JSON per codec)")
    failures = run_check(results, baseline, tolerance) if baseline is not None else []
    if json_out:
        out.emit({"command": "eval", "output": {k: str(v) for k, v in paths.items()}, "bd": results["bd"],
                  "check": None if baseline is None else {"tolerance": tolerance, "failures": failures}})
    if failures:
        err = CodecError("regression check failed: " + "; ".join(failures))
        err.exit_code = 6
        raise err


def _build_codecs(specs: list[str], out: Output) -> list:
    """The image codecs of `specs`; one this machine cannot run (UnsupportedError) is skipped with a
    warning, any other error stops the run."""
    from codec.eval.codecs import make_codec

    built = []
    for spec in specs:
        try:
            built.append(make_codec(spec))
        except UnsupportedError as exc:  # a codec this machine cannot run: say so and go on
            out.warn(f"skipping {spec}: {exc}")
    if not built:
        raise UsageError("no codec to evaluate")
    return built


def _read_baseline(path: Path) -> dict:
    """The baseline results.json of `--check`."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read baseline {path}: {exc}") from None


def _image_anchors(anchor: str | None, built: list, curves_pub: dict) -> list[str]:
    """`--anchor`, else the first classical codec; then every published curve."""
    classical = [c.name for c in built if c.classical]
    anchors = [anchor] if anchor else ([classical[0]] if classical else [])
    anchors += [a for a in curves_pub if a not in anchors]
    names = [c.name for c in built]
    for a in anchors:
        if a not in names and a not in curves_pub:
            raise UsageError(f"anchor {a!r} is neither an evaluated codec nor a loaded published curve")
    return anchors


def _command_line(bare: str) -> str:
    """The command as typed (for results.json), or `bare` when it cannot be told."""
    return "codec eval " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if len(sys.argv) > 2 else bare


def specs_for(built) -> list[str]:
    """Canonical specs (ours resolved to model ids and steps) so worker processes build the same codecs."""
    specs = []
    for c in built:
        if c.classical:
            specs.append(c.name)
        else:
            suffix = f";effort={c.settings['effort']}" if c.settings.get("effort") else ""
            name = c.name.split(";")[0]
            if len(c.settings["models"]) == 1:
                specs.append(f"{name}@{','.join(f'{q:g}' for q in c.qualities)}{suffix}")
            else:
                per_model = {}
                for point in c.qualities:
                    model_id, setting = point.split("@")
                    per_model.setdefault(model_id, []).append(setting)
                specs.append("ours:" + "+".join(f"{m}@{','.join(s)}" for m, s in per_model.items()) + suffix)
    return specs


VIDEO_CODECS = ["ours", "ours-intra", "x264", "x265"]
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".y4m", ".m4v")


def _eval_video(source: str, codecs, anchor, output: Path, limit, frames: int, start: int, gop: int,
                json_out: bool, cache: Path | None = None) -> None:
    """Video RD sweep: every codec on a fixed window of every clip (bpp over all frames, PSNR-RGB
    averaged over frames), BD-rates per clip averaged over clips, table and plot."""
    from codec.eval.report import write
    from codec.eval.video import load_clip
    from codec.eval.video_codecs import make_video_codec
    from codec.eval.video_report import video_markdown, video_plot, video_results
    from codec.eval.video_sweep import evaluate_clips

    out = Output(json_out)
    clips = _find_clips(source, limit)
    built = [make_video_codec(spec) for spec in (list(codecs) if codecs else VIDEO_CODECS)]
    names = [c.name for c in built]
    defaults = [n for n in names if n == "x265"] + [n for n in names if n.split(":")[0] == "ours-intra"][:1]
    anchors = [anchor] if anchor else defaults or names[:1]
    for a in anchors:
        if a not in names:
            raise UsageError(f"anchor {a!r} is not an evaluated codec ({', '.join(names)})")
    loaded = [load_clip(p, start, frames) for p in clips]
    out.say(f"{len(loaded)} clips x {frames} frames, gop {gop}: {', '.join(names)}")
    rows = evaluate_clips(loaded, built, gop, log=None if json_out else out.say, cache=cache)
    results = video_results(rows, built, anchors, loaded, _command_line("codec eval --video"))
    paths = write(results, output, table=video_markdown, draw=video_plot)
    out.say(paths["table"].read_text().split("\n## ")[0])
    out.say(f"wrote {', '.join(str(p) for p in paths.values())}")
    if json_out:
        out.emit({"command": "eval", "video": True, "output": {k: str(v) for k, v in paths.items()},
                  "bd": results["bd"]})


def _find_clips(source: str, limit: int | None) -> list[Path]:
    """A folder (its video files, sorted), one file, or a glob; the first `limit` of them."""
    import glob

    path = Path(source)
    if path.is_dir():
        clips = sorted(p for p in path.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS)
    elif path.is_file():
        clips = [path]
    else:
        clips = sorted(Path(p) for p in glob.glob(source))
    if not clips:
        raise UsageError(f"no video clips in {source}")
    return clips[:limit] if limit else clips
