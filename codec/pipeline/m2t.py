"""The M2T family (Mentzer et al. 2023): the latents are coded in S steps (plus, for models with a side
stream, the hyperprior's z first, whose mean and scale every token sees).

    encode: pixels -pad-> x -g_a-> y [-h_a-> z -> ZSTR; h_s (float64) -> side (mean_q, scale)]
            -> P x P patches (grouped by shape) -> for step s = 0..S-1:
              transformer (float64, cached) -> mean, scale of group s -snap-> mean_q, scale index
              y_sym = round((y - mean_q) / enc_step) -> stream s;  y_hat = y_sym * dec_mult + mean_q
              -> pushed into the transformer's cache
    decode: the same loop, reading y_sym from stream s; then y_hat -g_s-> pixels

Both sides run the identical step loop (`_run_steps`), so the parameters the encoder codes with are
the ones the decoder recomputes from already-decoded symbols. YSTR holds the S sub-streams in the
layout of `codec.container.steps`.
"""

from __future__ import annotations

import copy
import hashlib
import time
from dataclasses import dataclass

import numpy as np
import torch

from codec.container import YSTR, ZSTR, Container, write_container
from codec.container.steps import pack_steps, unpack_steps
from codec.entropy.gaussian import snap_means
from codec.entropy.hyperprior import TABLE_PREFIX
from codec.family import Encoded, Family, NO_SYMBOLS, safetensors_bytes
from codec.io import pad_to_multiple
from codec.models.hyperprior import STRIDE, HyperpriorConfig, MeanScaleHyperprior
from codec.models.m2t import M2T, M2TConfig, StepDecoder, patch_batches, schedule, token_index
from codec.pipeline import hyperprior
from codec.pipeline.rate import Rate
from codec.pipeline.refine import EFFORTS, file_cost, rate_lambda, refine, settings
from codec.pipeline.sga_m2t import M2TProblem
from codec.pipeline.tiles import analyse_tiled, synthesize

LATENT_STRIDE = 16  # pixels per latent position (g_a downsamples 4 times by 2)
AE_PREFIX, TF_PREFIX = "ae.", "tf."


@dataclass(frozen=True)
class M2TModel(hyperprior.WithTransformer):
    """An M2T image model ready to code. Its weights file holds the whole autoencoder and the
    transformer (`tf`: an M2T)."""

    family = "m2t"


def serialize_modules(ae: MeanScaleHyperprior, tf: M2T, model_id: str) -> tuple[bytes, dict]:
    """The safetensors bytes of an M2T model (the whole autoencoder with its tables, the transformer)."""
    _, ae_tensors = hyperprior.serialize_module(copy.deepcopy(ae), model_id)
    tensors = {AE_PREFIX + k: v for k, v in ae_tensors.items()}
    tensors.update({TF_PREFIX + k: v.detach().float().contiguous() for k, v in tf.state_dict().items()})
    return safetensors_bytes(tensors, "m2t", model_id), tensors


def _prefixed(tensors: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def from_modules(ae: MeanScaleHyperprior, tf: M2T, model_id: str) -> M2TModel:
    """A model straight from modules (tests, training), sha256 as export would write it."""
    data, tensors = serialize_modules(ae, tf, model_id)
    sha = hashlib.sha256(data).hexdigest()
    hp = hyperprior.bundle(copy.deepcopy(ae), _prefixed(tensors, AE_PREFIX), model_id, sha)
    return M2TModel.of(hp, copy.deepcopy(tf), model_id, sha)


def _jobs(model: M2TModel, rate: Rate, height: int, width: int, side, cache: bool) -> list:
    """One (schedule, token indexes (B, T), StepDecoder) per patch shape of a height x width latent."""
    cfg = model.tf64.config
    flat_side = None if side is None else tuple(t.double().reshape(cfg.channels, -1).T for t in side)
    jobs = []
    for (rows, cols), origins in patch_batches(height, width, cfg.patch).items():
        sched = schedule(cfg.patch, cfg.steps, cfg.alpha, rows, cols)
        index = token_index(origins, rows, cols, cfg.patch, sched.positions, width)
        q = torch.full((len(origins),), float(rate.quality) / 100.0, dtype=torch.float64)
        side_tokens = None if flat_side is None else (flat_side[0][index], flat_side[1][index])
        jobs.append((sched, index, StepDecoder(model.tf64, sched, q, side_tokens, cache=cache)))
    return jobs


def _predict(model: M2TModel, jobs: list, s: int, enc_step: torch.Tensor) -> list:
    """Step s of every job: [(decoder, token indexes (B, n), mean_q (B, n, C), scale index (B, n, C))]."""
    parts = []
    for sched, index, dec in jobs:
        lo, hi = sched.bounds[s], sched.bounds[s + 1]
        if hi == lo:
            continue
        mean, scale = dec.predict(s)
        parts.append((dec, index[:, lo:hi], snap_means(mean), model.hp.entropy.y.index(scale / enc_step)))
    return parts


@torch.no_grad()
def _run_steps(model: M2TModel, rate: Rate, height: int, width: int, y: torch.Tensor | None,
               streams: list[bytes] | None, side=None, cache: bool = True):
    """The step loop both sides run. Encoder: y (C, H, W) given -> streams. Decoder: streams given.
    side: None or the hyperprior's (mean_q, scale) (C, H, W) float64, identical on both sides.
    Returns (y_sym (C, H, W) int32, y_hat (C, H, W) float64, streams)."""
    channels, gc = model.tf64.config.channels, model.hp.entropy.y
    enc_step, dec_mult = rate.enc_step.double(), rate.dec_mult.double()
    flat_y = y.double().reshape(channels, -1).T if y is not None else None  # (H*W, C)
    y_sym = torch.zeros(height * width, channels, dtype=torch.int64)
    y_hat = torch.zeros(height * width, channels, dtype=torch.float64)
    jobs = _jobs(model, rate, height, width, side, cache)
    out_streams = []
    for s in range(len(jobs[0][0].bounds) - 1):
        parts = _predict(model, jobs, s, enc_step)
        if not parts:
            out_streams.append(b"")
            continue
        indexes = np.concatenate([p[3].reshape(-1) for p in parts])
        if streams is None:
            syms = [torch.round((flat_y[p[1]] - p[2]) / enc_step).to(torch.int64) for p in parts]
            out_streams.append(gc.compress(np.concatenate([t.reshape(-1).numpy() for t in syms]).astype(np.int32), indexes))
        else:
            flat = torch.from_numpy(gc.decompress(streams[s], indexes).astype(np.int64))
            bounds = np.cumsum([0] + [p[2].numel() for p in parts])
            syms = [flat[lo:hi].view_as(p[2]) for p, lo, hi in zip(parts, bounds[:-1], bounds[1:])]
        for (dec, where, mean_q, _), sym in zip(parts, syms):
            hat = sym.double() * dec_mult + mean_q
            y_sym[where], y_hat[where] = sym, hat
            dec.push(s, hat)
    shape = (channels, height, width)
    return (y_sym.T.reshape(shape).to(torch.int32).numpy(), y_hat.T.reshape(shape),
            streams if streams is not None else out_streams)


@dataclass(frozen=True)
class Analysis:
    """What the encoder computes before it knows the rate (reused by rate searches and effort)."""

    padded: np.ndarray  # (Hp, Wp, 3) uint8, the padded input (for encoder-side refinement)
    y: torch.Tensor  # (C, H/16, W/16) float32
    side: tuple | None  # the hyperprior's (mean_q, scale) (C, H/16, W/16) float64, or None
    z_sym: np.ndarray  # (N, H/64, W/64) int32, or NO_SYMBOLS without side information
    z_stream: bytes | None
    height: int
    width: int
    pad_bottom: int
    pad_right: int
    seconds: float = 0.0

    @property
    def x(self) -> torch.Tensor:
        """(1, 3, Hp, Wp) float32 in [0, 1]."""
        return torch.from_numpy(np.ascontiguousarray(self.padded)).permute(2, 0, 1)[None].float().div_(255.0)


def analyse(model: M2TModel, pixels: np.ndarray) -> Analysis:
    t0 = time.perf_counter()
    height, width = pixels.shape[:2]
    if model.tf64.config.side:
        a = hyperprior.analyse(model.hp, pixels)
        return Analysis(a.padded, a.y[0], (a.mean_q[0].double(), a.scale[0]), a.z_sym, a.z_stream, height, width,
                        a.pad_bottom, a.pad_right, time.perf_counter() - t0)
    padded, (pad_bottom, pad_right) = pad_to_multiple(pixels, STRIDE)
    with torch.no_grad():
        y = analyse_tiled(model.module.g_a, padded)[0]
    return Analysis(padded, y, None, NO_SYMBOLS, None, height, width, pad_bottom, pad_right, time.perf_counter() - t0)


def _encode(model: M2TModel, a: Analysis, rate: Rate) -> tuple[Encoded, torch.Tensor]:
    """(the container for one rate setting, y_hat (C, H/16, W/16) float64 the decoder will see)."""
    t0 = time.perf_counter()
    y_sym, y_hat, streams = _run_steps(model, rate, a.y.shape[1], a.y.shape[2], a.y, None, a.side)
    header = hyperprior.image_header(model, rate, a.height, a.width, a.pad_bottom, a.pad_right)
    chunks = [(ZSTR, a.z_stream)] if a.z_stream is not None else []
    data = write_container(header, chunks + [(YSTR, pack_steps(streams))])
    return Encoded(data, header, a.z_sym, y_sym, a.seconds + time.perf_counter() - t0), y_hat


def encode(model: M2TModel, a: Analysis, rate: Rate) -> Encoded:
    """The container for one rate setting."""
    return _encode(model, a, rate)[0]


def coded_cost(model: M2TModel, a: Analysis, rate: Rate) -> tuple[float, float, float]:
    """(lambda * MSE in 8-bit units + bpp, bpp, PSNR dB) of the file `encode` writes for `a` and the
    pixels the decoder makes of it (the cost effort levels lower)."""
    enc, y_hat = _encode(model, a, rate)
    pixels = synthesize(model.module.g_s, y_hat.float()[None], a.height, a.width)
    return file_cost(rate_lambda(model, rate), a.padded[: a.height, : a.width], pixels, len(enc.data))


def step_count(model: M2TModel) -> int:
    cfg = model.tf64.config
    return len(schedule(cfg.patch, cfg.steps, cfg.alpha).bounds) - 1


def decode(model: M2TModel, container: Container, rate: Rate, cache: bool = True):
    """A parsed container -> (pixels (H, W, 3) uint8, z_sym, y_sym)."""
    header = container.header
    hyperprior.check_stride(header)
    side, z_sym = None, NO_SYMBOLS
    if model.tf64.config.side:
        container.require(ZSTR, YSTR)
        z_sym = hyperprior.decode_side(model.hp, container)
        mean_q, scale = model.hp.entropy.parameters(z_sym)
        side = (mean_q[0].double(), scale[0])
    else:
        container.require(YSTR)
    streams = unpack_steps(container.get(YSTR), step_count(model))
    hp, wp = header.padded_height, header.padded_width
    y_sym, y_hat, _ = _run_steps(model, rate, hp // LATENT_STRIDE, wp // LATENT_STRIDE, None, streams, side, cache)
    return synthesize(model.module.g_s, y_hat.float()[None], header.height, header.width), z_sym, y_sym


class M2TFamily(Family):
    name = "m2t"
    efforts = tuple(sorted(EFFORTS))

    def load(self, model_id, sha256, config, tensors, resolve) -> M2TModel:
        ae = MeanScaleHyperprior(HyperpriorConfig(**config["ae"]))
        if not ae.config.variable_rate:
            raise KeyError("the autoencoder of an M2T model must be variable-rate")
        tf = M2T(M2TConfig(**config["tf"]))
        ae_tensors = _prefixed(tensors, AE_PREFIX)
        ae.load_state_dict({k: v for k, v in ae_tensors.items() if not k.startswith(TABLE_PREFIX)}, strict=True)
        tf.load_state_dict(_prefixed(tensors, TF_PREFIX), strict=True)
        return M2TModel.of(hyperprior.bundle(ae, ae_tensors, model_id, sha256), tf, model_id, sha256)

    def serialize(self, model: M2TModel) -> bytes:
        return serialize_modules(model.hp.module, model.tf, model.model_id)[0]

    def config(self, model: M2TModel) -> dict:
        return {"ae": model.hp.module.config.to_dict(), "tf": model.tf.config.to_dict()}

    analyse = staticmethod(analyse)
    encode = staticmethod(encode)
    decode = staticmethod(decode)

    def effort_settings(self, effort: int) -> dict:
        return settings(effort)

    def refine(self, model, analysis, rate, effort, **options):
        """SGA through the transformer's teacher-forced pass (codec.pipeline.sga_m2t; options as the
        hyperprior family's)."""
        problem = M2TProblem(model, rate, lambda a: coded_cost(model, a, rate))
        return refine(problem, analysis, effort, **options)


FAMILY = M2TFamily()
