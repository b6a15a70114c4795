"""The `codec` application: command registration and the single error boundary.

Exit codes: 0 ok, 1 internal error, 2 usage, 3 corrupt or truncated input, 4 unsupported input,
5 model or weights problem, 6 `eval --check` failed, 7 output not written (disk full, a closed pipe, ...),
130 interrupted. Tracebacks only with CODEC_DEBUG=1.
"""

from __future__ import annotations

import functools
import os
import sys

import typer

from .batch_job import batch
from .decode import decode
from .encode import encode
from .eval import eval_
from .info import info
from .models import models_app
from .train import train_app


BROKEN_PIPE = "output not written: the reader of standard output went away before the end (a closed pipe)"


def _quiet_stdout() -> None:
    """After a broken pipe: stdout onto /dev/null, so that the interpreter's final flush is silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, AttributeError, ValueError):
        pass


OUT_OF_MEMORY = ("not enough memory for this input (a file may declare a size this machine cannot hold; "
                 "--max-pixels / --max-frames refuse such inputs before decoding)")


def _version(value: bool) -> None:
    if value:
        from codec import __version__

        typer.echo(f"codec {__version__}")
        raise typer.Exit()


def _click_types() -> tuple[type, ...]:
    """Usage-error types of the click that typer uses (typer >= 0.20 vendors its own)."""
    types: list[type] = []
    try:
        import click

        types.append(click.ClickException)
    except ImportError:
        pass
    base = getattr(typer.exceptions, "TyperException", None) if hasattr(typer, "exceptions") else None
    if base is None:
        import typer.exceptions as typer_exceptions

        base = getattr(typer_exceptions, "TyperException", None)
    if base is not None:
        types.append(base)
    return tuple(types)


def _fail(message: str, code: int) -> typer.Exit:
    print(f"Error: {message}", file=sys.stderr)
    return typer.Exit(code)


def _json_failure(command, kwargs: dict, message: str, code: int) -> None:
    """Under --json a failed command still prints its one object on stdout (unless it already has)."""
    from .output import Output, Run

    if kwargs.get("json_out") and not Run.emitted:
        try:
            Output(True).emit({"command": command.__name__.rstrip("_"), "ok": False,
                               "error": {"message": message, "exit_code": code}})
        except Exception:  # stdout itself failed: the line on stderr still says what went wrong
            pass


def guarded(command):
    """The error boundary around each command: CodecError -> one line + its exit code, any other
    exception -> 'internal error' (exit 1). With CODEC_DEBUG=1 exceptions propagate with tracebacks.
    It sits on the command itself so that every way of running it (executable, CliRunner) agrees."""

    @functools.wraps(command)
    def run_command(*args, **kwargs):
        from codec.errors import CodecError, is_out_of_memory

        from .output import Run

        debug = os.environ.get("CODEC_DEBUG") == "1"
        Run.start(kwargs.get("quiet", False), kwargs.get("verbose", False), kwargs.get("skip_existing", False))

        def fail(message: str, code: int) -> typer.Exit:
            _json_failure(command, kwargs, message, code)
            return _fail(message, code)

        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except CodecError as exc:
            if debug:
                raise
            raise fail(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
        except BrokenPipeError:
            _quiet_stdout()
            raise _fail(BROKEN_PIPE, 7) from None
        except MemoryError:
            if debug:
                raise
            raise fail(OUT_OF_MEMORY, 4) from None
        except Exception as exc:
            if debug:
                raise
            if is_out_of_memory(exc):  # torch's allocators raise RuntimeError, not MemoryError
                raise fail(OUT_OF_MEMORY, 4) from None
            raise fail(f"internal error: {type(exc).__name__}: {exc} (set CODEC_DEBUG=1 for a traceback)", 1) from None

    return run_command


def make_app() -> typer.Typer:
    app = typer.Typer(
        name="codec", add_completion=True, no_args_is_help=True, pretty_exceptions_enable=False,
        rich_markup_mode=None, help="Learned image compression with real entropy-coded bitstreams.",
    )

    @app.callback()
    def _root(
        version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
    ) -> None:
        """Learned image compression: `codec encode photo.png`, `codec decode photo.bin`."""

    for command in (encode, decode, info):
        app.command()(guarded(command))
    app.command(name="eval")(guarded(eval_))
    app.command(name="batch")(guarded(batch))
    app.add_typer(models_app(guarded), name="models")
    app.add_typer(train_app(guarded), name="train")
    return app


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `codec` executable; returns (and exits with) the documented exit code."""
    from codec.errors import CodecError, is_out_of_memory

    debug = os.environ.get("CODEC_DEBUG") == "1"
    command = typer.main.get_command(make_app())
    try:
        code = command.main(args=argv, prog_name="codec", standalone_mode=False)
        code = code if isinstance(code, int) else 0
    except CodecError as exc:
        if debug:
            raise
        print(f"Error: {exc}", file=sys.stderr)
        code = exc.exit_code
    except typer.Exit as exc:
        code = exc.exit_code
    except _click_types() as exc:  # usage errors: bad option, missing argument
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `codec`: the help text, not an error
            print(exc.format_message(), file=sys.stderr)
            return 2
        if debug:
            raise
        print(f"Error: {exc.format_message()} (see codec --help)", file=sys.stderr)
        code = 2
    except (KeyboardInterrupt, typer.Abort):
        print("Error: interrupted", file=sys.stderr)
        code = 130
    except BrokenPipeError:
        _quiet_stdout()
        print(f"Error: {BROKEN_PIPE}", file=sys.stderr)
        code = 7
    except MemoryError:
        if debug:
            raise
        print(f"Error: {OUT_OF_MEMORY}", file=sys.stderr)
        code = 4
    except Exception as exc:  # the boundary: anything else is a bug, reported in one line
        if debug:
            raise
        if is_out_of_memory(exc):  # torch's allocators raise RuntimeError, not MemoryError
            print(f"Error: {OUT_OF_MEMORY}", file=sys.stderr)
            code = 4
        else:
            print(f"Error: internal error: {type(exc).__name__}: {exc} (set CODEC_DEBUG=1 for a traceback)",
                  file=sys.stderr)
            code = 1
    return code


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
