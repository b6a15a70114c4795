"""Image pipeline with a tiny random model: exact symbols, fresh-process decoding, thread independence."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from codec.container import YSTR, ZSTR, read_container
from codec.errors import FormatError, ModelError
from codec.models.hyperprior import HyperpriorConfig, MeanScaleHyperprior
from codec.pipeline.image import compress, decompress
from codec.train.export import export_module

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("size", [(1, 1), (3, 65), (64, 64), (70, 100)])
def test_decoder_recovers_encoder_symbols_exactly(tiny_hyperprior, smooth_image, size):
    model = tiny_hyperprior()
    pixels = smooth_image(*size)
    enc = compress(model, pixels)
    dec = decompress(enc.data, model)
    np.testing.assert_array_equal(dec.z_sym, enc.z_sym)
    np.testing.assert_array_equal(dec.y_sym, enc.y_sym)
    assert dec.pixels.shape == pixels.shape
    assert enc.header.width == size[1] and enc.header.height == size[0]
    assert (enc.header.width + enc.header.pad_right) % 64 == 0
    assert np.abs(enc.y_sym).max() > 2 and np.count_nonzero(enc.y_sym) > enc.y_sym.size // 4  # more than zeros
    assert np.count_nonzero(enc.z_sym) > 0


def test_out_of_range_latents_are_escaped_and_round_trip(tiny_hyperprior, smooth_image):
    model = tiny_hyperprior()
    with torch.no_grad():  # blow up the analysis so latents land far outside the coder's range
        model.module.g_a[-1].weight.mul_(5000.0)
    enc = compress(model, smooth_image(64, 64))
    assert np.abs(enc.y_sym).max() > 255
    dec = decompress(enc.data, model)
    np.testing.assert_array_equal(dec.y_sym, enc.y_sym)


def test_file_holds_exactly_the_container_and_both_streams(tiny_hyperprior, smooth_image):
    model = tiny_hyperprior()
    enc = compress(model, smooth_image(40, 50))
    c = read_container(enc.data)
    assert c.size == len(enc.data)
    assert c.get(ZSTR) and c.get(YSTR)
    assert c.header.model_id == "test-tiny"
    assert c.header.weights_sha256_prefix == bytes.fromhex(model.sha256[:16])


def test_decoding_with_other_weights_is_refused(tiny_hyperprior, smooth_image):
    enc = compress(tiny_hyperprior(0), smooth_image(32, 32))
    with pytest.raises(ModelError, match="weights"):
        decompress(enc.data, tiny_hyperprior(1))


def test_flipped_stream_byte_is_detected(tiny_hyperprior, smooth_image):
    model = tiny_hyperprior()
    data = bytearray(compress(model, smooth_image(32, 32)).data)
    data[len(data) // 2] ^= 0x10
    with pytest.raises(FormatError):
        decompress(bytes(data), model)


def _run(code: str, env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


DECODE = """
import hashlib, json, sys, torch
torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else {threads})
from codec.pipeline.image import decompress
dec = decompress(open({path!r}, 'rb').read())
print(json.dumps({{'pixels': hashlib.sha256(dec.pixels.tobytes()).hexdigest(),
                   'y': hashlib.sha256(dec.y_sym.tobytes()).hexdigest(),
                   'z': hashlib.sha256(dec.z_sym.tobytes()).hexdigest(),
                   'threads': torch.get_num_threads()}}))
"""

ENCODE = """
import json, sys, torch, numpy as np
torch.set_num_threads({threads})
from codec.io import read_image
from codec.pipeline.image import compress, load_model
enc = compress(load_model({model_id!r}), read_image({src!r}).pixels)
open({dst!r}, 'wb').write(enc.data)
print(json.dumps({{'threads': torch.get_num_threads()}}))
"""


def test_fresh_process_decodes_from_the_bytes_alone(smooth_image, tmp_path):
    torch.manual_seed(3)
    module = MeanScaleHyperprior(HyperpriorConfig.tiny())
    export_module(module, "test-tiny-export", folder=tmp_path / "weights")
    env = {**os.environ, "CODEC_WEIGHTS": str(tmp_path / "weights")}
    src = tmp_path / "in.png"
    from PIL import Image

    Image.fromarray(smooth_image(48, 80)).save(src)
    _run(ENCODE.format(threads=2, model_id="test-tiny-export", src=str(src), dst=str(tmp_path / "a.bin")), env)
    from codec.weights import load_entry
    from codec.zoo import get_entry

    model = load_entry(get_entry("test-tiny-export", tmp_path / "weights"))  # the tables as exported
    data = (tmp_path / "a.bin").read_bytes()
    here = decompress(data, model)
    there = _run(DECODE.format(threads=1, path=str(tmp_path / "a.bin")), env)
    assert there["y"] == hashlib.sha256(here.y_sym.tobytes()).hexdigest()
    assert there["z"] == hashlib.sha256(here.z_sym.tobytes()).hexdigest()


def test_two_thread_encode_and_one_thread_decode_give_identical_pixels(tmp_path):
    """Shipped model, natural image: encode with 2 threads, decode with 1 and with 2 (separate processes)."""
    from PIL import Image

    src = tmp_path / "crop.png"
    with Image.open(REPO / "assets" / "coffee.png") as im:
        im.convert("RGB").crop((100, 50, 100 + 200, 50 + 136)).save(src)
    env = dict(os.environ)
    from codec.zoo import default_model_id

    _run(ENCODE.format(threads=2, model_id=default_model_id(), src=str(src), dst=str(tmp_path / "c.bin")), env)
    one = _run(DECODE.format(threads=1, path=str(tmp_path / "c.bin")), env)
    two = _run(DECODE.format(threads=2, path=str(tmp_path / "c.bin")), env)
    assert (one["threads"], two["threads"]) == (1, 2)
    assert one == {**two, "threads": 1}


def test_larger_quantisation_step_gives_smaller_files_and_is_recorded():
    from codec.io import read_image
    from codec.pipeline.image import load_model
    from codec.pipeline.rate import rate_from_field

    model = load_model(None)  # the shipped default: a random tiny model codes everything as zeros
    pixels = read_image(REPO / "assets" / "coffee.png").pixels[:96, :128]
    fine, coarse = compress(model, pixels, 1.0), compress(model, pixels, 3.0)
    assert coarse.header.quality == 3000 and fine.header.quality == 0
    assert rate_from_field(model, coarse.header.quality).step == 3.0
    assert len(coarse.data) < len(fine.data)
    dec = decompress(coarse.data, model)
    np.testing.assert_array_equal(dec.y_sym, coarse.y_sym)


def test_quantisation_step_outside_the_range_is_refused(tiny_hyperprior, smooth_image):
    with pytest.raises(ValueError):
        compress(tiny_hyperprior(), smooth_image(8, 8), 20.0)
