"""Loading shipped weights: sha256 check against the manifest, then safetensors (never pickle).

A weights file holds the module's parameters plus the frozen coding tables, stored once at export
and read identically by encoder and decoder:
    tables.z_pmf        (N, L) float64  factorized prior of z, escape bins at both ends
    tables.z_offsets    (N,)   int32    value of table index 0, relative to the median
    tables.scale_table  (S,)   float64  Gaussian scales of y, log-spaced
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass

import torch
from safetensors.torch import load as load_safetensors

from codec.errors import WeightsError
from codec.models.hyperprior import HyperpriorConfig, MeanScaleHyperprior
from codec.zoo import ModelEntry, get_entry

TABLE_PREFIX = "tables."


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to code: the module (eval, CPU, float32) and its frozen tables."""

    model_id: str
    sha256: str
    module: MeanScaleHyperprior
    z_pmf: torch.Tensor  # (N, L) float64
    z_offsets: torch.Tensor  # (N,) int32
    scale_table: torch.Tensor  # (S,) float64
    h_s64: torch.nn.Module  # float64 copy of module.h_s: the entropy-parameter path

    @property
    def sha256_prefix(self) -> bytes:
        return bytes.fromhex(self.sha256[:16])


def frozen_tables(module: MeanScaleHyperprior) -> dict[str, torch.Tensor]:
    """The coding tables of a trained module; computed once, at export."""
    from codec.entropy.gaussian import scale_table

    # float64 and a 2^-40 grid: the same table whatever the thread count or the kernels chosen
    offsets, pmf = copy.deepcopy(module.z_density).double().pmf_table()
    pmf = torch.round(pmf.double() * 2.0**40) / 2.0**40
    return {
        TABLE_PREFIX + "z_pmf": pmf.double().contiguous(),
        TABLE_PREFIX + "z_offsets": offsets.int().contiguous(),
        TABLE_PREFIX + "scale_table": scale_table().contiguous(),
    }


def bundle(module: MeanScaleHyperprior, tensors: dict, model_id: str, sha256: str) -> LoadedModel:
    module = module.float().eval().requires_grad_(False)
    return LoadedModel(
        h_s64=copy.deepcopy(module.h_s).double(),
        model_id=model_id, sha256=sha256, module=module,
        z_pmf=tensors[TABLE_PREFIX + "z_pmf"].double(),
        z_offsets=tensors[TABLE_PREFIX + "z_offsets"].int(),
        scale_table=tensors[TABLE_PREFIX + "scale_table"].double(),
    )


def load_entry(entry: ModelEntry) -> LoadedModel:
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
    try:
        tensors = load_safetensors(data)
    except Exception as exc:  # safetensors raises its own error types
        raise WeightsError(f"weights file {entry.file} is not valid safetensors: {exc}") from None
    if entry.family not in ("hyperprior", "m2t", "vct"):
        raise WeightsError(f"model {entry.model_id!r} has family {entry.family!r}, unknown to this version")
    try:
        if entry.family == "m2t":
            return _load_m2t(entry, tensors, actual)
        if entry.family == "vct":
            return _load_vct(entry, tensors, actual)
        config = HyperpriorConfig(**entry.config)
        module = MeanScaleHyperprior(config)
        params = {k: v for k, v in tensors.items() if not k.startswith(TABLE_PREFIX)}
        module.load_state_dict(params, strict=True)
        return bundle(module, tensors, entry.model_id, actual)
    except (TypeError, RuntimeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"weights of {entry.model_id!r} do not fit its config: {first}") from None


# --- M2T models: a variable-rate hyperprior autoencoder + a transformer entropy model ----------

AE_PREFIX, TF_PREFIX = "ae.", "tf."


@dataclass(frozen=True)
class _WithTransformer:
    """A transformer entropy model on top of a hyperprior image model: `hp` (g_a, g_s, gains, and
    h_a, h_s and the frozen z tables), the transformer in float32 (training) and float64 (the
    entropy-parameter path)."""

    model_id: str
    sha256: str
    hp: LoadedModel
    tf: torch.nn.Module
    tf64: torch.nn.Module

    @property
    def module(self) -> MeanScaleHyperprior:
        return self.hp.module

    @property
    def scale_table(self) -> torch.Tensor:
        return self.hp.scale_table

    @property
    def sha256_prefix(self) -> bytes:
        return bytes.fromhex(self.sha256[:16])


@dataclass(frozen=True)
class LoadedM2T(_WithTransformer):
    """An M2T image model ready to code; its weights file holds the whole autoencoder and the
    transformer."""


def _load_m2t(entry: ModelEntry, tensors: dict, sha256: str) -> LoadedM2T:
    from codec.models.m2t import M2T, M2TConfig

    ae = MeanScaleHyperprior(HyperpriorConfig(**entry.config["ae"]))
    if not ae.config.variable_rate:
        raise KeyError("the autoencoder of an M2T model must be variable-rate")
    tf = M2T(M2TConfig(**entry.config["tf"]))
    ae_tensors = {k[len(AE_PREFIX):]: v for k, v in tensors.items() if k.startswith(AE_PREFIX)}
    ae.load_state_dict({k: v for k, v in ae_tensors.items() if not k.startswith(TABLE_PREFIX)}, strict=True)
    tf.load_state_dict({k[len(TF_PREFIX):]: v for k, v in tensors.items() if k.startswith(TF_PREFIX)}, strict=True)
    return bundle_m2t(bundle(ae, ae_tensors, entry.model_id, sha256), tf, entry.model_id, sha256)


def bundle_m2t(hp: LoadedModel, tf: torch.nn.Module, model_id: str, sha256: str) -> LoadedM2T:
    tf = tf.float().eval().requires_grad_(False)
    return LoadedM2T(model_id, sha256, hp, tf, copy.deepcopy(tf).double())


def serialize_m2t(ae: MeanScaleHyperprior, tf: torch.nn.Module, model_id: str) -> tuple[bytes, dict[str, torch.Tensor]]:
    """The safetensors bytes of an M2T model: the whole autoencoder with its tables, the transformer."""
    from safetensors.torch import save

    _, ae_tensors = serialize(copy.deepcopy(ae), model_id)
    tensors = {AE_PREFIX + k: v for k, v in ae_tensors.items()}
    tensors.update({TF_PREFIX + k: v.detach().float().contiguous() for k, v in tf.state_dict().items()})
    return save(tensors, metadata=_metadata("m2t", model_id)), tensors


def m2t_from_modules(ae: MeanScaleHyperprior, tf: torch.nn.Module, model_id: str) -> LoadedM2T:
    """A LoadedM2T straight from modules (tests, training), sha256 as export would write it."""
    data, tensors = serialize_m2t(ae, tf, model_id)
    sha = hashlib.sha256(data).hexdigest()
    ae_tensors = {k[len(AE_PREFIX):]: v for k, v in tensors.items() if k.startswith(AE_PREFIX)}
    return bundle_m2t(bundle(copy.deepcopy(ae), ae_tensors, model_id, sha), copy.deepcopy(tf), model_id, sha)


# --- VCT models: a transformer over previous frames' latents, on top of a shipped image model ----


@dataclass(frozen=True)
class LoadedVCT(_WithTransformer):
    """A VCT video model ready to code; `hp` also codes the intra frames. Its weights file holds the
    transformer only; the image model is referenced by id and sha256 in the manifest and checked at
    load."""


def _load_vct(entry: ModelEntry, tensors: dict, sha256: str) -> LoadedVCT:
    from codec.models.vct import VCT, VCTConfig

    hp = load_model(entry.config["ae"])
    if hp.sha256 != entry.config["ae_sha256"]:
        raise WeightsError(f"model {entry.model_id!r} was trained on {entry.config['ae']!r} with sha256 "
                           f"{entry.config['ae_sha256'][:16]}..., the installed one is {hp.sha256[:16]}...")
    tf = VCT(VCTConfig(**entry.config["tf"]))
    tf.load_state_dict({k[len(TF_PREFIX):]: v for k, v in tensors.items() if k.startswith(TF_PREFIX)}, strict=True)
    return bundle_vct(hp, tf, entry.model_id, sha256)


def bundle_vct(hp: LoadedModel, tf: torch.nn.Module, model_id: str, sha256: str) -> LoadedVCT:
    tf = tf.float().eval().requires_grad_(False)
    return LoadedVCT(model_id, sha256, hp, tf, copy.deepcopy(tf).double())


def serialize_vct(tf: torch.nn.Module, model_id: str) -> bytes:
    """The safetensors bytes of a VCT model's transformer."""
    from safetensors.torch import save

    tensors = {TF_PREFIX + k: v.detach().float().contiguous() for k, v in tf.state_dict().items()}
    return save(tensors, metadata=_metadata("vct", model_id))


def vct_from_modules(hp: LoadedModel, tf: torch.nn.Module, model_id: str) -> LoadedVCT:
    """A LoadedVCT straight from modules (tests, training), sha256 as export would write it."""
    return bundle_vct(hp, copy.deepcopy(tf), model_id, hashlib.sha256(serialize_vct(tf, model_id)).hexdigest())


_CACHE: dict[tuple[str, str], LoadedModel] = {}


def load_model(model_id: str | None = None) -> LoadedModel | LoadedM2T | LoadedVCT:
    """The shipped model `model_id` (default: the manifest's default), loaded once per process."""
    entry = get_entry(model_id)
    key = (str(entry.file), entry.sha256)
    if key not in _CACHE:
        _CACHE[key] = load_entry(entry)
    return _CACHE[key]



def _metadata(family: str, model_id: str) -> dict[str, str]:
    """One metadata key: safetensors writes its metadata map in hash order, so several keys would
    make the bytes (and the sha256) of the same weights differ from one export to the next."""
    import json

    return {"codec": json.dumps({"family": family, "model_id": model_id}, sort_keys=True)}


def serialize(module: MeanScaleHyperprior, model_id: str) -> tuple[bytes, dict[str, torch.Tensor]]:
    """The safetensors bytes of a model (parameters + frozen tables), as export writes them."""
    from safetensors.torch import save

    module = module.float().cpu().eval()
    tensors = {k: v.detach().contiguous() for k, v in module.state_dict().items()}
    tensors.update(frozen_tables(module))
    return save(tensors, metadata=_metadata("hyperprior", model_id)), tensors


def from_module(module: MeanScaleHyperprior, model_id: str) -> LoadedModel:
    """A LoadedModel straight from a module (tests, freshly trained models), with the sha256 of
    the bytes export would write."""
    data, tensors = serialize(module, model_id)
    return bundle(module, tensors, model_id, hashlib.sha256(data).hexdigest())
