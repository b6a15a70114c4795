"""The image pipeline: the public image API and the dispatch to model families.

    compress:    pixels -> family.analyse -> [family.refine (effort)] -> family.encode(rate) -> Encoded
    decompress:  bytes -> container (CRCs, limits) -> model named in the header (id and weights
                 hash checked) -> family.decode(rate from the header) -> Decoded

What the streams of a file mean is its family's (codec.registry -> codec.pipeline.<family>); this
module knows rates, sizes, timing and the public types.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from codec.container import Container, Limits, read_container
from codec.container.chunks import KIND_IMAGE
from codec.container.format import check_encodable
from codec.errors import UnsupportedError, UsageError
from codec.family import Decoded, Encoded, Loaded
from codec.io import read_image
from codec.pipeline.rate import STEP_RANGE, is_variable, rate_for, rate_from_field, search
from codec.pipeline.resolve import resolve_model
from codec.registry import family_of

__all__ = ["Encoded", "Decoded", "compress", "compress_to_size", "decompress", "encode_image", "decode_image",
           "load_model"]


def load_model(model: str | Loaded | None = None) -> Loaded:
    """A loaded image model from an id (None: the default shipped model) or as given."""
    from codec.weights import load_model as load_shipped

    loaded = model if isinstance(model, Loaded) else load_shipped(model)
    kind = family_of(loaded).kind
    if kind != "image":  # the caller chose a model of the other kind: a usage error, not a bad model
        raise UsageError(f"{loaded.model_id} is a {kind} model: images need an image model (see `codec models`)")
    return loaded


def device_options(family, device: str) -> dict:
    """The refinement's keyword for `device` (none for the CPU); ValueError where the family's encoder
    cannot run there."""
    if device == "cpu":
        return {}
    if device not in family.devices:
        raise ValueError(f"--device {device} is not available for {family.name} models "
                         f"(their encoder runs on: {', '.join(family.devices)})")
    return {"device": device}


def compress(model: Loaded, pixels: np.ndarray, step: float = 1.0, quality: float | None = None,
             effort: int = 0, on_progress=None, device: str = "cpu") -> Encoded:
    """(H, W, 3) uint8 -> a complete container.

    Rate: `quality` 0..100 (variable-rate models; single-rate ones map it to a step) or `step`
    (quantisation step of y, 1 = as trained, larger = fewer bits). Recorded in the header, so
    decoding needs no flag. `effort` refines the latents for this image (slower encode, same
    decoder; the levels a family offers are `Family.efforts`); `on_progress(step, steps, bpp, psnr)`
    follows a long refinement. `device`: where the refinement runs (`Family.devices`; the file is
    the same wherever it ran).

    Raises:
        UsageError: a video model.
        LimitError: an image the default decoder would refuse (`Limits`: width, height, pixels).
    """
    t0 = time.perf_counter()
    model = load_model(model)
    check_encodable(pixels.shape[1], pixels.shape[0])
    family = family_of(model)
    options = device_options(family, device)
    rate = rate_for(model, quality=quality, step=step)
    analysis = family.analyse(model, pixels)
    effort = effort or family.default_effort
    if effort:
        analysis = family.refine(model, analysis, rate, effort, on_progress=on_progress, **options)
    return replace(family.encode(model, analysis, rate), seconds=time.perf_counter() - t0)


TARGET_SLACK = 0.05  # with effort, --target-size aims for a file within 5% under the budget


def compress_to_size(model: Loaded, pixels: np.ndarray, max_bytes: int, effort: int = 0,
                     on_progress=None, device: str = "cpu") -> tuple[Encoded, bool]:
    """The highest-quality file of at most `max_bytes` (whole file); (smallest file, False) if none fits.

    The analysis runs once; only the quantisation and coding repeat during the search. With
    `effort`, the search runs at effort 0, the refinement at the setting found; refinement usually
    saves bytes, so when the refined file lands more than TARGET_SLACK under the budget (or over it)
    the search runs again for the budget scaled by the saving and the better-fitting refined file
    is kept (at most two refinements; effort 0's file when neither fits)."""
    t0 = time.perf_counter()
    model = load_model(model)
    check_encodable(pixels.shape[1], pixels.shape[0])
    family = family_of(model)
    own = family.compress_to_size(model, pixels, max_bytes, effort, on_progress, **device_options(family, device))
    if own is not None:
        enc, fits = own
        return replace(enc, seconds=time.perf_counter() - t0), fits
    analysis = family.analyse(model, pixels)

    def search_for(budget: int):
        """(effort-0 file, fits, rate setting) of the best setting whose file fits `budget`."""
        def encode(**setting) -> Encoded:
            enc = family.encode(model, analysis, rate_for(model, **setting))
            return replace(enc, seconds=time.perf_counter() - t0)

        if is_variable(model):
            return search(lambda q: encode(quality=q), 0.0, 100.0, budget, True)
        return search(lambda s: encode(step=s), *STEP_RANGE, budget, False)

    plain, fits = search_for(max_bytes)
    if not effort or not fits:
        return plain, fits
    return _refined_to_size(model, family, analysis, plain, max_bytes, effort, search_for, on_progress, t0), True


def _refined_to_size(model, family, analysis, plain: Encoded, max_bytes: int, effort: int, search_for,
                     on_progress, t0: float) -> Encoded:
    def refined(enc: Encoded) -> Encoded:
        rate = rate_from_field(model, enc.header.quality)
        out = family.encode(model, family.refine(model, analysis, rate, effort, on_progress=on_progress), rate)
        return replace(out, seconds=time.perf_counter() - t0)

    first = refined(plain)
    size = len(first.data)
    if (1 - TARGET_SLACK) * max_bytes <= size <= max_bytes:
        return first
    again, fits = search_for(int(max_bytes * len(plain.data) / size))
    second = refined(again) if fits else first
    fitting = [e for e in (first, second) if len(e.data) <= max_bytes]
    return max(fitting, key=lambda e: len(e.data)) if fitting else plain


def decompress(data: bytes | Container, model: str | Loaded | None = None, limits: Limits = Limits()) -> Decoded:
    """A complete container (bytes, or already parsed and CRC-checked) -> (H, W, 3) uint8.
    `model` None: the model the header names."""
    container = data if isinstance(data, Container) else read_container(data, limits)
    header = container.header
    if header.kind != KIND_IMAGE:
        raise UnsupportedError(f"bitstream kind {header.kind} is not an image")
    model = resolve_model(model, header)
    t0 = time.perf_counter()
    pixels, z_sym, y_sym = family_of(model).decode(model, container, rate_from_field(model, header.quality))
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


def encode_image(image, model: str | Loaded | None = None, *, quality: float | None = None,
                 step: float = 1.0, max_pixels: int = Limits().max_pixels) -> bytes:
    """Encode an image (path, file bytes, PIL image or (H, W, 3) uint8 array) to a bitstream.

    `quality` 0..100, or `step`, the quantisation step of a single-rate model's latents (1 = the
    trained rate; 0.25..8). With no model named, a quality goes to the shipped model best at that
    rate (codec.zoo.route_quality), as `codec encode -q` does."""
    if model is None and quality is not None and step == 1.0:
        from codec.zoo import route_quality

        model = route_quality(quality)
    return compress(load_model(model), _as_pixels(image, max_pixels), step, quality).data


def decode_image(data: bytes, model: str | Loaded | None = None, *, limits: Limits = Limits()):
    """Decode a bitstream to a PIL RGB image."""
    from PIL import Image

    return Image.fromarray(decompress(data, model, limits).pixels, "RGB")
