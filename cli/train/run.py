"""What the `codec train` commands do around a trainer or an export: print the run's config, show
progress, print the exported entry. The trainers and exports (codec.train.*) are imported only when
a command runs: building the command line loads no torch."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import sys
from collections.abc import Callable, Iterator

import typer

from .options import option

NO_RESUME = option("no_resume", bool, False, "Start afresh even when RUN/checkpoint.pt exists.")


def _function(path: str) -> Callable:
    module, name = path.rsplit(":", 1)
    return getattr(importlib.import_module(module), name)


@contextlib.contextmanager
def progress() -> Iterator[tuple[Callable, Callable | None]]:
    """(log, on_progress): on a terminal, a progress bar with ETA on stderr and log lines above it;
    elsewhere log lines on stdout, flushed (logs of unattended runs), and no bar."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    console = Console(stderr=True)
    if not console.is_terminal:
        yield (lambda text: print(text, flush=True, file=sys.stdout)), None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
                  TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console,
                  transient=True) as bar:
        task = bar.add_task("training", total=1.0)
        yield ((lambda text: bar.console.print(text, markup=False, highlight=False)),
               (lambda frac, text: bar.update(task, completed=min(frac, 1.0), description=text)))


def trainer(path: str) -> Callable:
    """The run of a training command: `path` ("module:function") trains a config."""

    def run(config, no_resume: bool = False) -> None:
        print(json.dumps(dataclasses.asdict(config)), flush=True)
        with progress() as (log, on_progress):
            _function(path)(config, resume=not no_resume, log=log, on_progress=on_progress)

    return run


def exporter(path: str) -> Callable:
    """The run of an export command: `path` ("module:function") exports a config's run; the entry's
    file, sha256 and size are printed as one JSON object."""

    def run(config) -> None:
        entry = _function(path)(config)
        typer.echo(json.dumps({k: entry[k] for k in ("file", "sha256", "bytes")}))

    return run
