"""Running one command over many files: model loaded once, failures collected, not fatal."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from codec.errors import CodecError, UsageError
from .output import Output


class Skipped(Exception):
    """An output that exists, left alone under --skip-existing."""


@dataclass
class BatchResult:
    done: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    first_exit_code: int = 0
    seconds: float = 0.0

    def report(self) -> dict:
        """The batch's part of the --json object."""
        return {"ok": not self.failed, "files": self.done, "failed": self.failed, "skipped": self.skipped,
                "bytes": sum(r["bytes"] for r in self.done), "bpp": mean_bpp(self.done),
                "wall_seconds": round(self.seconds, 3)}


def prepare(inputs: list[str], output: str | None, suffix: str, *, json_out: bool, force: bool,
            threads: int | None, what: str, decoded: bool = False) -> tuple[Output, list[str]]:
    """Shared start of encode and decode: output paths (cli.paths's naming rule), stdout conflicts,
    existing outputs, threads."""
    from .paths import STDIO, plan_outputs

    out = Output(json_out)
    outputs = plan_outputs(inputs, output, suffix, decoded=decoded)
    if json_out and STDIO in outputs:
        raise UsageError(f"--json prints to stdout, so the {what} cannot go there too: use -o FILE")
    check_outputs_free(outputs, force)
    if threads:
        import torch

        torch.set_num_threads(threads)
    return out, outputs


def refuse_existing(dst: str, force: bool) -> None:
    """Refuses an existing output without --force (Skipped under --skip-existing); a FIFO or a device
    (/dev/null) is written into."""
    from codec.atomic import is_stream

    from .output import Run

    if dst != "-" and not force and Path(dst).exists() and not is_stream(Path(dst)):
        if Run.skip_existing:
            raise Skipped(dst)
        raise UsageError(f"{dst} exists; use --force to overwrite (or --skip-existing)")


def skip(dst: str, force: bool, out: Output) -> bool:
    """Whether a single output (a video's) is left alone under --skip-existing (said on stderr)."""
    try:
        refuse_existing(dst, force)
    except Skipped:
        out.say(f"skipped: {dst} exists")
        if out.json_mode:
            out.emit({"skipped": [{"output": dst}], "files": []})
        return True
    return False


def check_outputs_free(outputs: list[str], force: bool) -> None:
    """Refuses early when a single output exists (batch runs report per file instead)."""
    if len(outputs) == 1:
        try:
            refuse_existing(outputs[0], force)
        except Skipped:
            pass  # reported by the batch


def run_batch(pairs: list[tuple[str, str]], one: Callable[[str, str], dict], out: Output, what: str,
              jobs: int = 1, worker: Callable[[str, str], dict] | None = None) -> BatchResult:
    """`one(src, dst)` for each pair, in this process; with `jobs` > 1, `worker(src, dst)` (a
    picklable callable that loads its model once per process) in that many processes, each with
    its share of the CPU threads. Failures are collected (a single file's failure is raised);
    outputs that exist are skipped under --skip-existing. Ends with a summary line."""
    import time

    result = BatchResult()
    t0 = time.perf_counter()
    with out.progress(len(pairs), what) as advance:
        for src, row, exc in _results(pairs, one, jobs, worker, lambda src: advance(Path(src).name, 0)):
            if isinstance(exc, Skipped):
                out.say(f"{src}: skipped, {exc} exists")
                result.skipped.append({"input": src, "output": str(exc)})
            elif exc is not None:
                if len(pairs) == 1:
                    raise exc
                out.err.print(f"Error: {exc}", markup=False, style="red")
                result.failed.append({"input": src, "error": str(exc), "exit_code": exc.exit_code})
                result.first_exit_code = result.first_exit_code or exc.exit_code
            else:
                result.done.append(row)
            advance(Path(src).name)
    result.seconds = time.perf_counter() - t0
    if len(pairs) > 1:
        out.say(summary(result, what))
    return result


def _results(pairs, one, jobs: int, worker, starting: Callable[[str], None]):
    """(src, row, None) or (src, None, exception) per pair, as they finish; `starting(src)` before
    each file of a run in this process (the progress bar names the file in work)."""
    if jobs <= 1 or worker is None or len(pairs) <= 1:
        for src, dst in pairs:
            starting(src)
            try:
                yield src, one(src, dst), None
            except (CodecError, Skipped) as exc:
                yield src, None, exc
        return
    import os
    from concurrent.futures import ProcessPoolExecutor, as_completed

    import multiprocessing

    from .output import Run

    threads = max(1, (os.cpu_count() or 1) // jobs)
    state = (Run.quiet, Run.verbose, Run.skip_existing)
    # spawn, not fork: a fork of a process whose torch thread pool has run can hang in the child
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker,
                             initargs=(threads, state)) as pool:
        futures = {pool.submit(worker, src, dst): src for src, dst in pairs}
        for fut in as_completed(futures):
            try:
                yield futures[fut], fut.result(), None
            except (CodecError, Skipped) as exc:
                yield futures[fut], None, exc


def _init_worker(threads: int, state: tuple[bool, bool, bool]) -> None:
    import torch

    from .output import Run

    torch.set_num_threads(threads)
    Run.start(*state)


PAST = {"encoding": "encoded", "decoding": "decoded"}


def summary(result: BatchResult, what: str) -> str:
    """One line after a batch: files done / skipped / failed, bytes in and out, mean bpp, wall time."""
    done = result.done
    bytes_in = sum(r.get("input_bytes", 0) for r in done)
    bytes_out = sum(r.get("output_bytes", r["bytes"]) for r in done)
    bpp = mean_bpp(done)
    parts = [f"{len(done)} files {PAST.get(what, what)}"]
    if result.skipped:
        parts.append(f"{len(result.skipped)} skipped")
    if result.failed:
        parts.append(f"{len(result.failed)} failed")
    line = ", ".join(parts)
    if done:
        line += f"; {bytes_in:,} bytes in, {bytes_out:,} out" + (f", mean {bpp:.4f} bpp" if bpp else "")
    return line + f"; {result.seconds:.1f} s"


def mean_bpp(rows: list[dict]) -> float | None:
    """Bits per pixel over all done files together (whole files)."""
    pixels = sum(r["width"] * r["height"] for r in rows)
    return sum(r["bytes"] for r in rows) * 8 / pixels if pixels else None


def raise_if_failed(result: BatchResult, total: int) -> None:
    if result.failed:
        names = ", ".join(f["input"] for f in result.failed)
        err = CodecError(f"{len(result.failed)} of {total} files failed: {names}")
        err.exit_code = result.first_exit_code
        raise err
