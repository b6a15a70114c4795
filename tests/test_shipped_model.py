"""The shipped default model: its golden bitstream still decodes exactly, and it still beats JPEG."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from codec.baselines import decode_jpeg, jpeg_at_size
from codec.container import read_container
from codec.io import read_image
from codec.metrics import psnr
from codec.pipeline.image import compress, decompress, load_model
from codec.zoo import STARTS, default_model_id, get_start, list_models, read_manifest

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "golden"


def test_every_shipped_weights_file_matches_its_manifest_hash():
    entries = list_models()
    assert entries, "no shipped model"
    for e in entries:
        assert hashlib.sha256(e.file.read_bytes()).hexdigest() == e.sha256, e.model_id
    for name in read_manifest().get(STARTS, {}):  # the encoders' starting points too
        e = get_start(name)
        assert hashlib.sha256(e.file.read_bytes()).hexdigest() == e.sha256, name


GOLDEN_FILES = sorted(p.name for p in GOLDEN.glob("*golden.json"))


@pytest.mark.parametrize("name", GOLDEN_FILES)
def test_golden_bitstream_decodes_to_the_committed_pixels(name):
    info = json.loads((GOLDEN / name).read_text())
    data = (GOLDEN / info["bitstream"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == info["bitstream_sha256"]
    assert read_container(data).header.model_id == info["model_id"]
    dec = decompress(data)
    assert list(dec.pixels.shape) == info["shape"]
    assert hashlib.sha256(dec.pixels.tobytes()).hexdigest() == info["pixels_sha256"]


@pytest.mark.parametrize("name", GOLDEN_FILES)
def test_golden_source_reencodes_to_the_same_symbols(name):
    """Encoder drift guard: the golden source crop gives the golden symbols again."""
    info = json.loads((GOLDEN / name).read_text())
    if not info.get("reencode", True):
        pytest.skip("a fitted (overfitted) file: only its decoding is golden")
    pixels = read_image(REPO / "assets" / "coffee.png").pixels[150:246, 200:328]
    assert hashlib.sha256(pixels.tobytes()).hexdigest() == info["source_pixels_sha256"]
    model = load_model(info["model_id"])
    golden = decompress((GOLDEN / info["bitstream"]).read_bytes(), model)
    enc = compress(model, pixels)
    np.testing.assert_array_equal(enc.z_sym, golden.z_sym)
    np.testing.assert_array_equal(enc.y_sym, golden.y_sym)


def test_default_model_beats_jpeg_at_equal_size():
    """On a held-out 256x192 crop the default model gives a higher PSNR than the best JPEG
    (4:2:0, Pillow) that fits in the same number of bytes."""
    pixels = read_image(REPO / "assets" / "coffee.png").pixels[100:292, 150:406]
    model = load_model(default_model_id())
    enc = compress(model, pixels)
    ours = psnr(pixels, decompress(enc.data, model).pixels)
    jpeg_bytes, quality = jpeg_at_size(pixels, len(enc.data))
    assert len(jpeg_bytes) <= len(enc.data)
    theirs = psnr(pixels, decode_jpeg(jpeg_bytes))
    assert ours > theirs + 1.0, (ours, theirs, quality, len(enc.data))
