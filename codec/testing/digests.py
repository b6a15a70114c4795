"""sha256 digests of decoded content, to tell whether two encodes or decodes agree bit for bit.

The latents of a video are exact (integer symbols plus parameters snapped to a grid, computed on CPU
in float64) while its pixels come from the synthesis in float32 and may differ by one level between
machines or kernels; so a golden file or a determinism check compares the latents bit for bit and the
pixels within a tolerance.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable

import numpy as np

__all__ = ["decode_video_with_latents_sha256", "frames_sha256"]


def frames_sha256(frames: Iterable[np.ndarray]) -> str:
    """The sha256 (hex) of the frames' bytes, frame after frame."""
    h = hashlib.sha256()
    for f in frames:
        h.update(f.tobytes())
    return h.hexdigest()


def decode_video_with_latents_sha256(data: bytes, model=None) -> tuple[list[np.ndarray], str]:
    """Decode a whole video bitstream, hashing its latents on the way.

    Args:
        data: the video bitstream.
        model: the loaded video model; None loads the one the header names.

    Returns:
        The decoded (H, W, 3) uint8 frames, and the sha256 (hex) of the decoded latents y_hat, their
        float64 bytes frame after frame.
    """
    from codec.pipeline.video import VideoDecoder

    dec = VideoDecoder(io.BytesIO(data), model)
    frames, h = [], hashlib.sha256()
    for _, pixels in dec.frames():
        frames.append(pixels)
        h.update(dec.latent.numpy().tobytes())
    return frames, h.hexdigest()
