"""Whole files in and out: an image file's bytes to a complete bitstream (metadata chunks included),
and a bitstream to an image file's bytes. `codec encode` / `codec decode` and the batch engine
(`codec.batch`) both go through here, so a file coded by either is the same bytes.

    image bytes --read_image--> pixels, metadata --compress / compress_to_size--> container
                --add_chunks(metadata)--> file bytes
    file bytes --read_container--> decompress --> pixels --encode_image_bytes(metadata)--> image bytes
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from codec.errors import UsageError

DEFAULT_QUALITY = 60.0  # codec.pipeline.rate.DEFAULT_QUALITY
CHUNK_FRAME_BYTES = 12  # a chunk's length, type and CRC around its payload (docs/FORMAT.md)
ALL_METADATA = frozenset(("exif", "icc", "xmp"))  # codec.metadata.KINDS


@dataclass(frozen=True)
class ImageRate:
    """How each image's rate is chosen: a quality (or a quantisation step) with an effort level, or the
    best quality whose whole file fits a byte budget (`max_bytes`, or `target_bpp` of the image)."""

    quality: float | None = None
    step: float | None = None
    effort: int = 0
    target_bpp: float | None = None
    max_bytes: int | None = None

    def budget(self, height: int, width: int) -> int | None:
        """The byte budget of an image of this size, or None to code at the quality."""
        if self.max_bytes is not None:
            return self.max_bytes
        return int(self.target_bpp * height * width / 8) if self.target_bpp is not None else None

    def asked_quality(self) -> float | None:
        """The quality reported for a file: the user's -q, the default 60 when no rate option was
        given, None for --step or a size target (the header field then says what was chosen)."""
        if self.quality is not None:
            return self.quality
        plain = self.step is None and self.target_bpp is None and self.max_bytes is None
        return DEFAULT_QUALITY if plain else None

    def model_for(self, model: str | None) -> str | None:
        """The model to load: the one named, or with none named and a quality (not a step or a size)
        the shipped model best at that quality (codec.zoo.route_quality); None: the default."""
        if model is None and self.step is None and self.budget(1, 1) is None:
            from codec.zoo import route_quality

            return route_quality(self.quality if self.quality is not None else DEFAULT_QUALITY)
        return model


@dataclass
class EncodedFile:
    """One image coded into one complete file."""

    data: bytes
    width: int
    height: int
    seconds: float  # the codec's own time (the fit or the transforms), not reading or writing
    quality_field: int  # the header's rate field
    metadata_bytes: int
    fits: bool = True  # False: a size target that even the lowest quality misses
    warnings: list[str] = field(default_factory=list)
    pixels: np.ndarray | None = None  # the source pixels (for a PSNR by the caller)


def encode_file(loaded, source: str | Path | bytes, rate: ImageRate, *, max_pixels: int,
                keep: frozenset = ALL_METADATA, device: str = "cpu", on_progress=None,
                name: str | None = None) -> EncodedFile:
    """An image file (a path, or its bytes) coded by `loaded` at `rate`, with the metadata kinds
    `keep` carried in ancillary chunks (counted in a size budget)."""
    from codec.container import add_chunks
    from codec.io import read_image
    from codec.metadata import to_chunks
    from codec.pipeline.image import compress, compress_to_size

    image = read_image(source, max_pixels=max_pixels, name=name)
    chunks = to_chunks(image.metadata.keep(keep))
    overhead = sum(len(payload) + CHUNK_FRAME_BYTES for _, payload in chunks)
    h, w = image.pixels.shape[:2]
    budget = rate.budget(h, w)
    fits = True
    try:
        if budget is not None:
            enc, fits = compress_to_size(loaded, image.pixels, max(budget - overhead, 1), rate.effort, on_progress,
                                         device)
        else:
            enc = compress(loaded, image.pixels, 1.0 if rate.step is None else rate.step, rate.quality, rate.effort,
                           on_progress, device)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    data = add_chunks(enc.data, chunks) if chunks else enc.data
    return EncodedFile(data, w, h, enc.seconds, enc.header.quality, overhead, fits, list(image.warnings),
                       image.pixels)


def long_encode(loaded, rate: ImageRate) -> bool:
    """Whether an encode of `loaded` at `rate` optimises (worth a progress bar)."""
    from codec.registry import family_of

    return bool(rate.effort or family_of(loaded).default_effort)


@dataclass
class DecodedFile:
    """One bitstream decoded, with the image file's bytes in `image_format`."""

    pixels: np.ndarray
    model_id: str
    seconds: float
    metadata: object  # codec.metadata.Metadata kept
    dropped: list[str]  # metadata kinds the image format cannot hold


def decode_file(data: bytes, load, limits, *, keep: frozenset = ALL_METADATA,
                image_format: str = "PNG") -> DecodedFile:
    """A bitstream's pixels and the metadata to restore; `load(model_id)` gives the model the header
    names (cached by the caller)."""
    from codec import pipeline
    from codec.container import read_container
    from codec.metadata import from_chunks, save_options

    container = read_container(data, limits)  # parsed and CRC-checked once
    dec = pipeline.decompress(container, load(container.header.model_id))
    meta = from_chunks(container.find).keep(keep)
    return DecodedFile(dec.pixels, container.header.model_id, dec.seconds, meta,
                       list(save_options(meta, image_format)[1]))

