"""The recipe of the golden video bitstreams in tests/golden/ (scripts/make_golden_video.py writes them,
tests/test_shipped_video.py checks them).

The first FRAMES frames of assets/carphone.mp4, coded at QUALITY with GOP (a keyframe, inter frames, a
second GOP) at FPS frames a second, with the encoder's choices recorded in the golden JSON ("encoder",
e.g. {"rdo": 0.05}): `encode` is the one place both sides code them, so the test re-encodes exactly as
the script did.
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

__all__ = ["FPS", "FRAMES", "GOP", "QUALITY", "SOURCE", "encode", "source_frames"]

SOURCE = REPO_ROOT / "assets" / "carphone.mp4"
FRAMES, GOP, QUALITY, FPS = 6, 4, 40, Fraction(30)


def source_frames() -> list[np.ndarray]:
    """The FRAMES first frames of SOURCE, (H, W, 3) uint8 each."""
    from codec.eval.video import load_clip

    return load_clip(SOURCE, 0, FRAMES).frames


def encode(model: Loaded, frames: list[np.ndarray], encoder: dict) -> tuple[bytes, VideoStats]:
    """Code ``frames`` as the golden files are: QUALITY, GOP, FPS and the encoder's choices.

    Args:
        model: the loaded video model.
        frames: (H, W, 3) uint8 frames, all of one size.
        encoder: keyword arguments of compress_video that the golden file pins (e.g. {"rdo": 0.05}).

    Returns:
        The bitstream and compress_video's statistics (modes, frame_bytes).
    """
    from codec.pipeline.video import compress_video

    buf = io.BytesIO()
    h, w = frames[0].shape[:2]
    stats = compress_video(model, frames, buf, width=w, height=h, fps=FPS, quality=QUALITY, gop=GOP, **encoder)
    return buf.getvalue(), stats
