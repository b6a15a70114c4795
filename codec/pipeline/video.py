"""Video pipeline (VCT): frames in, a streamed container out, and back; mirrored step by step.

    encode, frame t:  pixels -pad-> x -g_a-> y_t
        keyframe (t % gop == 0):  intra, exactly the image pipeline (ZSTR + YSTR streams)
        otherwise:  inter: [models with side information: z -> stream (mode 1: the image model's
                    factorized prior; mode 2, models with a temporal prior: z_t - z_{t-1} under
                    ZPrior(z_{t-1}, z_{t-2}), whichever is shorter), h_s -> mean_hp, scale_hp]
                    VCT(y_hat[t-1], y_hat[t-2] [, mean_hp, scale_hp]) -> for token k = 0..15 of every 4x4 block:
                        mean, scale (float64) -snap-> y_sym = rd_round((y - mean_q) / enc_step) -> stream
                        y_hat = y_sym * dec_mult + mean_q -> pushed into the decoder's cache
                    and intra instead when that costs less (bits + squared latent error / rdo)
        -> FRAM chunk (mode + streams); y_hat_t kept as the next frames' context
    decode, frame t:  FRAM -> (same parameter path) -> y_hat_t -g_s-> pixels -crop-> out

The encoder never runs g_s: the context is the decoded latents, which it has exactly. Both sides run
the identical token loop (`_inter`) in float64 on CPU, snapped to the grids of the image model, so
the parameters the encoder codes with are the ones the decoder recomputes. The encoder rounds each
residual to the nearer integer or to the one next to it nearer zero, whichever costs less in squared
error plus `rdo` x bits under the token's Gaussian (`rd_round`; the decoder never needs to know, and
later tokens are predicted from the symbols actually chosen). The first inter frame
after an intra frame sees that frame as both t-1 and t-2. Frames stream: the encoder holds the two
previous latents, the decoder the two previous latents and one picture.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import BinaryIO

import numpy as np
import torch

from codec import coder
from codec.container import Header, Limits
from codec.container.chunks import KIND_VIDEO
from codec.container.video import INTER, INTER_TZ, INTRA, Frame, VideoHeader, VideoReader, VideoWriter
from codec.entropy.gaussian import rd_round, snap_means, snap_scales
from codec.errors import FormatError, ModelError, UnsupportedError
from codec.io import pad_to_multiple
from codec.models.hyperprior import STRIDE
from codec.models.vct import StepDecoder, blocks_of, unblock, windows_of
from codec.pipeline.image import entropy_parameters, scale_indexes
from codec.pipeline.rate import Rate, rate_for, rate_from_field
from codec.pipeline.tiles import synthesize
from codec.weights import LoadedVCT

__all__ = ["VideoStats", "compress_video", "VideoDecoder", "encode_video", "decode_video", "load_video_model"]

DEFAULT_GOP = 32
RDO_LAMBDA = 0.05  # the encoder's rate-distortion trade-off: inter rounding, mode decision (results/ablate)


def load_video_model(model: str | LoadedVCT | None = None) -> LoadedVCT:
    """A loaded VCT model from an id (None: the manifest's default video model) or as given."""
    from codec.weights import load_model
    from codec.zoo import read_manifest

    if isinstance(model, LoadedVCT):
        return model
    if model is None:
        model = read_manifest().get("default_video")
        if not model:
            raise ModelError("no default video model in the manifest; train and export one (codec train video)")
    loaded = load_model(model)
    if not isinstance(loaded, LoadedVCT):
        raise ModelError(f"model {model!r} is an image model; video needs a VCT model (see `codec models`)")
    return loaded


# --- one frame, both directions ----------------------------------------------------------------


@dataclass
class _Context:
    """What both sides keep between frames: the last two decoded latents with their E_sep encodings,
    and the last two frames' z symbols (for the temporal prior of the side information)."""

    model: LoadedVCT
    rate: Rate
    log_step: float
    latents: list = field(default_factory=list)  # [(y_hat (C, h, w) float64, windows, encoding)]
    zs: list = field(default_factory=list)  # [z symbols (N, h/4, w/4) int32]

    def push(self, y_hat: torch.Tensor, z_sym: np.ndarray) -> None:
        tf, cfg = self.model.tf64, self.model.tf64.config
        windows = windows_of(y_hat[None], cfg)
        ls = torch.full((windows.shape[0],), self.log_step, dtype=torch.float64)
        with torch.no_grad():
            enc = tf.encode_previous(windows, ls)
        self.latents = (self.latents + [(y_hat, windows, enc)])[-2:]
        self.zs = (self.zs + [z_sym])[-2:]

    def clear(self) -> None:
        self.latents, self.zs = [], []


# side information: z symbols, their two codings, and the hyperprior parameters they give

Z_GAINS = tuple(range(-6, 7))  # the temporal prior's scale times 2^(g/2), g picked by the encoder per frame


def _z_of(model: LoadedVCT, y: torch.Tensor) -> np.ndarray:
    """z symbols (N, h/4, w/4) int32 of latents y (1, C, h, w)."""
    module = model.hp.module
    with torch.no_grad():
        z = module.h_a(y)
    med = module.z_density.quantiles[:, 0, 1].view(1, -1, 1, 1)
    return torch.round(z - med)[0].to(torch.int32).numpy()


def _z_code(model: LoadedVCT, z_sym: np.ndarray) -> bytes:
    """The image model's coding of z (factorized prior): intra frames and mode-1 inter frames."""
    hp = model.hp
    return coder.encode_categorical(z_sym.reshape(z_sym.shape[0], -1), hp.z_pmf.numpy(), hp.z_offsets.numpy())


def _z_decode(model: LoadedVCT, stream: bytes, shape: tuple[int, int]) -> np.ndarray:
    hp, (h, w) = model.hp, shape
    z_sym = coder.decode_categorical(stream, hp.z_pmf.numpy(), hp.z_offsets.numpy(), (h // 4) * (w // 4))
    return z_sym.reshape(hp.module.config.N, h // 4, w // 4)


def _z_scale(ctx: _Context) -> torch.Tensor:
    """The temporal prior's scale (N, h/4, w/4) float64 from the previous two frames' z (both sides)."""
    z1 = torch.from_numpy(ctx.zs[-1].astype(np.float64))[None]
    z2 = torch.from_numpy(ctx.zs[-2 if len(ctx.zs) > 1 else -1].astype(np.float64))[None]
    with torch.no_grad():
        return ctx.model.tf64.zprior(z1, z2)[0]


def _z_code_temporal(ctx: _Context, z_sym: np.ndarray) -> bytes:
    """Mode 2: u8 gain index | Gaussian stream of z_t - z_{t-1} at scale * 2^(g/2); the encoder
    tries every gain and keeps the shortest."""
    scale, table = _z_scale(ctx), ctx.model.scale_table
    residual = z_sym.astype(np.int64) - ctx.zs[-1]
    best = None
    for i, g in enumerate(Z_GAINS):
        idx = snap_scales(scale * 2.0 ** (g / 2), table).numpy()
        data = bytes([i]) + coder.encode_gaussian(residual, idx, table.numpy())
        if best is None or len(data) < len(best):
            best = data
    return best


def _z_decode_temporal(ctx: _Context, stream: bytes) -> np.ndarray:
    if not stream or stream[0] >= len(Z_GAINS):
        raise FormatError("corrupt side information: bad gain of the temporal prior")
    g = Z_GAINS[stream[0]]
    idx = snap_scales(_z_scale(ctx) * 2.0 ** (g / 2), ctx.model.scale_table).numpy()
    residual = coder.decode_gaussian(stream[1:], idx, ctx.model.scale_table.numpy())
    z = residual.astype(np.int64) + ctx.zs[-1]
    if z.min(initial=0) < np.iinfo(np.int32).min or z.max(initial=0) > np.iinfo(np.int32).max:
        raise FormatError("corrupt side information: z beyond int32")
    return z.astype(np.int32)


def _side(model: LoadedVCT, z_sym: np.ndarray, z_stream: bytes | None = None):
    """(z_stream, mean_q (1, C, h, w) float32 snapped, scale (1, C, h, w) float64) of z symbols."""
    mean_q, scale = entropy_parameters(model.hp, z_sym)
    return z_stream, mean_q, scale


def _intra(model: LoadedVCT, rate: Rate, y: torch.Tensor | bytes, side) -> tuple[bytes | None, torch.Tensor]:
    """The image pipeline's coding of y given its side information (z_stream, mean_q, scale).
    Encoder: y (1, C, h, w) -> (y stream, y_hat); decoder: y stream given as `y` bytes -> (None, y_hat).
    y_hat (C, h, w) float64."""
    hp = model.hp
    _, mean_q, scale = side
    idx = scale_indexes(hp, scale, rate)
    if isinstance(y, torch.Tensor):
        enc_step = rate.enc_step.float().view(1, -1, 1, 1)
        y_sym = torch.round((y - mean_q) / enc_step)[0].to(torch.int32).numpy()
        stream = coder.encode_gaussian(y_sym, idx, hp.scale_table.numpy())
    else:
        y_sym = coder.decode_gaussian(y, idx, hp.scale_table.numpy())
        stream = None
    y_hat = torch.from_numpy(y_sym.astype(np.float64))[None] * rate.dec_mult.double().view(1, -1, 1, 1) + mean_q.double()
    return stream, y_hat[0]


def _inter(ctx: _Context, y: torch.Tensor | None, stream: bytes | None, shape: tuple[int, int],
           side=None, rdo: float = 0.0) -> tuple[bytes | None, torch.Tensor]:
    """The token loop both sides run. Encoder: y (C, h, w) -> (stream, y_hat); decoder: stream ->
    (None, y_hat). y_hat (C, h, w) float64. `side`: the frame's (z_stream, mean_q, scale) for models
    with config.side."""
    model, rate = ctx.model, ctx.rate
    tf, cfg = model.tf64, model.tf64.config
    _, windows1, enc1 = ctx.latents[-1]
    _, windows2, enc2 = ctx.latents[-2] if len(ctx.latents) > 1 else ctx.latents[-1]
    h, w = shape
    ls = torch.full((windows1.shape[0],), ctx.log_step, dtype=torch.float64)
    side_tokens = None
    if cfg.side:
        side_tokens = (blocks_of(side[1].double(), cfg.block), blocks_of(side[2].double(), cfg.block))
    dec = StepDecoder(tf, enc1, enc2, windows1, windows2, ls, side_tokens)
    enc_step, dec_mult = rate.enc_step.double(), rate.dec_mult.double()
    table = model.scale_table.numpy()
    cur = blocks_of(y.double()[None], cfg.block) if y is not None else None  # (B, w^2, C)
    out = torch.zeros(windows1.shape[0], cfg.tokens, cfg.channels, dtype=torch.float64)
    writer = coder.GaussianEncoder(table) if y is not None else coder.GaussianDecoder(stream, table, what="inter frame")
    for k in range(cfg.tokens):
        mean, scale = dec.predict(k)  # (B, C)
        mean_q = snap_means(mean).double()
        idx = snap_scales(scale / enc_step, model.scale_table).numpy()
        if cur is not None:
            r = (cur[:, k] - mean_q) / enc_step
            sym = rd_round(r, model.scale_table[torch.from_numpy(idx)], rdo)
            writer.encode(sym.to(torch.int64).numpy().astype(np.int32), idx)
        else:
            sym = torch.from_numpy(writer.decode(idx).astype(np.float64))
        hat = sym * dec_mult + mean_q
        out[:, k] = hat
        dec.push(k, hat)
    if cur is not None:
        data = writer.finish()
    else:
        writer.finish()
        data = None
    return data, unblock(out, 1, h, w, cfg.block)[0]


def _rd_cost(y: torch.Tensor, y_hat: torch.Tensor, streams: list[bytes], rate: Rate, lam: float) -> float:
    """The mode decision's cost of one coding of a frame: bits, plus the squared error of its
    latents in quantisation steps over `lam` when lam > 0 (the cost `rd_round` weighs)."""
    bits = 8.0 * sum(map(len, streams))
    if lam <= 0:
        return bits
    err = (y[0].double() - y_hat) / rate.enc_step.double().view(-1, 1, 1)
    return bits + float((err**2).sum()) / lam


def _log_step(rate: Rate) -> float:
    return float(torch.log2(rate.enc_step.double()).mean())


# --- encoding -----------------------------------------------------------------------------------


@dataclass
class VideoStats:
    frames: int = 0
    intra: int = 0
    bytes: int = 0
    seconds: float = 0.0
    frame_bytes: list[int] = field(default_factory=list)
    stream_bytes: list[list[int]] = field(default_factory=list)  # per frame, its streams' lengths
    modes: list[int] = field(default_factory=list)
    latents: list = field(default_factory=list)  # y_hat per frame (C, h, w) float64, with keep_latents


def compress_video(model: LoadedVCT, frames: Iterable[np.ndarray], fp: BinaryIO, *, width: int, height: int,
                   fps: Fraction, quality: float | None = None, step: float = 1.0, gop: int = DEFAULT_GOP,
                   meta: dict | None = None, on_frame: Callable[[int, int, int], None] | None = None,
                   mode_decision: bool = True, keep_latents: bool = False, z_deadzone: int = 1,
                   rdo: float = RDO_LAMBDA) -> VideoStats:
    """Codes `frames` ((H, W, 3) uint8 each, all width x height) into `fp` as they come.

    gop: a keyframe (intra) every `gop` frames (1 = all-intra). `mode_decision`: code an inter frame
    intra when that costs less. `rdo`: the lambda of the encoder's rate-distortion choices, the
    rounding of inter frames and the mode decision (bits + squared latent error in steps / rdo);
    0 = plain rounding and the fewer bytes. Encoder-only: the bitstream format is the same.
    on_frame(number, mode, bytes) after each frame. Returns the stats; the caller makes the write
    atomic."""
    if not 1 <= gop <= 0xFFFF:
        raise ValueError(f"gop must be within 1..65535, got {gop}")
    rate = rate_for(model.hp, quality=quality, step=step)
    padded_h, padded_w = -(-height // STRIDE) * STRIDE, -(-width // STRIDE) * STRIDE
    header = Header(kind=KIND_VIDEO, width=width, height=height, pad_right=padded_w - width,
                    pad_bottom=padded_h - height, bit_depth=8, channels=3, quality=rate.field,
                    weights_sha256_prefix=model.sha256_prefix, model_id=model.model_id,
                    coder=coder.coder_name(), coder_version=coder.coder_version())
    tf_cfg = model.tf64.config
    writer = VideoWriter(fp, header, VideoHeader(Fraction(fps), gop), meta, temporal_side=tf_cfg.zprior)
    ctx = _Context(model, rate, _log_step(rate))
    side_inter = tf_cfg.side
    stats = VideoStats()
    shape = (padded_h // 16, padded_w // 16)
    t0 = time.perf_counter()
    for n, pixels in enumerate(frames):
        if pixels.shape != (height, width, 3):
            raise ValueError(f"frame {n} is {pixels.shape[1]}x{pixels.shape[0]}, the video is {width}x{height}")
        padded, _ = pad_to_multiple(pixels, STRIDE)
        x = torch.from_numpy(np.ascontiguousarray(padded)).permute(2, 0, 1)[None].float().div_(255.0)
        key = n % gop == 0
        with torch.no_grad():
            y = model.module.g_a(x)
        z_sym, side = None, None
        if key or mode_decision or side_inter:
            z_sym = _z_of(model, y)
            side = _side(model, z_sym, _z_code(model, z_sym))
        intra_streams, intra_hat = None, None
        if key or mode_decision:
            y_stream, intra_hat = _intra(model, rate, y, side)
            intra_streams = [side[0], y_stream]
        mode, streams, y_hat = INTRA, intra_streams, intra_hat
        if not key:
            inter_z, inter_side = z_sym, side
            if tf_cfg.zprior and z_deadzone > 0:  # keep z_{t-1} where z barely moved (lossy side information)
                inter_z = np.where(np.abs(z_sym - ctx.zs[-1]) <= z_deadzone, ctx.zs[-1], z_sym).astype(np.int32)
                if not np.array_equal(inter_z, z_sym):  # else the frame's own side information stands
                    inter_side = _side(model, inter_z, _z_code(model, inter_z))
            stream, inter_hat = _inter(ctx, y[0], None, shape, inter_side, rdo)
            inter_mode, inter_streams = INTER, [stream]
            if side_inter:
                inter_streams = [inter_side[0], stream]
                if tf_cfg.zprior:  # z given the previous frames' z when that is shorter
                    z_temporal = _z_code_temporal(ctx, inter_z)
                    if len(z_temporal) < len(inter_side[0]):
                        inter_mode, inter_streams = INTER_TZ, [z_temporal, stream]
            if intra_streams is None or (_rd_cost(y, inter_hat, inter_streams, rate, rdo)
                                         < _rd_cost(y, intra_hat, intra_streams, rate, rdo)):
                mode, streams, y_hat, z_sym = inter_mode, inter_streams, inter_hat, inter_z
        size = writer.add(mode, streams, keyframe=key)
        if key:
            ctx.clear()
        if gop > 1:  # all-intra needs no temporal context
            ctx.push(y_hat, z_sym)
        stats.frames += 1
        stats.intra += mode == INTRA
        stats.frame_bytes.append(size)
        stats.stream_bytes.append([len(b) for b in streams])
        stats.modes.append(mode)
        if keep_latents:
            stats.latents.append(y_hat)
        if on_frame is not None:
            on_frame(n, mode, size)
    if stats.frames == 0:
        raise ValueError("no frames to encode")
    stats.bytes = writer.finish()
    stats.seconds = time.perf_counter() - t0
    return stats


# --- decoding -----------------------------------------------------------------------------------


class VideoDecoder:
    """Decodes a video container from a seekable binary file object, frame by frame.

        dec = VideoDecoder(fp)                      # header, VHDR, model checked
        for number, pixels in dec.frames(a, b):     # frames a..b-1 (seeks to the GOP holding a)
            ...
        dec.damage                                  # with salvage: the error that ended decoding early

    Without `salvage` damage raises FormatError naming the frame; with it, decoding stops before
    the damaged frame and `damage` holds the message."""

    def __init__(self, fp: BinaryIO, model: str | LoadedVCT | None = None, limits: Limits = Limits()):
        self.reader = VideoReader(fp, limits)
        self.header, self.video = self.reader.header, self.reader.video
        h = self.header
        if isinstance(model, LoadedVCT):
            if model.model_id != h.model_id:
                raise ModelError(f"bitstream needs model {h.model_id!r}, got {model.model_id!r}")
        else:
            model = load_video_model(model or h.model_id)
        if model.sha256_prefix != h.weights_sha256_prefix:
            raise ModelError(f"bitstream was made with weights {h.weights_sha256_prefix.hex()} of {h.model_id!r}; "
                             f"the installed weights are {model.sha256_prefix.hex()}")
        if h.padded_height % STRIDE or h.padded_width % STRIDE:
            raise FormatError(f"padded size {h.padded_width}x{h.padded_height} is not a multiple of {STRIDE}")
        self.model = model
        self.rate = rate_from_field(model.hp, h.quality)
        self.damage: str | None = None
        self.latent: torch.Tensor | None = None  # y_hat (C, h, w) float64 of the frame last yielded

    def frames(self, start: int = 0, stop: int | None = None, salvage: bool = False) -> Iterator[tuple[int, np.ndarray]]:
        h = self.header
        shape = (h.padded_height // 16, h.padded_width // 16)
        offset, first = None, 0
        if start > 0:
            index = self.reader.index()
            if start >= index.frames:
                raise UnsupportedError(f"the video has {index.frames} frames; --frames starts at {start}")
            first, offset = max((g for g in index.gops if g[0] <= start), key=lambda g: g[0])
        ctx = _Context(self.model, self.rate, _log_step(self.rate))
        count, exhausted = 0, False
        frames = self.reader.frames(offset, first)
        while stop is None or first + count < stop:
            try:
                frame = next(frames, None)
                if frame is None:
                    exhausted = True
                    break
                y_hat = self._frame(ctx, frame, shape)
            except FormatError as exc:
                if not salvage:
                    raise
                self.damage = str(exc)
                return
            number = first + count
            count += 1
            if number >= start:
                self.latent = y_hat
                yield number, synthesize(self.model.module.g_s, y_hat.float()[None], h.height, h.width)
        if exhausted:  # the frames ran out before `stop`: the index must agree (a bad GOP offset ends them early)
            try:
                index = self.reader.index()
                if index.frames != first + count:
                    raise FormatError(f"corrupt bitstream: the index lists {index.frames} frames, the file holds "
                                      f"{first + count}")
            except FormatError as exc:
                if not salvage:
                    raise
                self.damage = f"after frame {first + count - 1}: {exc}"

    def _frame(self, ctx: _Context, frame: Frame, shape) -> torch.Tensor:
        try:
            cfg = self.model.tf64.config
            want = 2 if frame.mode != INTER or cfg.side else 1
            if len(frame.streams) != want:
                raise FormatError(f"{len(frame.streams)} streams in a frame of mode {frame.mode}, expected {want}")
            if frame.mode != INTRA and not ctx.latents:
                raise FormatError("inter-coded with no frame before it")
            z_sym, side = None, None
            if frame.mode == INTER_TZ:
                if not cfg.zprior:
                    raise FormatError(f"mode 2 (temporal side information) but model {self.model.model_id!r} "
                                      "has no temporal prior")
                z_sym = _z_decode_temporal(ctx, frame.streams[0])
            elif want == 2:
                z_sym = _z_decode(self.model, frame.streams[0], shape)
            if z_sym is not None:
                side = _side(self.model, z_sym, frame.streams[0])
            if frame.mode == INTRA:
                _, y_hat = _intra(self.model, self.rate, frame.streams[1], side)
                if frame.number % self.video.gop == 0:
                    ctx.clear()
            else:
                _, y_hat = _inter(ctx, None, frame.streams[-1], shape, side)
        except FormatError as exc:
            raise FormatError(f"frame {frame.number} (offset {frame.offset}) is damaged: {exc}") from None
        if self.video.gop > 1:
            ctx.push(y_hat, z_sym)
        return y_hat


# --- in memory, for the library and the evaluation ----------------------------------------------


def encode_video(frames: list[np.ndarray], model: str | LoadedVCT | None = None, *, quality: float | None = None,
                 step: float = 1.0, gop: int = DEFAULT_GOP, fps: Fraction = Fraction(25), mode_decision: bool = True) -> bytes:
    """Encode a list of (H, W, 3) uint8 frames to a video bitstream (bytes)."""
    import io

    if not frames:
        raise ValueError("no frames to encode")
    buf = io.BytesIO()
    h, w = frames[0].shape[:2]
    compress_video(load_video_model(model), frames, buf, width=w, height=h, fps=fps, quality=quality, step=step,
                   gop=gop, mode_decision=mode_decision)
    return buf.getvalue()


def decode_video(data: bytes, model: str | LoadedVCT | None = None, *, limits: Limits = Limits()) -> list[np.ndarray]:
    """Decode a video bitstream (bytes) to a list of (H, W, 3) uint8 frames."""
    import io

    dec = VideoDecoder(io.BytesIO(data), model, limits)
    return [pixels for _, pixels in dec.frames()]
