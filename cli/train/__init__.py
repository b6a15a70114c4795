"""`codec train`: train a model of any family, or export a run to weights/ (a typer sub-app).

    codec train [hyperprior] --data DIR --run-dir DIR ...   codec train export --checkpoint RUN/checkpoint.pt ...
    codec train m2t --ae ID --data DIR --run-dir DIR ...     codec train m2t-export ...
    codec train video --run-dir DIR ...                      codec train video-export ...
    codec train overfit-start --run-dir DIR --size S ...     codec train overfit-start-export ...

Options come from the config dataclasses of codec.train.config (cli/train/options.py); without a
subcommand, options go to `hyperprior` (`codec train --data ...` as before subcommands existed).
`python -m codec train ...` is the same command line where the executable is not installed.
"""

from __future__ import annotations

from collections.abc import Callable

import typer
from typer.core import TyperGroup

try:  # typer >= 0.20 vendors click; its exceptions derive from TyperException
    from typer.exceptions import TyperException as ClickError
except ImportError:  # pragma: no cover - older typer on click
    from click.exceptions import ClickException as ClickError

from .options import command_from
from .run import NO_RESUME, exporter, trainer
from codec.errors import UsageError
from codec.train.config import (
    ExportConfig,
    HyperpriorExportConfig,
    HyperpriorTrainConfig,
    M2TTrainConfig,
    OverfitStartTrainConfig,
    VideoTrainConfig,
)

DEFAULT_COMMAND = "hyperprior"

# name, config, run, extra options, help
COMMANDS = [
    ("hyperprior", HyperpriorTrainConfig, trainer("codec.train.hyperprior:train_hyperprior"), [NO_RESUME],
     "Train a hyperprior image model. Resumes RUN/checkpoint.pt (with none, --init warm-starts). The default "
     "subcommand: `codec train --data ...` is `codec train hyperprior --data ...`."),
    ("export", HyperpriorExportConfig, exporter("codec.train.hyperprior:export_hyperprior"), [],
     "Export a hyperprior run to weights/. From its checkpoint or shards; an existing id is replaced only "
     "by a model with a lower validation RD cost, or with --force."),
    ("m2t", M2TTrainConfig, trainer("codec.train.m2t:train_m2t"), [NO_RESUME],
     "Train an M2T entropy model. On the latents of a frozen variable-rate autoencoder; resumes "
     "RUN/checkpoint.pt."),
    ("m2t-export", ExportConfig, exporter("codec.train.m2t:export_m2t"), [],
     "Export an M2T run to weights/. The autoencoder and the transformer in one file."),
    ("video", VideoTrainConfig, trainer("codec.train.video:train_video"), [NO_RESUME],
     "Train a VCT video entropy model. On the latents of a frozen image model; resumes RUN/checkpoint.pt."),
    ("video-export", ExportConfig, exporter("codec.train.video:export_video"), [],
     "Export a VCT run to weights/. The transformer; the image model is referenced by id and sha256."),
    ("overfit-start", OverfitStartTrainConfig, trainer("codec.train.overfit_start:train_overfit_start"), [NO_RESUME],
     "Learn the overfitted encoder's starting networks for one decoder size (Reptile across training photos); "
     "resumes RUN/checkpoint.pt."),
    ("overfit-start-export", ExportConfig, exporter("codec.train.overfit_start:export_overfit_start"), [],
     "Export an overfit-start run to weights/ (the manifest's starts; id overfit-start-<size>)."),
]


class TrainGroup(TyperGroup):
    """Options without a subcommand go to the default one; usage errors name the --help to read."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        if args and args[0].startswith("-") and args[0] not in ctx.help_option_names:
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ClickError as exc:
            where = getattr(exc, "ctx", None)
            if getattr(exc, "exit_code", 0) != 2 or where is None:
                raise
            raise UsageError(f"{exc.format_message()} (see {where.command_path} --help)") from None


def train_app(guard: Callable[[Callable], Callable]) -> typer.Typer:
    """The `codec train` sub-app; `guard` is the CLI's error boundary, wrapped around every command."""
    app = typer.Typer(cls=TrainGroup, no_args_is_help=True, add_completion=False, rich_markup_mode=None,
                      pretty_exceptions_enable=False,
                      help="Train a model (hyperprior, M2T, VCT) or export a run to weights/; each subcommand takes --help.")
    for name, config, run, extra, text in COMMANDS:
        app.command(name, help=text)(guard(command_from(config, run, extra)))
    return app
