"""`python -m codec ...`: the same command line as the `codec` executable.

Installed (a wheel, or `pip install -e`), the command line is the package codec.cli. A bare checkout
on PYTHONPATH with nothing installed (the GPU recipes in scripts/) has it as the top-level folder
cli/ beside codec/, which is taken from there."""

import sys


def _run() -> None:
    try:
        from codec.cli.app import run
    except ModuleNotFoundError as exc:
        from codec.settings import REPO_ROOT, in_checkout

        if exc.name != "codec.cli" or not in_checkout():
            raise
        sys.path.insert(0, str(REPO_ROOT))
        from cli.app import run
    run()


if __name__ == "__main__":
    _run()
