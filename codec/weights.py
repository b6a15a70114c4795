"""Loading shipped weights: sha256 check against the manifest, then safetensors (never pickle), then
the model's family (codec.registry) builds the model from the tensors.

A hyperprior weights file holds the module's parameters plus the frozen coding tables, stored once at
export and read identically by encoder and decoder (codec.entropy.hyperprior):
    tables.z_pmf        (N, L) float64  factorized prior of z, escape bins at both ends
    tables.z_offsets    (N,)   int32    value of table index 0, relative to the median
    tables.scale_table  (S,)   float64  Gaussian scales of y, log-spaced
Other families prefix their parts (M2T: `ae.` and `tf.`; VCT: `tf.`, the image model by reference).
"""

from __future__ import annotations

import hashlib

from codec.errors import WeightsError, is_out_of_memory
from codec.family import Loaded
from codec.registry import get as get_family
from codec.zoo import ModelEntry, get_entry


def read_tensors(entry: ModelEntry) -> tuple[dict, str]:
    """The tensors of a model's weights file and its sha256, checked against the manifest."""
    if not entry.file.exists():
        raise WeightsError(
            f"model {entry.model_id!r} is not installed (no {entry.file.name}): the package ships the default "
            f"models only; install others with `codec models install DIR`, DIR holding their .safetensors files")
    try:
        data = entry.file.read_bytes()
    except OSError as exc:
        raise WeightsError(f"cannot read weights of {entry.model_id!r} at {entry.file}: {exc.strerror or exc}") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != entry.sha256:
        raise WeightsError(
            f"weights file {entry.file} does not match the manifest: its sha256 is {actual}, the manifest "
            f"expects {entry.sha256} (re-fetch the file or re-export the model)"
        )
    from safetensors.torch import load as load_safetensors  # torch only for models with weights

    try:
        return load_safetensors(data), actual
    except Exception as exc:  # safetensors raises its own error types
        if is_out_of_memory(exc):  # no room for the tensors: the file is fine
            raise
        raise WeightsError(f"weights file {entry.file} is not valid safetensors: {exc}") from None


def load_entry(entry: ModelEntry) -> Loaded:
    """The model of a manifest entry (WeightsError when its file is missing, altered or does not fit; an
    allocation failure propagates as it is, for the CLI to report as out of memory)."""
    tensors, sha256 = read_tensors(entry)
    try:
        family = get_family(entry.family)
    except WeightsError:
        raise WeightsError(f"model {entry.model_id!r} has family {entry.family!r}, unknown to this version") from None
    try:
        return family.load(entry.model_id, sha256, entry.config, tensors, load_model)
    except (TypeError, RuntimeError, KeyError) as exc:
        if is_out_of_memory(exc):  # torch's allocation failure is a RuntimeError too: not a mismatch
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"weights of {entry.model_id!r} do not fit its config: {first}") from None


_CACHE: dict[tuple[str, str], Loaded] = {}


def load_model(model_id: str | None = None) -> Loaded:
    """The shipped model `model_id` (default: the manifest's default), loaded once per process; a
    built-in model (codec.registry.BUILTIN: a family without trained weights) needs no manifest;
    a path ending in .safetensors is a model file whose folder's manifest.json lists it."""
    from codec.registry import BUILTIN

    if model_id in BUILTIN:
        return get_family(BUILTIN[model_id]).builtin(model_id)
    if model_id and model_id.endswith(".safetensors"):  # a file outside the zoo, its manifest beside it
        from codec.zoo import entry_for_file

        entry = entry_for_file(model_id)
    else:
        entry = get_entry(model_id)
    key = (str(entry.file), entry.sha256)
    if key not in _CACHE:
        _CACHE[key] = load_entry(entry)
    return _CACHE[key]
