"""Video pipeline (VCT): frames in, a streamed container out, and back; mirrored step by step.

    encode, frame t:  pixels -pad-> x -g_a-> y_t
        keyframe (t % gop == 0):  intra, exactly the image pipeline (ZSTR + YSTR streams)
        otherwise:  inter: [models with side information: z -> stream, h_s -> mean_hp, scale_hp]
                    VCT(y_hat[t-1], y_hat[t-2] [, mean_hp, scale_hp]) -> for token k = 0..15 of every 4x4 block:
                        mean, scale (float64) -snap-> y_sym = round((y - mean_q) / enc_step) -> stream
                        y_hat = y_sym * dec_mult + mean_q -> pushed into the decoder's cache
                    and when the image pipeline codes the frame in fewer bytes, intra instead
        -> FRAM chunk (mode + streams); y_hat_t kept as the next frames' context
    decode, frame t:  FRAM -> (same parameter path) -> y_hat_t -g_s-> pixels -crop-> out

The encoder never runs g_s: the context is the decoded latents, which it has exactly. Both sides run
the identical token loop (`_inter`) in float64 on CPU, snapped to the grids of the image model, so
the parameters the encoder codes with are the ones the decoder recomputes. The first inter frame
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
from codec.container.video import INTER, INTRA, Frame, VideoHeader, VideoReader, VideoWriter
from codec.entropy.gaussian import snap_means, snap_scales
from codec.errors import FormatError, ModelError, UnsupportedError
from codec.io import crop, pad_to_multiple
from codec.models.hyperprior import STRIDE
from codec.models.vct import StepDecoder, blocks_of, unblock, windows_of
from codec.pipeline.image import entropy_parameters, scale_indexes
from codec.pipeline.rate import Rate, rate_for, rate_from_field
from codec.weights import LoadedVCT

__all__ = ["VideoStats", "compress_video", "VideoDecoder", "encode_video", "decode_video", "load_video_model"]

DEFAULT_GOP = 32


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
    """What both sides keep between frames: the last two decoded latents and their E_sep encodings."""

    model: LoadedVCT
    rate: Rate
    log_step: float
    latents: list = field(default_factory=list)  # [(y_hat (C, h, w) float64, encoding (B, k*k, d) float64)]

    def push(self, y_hat: torch.Tensor) -> None:
        tf, cfg = self.model.tf64, self.model.tf64.config
        windows = windows_of(y_hat[None], cfg)
        ls = torch.full((windows.shape[0],), self.log_step, dtype=torch.float64)
        with torch.no_grad():
            enc = tf.encode_previous(windows, ls)
        self.latents = (self.latents + [(y_hat, windows, enc)])[-2:]

    def clear(self) -> None:
        self.latents = []


def _side(model: LoadedVCT, y: torch.Tensor | None, z_stream: bytes | None, shape: tuple[int, int]):
    """The hyperprior side information of a frame. Encoder: y (1, C, h, w) -> z stream; decoder: the z
    stream. Both: (z_stream, mean_q (1, C, h, w) float32 snapped, scale (1, C, h, w) float64)."""
    hp = model.hp
    module = hp.module
    if y is not None:
        with torch.no_grad():
            z = module.h_a(y)
        med = module.z_density.quantiles[:, 0, 1].view(1, -1, 1, 1)
        z_sym = torch.round(z - med)[0].to(torch.int32).numpy()
        z_stream = coder.encode_categorical(z_sym.reshape(z_sym.shape[0], -1), hp.z_pmf.numpy(), hp.z_offsets.numpy())
    else:
        h, w = shape
        z_sym = coder.decode_categorical(z_stream, hp.z_pmf.numpy(), hp.z_offsets.numpy(), (h // 4) * (w // 4))
        z_sym = z_sym.reshape(module.config.N, h // 4, w // 4)
    mean_q, scale = entropy_parameters(hp, z_sym)
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
           side=None) -> tuple[bytes | None, torch.Tensor]:
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
            sym = torch.round((cur[:, k] - mean_q) / enc_step)
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
    modes: list[int] = field(default_factory=list)
    latents: list = field(default_factory=list)  # y_hat per frame (C, h, w) float64, with keep_latents


def compress_video(model: LoadedVCT, frames: Iterable[np.ndarray], fp: BinaryIO, *, width: int, height: int,
                   fps: Fraction, quality: float | None = None, step: float = 1.0, gop: int = DEFAULT_GOP,
                   meta: dict | None = None, on_frame: Callable[[int, int, int], None] | None = None,
                   mode_decision: bool = True, keep_latents: bool = False) -> VideoStats:
    """Codes `frames` ((H, W, 3) uint8 each, all width x height) into `fp` as they come.

    gop: a keyframe (intra) every `gop` frames (1 = all-intra). `mode_decision`: code an inter frame
    intra when that is smaller. on_frame(number, mode, bytes) after each frame. Returns the stats;
    the caller makes the write atomic."""
    if not 1 <= gop <= 0xFFFF:
        raise ValueError(f"gop must be within 1..65535, got {gop}")
    rate = rate_for(model.hp, quality=quality, step=step)
    padded_h, padded_w = -(-height // STRIDE) * STRIDE, -(-width // STRIDE) * STRIDE
    header = Header(kind=KIND_VIDEO, width=width, height=height, pad_right=padded_w - width,
                    pad_bottom=padded_h - height, bit_depth=8, channels=3, quality=rate.field,
                    weights_sha256_prefix=model.sha256_prefix, model_id=model.model_id,
                    coder=coder.coder_name(), coder_version=coder.coder_version())
    writer = VideoWriter(fp, header, VideoHeader(Fraction(fps), gop), meta)
    ctx = _Context(model, rate, _log_step(rate))
    side_inter = model.tf64.config.side
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
        side = _side(model, y, None, shape) if key or mode_decision or side_inter else None
        intra_streams, intra_hat = None, None
        if key or mode_decision:
            y_stream, intra_hat = _intra(model, rate, y, side)
            intra_streams = [side[0], y_stream]
        mode, streams, y_hat = INTRA, intra_streams, intra_hat
        if not key:
            stream, inter_hat = _inter(ctx, y[0], None, shape, side)
            inter_streams = [side[0], stream] if side_inter else [stream]
            if intra_streams is None or sum(map(len, inter_streams)) < sum(map(len, intra_streams)):
                mode, streams, y_hat = INTER, inter_streams, inter_hat
        size = writer.add(mode, streams, keyframe=key)
        if key:
            ctx.clear()
        if gop > 1:  # all-intra needs no temporal context
            ctx.push(y_hat)
        stats.frames += 1
        stats.intra += mode == INTRA
        stats.frame_bytes.append(size)
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
        count = 0
        frames = self.reader.frames(offset, first)
        while stop is None or first + count < stop:
            try:
                frame = next(frames, None)
                if frame is None:
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
                with torch.no_grad():
                    x_hat = self.model.module.g_s(y_hat.float()[None])
                pixels = x_hat[0].clamp_(0, 1).mul_(255).round_().to(torch.uint8).permute(1, 2, 0).numpy()
                yield number, crop(pixels, h.height, h.width)
        if stop is None:
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
            side_inter = self.model.tf64.config.side
            want = 2 if frame.mode == INTRA or side_inter else 1
            if len(frame.streams) != want:
                raise FormatError(f"{len(frame.streams)} streams in an {'intra' if frame.mode == INTRA else 'inter'} "
                                  f"frame, expected {want}")
            side = _side(self.model, None, frame.streams[0], shape) if want == 2 else None
            if frame.mode == INTRA:
                _, y_hat = _intra(self.model, self.rate, frame.streams[1], side)
                if frame.number % self.video.gop == 0:
                    ctx.clear()
            else:
                if not ctx.latents:
                    raise FormatError("inter-coded with no frame before it")
                _, y_hat = _inter(ctx, None, frame.streams[-1], shape, side)
        except FormatError as exc:
            raise FormatError(f"frame {frame.number} (offset {frame.offset}) is damaged: {exc}") from None
        if self.video.gop > 1:
            ctx.push(y_hat)
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
