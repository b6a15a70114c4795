"""codec batch: a data set of images -> bitstreams (or back), on this machine or a Ray cluster,
resumable, exactly once per input (codec.batch; docs/CLUSTER.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .options import MAX_THREADS
from codec.errors import CodecError, UsageError

ENGINES = ("local", "ray")
TABLE_NAME = "codec-batch.sqlite"


def batch(
    source: str = typer.Argument(..., help="A folder (walked recursively), a quoted glob, or a manifest: .csv, .jsonl or .parquet with a 'path' column (and optionally 'output', relative to DST)."),
    destination: str = typer.Argument(..., help="Output folder (created), or an fsspec URL: file://..., s3://bucket/prefix, ... Output names keep the source's tree."),
    decode: bool = typer.Option(False, "--decode", help="The other direction: bitstreams (.bin) to images."),
    image_format: str = typer.Option("png", "--format", help="--decode: png, webp (lossless), tif or bmp."),
    model: Optional[str] = typer.Option(None, "-m", "--model", help="Model id (see `codec models`); as in codec encode."),
    quality: Optional[float] = typer.Option(None, "--quality", "-q", min=0, max=100, help="0..100 (default 60), as in codec encode."),
    step: Optional[float] = typer.Option(None, "--step", min=0.25, max=8.0, help="Single-rate models: quantisation step."),
    target_bpp: Optional[float] = typer.Option(None, "--target-bpp", min=0.0, help="Best quality whose whole file fits this many bits per pixel."),
    target_size: Optional[str] = typer.Option(None, "--target-size", help="Best quality whose whole file fits this size, e.g. 40KB."),
    effort: int = typer.Option(0, "--effort", "-e", min=0, max=3, help="Encode effort, as in codec encode."),
    metadata: str = typer.Option("all", "--metadata", help="all, none, or a comma list of exif, icc, xmp."),
    psnr: bool = typer.Option(False, "--psnr", help="Also decode each file and record its PSNR (costs a decode)."),
    engine: str = typer.Option("local", "--engine", help="local (worker processes on this machine) or ray (actors on a Ray cluster: pip install 'codec[cluster]')."),
    address: Optional[str] = typer.Option(None, "--address", help="--engine ray: the cluster (host:port, or auto for the one this process runs in); none: a Ray instance started for this run."),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", min=1, max=100_000, help="Workers, each loading the model once (default: this machine's cores; with Ray, the cluster's CPUs)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, max=MAX_THREADS, help="CPU threads per worker (default: the cores shared among local workers; 1 per Ray actor)."),
    table: Optional[str] = typer.Option(None, "--table", help=f"The results table (SQLite; default DST/{TABLE_NAME}; required for a remote DST)."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Redo the files that failed in earlier runs (by default a rerun skips done and failed files)."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite outputs that exist but are not in the results table."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what a run would do (files to do, skipped) from the source and the table; nothing is written."),
    max_pixels: int = typer.Option(268_435_456, "--max-pixels", min=1, help="Refuse images larger than this."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as one JSON object on stdout."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress or report on stderr, only warnings and errors."),
) -> None:
    """Code a whole data set: resumable (a rerun does only what is left), exactly once per input, outputs written atomically."""
    from codec.batch import run
    from codec.batch.driver import default_threads
    from codec.batch.storage import is_url, local_path

    from .output import Output

    if engine not in ENGINES:
        raise UsageError(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if address is not None and engine != "ray":
        raise UsageError("--address is for --engine ray")
    settings = _settings(destination, decode, image_format, model, quality, step, target_bpp, target_size, effort,
                         metadata, psnr, threads or default_threads(engine, workers), max_pixels)
    if table is None and is_url(destination):
        raise UsageError("a remote destination needs --table PATH (a local file for the results table)")
    if not is_url(destination) and not dry_run:
        from .paths import make_directory

        make_directory(Path(local_path(destination)))
    table = table or str(Path(local_path(destination)) / TABLE_NAME)
    out = Output(json_out, quiet)
    from codec.batch.table import TableError

    try:
        rep = _run_with_progress(out, run, source, settings, table, engine=engine, workers=workers, address=address,
                                 retry_failed=retry_failed, force=force, dry_run=dry_run)
    except TableError as exc:
        raise UsageError(str(exc)) from None
    if json_out:
        out.emit({"command": "batch", **rep})
    elif dry_run:
        out.say(f"would code {rep['to_do']} files, skip {rep['skipped']} (done, or failed without --retry-failed)")
    else:
        from codec.batch.report import lines

        for line in lines(rep, decode):
            out.say(line)
    if not dry_run and rep["failed"]:
        err = CodecError(f"{rep['failed']} files failed (see the report and the table {table})")
        err.exit_code = rep["failures"][0]["exit_class"] if rep["failures"] else 1
        raise err


def _settings(destination, decode, image_format, model, quality, step, target_bpp, target_size, effort, metadata,
              psnr, threads, max_pixels):
    """The batch's Settings from the options (the same checks as codec encode / decode)."""
    from codec.batch import Settings
    from codec.io import WRITE_FORMATS
    from codec.metadata import parse_selection

    from .encode import _image_rate

    try:
        keep = tuple(sorted(parse_selection(metadata)))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    fmt = WRITE_FORMATS.get("." + image_format.lower().lstrip("."))
    if fmt is None:
        raise UsageError(f"--format must be one of {', '.join(sorted(f.lstrip('.') for f in WRITE_FORMATS))}")
    if decode:
        if any(v is not None for v in (model, quality, step, target_bpp, target_size)) or effort:
            raise UsageError("--decode reads the model and rate from each file: no -m, -q, --step, --target-*, --effort")
        if psnr:
            raise UsageError("--psnr is for encoding (a bitstream has no original to compare with)")
        return Settings(destination, decode=True, metadata=keep, image_format=fmt, threads=threads,
                        max_pixels=max_pixels)
    rate = _image_rate(quality, target_bpp, target_size, step, effort)
    return Settings(destination, model=model, quality=rate.quality, step=rate.step, effort=rate.effort,
                    target_bpp=rate.target_bpp, max_bytes=rate.max_bytes, metadata=keep, max_pixels=max_pixels,
                    psnr=psnr, threads=threads)


def _run_with_progress(out, run, source: str, settings, table: str, **options) -> dict:
    """The batch with a progress bar on stderr (a terminal, no --json / --quiet): files, files/s, MB/s of
    input and, when the source is a manifest (counted first, streaming), the ETA."""
    if out.json_mode or out.quiet or not out.err.is_terminal or options.get("dry_run"):
        return run(source, settings, table, **options)
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from codec.batch.sources import count_jobs, is_manifest

    total = count_jobs(source, settings.decode) if is_manifest(source) else None
    bar = Progress(TextColumn("batch"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                   TimeRemainingColumn(), console=out.err, transient=True)
    with bar:
        task = bar.add_task("batch", total=total, rate="")

        def on_event(kind: str, p, row) -> None:
            dt = max(time.perf_counter() - p.started, 1e-9)
            bar.update(task, completed=p.finished, rate=f"{p.done / dt:.2f} files/s, {p.bytes_in / dt / 1e6:.2f} MB/s"
                       + (f", {p.failed} failed" if p.failed else ""))

        return run(source, settings, table, total=total, on_event=on_event, **options)
