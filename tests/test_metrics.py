"""Behaviour of the quality metrics and the JPEG baseline at a byte budget."""

from __future__ import annotations

import math

import numpy as np
import pytest

from codec.baselines import decode_jpeg, encode_jpeg, jpeg_at_size
from codec.metrics import bpp, ms_ssim, psnr


def _photo_like(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    """Smooth gradients plus noise: compresses like a photo, so JPEG size varies with quality."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (h + w)], axis=-1)
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def test_psnr_of_one_level_uniform_error_is_48_13_db():
    a = np.full((8, 8, 3), 100, np.uint8)
    assert psnr(a, a + 1) == pytest.approx(48.1308, abs=1e-4)  # 10 log10(255^2)


def test_psnr_of_identical_images_is_infinite():
    a = _photo_like(16, 16)
    assert psnr(a, a.copy()) == math.inf


def test_psnr_refuses_mismatched_shapes():
    with pytest.raises(ValueError):
        psnr(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8))


def test_ms_ssim_of_identical_images_is_one():
    a = _photo_like(168, 170)
    assert ms_ssim(a, a.copy()) == pytest.approx(1.0, abs=1e-9)


def test_ms_ssim_drops_with_distortion():
    a = _photo_like(168, 170)
    b = np.clip(a.astype(int) + np.random.default_rng(1).integers(-30, 31, a.shape), 0, 255).astype(np.uint8)
    assert ms_ssim(a, b) < 0.99


def test_ms_ssim_is_nan_below_161_pixels_a_side():
    a = _photo_like(160, 300)
    assert math.isnan(ms_ssim(a, a.copy()))


def test_bpp_counts_every_byte_of_the_file():
    assert bpp(1000, 100, 80) == pytest.approx(1.0)
    assert bpp(24_576, 512, 768) == pytest.approx(0.5)


@pytest.mark.parametrize("budget", [1500, 3000, 6000])
def test_jpeg_at_size_takes_the_highest_quality_within_budget(budget):
    pixels = _photo_like()
    data, quality = jpeg_at_size(pixels, budget)
    assert len(data) <= budget
    assert data == encode_jpeg(pixels, quality)
    if quality < 95:
        assert len(encode_jpeg(pixels, quality + 1)) > budget
    assert decode_jpeg(data).shape == pixels.shape


def test_jpeg_at_size_returns_quality_1_when_nothing_fits():
    pixels = _photo_like()
    data, quality = jpeg_at_size(pixels, 10)
    assert quality == 1
    assert data == encode_jpeg(pixels, 1)
    assert len(data) > 10


def test_jpeg_at_size_caps_at_quality_95():
    pixels = _photo_like()
    assert jpeg_at_size(pixels, 10**7)[1] == 95
