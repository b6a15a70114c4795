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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from codec import coder
from codec.container import YSTR, ZSTR, Header, Limits, read_container, write_container
from codec.entropy.gaussian import snap_means, snap_scales
from codec.errors import FormatError, ModelError, UnsupportedError
from codec.io import crop, pad_to_multiple, read_image
from codec.models.hyperprior import STRIDE
from codec.weights import LoadedModel
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


def load_model(model: str | LoadedModel | None = None) -> LoadedModel:
    """A LoadedModel from an id (None: the default shipped model) or as given."""
    return model if isinstance(model, LoadedModel) else _load_shipped(model)


STEP_UNIT = 1000  # header.quality = quantisation step in thousandths; 0 means step 1
STEP_RANGE = (0.25, 8.0)


def step_to_quality(step: float) -> int:
    """Header value for a quantisation step (rounded to 1/1000; 0 for the trained step 1)."""
    if not STEP_RANGE[0] <= step <= STEP_RANGE[1]:
        raise ValueError(f"quantisation step must be within {STEP_RANGE[0]}..{STEP_RANGE[1]}, got {step}")
    q = int(round(step * STEP_UNIT))
    return 0 if q == STEP_UNIT else q


def quality_to_step(quality: int) -> float:
    """Quantisation step of a header's quality field, identical on both sides."""
    step = 1.0 if quality == 0 else quality / STEP_UNIT
    if not STEP_RANGE[0] <= step <= STEP_RANGE[1]:
        raise FormatError(f"quantisation step {step} in the header is outside {STEP_RANGE[0]}..{STEP_RANGE[1]}")
    return step


@torch.no_grad()
def entropy_parameters(model: LoadedModel, z_sym: np.ndarray, step: float = 1.0) -> tuple[torch.Tensor, np.ndarray]:
    """z symbols (N, h, w) -> snapped means (1, M, 4h, 4w) float32 and scale indexes (M, 4h, 4w).

    Identical on both sides: integer input, float64 arithmetic on CPU, outputs on a grid. With a
    quantisation step, y is coded as round((y - mean) / step), whose scale is scale / step.
    """
    med = model.module.z_density.quantiles[:, 0, 1].double().view(1, -1, 1, 1)
    z_hat = torch.from_numpy(z_sym.astype(np.float64))[None] + med
    mean, scale = model.h_s64(z_hat).chunk(2, dim=1)
    scale_index = snap_scales(scale.abs() / step, model.scale_table)
    return snap_means(mean), scale_index[0].numpy()


@torch.no_grad()
def compress(model: LoadedModel, pixels: np.ndarray, step: float = 1.0) -> Encoded:
    """(H, W, 3) uint8 -> a complete container.

    `step` scales the quantisation of y (1 = as trained; larger = fewer bits, lower quality): a
    continuous rate control of one model, recorded in the header so decoding needs no flag.
    """
    t0 = time.perf_counter()
    quality = step_to_quality(step)
    step = quality_to_step(quality)
    height, width = pixels.shape[:2]
    padded, (pad_bottom, pad_right) = pad_to_multiple(pixels, STRIDE)
    x = torch.from_numpy(np.ascontiguousarray(padded)).permute(2, 0, 1)[None].float().div_(255.0)
    module = model.module
    y = module.g_a(x)
    z = module.h_a(y)
    med = module.z_density.quantiles[:, 0, 1].view(1, -1, 1, 1)
    z_sym = torch.round(z - med)[0].to(torch.int32).numpy()
    mean_q, scale_index = entropy_parameters(model, z_sym, step)
    y_sym = torch.round((y - mean_q) / step)[0].to(torch.int32).numpy()

    z_stream = coder.encode_categorical(
        z_sym.reshape(z_sym.shape[0], -1), model.z_pmf.numpy(), model.z_offsets.numpy()
    )
    y_stream = coder.encode_gaussian(y_sym, scale_index, model.scale_table.numpy())
    header = Header(
        kind=0, width=width, height=height, pad_right=pad_right, pad_bottom=pad_bottom,
        bit_depth=8, channels=3, quality=quality, weights_sha256_prefix=model.sha256_prefix,
        model_id=model.model_id, coder=coder.coder_name(), coder_version=coder.coder_version(),
    )
    data = write_container(header, [(ZSTR, z_stream), (YSTR, y_stream)])
    return Encoded(data, header, z_sym, y_sym, time.perf_counter() - t0)


def read_header(data: bytes, limits: Limits = Limits()) -> Header:
    return read_container(data, limits).header


@torch.no_grad()
def decompress(data: bytes, model: str | LoadedModel | None = None, limits: Limits = Limits()) -> Decoded:
    """A complete container -> (H, W, 3) uint8. `model` None: the model the header names."""
    container = read_container(data, limits)
    header = container.header
    if header.kind != 0:
        raise UnsupportedError(f"bitstream kind {header.kind} is not an image")
    container.require(ZSTR, YSTR)
    if isinstance(model, LoadedModel):
        if model.model_id != header.model_id:
            raise ModelError(f"bitstream needs model {header.model_id!r}, got {model.model_id!r}")
    else:
        model = _load_shipped(model or header.model_id)
    if model.sha256_prefix != header.weights_sha256_prefix:
        raise ModelError(
            f"bitstream was made with weights {header.weights_sha256_prefix.hex()} of {header.model_id!r}; "
            f"the installed weights are {model.sha256_prefix.hex()}"
        )
    t0 = time.perf_counter()
    step = quality_to_step(header.quality)
    hp, wp = header.padded_height, header.padded_width
    if hp % STRIDE or wp % STRIDE:
        raise FormatError(f"padded size {wp}x{hp} is not a multiple of the model stride {STRIDE}")
    module = model.module
    n_z = module.config.N
    zh, zw = hp // STRIDE, wp // STRIDE
    z_sym = coder.decode_categorical(
        container.get(ZSTR), model.z_pmf.numpy(), model.z_offsets.numpy(), zh * zw
    ).reshape(n_z, zh, zw)
    mean_q, scale_index = entropy_parameters(model, z_sym, step)
    y_sym = coder.decode_gaussian(container.get(YSTR), scale_index, model.scale_table.numpy())
    y_hat = torch.from_numpy(y_sym.astype(np.float32))[None] * step + mean_q
    x_hat = module.g_s(y_hat)
    pixels = x_hat[0].clamp_(0, 1).mul_(255).round_().to(torch.uint8).permute(1, 2, 0).numpy()
    pixels = crop(pixels, header.height, header.width)
    return Decoded(pixels, header, z_sym, y_sym, time.perf_counter() - t0)


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


def encode_image(image, model: str | LoadedModel | None = None, *, step: float = 1.0,
                 max_pixels: int = Limits().max_pixels) -> bytes:
    """Encode an image (path, file bytes, PIL image or (H, W, 3) uint8 array) to a bitstream.

    `step`: quantisation step of the latents (1 = the model's trained rate; 0.25..8)."""
    return compress(load_model(model), _as_pixels(image, max_pixels), step).data


def decode_image(data: bytes, model: str | LoadedModel | None = None, *, limits: Limits = Limits()):
    """Decode a bitstream to a PIL RGB image."""
    from PIL import Image

    return Image.fromarray(decompress(data, model, limits).pixels, "RGB")
