"""Image pipeline of M2T models: the latents are coded in S steps (plus, for models with a side
stream, the hyperprior's z first, whose mean and scale every token sees).

    encode: pixels -pad-> x -g_a-> y [-h_a-> z -> ZSTR; h_s (float64) -> side (mean_q, scale)]
            -> P x P patches (grouped by shape) -> for step s = 0..S-1:
              transformer (float64, cached) -> mean, scale of group s -snap-> mean_q, scale index
              y_sym = round((y - mean_q) / enc_step) -> stream s;  y_hat = y_sym * dec_mult + mean_q
              -> pushed into the transformer's cache
    decode: the same loop, reading y_sym from stream s; then y_hat -g_s-> pixels

Both sides run the identical step loop (`_run_steps`), so the parameters the encoder codes with are
the ones the decoder recomputes from already-decoded symbols. YSTR holds the S sub-streams:
u8 S | S x u32 byte lengths | the streams, in step order.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from collections import defaultdict

import numpy as np
import torch

from codec import coder
from codec.container import YSTR, ZSTR, Container, Header, write_container
from codec.entropy.gaussian import snap_means, snap_scales
from codec.errors import FormatError
from codec.io import pad_to_multiple
from codec.models.hyperprior import STRIDE
from codec.models.m2t import StepDecoder, schedule
from codec.pipeline.rate import Rate
from codec.pipeline.tiles import analyse_tiled, synthesize
from codec.weights import LoadedM2T

_U32 = struct.Struct("<I")
LATENT_STRIDE = 16  # pixels per latent position (g_a downsamples 4 times by 2)


def patch_batches(height: int, width: int, patch: int) -> dict[tuple[int, int], list[tuple[int, int]]]:
    """Patch origins of a height x width latent grouped by patch shape (rows, cols), in a fixed order."""
    batches: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
    for r0 in range(0, height, patch):
        for c0 in range(0, width, patch):
            batches[(min(patch, height - r0), min(patch, width - c0))].append((r0, c0))
    return dict(sorted(batches.items()))


def _token_index(origins, rows: int, cols: int, patch: int, positions: torch.Tensor, width: int) -> torch.Tensor:
    """Flat latent indexes (B, T) of each patch's tokens in schedule order."""
    r, c = positions // patch, positions % patch
    base = torch.tensor([r0 * width + c0 for r0, c0 in origins], dtype=torch.long)
    return base[:, None] + (r * width + c)[None, :]


def pack_streams(streams: list[bytes]) -> bytes:
    return bytes([len(streams)]) + b"".join(_U32.pack(len(s)) for s in streams) + b"".join(streams)


def unpack_streams(data: bytes, steps: int) -> list[bytes]:
    if not data or data[0] != steps:
        raise FormatError(f"latent stream holds {data[0] if data else 0} steps, the model codes {steps}")
    head = 1 + 4 * steps
    if len(data) < head:
        raise FormatError("latent stream is truncated (step table)")
    lengths = [_U32.unpack_from(data, 1 + 4 * i)[0] for i in range(steps)]
    if head + sum(lengths) != len(data):
        raise FormatError("latent stream is corrupt (step lengths do not add up to its size)")
    out, pos = [], head
    for n in lengths:
        out.append(data[pos : pos + n])
        pos += n
    return out


@torch.no_grad()
def _run_steps(model: LoadedM2T, rate: Rate, height: int, width: int, y: torch.Tensor | None,
               streams: list[bytes] | None, side=None, cache: bool = True):
    """The step loop both sides run. Encoder: y (C, H, W) given -> streams. Decoder: streams given.
    side: None or the hyperprior's (mean_q, scale) (C, H, W) float64, identical on both sides.
    Returns (y_sym (C, H, W) int32, y_hat (C, H, W) float64, streams)."""
    cfg = model.tf64.config
    channels = cfg.channels
    enc_step = rate.enc_step.double()
    dec_mult = rate.dec_mult.double()
    quality = float(rate.quality) / 100.0
    flat_y = y.double().reshape(channels, -1).T if y is not None else None  # (H*W, C)
    y_sym = torch.zeros(height * width, channels, dtype=torch.int64)
    y_hat = torch.zeros(height * width, channels, dtype=torch.float64)
    flat_side = None if side is None else tuple(t.double().reshape(channels, -1).T for t in side)
    jobs = []
    for (rows, cols), origins in patch_batches(height, width, cfg.patch).items():
        sched = schedule(cfg.patch, cfg.steps, cfg.alpha, rows, cols)
        index = _token_index(origins, rows, cols, cfg.patch, sched.positions, width)
        q = torch.full((len(origins),), quality, dtype=torch.float64)
        side_tokens = None if flat_side is None else (flat_side[0][index], flat_side[1][index])
        jobs.append((sched, index, StepDecoder(model.tf64, sched, q, side_tokens, cache=cache)))
    steps = len(jobs[0][0].bounds) - 1
    out_streams = []
    for s in range(steps):
        parts = []  # (job, slice index (B, n), mean_q (B, n, C), scale index (B, n, C))
        for sched, index, dec in jobs:
            lo, hi = sched.bounds[s], sched.bounds[s + 1]
            if hi == lo:
                continue
            mean, scale = dec.predict(s)
            mean_q = snap_means(mean)
            idx = snap_scales(scale / enc_step, model.scale_table)
            parts.append((dec, index[:, lo:hi], mean_q, idx))
        if not parts:
            out_streams.append(b"")
            continue
        indexes = np.concatenate([p[3].reshape(-1).numpy() for p in parts])
        if streams is None:
            syms = [torch.round((flat_y[p[1]] - p[2]) / enc_step).to(torch.int64) for p in parts]
            flat = np.concatenate([t.reshape(-1).numpy() for t in syms]).astype(np.int32)
            out_streams.append(coder.encode_gaussian(flat, indexes, model.scale_table.numpy()))
        else:
            flat = torch.from_numpy(coder.decode_gaussian(streams[s], indexes, model.scale_table.numpy()).astype(np.int64))
            syms, pos = [], 0
            for p in parts:
                n = p[2].numel()
                syms.append(flat[pos : pos + n].view_as(p[2]))
                pos += n
        for (dec, where, mean_q, _), sym in zip(parts, syms):
            hat = sym.double() * dec_mult + mean_q
            y_sym[where] = sym
            y_hat[where] = hat
            dec.push(s, hat)
    shape = (channels, height, width)
    return (y_sym.T.reshape(shape).to(torch.int32).numpy(), y_hat.T.reshape(shape),
            streams if streams is not None else out_streams)


@dataclass(frozen=True)
class Analysis:
    """What the encoder computes before it knows the rate (reused by rate searches)."""

    y: torch.Tensor  # (C, H/16, W/16) float32
    side: tuple | None  # the hyperprior's (mean_q, scale) (C, H/16, W/16) float64, or None
    z_stream: bytes | None
    height: int
    width: int
    pad_bottom: int
    pad_right: int


def analyse(model: LoadedM2T, pixels: np.ndarray) -> Analysis:
    from codec.pipeline.image import analyse as analyse_hyperprior

    height, width = pixels.shape[:2]
    if model.tf64.config.side:
        a = analyse_hyperprior(model.hp, pixels)
        return Analysis(a.y[0], (a.mean_q[0].double(), a.scale[0]), a.z_stream, height, width, a.pad_bottom, a.pad_right)
    padded, (pad_bottom, pad_right) = pad_to_multiple(pixels, STRIDE)
    with torch.no_grad():
        y = analyse_tiled(model.module.g_a, padded)[0]
    return Analysis(y, None, None, height, width, pad_bottom, pad_right)


def encode_analysis(model: LoadedM2T, a: Analysis, rate: Rate):
    """-> (container bytes, header, y_sym) for one rate setting."""
    y_sym, _, streams = _run_steps(model, rate, a.y.shape[1], a.y.shape[2], a.y, None, a.side)
    header = Header(
        kind=0, width=a.width, height=a.height, pad_right=a.pad_right, pad_bottom=a.pad_bottom,
        bit_depth=8, channels=3, quality=rate.field, weights_sha256_prefix=model.sha256_prefix,
        model_id=model.model_id, coder=coder.coder_name(), coder_version=coder.coder_version(),
    )
    chunks = [(ZSTR, a.z_stream)] if a.z_stream is not None else []
    return write_container(header, chunks + [(YSTR, pack_streams(streams))]), header, y_sym


def decode(model: LoadedM2T, container: Container, rate: Rate, cache: bool = True):
    """A parsed container -> (pixels (H, W, 3) uint8, y_sym)."""
    from codec.pipeline.image import decode_side, entropy_parameters

    header = container.header
    hp, wp = header.padded_height, header.padded_width
    if hp % STRIDE or wp % STRIDE:
        raise FormatError(f"padded size {wp}x{hp} is not a multiple of the model stride {STRIDE}")
    cfg = model.tf64.config
    side = None
    if cfg.side:
        container.require(ZSTR, YSTR)
        mean_q, scale = entropy_parameters(model.hp, decode_side(model.hp, container))
        side = (mean_q[0].double(), scale[0])
    else:
        container.require(YSTR)
    streams = unpack_streams(container.get(YSTR), len(schedule(cfg.patch, cfg.steps, cfg.alpha).bounds) - 1)
    y_sym, y_hat, _ = _run_steps(model, rate, hp // LATENT_STRIDE, wp // LATENT_STRIDE, None, streams, side, cache)
    return synthesize(model.module.g_s, y_hat.float()[None], header.height, header.width), y_sym
