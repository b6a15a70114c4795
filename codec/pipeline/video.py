"""The video pipeline: frames in, a streamed container out, and back; the public video API.

    encode:  for each frame t: pixels -pad-> x -> the family's frame coder (keyframe every `gop`)
             -> (mode, streams) -> FRAM chunk; a frame index and the end chunk at the close
    decode:  FRAM chunks (from the GOP holding the first frame asked for) -> the family's frame
             coder -> y_hat -> pixels -crop-> out

This module knows the container (codec.container.video), seeking, salvage and statistics; what a
frame's streams mean is the family's (`Family.frame_coder`, found through codec.registry; the VCT
family is codec.pipeline.vct). Frames stream: the encoder holds the context its family keeps (two
latents for VCT), the decoder that and one picture.
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
from codec.container.format import VIDEO_SCENE_VERSION, check_encodable
from codec.container.video import INTRA, Frame, VideoHeader, VideoReader, VideoWriter
from codec.errors import FormatError, ModelError, UnsupportedError, UsageError
from codec.family import Loaded
from codec.io import pad_to_multiple
from codec.models.hyperprior import STRIDE
from codec.pipeline.rate import rate_for, rate_from_field
from codec.pipeline.resolve import resolve_model
from codec.registry import family_of

__all__ = ["VideoStats", "compress_video", "VideoDecoder", "encode_video", "decode_video", "load_video_model"]

DEFAULT_GOP = 32


def load_video_model(model: str | Loaded | None = None) -> Loaded:
    """A loaded video model from an id (None: the manifest's default video model) or as given."""
    from codec.weights import load_model
    from codec.zoo import read_manifest

    if model is None:
        model = read_manifest().get("default_video")
        if not model:
            raise ModelError("no default video model in the manifest; train and export one (codec train video)")
    loaded = model if isinstance(model, Loaded) else load_model(model)
    kind = family_of(loaded).kind
    if kind != "video":  # the caller chose a model of the other kind: a usage error, not a bad model
        raise UsageError(f"{loaded.model_id} is an {kind} model: video needs a video model such as VCT "
                         "(see `codec models`)")
    return loaded


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

    def add(self, mode: int, streams: list[bytes], size: int, y_hat, keep_latents: bool) -> None:
        self.frames += 1
        self.intra += mode == INTRA
        self.frame_bytes.append(size)
        self.stream_bytes.append([len(b) for b in streams])
        self.modes.append(mode)
        if keep_latents:
            self.latents.append(y_hat)


def video_header(model: Loaded, rate, width: int, height: int) -> Header:
    padded_h, padded_w = -(-height // STRIDE) * STRIDE, -(-width // STRIDE) * STRIDE
    return Header(kind=KIND_VIDEO, width=width, height=height, pad_right=padded_w - width,
                  pad_bottom=padded_h - height, bit_depth=8, channels=3, quality=rate.field,
                  weights_sha256_prefix=model.sha256_prefix, model_id=model.model_id,
                  coder=coder.coder_name(), coder_version=coder.coder_version())


def compress_video(model: Loaded, frames: Iterable[np.ndarray], fp: BinaryIO, *, width: int, height: int,
                   fps: Fraction, quality: float | None = None, step: float = 1.0, gop: int = DEFAULT_GOP,
                   meta: dict | None = None, on_frame: Callable[[int, int, int], None] | None = None,
                   keep_latents: bool = False, memory: int = 0, **settings) -> VideoStats:
    """Codes `frames` ((H, W, 3) uint8 each, all width x height) into `fp` as they come.

    gop: a keyframe (intra) every `gop` frames (1 = all-intra). memory: entries of the latent memory
    (0: none; recorded in the file; codec.pipeline.vct_memory). `settings`: the family's encoder
    settings (VCT: mode_decision, rdo, z_deadzone; see codec.pipeline.vct.FrameCoder), which never
    change the format. on_frame(number, mode, bytes) after each frame. Returns the stats; the
    caller makes the write atomic. A frame size or count that the default decoder refuses (`Limits`)
    is a LimitError before that frame is coded."""
    if not 1 <= gop <= 0xFFFF:
        raise ValueError(f"gop must be within 1..65535, got {gop}")
    model = load_video_model(model)
    check_encodable(width, height)
    rate = rate_for(model, quality=quality, step=step)
    frame_coder = family_of(model).frame_coder(model, rate, gop, memory=memory, **settings)
    writer = VideoWriter(fp, video_header(model, rate, width, height), VideoHeader(Fraction(fps), gop, memory), meta,
                         temporal_side=frame_coder.temporal_side, scene_ends=frame_coder.scene_ends)
    stats = VideoStats()
    t0 = time.perf_counter()
    for n, pixels in enumerate(frames):
        if pixels.shape != (height, width, 3):
            raise ValueError(f"frame {n} is {pixels.shape[1]}x{pixels.shape[0]}, the video is {width}x{height}")
        check_encodable(width, height, frames=n + 1)
        padded, _ = pad_to_multiple(pixels, STRIDE)
        x = torch.from_numpy(np.ascontiguousarray(padded)).permute(2, 0, 1)[None].float().div_(255.0)
        key = n % gop == 0
        mode, streams, y_hat = frame_coder.encode(x, key)
        size = writer.add(mode, streams, keyframe=key)
        stats.add(mode, streams, size, y_hat, keep_latents)
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
    the damaged frame and `damage` holds the message (still a FormatError when no frame of the window
    precedes the damage). A video without any frame is a FormatError."""

    def __init__(self, fp: BinaryIO, model: str | Loaded | None = None, limits: Limits = Limits()):
        self.reader = VideoReader(fp, limits)
        self.header, self.video = self.reader.header, self.reader.video
        h = self.header
        self.model = resolve_model(model, h)
        if h.padded_height % STRIDE or h.padded_width % STRIDE:
            raise FormatError(f"padded size {h.padded_width}x{h.padded_height} is not a multiple of {STRIDE}")
        self.rate = rate_from_field(self.model, h.quality)
        self.damage: str | None = None
        self.latent: torch.Tensor | None = None  # y_hat (C, h, w) float64 of the frame last yielded

    def frames(self, start: int = 0, stop: int | None = None, salvage: bool = False) -> Iterator[tuple[int, np.ndarray]]:
        h = self.header
        shape = (h.padded_height // 16, h.padded_width // 16)
        offset, first, before = None, 0, []
        if start > 0:
            index = self.reader.index()
            if start >= index.frames:
                raise UnsupportedError(f"the video has {index.frames} frames; --frames starts at {start}")
            first, offset = max((g for g in index.gops if g[0] <= start), key=lambda g: g[0])
            if self.video.memory:  # the memory at that keyframe: in each slot, the last intra frame stored there
                last = {slot: (f, o, slot) for f, o, slot in index.intra if f < first and slot < self.video.memory}
                before = sorted(last.values())
        memory = {"memory": self.video.memory}
        if self.video.memory:
            memory["scene_ends"] = self.reader.min_reader_version >= VIDEO_SCENE_VERSION
        frame_coder = family_of(self.model).frame_coder(self.model, self.rate, self.video.gop, **memory)
        for number, at, slot in before:
            try:
                frame = next(self.reader.frames(at, number), None)
                if frame is None:
                    raise FormatError(f"intra frame {number} listed in the index is missing")
                frame_coder.remember(frame, shape, slot)
            except FormatError as exc:  # the window cannot be decoded without its memory
                raise FormatError(f"frame {number} (offset {at}), in the memory of frame {first}: {exc}") from None
        count, exhausted, yielded = 0, False, 0
        frames = self.reader.frames(offset, first)
        while stop is None or first + count < stop:
            try:
                frame = next(frames, None)
                if frame is None:
                    exhausted = True
                    break
                y_hat = self._frame(frame_coder, frame, shape)
            except FormatError as exc:
                self.damage = self._salvaged(exc, salvage, yielded)
                return
            number = first + count
            count += 1
            if number >= start:
                self.latent = y_hat
                yielded += 1
                yield number, frame_coder.pixels(y_hat, h.height, h.width)
        if exhausted:  # the frames ran out before `stop`: the index must agree (a bad GOP offset ends them early)
            try:
                index = self.reader.index()
                if index.frames != first + count:
                    raise FormatError(f"corrupt bitstream: the index lists {index.frames} frames, the file holds "
                                      f"{first + count}")
            except FormatError as exc:
                self.damage = f"after frame {first + count - 1}: {self._salvaged(exc, salvage, yielded)}"
                return
            if not yielded:  # our encoder never writes a video without frames
                raise FormatError("corrupt bitstream: the video holds no frame")

    @staticmethod
    def _salvaged(exc: FormatError, salvage: bool, yielded: int) -> str:
        """The damage `exc` as salvage records it; raised as it is without salvage, and as a FormatError
        too when no frame precedes it (nothing to salvage: the input is corrupt, not the request)."""
        if not salvage:
            raise exc
        if not yielded:
            raise FormatError(f"{exc} (no frame decodes before it: nothing to salvage)") from None
        return str(exc)

    def _frame(self, frame_coder, frame: Frame, shape) -> torch.Tensor:
        try:
            return frame_coder.decode(frame, shape)
        except FormatError as exc:
            raise FormatError(f"frame {frame.number} (offset {frame.offset}) is damaged: {exc}") from None


# --- in memory, for the library and the evaluation ----------------------------------------------


def encode_video(frames: list[np.ndarray], model: str | Loaded | None = None, *, quality: float | None = None,
                 step: float = 1.0, gop: int = DEFAULT_GOP, fps: Fraction = Fraction(25), **settings) -> bytes:
    """Encode a list of (H, W, 3) uint8 frames to a video bitstream (bytes)."""
    import io

    if not frames:
        raise ValueError("no frames to encode")
    buf = io.BytesIO()
    h, w = frames[0].shape[:2]
    compress_video(load_video_model(model), frames, buf, width=w, height=h, fps=fps, quality=quality, step=step,
                   gop=gop, **settings)
    return buf.getvalue()


def decode_video(data: bytes, model: str | Loaded | None = None, *, limits: Limits = Limits()) -> list[np.ndarray]:
    """Decode a video bitstream (bytes) to a list of (H, W, 3) uint8 frames."""
    import io

    dec = VideoDecoder(io.BytesIO(data), model, limits)
    return [pixels for _, pixels in dec.frames()]
