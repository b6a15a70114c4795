"""The model a bitstream needs: checked against its header before anything is decoded."""

from __future__ import annotations

from codec.container import Header
from codec.container.chunks import KIND_IMAGE, KIND_VIDEO
from codec.errors import ModelError
from codec.family import Loaded
from codec.registry import family_of

KIND_NAMES = {KIND_IMAGE: "image", KIND_VIDEO: "video"}


def resolve_model(model: str | Loaded | None, header: Header) -> Loaded:
    """`model` as given (its id must be the header's) or the shipped model the header names (None or
    an id); it must be of the bitstream's kind and have the weights whose hash the header records.

    Raises:
        ModelError: another model, a model of the other kind, or other weights.
        WeightsError: the shipped weights are missing or damaged.
    """
    from codec.weights import load_model

    if isinstance(model, Loaded):
        if model.model_id != header.model_id:
            raise ModelError(f"bitstream needs model {header.model_id!r}, got {model.model_id!r}")
    else:
        model = load_model(model or header.model_id)
    want, have = KIND_NAMES.get(header.kind, "?"), family_of(model).kind
    if have != want:  # a damaged header can name one, with its weights hash
        raise ModelError(f"{want} bitstreams need {want} models; {model.model_id!r} is a {have} model "
                         f"(the header names {header.model_id!r})")
    if model.sha256_prefix != header.weights_sha256_prefix:
        raise ModelError(
            f"bitstream was made with weights {header.weights_sha256_prefix.hex()} of {header.model_id!r}; "
            f"the installed weights are {model.sha256_prefix.hex()}"
        )
    return model
