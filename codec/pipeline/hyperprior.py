"""The hyperprior family: a mean-scale hyperprior autoencoder (Balle et al. 2018, Minnen et al. 2018),
encoded and decoded mirrored step by step.

    encode: pixels -pad-> x -g_a-> y -h_a-> z -round-> z_sym --------------------> ZSTR
            z_hat = z_sym + median -h_s (float64)-> mean, scale -snap-> mean_q, scale_index
            y_sym = round((y - mean_q) / enc_step) -------------------------------> YSTR
    decode: ZSTR -> z_sym -> (same parameter path) -> YSTR -> y_sym
            y_hat = y_sym * dec_mult + mean_q -g_s-> x_hat -clamp, round, crop-> pixels

The parameter path is `HyperpriorEntropy.parameters`, the one function both sides call (float64 on
CPU, snapped to grids). The M2T and VCT families reuse this module's analysis, side information and
intra coding.
"""

from __future__ import annotations

import copy
import hashlib
import time
from dataclasses import dataclass

import numpy as np
import torch

from codec import coder
from codec.container import YSTR, ZSTR, Container, Header, write_container
from codec.entropy.hyperprior import TABLE_PREFIX, HyperpriorEntropy, tables_of
from codec.errors import FormatError
from codec.family import Encoded, Family, Loaded, safetensors_bytes
from codec.io import pad_to_multiple
from codec.models.hyperprior import STRIDE, HyperpriorConfig, MeanScaleHyperprior
from codec.pipeline.rate import Rate
from codec.pipeline.refine import EFFORTS, file_cost, rate_lambda, refine, settings
from codec.pipeline.sga_hyperprior import HyperpriorProblem
from codec.pipeline.tiles import analyse_tiled, synthesize


@dataclass(frozen=True)
class HyperpriorModel(Loaded):
    """A hyperprior model ready to code: the module (eval, CPU, float32) and its entropy model."""

    family = "hyperprior"
    module: MeanScaleHyperprior
    entropy: HyperpriorEntropy


@dataclass(frozen=True)
class WithTransformer(Loaded):
    """A transformer entropy model on top of a hyperprior image model (the M2T and VCT families):
    `hp` (g_a, g_s, gains, h_a, h_s and the frozen z tables), the transformer in float32 (training)
    and a float64 copy (the entropy-parameter path both sides run)."""

    hp: HyperpriorModel
    tf: torch.nn.Module
    tf64: torch.nn.Module

    @property
    def module(self) -> MeanScaleHyperprior:
        return self.hp.module

    @classmethod
    def of(cls, hp: HyperpriorModel, tf: torch.nn.Module, model_id: str, sha256: str):
        tf = tf.float().eval().requires_grad_(False)
        return cls(model_id, sha256, hp, tf, copy.deepcopy(tf).double())


def bundle(module: MeanScaleHyperprior, tensors: dict, model_id: str, sha256: str) -> HyperpriorModel:
    """A model from a module and the tensors of its weights file (parameters and tables)."""
    module = module.float().eval().requires_grad_(False)
    return HyperpriorModel(model_id, sha256, module, HyperpriorEntropy.of(module.z_density, module.h_s, tensors))


def serialize_module(module: MeanScaleHyperprior, model_id: str) -> tuple[bytes, dict]:
    """The safetensors bytes of a module (parameters + frozen tables) and the tensors they hold."""
    module = module.float().cpu().eval()
    tensors = {k: v.detach().contiguous() for k, v in module.state_dict().items()}
    tensors.update(tables_of(module.z_density))
    return safetensors_bytes(tensors, "hyperprior", model_id), tensors


def from_module(module: MeanScaleHyperprior, model_id: str) -> HyperpriorModel:
    """A model straight from a module (tests, freshly trained models), with the sha256 of the bytes
    export would write."""
    data, tensors = serialize_module(module, model_id)
    return bundle(module, tensors, model_id, hashlib.sha256(data).hexdigest())


def image_header(model: Loaded, rate: Rate, height: int, width: int, pad_bottom: int, pad_right: int) -> Header:
    """The header of an image bitstream (every image family writes the same one)."""
    return Header(
        kind=0, width=width, height=height, pad_right=pad_right, pad_bottom=pad_bottom,
        bit_depth=8, channels=3, quality=rate.field, weights_sha256_prefix=model.sha256_prefix,
        model_id=model.model_id, coder=coder.coder_name(), coder_version=coder.coder_version(),
    )


def check_stride(header: Header) -> None:
    hp, wp = header.padded_height, header.padded_width
    if hp % STRIDE or wp % STRIDE:
        raise FormatError(f"padded size {wp}x{hp} is not a multiple of the model stride {STRIDE}")


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
def analyse(model: HyperpriorModel, pixels: np.ndarray) -> Analysis:
    t0 = time.perf_counter()
    height, width = pixels.shape[:2]
    padded, (pad_bottom, pad_right) = pad_to_multiple(pixels, STRIDE)
    y = analyse_tiled(model.module.g_a, padded)
    z_sym = model.entropy.z_symbols(model.module.h_a(y))
    mean_q, scale = model.entropy.parameters(z_sym)
    z_stream = model.entropy.compress_z(z_sym)
    return Analysis(padded, y, z_sym, mean_q, scale, height, width, pad_bottom, pad_right, z_stream,
                    time.perf_counter() - t0)


def quantize(y: torch.Tensor, mean_q: torch.Tensor, rate: Rate) -> np.ndarray:
    """y (1, M, h, w) -> symbols (M, h, w) int32: round((y - mean_q) / enc_step)."""
    return torch.round((y - mean_q) / rate.enc_step.float().view(1, -1, 1, 1))[0].to(torch.int32).numpy()


def dequantize(y_sym: np.ndarray, mean_q: torch.Tensor, rate: Rate, dtype=torch.float32) -> torch.Tensor:
    """Mirror of `quantize`: (1, M, h, w) y_hat = y_sym * dec_mult + mean_q, in `dtype`."""
    mult = rate.dec_mult.to(dtype).view(1, -1, 1, 1)
    return torch.from_numpy(y_sym.astype(np.float64)).to(dtype)[None] * mult + mean_q.to(dtype)


@torch.no_grad()
def encode(model: HyperpriorModel, a: Analysis, rate: Rate) -> Encoded:
    """The container for one rate setting."""
    t0 = time.perf_counter()
    y_sym = quantize(a.y, a.mean_q, rate)
    y_stream = model.entropy.y.compress(y_sym, model.entropy.scale_index(a.scale, rate.enc_step))
    header = image_header(model, rate, a.height, a.width, a.pad_bottom, a.pad_right)
    data = write_container(header, [(ZSTR, a.z_stream), (YSTR, y_stream)])
    return Encoded(data, header, a.z_sym, y_sym, a.seconds + time.perf_counter() - t0)


@torch.no_grad()
def coded_cost(model: HyperpriorModel, a: Analysis, rate: Rate) -> tuple[float, float, float]:
    """(lambda * MSE in 8-bit units + bpp, bpp, PSNR dB) of the file `encode` writes for `a` and the
    pixels the decoder makes of it: the cost effort levels lower (lambda: `rate_lambda`)."""
    enc = encode(model, a, rate)
    pixels = synthesize(model.module.g_s, dequantize(enc.y_sym, a.mean_q, rate), a.height, a.width)
    return file_cost(rate_lambda(model, rate), a.padded[: a.height, : a.width], pixels, len(enc.data))


def decode_side(model: HyperpriorModel, container: Container) -> np.ndarray:
    """The z symbols (N, H/64, W/64) of a container's ZSTR."""
    header = container.header
    return model.entropy.decompress_z(container.get(ZSTR), header.padded_height // STRIDE,
                                      header.padded_width // STRIDE)


@torch.no_grad()
def decode(model: HyperpriorModel, container: Container, rate: Rate):
    """A parsed container -> (pixels (H, W, 3) uint8, z_sym, y_sym)."""
    header = container.header
    container.require(ZSTR, YSTR)
    check_stride(header)
    z_sym = decode_side(model, container)
    mean_q, scale = model.entropy.parameters(z_sym)
    y_sym = model.entropy.y.decompress(container.get(YSTR), model.entropy.scale_index(scale, rate.enc_step))
    pixels = synthesize(model.module.g_s, dequantize(y_sym, mean_q, rate), header.height, header.width)
    return pixels, z_sym, y_sym


class Hyperprior(Family):
    name = "hyperprior"
    efforts = tuple(sorted(EFFORTS))

    def load(self, model_id, sha256, config, tensors, resolve) -> HyperpriorModel:
        module = MeanScaleHyperprior(HyperpriorConfig(**config))
        module.load_state_dict({k: v for k, v in tensors.items() if not k.startswith(TABLE_PREFIX)}, strict=True)
        return bundle(module, tensors, model_id, sha256)

    def serialize(self, model: HyperpriorModel) -> bytes:
        return serialize_module(model.module, model.model_id)[0]

    def config(self, model: HyperpriorModel) -> dict:
        return model.module.config.to_dict()

    analyse = staticmethod(analyse)
    encode = staticmethod(encode)
    decode = staticmethod(decode)

    def effort_settings(self, effort: int) -> dict:
        return settings(effort)

    def refine(self, model, analysis, rate, effort, **options):
        """SGA (codec.pipeline.refine; options: seed, on_progress, schedule, tile, tile_above)."""
        problem = HyperpriorProblem(model, rate, lambda a: coded_cost(model, a, rate))
        return refine(problem, analysis, effort, **options)


FAMILY = Hyperprior()
