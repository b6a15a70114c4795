"""argparse for the training entry points, with usage errors as one line (exit 2) like the CLI."""

from __future__ import annotations

import argparse

from codec.errors import UsageError


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print the whole usage and exit
        raise UsageError(f"{message} (see {self.prog} --help)")


def add_config_arguments(parser: argparse.ArgumentParser, config_class) -> None:
    """One --option per field of a training-config dataclass (bools as flags; no default = required)."""
    import dataclasses

    for f in dataclasses.fields(config_class):
        if f.name == "extra":
            continue
        name = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            parser.add_argument(name, action="store_true")
        elif f.default is dataclasses.MISSING:
            parser.add_argument(name, required=True)
        else:
            parser.add_argument(name, type=type(f.default), default=f.default)


def parse_config(argv, config_class, prog: str, description: str):
    """(config, resume) from the command line of a training entry point; prints the config."""
    import dataclasses
    import json

    p = ArgumentParser(prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(p, config_class)
    p.add_argument("--no-resume", action="store_true")
    args = vars(p.parse_args(argv))
    resume = not args.pop("no_resume")
    cfg = config_class(**args)
    print(json.dumps(dataclasses.asdict(cfg)), flush=True)
    return cfg, resume
