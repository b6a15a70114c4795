"""codec train --data DIR --run-dir DIR [--max-minutes M] ...: train a hyperprior (resumable).

The same as `python -m codec.train`. A run resumes from RUN/checkpoint.pt unless --no-resume; with no
checkpoint and --init it warm-starts from a shipped model. `codec train export ...` exports a run.
"""

from __future__ import annotations

import sys

from codec.train.args import parse_config
from codec.train.loop import TrainConfig, train


def main(argv=None, prog: str = "codec train") -> None:
    cfg, resume = parse_config(argv, TrainConfig, prog, __doc__)
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
        TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console,
        disable=not console.is_terminal, transient=True,
    ) as bar:
        task = bar.add_task("training", total=1.0)

        def log(text: str) -> None:
            if console.is_terminal:
                bar.console.print(text, markup=False, highlight=False)
            else:
                print(text, flush=True, file=sys.stdout)

        train(cfg, resume=resume, log=log,
              on_progress=lambda frac, text: bar.update(task, completed=min(frac, 1.0), description=text))


if __name__ == "__main__":
    main(prog="python -m codec.train")
