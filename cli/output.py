"""Where output goes: data (one JSON object, or file bytes) on stdout; messages and progress on stderr."""

from __future__ import annotations

import contextlib
import json
import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from codec.container.format import MAX_CHUNK_BYTES_FLAG

SCHEMA = 1
"""Version of the `--json` objects' layout, the first key of each (`"schema": 1`); raised when a key
changes meaning or goes away (new keys do not raise it)."""


class Run:
    """What the current command was asked about its messages (set once per command by the error
    boundary, cli.app.guarded, from --quiet / --verbose) and whether it has printed its JSON object."""

    quiet = False
    verbose = False
    skip_existing = False
    emitted = False

    @classmethod
    def start(cls, quiet: bool = False, verbose: bool = False, skip_existing: bool = False) -> None:
        cls.quiet, cls.verbose, cls.skip_existing, cls.emitted = bool(quiet), bool(verbose), bool(skip_existing), False


class Output:
    """Human messages go to stderr; `--json` prints exactly one object on stdout at the end (on a
    failure too: the boundary prints `{"schema": 1, "ok": false, "error": ...}`)."""

    def __init__(self, json_mode: bool = False, quiet: bool = False):
        self.json_mode = json_mode
        self.quiet = quiet or Run.quiet
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)
        if not self.err.is_terminal:
            self.err.width = 160

    def say(self, message: str) -> None:
        """A human line on stderr (suppressed by --json and --quiet)."""
        if not (self.json_mode or self.quiet):
            self.err.print(message, markup=False)

    def detail(self, message: str) -> None:
        """A line shown only with --verbose (and without --json / --quiet)."""
        if Run.verbose:
            self.say(message)

    def warn(self, message: str) -> None:
        """A warning on stderr (always shown)."""
        self.err.print(f"Warning: {message}", markup=False, style="yellow")

    def table(self, table) -> None:
        if not (self.json_mode or self.quiet):
            self.err.print(table)

    def emit(self, obj: dict) -> None:
        """The single JSON object on stdout, with the schema version first and `"ok": true` unless
        the object says otherwise."""
        Run.emitted = True
        obj = {"schema": SCHEMA, "ok": True, **obj}
        write_stdout_bytes((json.dumps(obj, indent=None, default=str) + "\n").encode())

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
    """Every byte of `data` to standard output, or an error: OutputError (exit 7) where stdout is
    closed or the write fails, BrokenPipeError where the reader went away (`| head -c 10`)."""
    from codec.atomic import write_all
    from codec.errors import OutputError

    if sys.stdout is None:
        raise OutputError("cannot write standard output: it is closed")
    with _writing_stdout():
        sys.stdout.flush()
        try:
            fd = sys.stdout.fileno()
        except (OSError, ValueError, AttributeError):  # an in-memory stdout (tests): no short writes
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            return
        write_all(fd, data)


def read_stdin_bytes(max_bytes: int, flag: str | None = MAX_CHUNK_BYTES_FLAG) -> bytes:
    """All of stdin, refused beyond `max_bytes`; the message names `flag`, the option that raises it."""
    from codec.errors import InputError, LimitError
    from codec.io import read_at_most

    if sys.stdin is None:
        raise InputError("cannot read standard input: it is closed")
    data = read_at_most(sys.stdin.buffer, max_bytes + 1)
    if len(data) > max_bytes:
        hint = f"; raise {flag} to allow it" if flag else ""
        raise LimitError(f"standard input is larger than {max_bytes} bytes{hint}")
    return data
