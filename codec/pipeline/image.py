"""Image pipeline: encode and decode, mirrored step by step.

    encode: pixels -pad-> x -g_a-> y -h_a-> z -round-> z_sym --------------------> ZSTR
            z_hat = z_sym + median -h_s (float64)-> mean, scale -snap-> mean_q, scale_index
            y_sym = round(y - mean_q) ------------------------------------------> YSTR
    decode: ZSTR -> z_sym -> (same parameter path) -> YSTR -> y_sym
            y_hat = y_sym + mean_q -g_s-> x_hat -clamp, round, crop-> pixels

The parameter path (`entropy_parameters`) is the one function both sides call; it runs on CPU in
float64 and its outputs are snapped to a grid, so the encoder codes with exactly the parameters the
decoder will compute from the bytes alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from codec import coder
from codec.container import YSTR, ZSTR, Container, Header, Limits, read_container, write_container
from codec.entropy.gaussian import snap_means, snap_scales
from codec.errors import FormatError, ModelError, UnsupportedError
from codec.io import pad_to_multiple, read_image
from codec.models.hyperprior import STRIDE
from codec.pipeline.rate import Rate, rate_for, rate_from_field
from codec.pipeline.tiles import analyse_tiled, synthesize
from codec.weights import LoadedM2T, LoadedModel, LoadedVCT
from codec.weights import load_model as _load_shipped

__all__ = ["Encoded", "Decoded", "compress", "decompress", "encode_image", "decode_image", "load_model"]


@dataclass(frozen=True)
class Encoded:
    data: bytes  # the whole file
    header: Header
    z_sym: np.ndarray  # (N, h, w) int32
    y_sym: np.ndarray  # (M, 4h, 4w) int32
    seconds: float  # coding time, model load excluded


@dataclass(frozen=True)
class Decoded:
    pixels: np.ndarray  # (H, W, 3) uint8
    header: Header
    z_sym: np.ndarray
    y_sym: np.ndarray
    seconds: float


def load_model(model: str | LoadedModel | LoadedM2T | None = None) -> LoadedModel | LoadedM2T:
    """A loaded model from an id (None: the default shipped model) or as given."""
    return model if isinstance(model, (LoadedModel, LoadedM2T)) else _load_shipped(model)


@torch.no_grad()
def entropy_parameters(model: LoadedModel, z_sym: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """z symbols (N, h, w) -> snapped means (1, M, 4h, 4w) float32 and raw scales (same, float64).

    Identical on both sides: integer input, float64 arithmetic on CPU; the means are snapped here,
    the scales by `scale_indexes` once the rate setting is known.
    """
    med = model.module.z_density.quantiles[:, 0, 1].double().view(1, -1, 1, 1)
    z_hat = torch.from_numpy(z_sym.astype(np.float64))[None] + med
    mean, scale = model.h_s64(z_hat).chunk(2, dim=1)
    return snap_means(mean), scale.abs()


def scale_indexes(model: LoadedModel, scale: torch.Tensor, rate: Rate) -> np.ndarray:
    """Scale of round((y - mean) / enc_step) is scale / enc_step, snapped to the table: (M, 4h, 4w)."""
    return snap_scales(scale / rate.enc_step.view(1, -1, 1, 1), model.scale_table)[0].numpy()


@dataclass(frozen=True)
class Analysis:
    """Everything the encoder computes before it knows the rate (reused by rate searches)."""

    padded: np.ndarray  # (Hp, Wp, 3) uint8, the padded input (for encoder-side refinement)
    y: torch.Tensor  # (1, M, H/16, W/16) float32
    z_sym: np.ndarray  # (N, H/64, W/64) int32
    mean_q: torch.Tensor  # (1, M, H/16, W/16) float32, snapped
    scale: torch.Tensor  # (1, M, H/16, W/16) float64, raw
    height: int
    width: int
    pad_bottom: int
    pad_right: int
    z_stream: bytes
    seconds: float

    @property
    def x(self) -> torch.Tensor:
        """(1, 3, Hp, Wp) float32 in [0, 1]."""
        return torch.from_numpy(np.ascontiguousarray(self.padded)).permute(2, 0, 1)[None].float().div_(255.0)


@torch.no_grad()
def analyse(model: LoadedModel, pixels: np.ndarray) -> Analysis:
    t0 = time.perf_counter()
    height, width = pixels.shape[:2]
    padded, (pad_bottom, pad_right) = pad_to_multiple(pixels, STRIDE)
    module = model.module
    y = analyse_tiled(module.g_a, padded)
    z = module.h_a(y)
    med = module.z_density.quantiles[:, 0, 1].view(1, -1, 1, 1)
    z_sym = torch.round(z - med)[0].to(torch.int32).numpy()
    mean_q, scale = entropy_parameters(model, z_sym)
    z_stream = coder.encode_categorical(z_sym.reshape(z_sym.shape[0], -1), model.z_pmf.numpy(), model.z_offsets.numpy())
    return Analysis(padded, y, z_sym, mean_q, scale, height, width, pad_bottom, pad_right, z_stream, time.perf_counter() - t0)


@torch.no_grad()
def encode_analysis(model: LoadedModel, a: Analysis, rate: Rate) -> Encoded:
    """The container for one rate setting."""
    t0 = time.perf_counter()
    enc_step = rate.enc_step.float().view(1, -1, 1, 1)
    y_sym = torch.round((a.y - a.mean_q) / enc_step)[0].to(torch.int32).numpy()
    y_stream = coder.encode_gaussian(y_sym, scale_indexes(model, a.scale, rate), model.scale_table.numpy())
    header = Header(
        kind=0, width=a.width, height=a.height, pad_right=a.pad_right, pad_bottom=a.pad_bottom,
        bit_depth=8, channels=3, quality=rate.field, weights_sha256_prefix=model.sha256_prefix,
        model_id=model.model_id, coder=coder.coder_name(), coder_version=coder.coder_version(),
    )
    data = write_container(header, [(ZSTR, a.z_stream), (YSTR, y_stream)])
    return Encoded(data, header, a.z_sym, y_sym, a.seconds + time.perf_counter() - t0)


def compress_to_size(model: LoadedModel, pixels: np.ndarray, max_bytes: int) -> tuple[Encoded, bool]:
    """The highest-quality file of at most `max_bytes` (whole file); (smallest file, False) if none fits.

    The analysis runs once; only the quantisation and coding repeat during the search."""
    from codec.pipeline.rate import STEP_RANGE, is_variable, search

    if isinstance(model, LoadedM2T):
        from codec.pipeline import m2t

        t0 = time.perf_counter()
        a = m2t.analyse(model, pixels)

        def encode_m2t(q: float) -> Encoded:
            data, header, y_sym = m2t.encode_analysis(model, a, rate_for(model, quality=q))
            return Encoded(data, header, np.zeros((0, 0, 0), np.int32), y_sym, time.perf_counter() - t0)

        return search(encode_m2t, 0.0, 100.0, max_bytes, True)
    a = analyse(model, pixels)
    if is_variable(model):
        return search(lambda q: encode_analysis(model, a, rate_for(model, quality=q)), 0.0, 100.0, max_bytes, True)
    return search(lambda s: encode_analysis(model, a, rate_for(model, step=s)), *STEP_RANGE, max_bytes, False)


def compress(model: LoadedModel, pixels: np.ndarray, step: float = 1.0, quality: float | None = None,
             effort: int = 0) -> Encoded:
    """(H, W, 3) uint8 -> a complete container.

    Rate: `quality` 0..100 (variable-rate models; single-rate ones map it to a step) or `step`
    (quantisation step of y, 1 = as trained, larger = fewer bits). Recorded in the header, so
    decoding needs no flag. `effort` 0..3 refines the latents for this image (slower encode, same
    decoder; see codec.pipeline.refine).
    """
    from codec.pipeline.refine import refine

    t0 = time.perf_counter()
    rate = rate_for(model, quality=quality, step=step)
    if isinstance(model, LoadedM2T):
        if effort:
            raise ValueError("effort levels refine hyperprior latents; M2T models code at effort 0 only")
        from codec.pipeline import m2t

        data, header, y_sym = m2t.encode_analysis(model, m2t.analyse(model, pixels), rate)
        return Encoded(data, header, np.zeros((0, 0, 0), np.int32), y_sym, time.perf_counter() - t0)
    analysis = refine(model, analyse(model, pixels), rate, effort)
    enc = encode_analysis(model, analysis, rate)
    return replace(enc, seconds=time.perf_counter() - t0)


@torch.no_grad()
def decompress(data: bytes | Container, model: str | LoadedModel | LoadedM2T | None = None, limits: Limits = Limits()) -> Decoded:
    """A complete container (bytes, or already parsed and CRC-checked) -> (H, W, 3) uint8.
    `model` None: the model the header names."""
    container = data if isinstance(data, Container) else read_container(data, limits)
    header = container.header
    if header.kind != 0:
        raise UnsupportedError(f"bitstream kind {header.kind} is not an image")
    if isinstance(model, (LoadedModel, LoadedM2T)):
        if model.model_id != header.model_id:
            raise ModelError(f"bitstream needs model {header.model_id!r}, got {model.model_id!r}")
    else:
        if not isinstance(model, LoadedVCT):
            model = _load_shipped(model or header.model_id)
        if isinstance(model, LoadedVCT):  # a damaged header can name one, with its weights hash
            raise ModelError(f"an image bitstream needs an image model; {model.model_id!r} is a video model "
                             f"(the header names {header.model_id!r})")
    if model.sha256_prefix != header.weights_sha256_prefix:
        raise ModelError(
            f"bitstream was made with weights {header.weights_sha256_prefix.hex()} of {header.model_id!r}; "
            f"the installed weights are {model.sha256_prefix.hex()}"
        )
    t0 = time.perf_counter()
    rate = rate_from_field(model, header.quality)
    if isinstance(model, LoadedM2T):
        from codec.pipeline import m2t

        pixels, y_sym = m2t.decode(model, container, rate)
        return Decoded(pixels, header, np.zeros((0, 0, 0), np.int32), y_sym, time.perf_counter() - t0)
    container.require(ZSTR, YSTR)
    hp, wp = header.padded_height, header.padded_width
    if hp % STRIDE or wp % STRIDE:
        raise FormatError(f"padded size {wp}x{hp} is not a multiple of the model stride {STRIDE}")
    module = model.module
    z_sym = decode_side(model, container)
    mean_q, scale = entropy_parameters(model, z_sym)
    y_sym = coder.decode_gaussian(container.get(YSTR), scale_indexes(model, scale, rate), model.scale_table.numpy())
    y_hat = torch.from_numpy(y_sym.astype(np.float32))[None] * rate.dec_mult.float().view(1, -1, 1, 1) + mean_q
    pixels = synthesize(module.g_s, y_hat, header.height, header.width)
    return Decoded(pixels, header, z_sym, y_sym, time.perf_counter() - t0)


def decode_side(model: LoadedModel, container: Container) -> np.ndarray:
    """The z symbols (N, H/64, W/64) of a container's ZSTR."""
    header = container.header
    zh, zw = header.padded_height // STRIDE, header.padded_width // STRIDE
    return coder.decode_categorical(
        container.get(ZSTR), model.z_pmf.numpy(), model.z_offsets.numpy(), zh * zw
    ).reshape(model.module.config.N, zh, zw)


def _as_pixels(image, max_pixels: int) -> np.ndarray:
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError("pixels must be a (H, W, 3) uint8 array")
        return image
    if isinstance(image, (str, Path, bytes)):
        return read_image(image, max_pixels=max_pixels).pixels
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        Image = None
    if Image is not None and isinstance(image, Image.Image):
        import io as _io

        buf = _io.BytesIO()
        image.save(buf, "PNG")
        return read_image(buf.getvalue(), max_pixels=max_pixels).pixels
    raise TypeError(f"cannot encode a {type(image).__name__}; pass a path, bytes, PIL image or uint8 array")


def encode_image(image, model: str | LoadedModel | None = None, *, quality: float | None = None,
                 step: float = 1.0, max_pixels: int = Limits().max_pixels) -> bytes:
    """Encode an image (path, file bytes, PIL image or (H, W, 3) uint8 array) to a bitstream.

    `quality` 0..100 (variable-rate models) or `step`, the quantisation step of the latents
    (single-rate models: 1 = the trained rate; 0.25..8)."""
    return compress(load_model(model), _as_pixels(image, max_pixels), step, quality).data


def decode_image(data: bytes, model: str | LoadedModel | None = None, *, limits: Limits = Limits()):
    """Decode a bitstream to a PIL RGB image."""
    from PIL import Image

    return Image.fromarray(decompress(data, model, limits).pixels, "RGB")
