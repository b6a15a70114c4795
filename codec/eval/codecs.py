"""The codecs `codec eval` sweeps, each with its version, settings and quality range.

A codec turns (H, W, 3) uint8 pixels into the bytes of a complete file at one quality point and
back. Classical codecs run in process through Pillow (and pillow-jxl-plugin) or PyAV (x265 intra);
ours runs the real pipeline. Sweeps are chosen to cover about 0.05 to 2 bpp on Kodak-sized photos.

Specs on the command line: `jpeg`, `jpeg444`, `webp`, `avif`, `jxl`, `jpeg2000`, `x265`, and
`ours:<model_id>` or `ours:<model_id>@<step>,<step>,...` (quantisation steps of that model).
"""

from __future__ import annotations

import importlib.metadata
import io
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from PIL import Image, features

from codec.errors import UnsupportedError, UsageError


@dataclass
class Codec:
    """One codec with its sweep. `encode(pixels, q) -> bytes`, `decode(bytes) -> pixels`."""

    name: str
    label: str
    version: str
    settings: dict
    qualities: Sequence
    encode: Callable[[np.ndarray, object], bytes] = field(repr=False)
    decode: Callable[[bytes], np.ndarray] = field(repr=False)
    classical: bool = True

    def describe(self) -> dict:
        return {"name": self.name, "label": self.label, "version": self.version, "settings": self.settings,
                "qualities": list(self.qualities), "classical": self.classical}


def _pillow_decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def _pillow_encode(fmt: str, **fixed) -> Callable[[np.ndarray, object], bytes]:
    def encode(pixels: np.ndarray, q) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(pixels, "RGB").save(buf, fmt, **fixed, **q)
        return buf.getvalue()

    return encode


def _version(feature: str) -> str:
    return f"Pillow {importlib.metadata.version('pillow')}, lib {features.version(feature) or 'unknown'}"


def jpeg(subsampling: str = "4:2:0") -> Codec:
    qualities = [3, 5, 8, 12, 18, 25, 35, 50, 65, 80, 90, 95]
    enc = _pillow_encode("JPEG", subsampling=subsampling, optimize=True)
    return Codec(
        name="jpeg" if subsampling == "4:2:0" else "jpeg444", label=f"JPEG {subsampling}", version=_version("jpg"),
        settings={"subsampling": subsampling, "optimize": True, "progressive": False, "quality": "sweep"},
        qualities=qualities, encode=lambda px, q: enc(px, {"quality": q}), decode=_pillow_decode,
    )


def webp() -> Codec:
    enc = _pillow_encode("WEBP", method=6)
    return Codec(
        name="webp", label="WebP", version=_version("webp"), settings={"method": 6, "quality": "sweep"},
        qualities=[0, 5, 10, 20, 35, 50, 65, 80, 90, 95, 98], encode=lambda px, q: enc(px, {"quality": q}),
        decode=_pillow_decode,
    )


def avif() -> Codec:
    if not features.check("avif"):
        raise UnsupportedError("this Pillow has no AVIF support (Pillow >= 11.3 wheels include it)")
    enc = _pillow_encode("AVIF", speed=6, subsampling="4:2:0")
    return Codec(
        name="avif", label="AVIF", version=_version("avif"),
        settings={"speed": 6, "subsampling": "4:2:0", "quality": "sweep"},
        qualities=[5, 12, 20, 30, 40, 50, 60, 70, 80, 88, 94], encode=lambda px, q: enc(px, {"quality": q}),
        decode=_pillow_decode,
    )


def jxl() -> Codec:
    try:
        importlib.import_module("pillow_jxl")  # registers the JXL plugin with Pillow
    except ImportError:
        raise UnsupportedError("JPEG XL needs pillow-jxl-plugin (pip install pillow-jxl-plugin)") from None
    enc = _pillow_encode("JXL", effort=7)
    return Codec(
        name="jxl", label="JPEG XL", version=f"pillow-jxl-plugin {importlib.metadata.version('pillow-jxl-plugin')}",
        settings={"effort": 7, "quality": "sweep"},
        qualities=[5, 15, 25, 35, 45, 55, 65, 75, 85, 92, 96], encode=lambda px, q: enc(px, {"quality": q}),
        decode=_pillow_decode,
    )


def jpeg2000() -> Codec:
    enc = _pillow_encode("JPEG2000", quality_mode="rates", irreversible=True, mct=1)
    bpps = [0.05, 0.08, 0.12, 0.18, 0.25, 0.35, 0.5, 0.7, 1.0, 1.4, 2.0]
    return Codec(
        name="jpeg2000", label="JPEG 2000", version=_version("jpg_2000"),
        settings={"irreversible": True, "mct": 1, "quality_mode": "rates", "quality": "target bpp -> rate 24/bpp"},
        qualities=bpps, encode=lambda px, bpp: enc(px, {"quality_layers": [24.0 / bpp]}), decode=_pillow_decode,
    )


def x265() -> Codec:
    import av

    if "libx265" not in av.codecs_available:
        raise UnsupportedError("PyAV's FFmpeg build has no libx265: HEVC intra is not available here")

    def encode(pixels: np.ndarray, crf) -> bytes:
        h, w = pixels.shape[:2]
        ctx = av.CodecContext.create("libx265", "w")
        ctx.width, ctx.height, ctx.pix_fmt = w + (w & 1), h + (h & 1), "yuv444p"
        ctx.options = {"crf": str(crf), "preset": "medium", "x265-params": "keyint=1:log-level=none"}
        padded = np.pad(pixels, ((0, h & 1), (0, w & 1), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(padded, format="rgb24").reformat(format="yuv444p")
        packets = list(ctx.encode(frame)) + list(ctx.encode(None))
        body = bytes(ctx.extradata or b"") + b"".join(bytes(p) for p in packets)  # parameter sets in band
        return np.array([h, w], dtype="<u2").tobytes() + body  # 4 bytes for the crop, counted in the size

    def decode(data: bytes) -> np.ndarray:
        h, w = np.frombuffer(data[:4], dtype="<u2")
        ctx = av.CodecContext.create("hevc", "r")
        frames = list(ctx.decode(av.Packet(data[4:]))) + list(ctx.decode(None))
        return frames[0].to_ndarray(format="rgb24")[:h, :w]

    return Codec(
        name="x265", label="HEVC intra (x265)", version=f"PyAV {av.__version__}, {av.codec.Codec('libx265', 'w').long_name}",
        settings={"preset": "medium", "pix_fmt": "yuv444p", "keyint": 1, "crf": "sweep", "stream": "Annex B + 4-byte size"},
        qualities=[44, 40, 36, 33, 30, 27, 24, 21, 18, 15], encode=encode, decode=decode,
    )


OURS_STEPS = {
    "default": [4.0, 3.0, 2.5, 2.0, 1.6, 1.3, 1.0, 0.8],
    "hyperprior-mse-l025": [1.3, 1.0, 0.8, 0.65, 0.5, 0.4, 0.32],
}
OURS_QUALITIES = [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]  # variable-rate models


def ours(spec: str) -> Codec:
    """Our pipeline. Spec: `ours` (the default model), `ours:<id>`, `ours:<id>@a,b,...` (its settings:
    quantisation steps of a single-rate model, qualities 0..100 of a variable-rate one), or
    `ours:<id1>+<id2>` (the zoo: every point of each model); `;effort=N` appends an effort level.
    An id may be a model file outside the zoo, `ours:DIR/<id>.safetensors`, whose folder's
    manifest.json lists it (an export's folder)."""
    from codec.pipeline.image import compress, decompress, load_model
    from codec.pipeline.rate import is_variable
    from codec.registry import family_of
    from codec.zoo import default_model_id

    body = spec.split(":", 1)[1] if ":" in spec else ""
    body, _, effort_text = body.partition(";effort=")
    effort = int(effort_text) if effort_text else 0
    points: list[str] = []
    ids = []
    for part in (body or default_model_id()).split("+"):
        model_id, _, settings_text = part.partition("@")
        model_id = model_id or default_model_id()
        variable = is_variable(load_model(model_id))  # fails early (exit 5) on an unknown id
        default = OURS_QUALITIES if variable else OURS_STEPS.get(model_id, OURS_STEPS["default"])
        settings = [float(s) for s in settings_text.split(",")] if settings_text else default
        ids.append(model_id)
        points += [f"{model_id}@{s:g}" for s in settings]

    def encode(pixels: np.ndarray, point: str) -> bytes:
        model_id, setting = point.split("@")
        model = load_model(model_id)
        if is_variable(model):
            return compress(model, pixels, quality=float(setting), effort=effort).data
        return compress(model, pixels, float(setting), effort=effort).data

    by_id = {load_model(i).model_id: i for i in ids}  # a model file's id -> its path

    def decode(data: bytes) -> np.ndarray:
        from codec.container import read_container

        named = read_container(data).header.model_id  # the model the header names (a file: its path)
        return decompress(data, load_model(by_id.get(named, named))).pixels

    single = len(ids) == 1
    suffix = f";effort={effort}" if effort else ""
    return Codec(
        name="ours:" + "+".join(ids) + suffix,
        label="codec " + (ids[0] if single else "zoo (" + ", ".join(ids) + ")") + (f", effort {effort}" if effort else ""),
        version=f"codec {__import__('codec').__version__}, weights "
                + ", ".join(load_model(i).sha256[:12] for i in ids),
        settings={"models": ids, "points": "model@setting (step, or quality for variable-rate models)",
                  "effort": effort, "effort_schedule": {i: family_of(load_model(i)).effort_settings(effort) for i in ids},
                  "threads": "torch default"},
        qualities=points if not single else [float(p.split("@")[1]) for p in points],
        encode=(lambda px, s: encode(px, f"{ids[0]}@{s:g}")) if single else encode,
        decode=decode, classical=False,
    )


CLASSICAL = {"jpeg": jpeg, "jpeg444": lambda: jpeg("4:4:4"), "webp": webp, "avif": avif, "jxl": jxl,
             "jpeg2000": jpeg2000, "x265": x265}


def make_codec(spec: str) -> Codec:
    if spec == "ours" or spec.startswith("ours:"):
        return ours(spec)
    if spec not in CLASSICAL:
        raise UsageError(f"unknown codec {spec!r}; valid: {', '.join(CLASSICAL)}, ours:<model_id>[@steps]")
    return CLASSICAL[spec]()
