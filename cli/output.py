"""Where output goes: data (one JSON object, or file bytes) on stdout; messages and progress on stderr."""

from __future__ import annotations

import contextlib
import json
import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from codec.container.format import MAX_CHUNK_BYTES_FLAG


class Output:
    """Human messages go to stderr; `--json` prints exactly one object on stdout at the end."""

    def __init__(self, json_mode: bool = False, quiet: bool = False):
        self.json_mode = json_mode
        self.quiet = quiet
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)
        if not self.err.is_terminal:
            self.err.width = 160

    def say(self, message: str) -> None:
        """A human line on stderr (suppressed by --json and --quiet)."""
        if not (self.json_mode or self.quiet):
            self.err.print(message, markup=False)

    def warn(self, message: str) -> None:
        """A warning on stderr (always shown)."""
        self.err.print(f"Warning: {message}", markup=False, style="yellow")

    def table(self, table) -> None:
        if not (self.json_mode or self.quiet):
            self.err.print(table)

    def emit(self, obj: dict) -> None:
        """The single JSON object on stdout."""
        with _writing_stdout():
            sys.stdout.write(json.dumps(obj, indent=None, default=str) + "\n")
            sys.stdout.flush()

    @contextlib.contextmanager
    def progress(self, total: int, what: str):
        """A progress bar with an ETA over `total` units (files, or image x quality points) on
        stderr, only on a terminal, without --json and for more than one unit. Yields
        advance(name, n=1), called after each finished chunk."""
        if total <= 1 or self.json_mode or self.quiet or not self.err.is_terminal:
            yield lambda name, n=1: None
            return
        bar = Progress(
            TextColumn(f"{what} [bold]{{task.fields[name]}}"), BarColumn(), MofNCompleteColumn(),
            TimeRemainingColumn(), console=self.err, transient=True,
        )
        with bar:
            task = bar.add_task(what, total=total, name="")
            yield lambda name, n=1: bar.update(task, advance=n, name=name)


@contextlib.contextmanager
def refine_progress(out: Output, name: str):
    """A bar over an image's refinement steps (effort levels) with the best point's bpp and PSNR so
    far, on stderr, only on a terminal and without --json. Yields on_progress(step, steps, bpp, psnr)."""
    if out.json_mode or out.quiet or not out.err.is_terminal:
        yield None
        return
    bar = Progress(
        TextColumn(f"refining [bold]{name}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[point]}"), TimeRemainingColumn(), console=out.err, transient=True,
    )
    with bar:
        task = bar.add_task("refine", total=None, point="")

        def on_progress(step: int, steps: int, bpp: float, psnr: float) -> None:
            bar.update(task, total=steps, completed=step, point=f"{bpp:.4f} bpp, {psnr:.2f} dB")

        yield on_progress


@contextlib.contextmanager
def _writing_stdout():
    """Turns a failed write to stdout (say a full disk behind `> file`) into a one-line OutputError
    (exit 7); a closed pipe stays a BrokenPipeError, which the error boundary handles."""
    from codec.errors import OutputError

    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise OutputError(f"cannot write standard output: {exc.strerror or exc}") from None


def write_stdout_bytes(data: bytes) -> None:
    with _writing_stdout():
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()


def read_stdin_bytes(max_bytes: int, flag: str | None = MAX_CHUNK_BYTES_FLAG) -> bytes:
    """All of stdin, refused beyond `max_bytes`; the message names `flag`, the option that raises it."""
    from codec.errors import LimitError
    from codec.io import read_at_most

    data = read_at_most(sys.stdin.buffer, max_bytes + 1)
    if len(data) > max_bytes:
        hint = f"; raise {flag} to allow it" if flag else ""
        raise LimitError(f"standard input is larger than {max_bytes} bytes{hint}")
    return data
