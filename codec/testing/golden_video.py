"""The recipe of the golden video bitstreams in tests/golden/ (scripts/make_golden_video.py writes them,
tests/test_shipped_video.py checks them).

The first FRAMES frames of assets/carphone.mp4, coded at QUALITY with GOP (a keyframe, inter frames, a
second GOP) at FPS frames a second, with the encoder's choices recorded in the golden JSON ("encoder",
e.g. {"rdo": 0.05}, or {"rdo": 0.05, "memory": 4}): `encode` is the one place both sides code them, so
the test re-encodes exactly as the script did. Recipe "returning" (the JSON's "recipe"; the latent
memory's golden file): A0 A1 A2, a cut to B0 B1 B2 (the same frames turned upside down), a cut back to
A3 A4 A5.
"""

from __future__ import annotations

import io
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

from codec.settings import REPO_ROOT

if TYPE_CHECKING:
    from codec.family import Loaded
    from codec.pipeline.video import VideoStats

__all__ = ["FPS", "FRAMES", "GOP", "QUALITY", "RECIPES", "SOURCE", "encode", "source_frames"]

SOURCE = REPO_ROOT / "assets" / "carphone.mp4"
FRAMES, GOP, QUALITY, FPS = 6, 4, 40, Fraction(30)
RECIPES = ("first", "returning")


def source_frames(recipe: str = "first") -> list[np.ndarray]:
    """The FRAMES first frames of SOURCE, (H, W, 3) uint8 each; or for "returning" those frames as a
    scene that a cut interrupts and that returns (9 frames)."""
    from codec.eval.video import load_clip

    frames = load_clip(SOURCE, 0, FRAMES).frames
    if recipe == "first":
        return frames
    if recipe != "returning":
        raise ValueError(f"unknown golden recipe {recipe!r} (one of {RECIPES})")
    turned = [np.ascontiguousarray(f[::-1, ::-1]) for f in frames]
    return frames[:3] + turned[:3] + frames[3:6]


def encode(model: Loaded, frames: list[np.ndarray], encoder: dict) -> tuple[bytes, VideoStats]:
    """Code ``frames`` as the golden files are: QUALITY, GOP, FPS and the encoder's choices.

    Args:
        model: the loaded video model.
        frames: (H, W, 3) uint8 frames, all of one size.
        encoder: keyword arguments of compress_video that the golden file pins (e.g. {"rdo": 0.05}),
            "gop" among them where it is not GOP.

    Returns:
        The bitstream and compress_video's statistics (modes, frame_bytes).
    """
    from codec.pipeline.video import compress_video

    buf = io.BytesIO()
    h, w = frames[0].shape[:2]
    settings = dict(encoder)
    gop = settings.pop("gop", GOP)
    stats = compress_video(model, frames, buf, width=w, height=h, fps=FPS, quality=QUALITY, gop=gop, **settings)
    return buf.getvalue(), stats
