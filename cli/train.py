"""`codec train`: train a model (options of `python -m codec.train`) or `codec train export` a run."""

from __future__ import annotations

import typer


def train(ctx: typer.Context) -> None:
    """Train a model: codec train --data DIR --run-dir DIR [...]; export one: codec train export [...];
    M2T entropy models: codec train m2t --ae ID ... and codec train m2t-export; VCT video models:
    codec train video --run-dir DIR ... and codec train video-export. Each takes --help."""
    args = list(ctx.args)
    if args[:1] == ["video"]:
        from codec.train.video import main as video_main

        video_main(args[1:])
    elif args[:1] == ["video-export"]:
        from codec.train.video import export_main as video_export

        video_export(args[1:])
    elif args[:1] == ["m2t"]:
        from codec.train.m2t import main as m2t_main

        m2t_main(args[1:])
    elif args[:1] == ["m2t-export"]:
        from codec.train.m2t import export_main

        export_main(args[1:])
    elif args[:1] == ["export"]:
        from codec.train.export import main as export_main

        export_main(args[1:], prog="codec train export")
    else:
        from codec.train.__main__ import main as train_main

        train_main(args)
