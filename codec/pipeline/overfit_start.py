"""Where the overfitted encoder starts: networks learned across training photos (Reptile).

A fit from scratch spends much of its iterations learning what every photo shares (an ARM that
predicts a latent from its neighbours, upsampling filters, a synthesis that maps latents to
colours). A starting point learned once across many photos (codec.train.overfit_start) lets the
encoder spend its iterations on the image instead. Only the ARM, the upsampling taps and the
synthesis start there; the latents start at zero as before. The decoder never needs the start: the
file carries the fitted networks.

    weights/manifest.json "starts" table --sha256 check (codec.weights)--> tensors (state-dict keys)
        --apply(model)--> the model's networks; grid-indexed tensors (the synthesis's first layer
          has one column per grid, one taps filter per upsampling) copy the grids both have

Where no start ships (a manifest without one: an install without the weights folder) the encoder
starts from scratch; `effort_settings` records which start a fit used, so results never mix.
"""

from __future__ import annotations

from dataclasses import dataclass

from codec.errors import WeightsError
from codec.zoo import get_start

PREFIX = "overfit-start-"
NETWORK_PREFIXES = ("arm.", "taps.", "synthesis.")


@dataclass(frozen=True)
class Start:
    """A decoder size's starting networks: name (manifest key), sha256 of the file, tensors."""

    name: str
    sha256: str
    tensors: dict


def start_name(size: str) -> str:
    return PREFIX + size


def start_sha256(size: str) -> str:
    """The manifest's sha256 of the start of decoder `size` ("" where none ships); reads no tensors."""
    entry = get_start(start_name(size))
    return entry.sha256 if entry else ""


def start_label(size: str) -> str:
    """What effort settings record of the start of decoder `size`: its sha256's first 16 digits, or
    "none" (the encoder starts from scratch)."""
    return start_sha256(size)[:16] or "none"


_CACHE: dict[tuple[str, str], Start] = {}


def load_start(size: str) -> Start | None:
    """The start of decoder `size`, checked against the manifest (WeightsError when its file is
    missing or altered); None where the manifest lists none."""
    from codec.weights import read_tensors

    entry = get_start(start_name(size))
    if entry is None:
        return None
    key = (str(entry.file), entry.sha256)
    if key not in _CACHE:
        tensors, sha256 = read_tensors(entry)
        _CACHE[key] = Start(entry.model_id, sha256, tensors)
    return _CACHE[key]


def network_tensors(model) -> dict:
    """The networks of an OverfitModel as a state dict (no latents, no masks): what a start holds."""
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k.startswith(NETWORK_PREFIXES)}


def apply(model, tensors: dict) -> None:
    """Copy a start's tensors into `model`'s networks in place. A start learned on another grid count
    fills the grids both have (the synthesis's first-layer columns and the taps are per grid, finest
    first); the others keep their fresh values. WeightsError when a tensor fits no network of the
    model (another decoder size)."""
    import torch

    own = model.state_dict()
    with torch.no_grad():
        for key, value in tensors.items():
            if key.startswith("taps.") and key not in own:
                continue  # a finer-than-needed start: this image has fewer grids
            if key not in own or own[key].dim() != value.dim():
                raise WeightsError(f"starting networks do not fit this decoder: {key!r}")
            target = own[key]
            if target.shape == value.shape:
                target.copy_(value)
            elif key == "synthesis.mlp.0.weight" and target.shape[0] == value.shape[0]:
                n = min(target.shape[1], value.shape[1])
                target[:, :n].copy_(value[:, :n])
            else:
                raise WeightsError(f"starting networks do not fit this decoder: {key!r} is {tuple(value.shape)}, "
                                   f"the model's {tuple(target.shape)}")
