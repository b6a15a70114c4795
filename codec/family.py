"""The model-family interface: what every family implements, and what its coding returns.

A family is one unit (STYLE.md rule 12): its model module (`codec/models/`), its pipeline module
(`codec/pipeline/<family>.py`, which defines a `Family` subclass and the `FAMILY` instance), its
trainer (`codec/train/`), registered once in `codec.registry` under the manifest's `family` string.
Nothing outside those modules branches on a family's classes; the pipelines, the zoo, the CLI,
training export and `codec eval` reach a family through `codec.registry.family_of(model)`.

    weights file --Family.load--> Loaded model --Family.serialize--> weights file bytes
    image families:  pixels --analyse--> analysis --[refine (effort)]--> --encode(rate)--> Encoded
                     Container --decode(rate)--> (pixels, z_sym, y_sym)
    video families:  frame_coder(model, rate, ...) -> a per-frame coder the streaming loops drive
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np


@dataclass(frozen=True)
class Loaded:
    """A model ready to code. Subclasses (one per family) add their modules and frozen tables and set
    `family` to their registry name."""

    family: ClassVar[str] = ""
    model_id: str
    sha256: str

    @property
    def sha256_prefix(self) -> bytes:
        """The 8 bytes of the weights' hash that every bitstream header records."""
        return bytes.fromhex(self.sha256[:16])


@dataclass(frozen=True)
class Encoded:
    """A coded image: the whole file and what the encoder saw."""

    data: bytes  # the whole file
    header: Any  # codec.container.Header
    z_sym: np.ndarray  # (N, h, w) int32 side symbols, (0, 0, 0) when the family has none
    y_sym: np.ndarray  # (M, 4h, 4w) int32
    seconds: float  # coding time, model load excluded


@dataclass(frozen=True)
class Decoded:
    pixels: np.ndarray  # (H, W, 3) uint8
    header: Any
    z_sym: np.ndarray
    y_sym: np.ndarray
    seconds: float


NO_SYMBOLS = np.zeros((0, 0, 0), np.int32)


class Family:
    """One model family. Image families implement analyse/encode/decode (and refine for effort);
    video families implement frame_coder. Every family implements load, serialize and config."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = "image"  # "image" or "video": which pipeline codes with it
    efforts: ClassVar[tuple[int, ...]] = (0,)  # effort levels the encoder offers
    default_effort: ClassVar[int] = 0  # the effort an encode at effort 0 runs (fitted families: their first level)
    devices: ClassVar[tuple[str, ...]] = ("cpu",)  # torch devices the encoder's refinement can run on

    # --- weights ---------------------------------------------------------------------------

    def load(self, model_id: str, sha256: str, config: dict, tensors: dict, resolve) -> Loaded:
        """The model of a verified weights file. `resolve(model_id)` loads another shipped model
        (a video family's image model). Raises TypeError, KeyError or RuntimeError when the tensors
        do not fit the config (the caller turns them into WeightsError)."""
        raise NotImplementedError

    def serialize(self, model: Loaded) -> bytes:
        """The safetensors bytes of a model, as export writes them (`sha256` is their hash)."""
        raise NotImplementedError

    def config(self, model: Loaded) -> dict:
        """The manifest's `config` of a model: what `load` needs besides the tensors."""
        raise NotImplementedError

    def builtin(self, model_id: str) -> Loaded:
        """The model of a family that has no weights file (codec.registry.BUILTIN)."""
        raise NotImplementedError

    # --- image families --------------------------------------------------------------------

    def rate_for(self, model: Loaded, quality: float | None, step: float):
        """The rate setting an encoder asks for; None: the autoencoder rates of codec.pipeline.rate."""
        return None

    def rate_from_field(self, model: Loaded, value: int):
        """The rate setting a header's quality field stands for; None: codec.pipeline.rate's."""
        return None

    def analyse(self, model: Loaded, pixels: np.ndarray):
        """What the encoder computes before it knows the rate (reused by rate searches)."""
        raise NotImplementedError

    def refine(self, model: Loaded, analysis, rate, effort: int, **options):
        """The analysis refined for `effort` (encoder only; the file format does not change).
        `options`: seed, on_progress(step, steps, bpp, psnr) for long refinements."""
        if effort:
            raise ValueError(f"effort levels are not available for {self.name} models; use effort 0")
        return analysis

    def compress_to_size(self, model: Loaded, pixels: np.ndarray, max_bytes: int, effort: int, on_progress=None,
                         device: str = "cpu"):
        """(Encoded, fits) of a family with its own way to meet a size; None: the pipeline's search
        over the rate, which re-encodes a shared analysis."""
        return None

    def effort_settings(self, effort: int) -> dict:
        """What an effort level does (its schedule), for evaluation records and caches."""
        return {}

    def encode(self, model: Loaded, analysis, rate) -> Encoded:
        raise NotImplementedError

    def decode(self, model: Loaded, container, rate) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A parsed, CRC-checked container -> (pixels (H, W, 3) uint8, z_sym, y_sym)."""
        raise NotImplementedError

    # --- video families --------------------------------------------------------------------

    def frame_coder(self, model: Loaded, rate, **settings):
        raise NotImplementedError


def safetensors_bytes(tensors: dict, family: str, model_id: str) -> bytes:
    """The weights file bytes of `tensors`, with one metadata key: safetensors writes its metadata
    map in hash order, so several keys would make the bytes (and the sha256) of the same weights
    differ from one export to the next."""
    from safetensors.torch import save

    return save(tensors, metadata={"codec": json.dumps({"family": family, "model_id": model_id}, sort_keys=True)})
