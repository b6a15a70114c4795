"""Typer options from a config dataclass: one `--option` per field, its help text from the class's
Google-style `Attributes:` docstring (a subclass's line replaces its base's), its default shown.

    codec.train.config.XConfig ──command_from──► typer command(**options) ──► run(XConfig(...), **extra)
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from collections.abc import Callable, Sequence

import typer

_ATTRIBUTE = re.compile(r"^ {4}(\w+): (.*)$")


def _attributes(doc: str) -> dict[str, str]:
    """name -> text of the `Attributes:` section of one docstring."""
    out: dict[str, str] = {}
    name, inside = None, False
    for line in inspect.cleandoc(doc).splitlines():
        if line.strip() == "Attributes:":
            inside = True
        elif inside and (m := _ATTRIBUTE.match(line)):
            name = m[1]
            out[name] = m[2]
        elif inside and name and line.startswith(" " * 8):
            out[name] += " " + line.strip()
        elif inside and line.strip():
            break
    return out


def field_help(config_class: type) -> dict[str, str]:
    """Help text of every documented field of a dataclass, its bases' included."""
    helps: dict[str, str] = {}
    for cls in reversed(config_class.__mro__):
        if dataclasses.is_dataclass(cls) and cls.__doc__:
            helps.update(_attributes(cls.__doc__))
    return helps


def _ordered(config_class: type) -> list[dataclasses.Field]:
    """Required fields first, then those the class declares (or re-declares), then the ones it
    inherits unchanged from its bases (the training loop's, the export's)."""
    own = set(vars(config_class).get("__annotations__", {}))
    fields = [f for f in dataclasses.fields(config_class) if f.init]
    return sorted(fields, key=lambda f: (f.default is not dataclasses.MISSING, f.name not in own))


def option(name: str, annotation: type, default, help_text: str) -> inspect.Parameter:
    """One keyword parameter of a generated command: `--name-with-dashes`, default shown."""
    flag = "--" + name.replace("_", "-")
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                             default=typer.Option(default, flag, help=help_text, show_default=True))


def config_options(config_class: type) -> list[inspect.Parameter]:
    """The options of every field of `config_class`; a field without help text is a bug (KeyError)."""
    hints = typing.get_type_hints(config_class)
    helps = field_help(config_class)
    return [option(f.name, hints[f.name], ... if f.default is dataclasses.MISSING else f.default, helps[f.name])
            for f in _ordered(config_class)]


def command_from(config_class: type, run: Callable, extra: Sequence[inspect.Parameter] = ()) -> Callable:
    """A function typer registers as a command: its options are the fields of `config_class` and
    `extra`; it calls `run(config, **extra values)`."""
    names = {f.name for f in dataclasses.fields(config_class) if f.init}

    def command(**values):
        config = config_class(**{k: v for k, v in values.items() if k in names})
        return run(config, **{k: v for k, v in values.items() if k not in names})

    command.__signature__ = inspect.Signature([*config_options(config_class), *extra])
    command.__doc__ = run.__doc__
    return command
