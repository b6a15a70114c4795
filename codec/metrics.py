"""Image quality and rate figures: PSNR, MS-SSIM and bits per pixel from the whole file.

All functions take (H, W, 3) uint8 RGB arrays as decoded for display, so a codec and a baseline
are measured on exactly the pixels a user would see. Conventions follow CompressAI's eval tools:

    psnr      10 log10(255^2 / MSE), MSE over every sample of all three channels (8-bit RGB)
    mean_psnr the mean over the frames of a video of their psnr
    ms_ssim   pytorch_msssim.ms_ssim on RGB, data_range 255, 5 scales, 11x11 Gaussian window
    bpp       8 * (bytes of the whole file) / (height * width)

This module imports numpy and torch (for MS-SSIM) only; never typer or rich.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["MS_SSIM_MIN_SIDE", "bpp", "mean_psnr", "ms_ssim", "psnr"]

MS_SSIM_MIN_SIDE = 161
"""Smallest height and width that 5-scale MS-SSIM with an 11-pixel window accepts: the image is
halved four times and the window must still fit, so the shorter side must exceed (11 - 1) * 2**4."""


def _check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} and {b.shape}")
    if a.dtype != np.uint8 or b.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"expected two (H, W, 3) uint8 arrays, got {a.shape} {a.dtype} and {b.dtype}")
    return a, b


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two 8-bit RGB images, in dB.

    Args:
        a: (H, W, 3) uint8 reference.
        b: (H, W, 3) uint8 reconstruction, same shape.

    Returns:
        10 log10(255^2 / MSE) with the MSE taken over all samples of all channels;
        float('inf') when the images are identical.
    """
    a, b = _check_pair(a, b)
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    if mse == 0.0:
        return float("inf")
    return 10.0 * math.log10(255.0**2 / mse)


def mean_psnr(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> float:
    """The mean over frames of the per-frame `psnr` of two videos, in dB.

    Args:
        a: reference frames, (H, W, 3) uint8 each.
        b: reconstructed frames, as many, each of its reference's shape.

    Raises:
        ValueError: the videos differ in frame count (or a pair in shape), or have no frame.
    """
    if len(a) != len(b) or len(a) == 0:
        raise ValueError(f"expected two videos of the same number of frames, at least one, got {len(a)} and {len(b)}")
    return float(sum(psnr(x, y) for x, y in zip(a, b)) / len(a))


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Multi-scale SSIM of two 8-bit RGB images (pytorch_msssim, data_range 255, default weights).

    Computed in float64 on the RGB channels (the per-channel values are averaged, as
    pytorch_msssim does). 5-scale MS-SSIM needs both sides to be at least `MS_SSIM_MIN_SIDE`
    (161) pixels; for smaller images this returns float('nan') rather than a figure from fewer
    scales that would not be comparable with published numbers.

    Args:
        a: (H, W, 3) uint8 reference.
        b: (H, W, 3) uint8 reconstruction, same shape.

    Returns:
        MS-SSIM in [0, 1] (1.0 for identical images), or float('nan') for images too small.
    """
    a, b = _check_pair(a, b)
    if min(a.shape[:2]) < MS_SSIM_MIN_SIDE:
        return float("nan")
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    x = torch.from_numpy(np.array(a, copy=True)).permute(2, 0, 1)[None].double()  # (1, 3, H, W)
    y = torch.from_numpy(np.array(b, copy=True)).permute(2, 0, 1)[None].double()
    with torch.no_grad():
        return float(_ms_ssim(x, y, data_range=255.0, size_average=True))


def bpp(n_bytes: int, height: int, width: int) -> float:
    """Bits per pixel of a whole file: 8 * n_bytes / (height * width).

    Args:
        n_bytes: size of the complete file (headers and all), in bytes.
        height: image height in pixels.
        width: image width in pixels.
    """
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if n_bytes < 0:
        raise ValueError(f"byte count must not be negative, got {n_bytes}")
    return 8.0 * n_bytes / (height * width)
