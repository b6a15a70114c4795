"""The registry of model families: the manifest's `family` string -> the module that implements it.

Adding a family is adding its modules and one line here. The modules are imported on first use,
so `codec models` and `codec info` (which read only the manifest) never load torch.
"""

from __future__ import annotations

import importlib

from codec.errors import WeightsError
from codec.family import Family, Loaded

FAMILIES = {
    "hyperprior": "codec.pipeline.hyperprior",
    "m2t": "codec.pipeline.m2t",
    "overfit": "codec.pipeline.overfit",
    "vct": "codec.pipeline.vct",
}


BUILTIN = {"overfit": "overfit"}
"""Models without a weights file (model id -> family): the family builds them (`Family.builtin`)."""


def names() -> list[str]:
    return sorted(FAMILIES)


def get(name: str) -> Family:
    """The family registered as `name` (its module's `FAMILY`); WeightsError when unknown."""
    if name not in FAMILIES:
        raise WeightsError(f"model family {name!r} is unknown to this version of codec "
                           f"(known: {', '.join(names())})")
    family = importlib.import_module(FAMILIES[name]).FAMILY
    assert family.name == name, f"{FAMILIES[name]}.FAMILY is registered as {name!r} but names itself {family.name!r}"
    return family


def family_of(model: Loaded) -> Family:
    return get(model.family)
