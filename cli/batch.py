"""Running one command over many files: model loaded once, failures collected, not fatal."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from codec.errors import CodecError, UsageError
from cli.output import Output


@dataclass
class BatchResult:
    done: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    first_exit_code: int = 0


def prepare(inputs: list[str], output: str | None, suffix: str, *, json_out: bool, force: bool,
            threads: int | None, what: str) -> tuple[Output, list[str]]:
    """Shared start of encode and decode: output paths, stdout conflicts, existing outputs, threads."""
    from cli.paths import STDIO, plan_outputs

    out = Output(json_out)
    outputs = plan_outputs(inputs, output, suffix)
    if json_out and STDIO in outputs:
        raise UsageError(f"--json prints to stdout, so the {what} cannot go there too: use -o FILE")
    check_outputs_free(outputs, force)
    if threads:
        import torch

        torch.set_num_threads(threads)
    return out, outputs


def refuse_existing(dst: str, force: bool) -> None:
    if dst != "-" and not force and Path(dst).exists():
        raise UsageError(f"{dst} exists; use --force to overwrite")


def check_outputs_free(outputs: list[str], force: bool) -> None:
    """Refuses early when a single output exists (batch runs report per file instead)."""
    if len(outputs) == 1 and outputs[0] != "-" and not force and Path(outputs[0]).exists():
        raise UsageError(f"{outputs[0]} exists; use --force to overwrite")


def run_batch(pairs: list[tuple[str, str]], one: Callable[[str, str], dict], out: Output, what: str) -> BatchResult:
    result = BatchResult()
    with out.progress(len(pairs), what) as advance:
        for src, dst in pairs:
            try:
                result.done.append(one(src, dst))
            except CodecError as exc:
                if len(pairs) == 1:
                    raise
                out.err.print(f"Error: {exc}", markup=False, style="red")
                result.failed.append({"input": src, "error": str(exc), "exit_code": exc.exit_code})
                result.first_exit_code = result.first_exit_code or exc.exit_code
            advance(Path(src).name)
    return result


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
