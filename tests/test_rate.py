"""Rate control: --quality orders size and PSNR, --target-size / --target-bpp land under the budget."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from codec.cli.app import make_app
from codec.io import read_image
from codec.metrics import psnr
from codec.pipeline.image import compress, compress_to_size, decompress, load_model
from codec.pipeline.rate import parse_size, rate_for

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def crop():
    return read_image(REPO / "assets" / "coffee.png").pixels[80:208, 120:312]  # 192x128, held out


def test_higher_quality_gives_more_bytes_and_higher_psnr(crop):
    model = load_model(None)
    sizes, psnrs = [], []
    for q in (10, 35, 60, 85, 100):
        enc = compress(model, crop, quality=q)
        sizes.append(len(enc.data))
        psnrs.append(psnr(crop, decompress(enc.data, model).pixels))
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
    assert psnrs == sorted(psnrs)


def test_quality_60_is_the_trained_rate_of_a_single_rate_model():
    model = load_model(None)
    if model.module.config.variable_rate:
        pytest.skip("default model is variable-rate")
    assert rate_for(model, quality=60).field == 0
    assert rate_for(model, quality=80).step == pytest.approx(0.5)


@pytest.mark.parametrize("budget", [1200, 2000, 2800])
def test_target_size_lands_just_under_the_budget(crop, budget):
    enc, fits = compress_to_size(load_model(None), crop, budget)
    assert fits
    assert budget * 0.95 <= len(enc.data) <= budget


def test_generous_target_gives_the_highest_quality(crop):
    model = load_model(None)
    enc, fits = compress_to_size(model, crop, 10**6)
    best = compress(model, crop, quality=100)
    assert fits and enc.data == best.data


def test_impossible_target_returns_the_smallest_file_and_says_so(crop):
    enc, fits = compress_to_size(load_model(None), crop, 50)
    assert not fits and len(enc.data) > 50


def test_sizes_parse_with_units():
    assert parse_size("40KB") == 40_000 and parse_size("2KiB") == 2048 and parse_size("1.5MB") == 1_500_000
    with pytest.raises(ValueError):
        parse_size("big")


def test_cli_rate_options(tmp_path, crop):
    from PIL import Image

    src = tmp_path / "c.png"
    Image.fromarray(crop).save(src)
    app = make_app()
    r = CliRunner().invoke(app, ["encode", str(src), "-o", str(tmp_path / "a.bin"), "--target-size", "2KB"])
    assert r.exit_code == 0, r.output
    assert 1900 <= (tmp_path / "a.bin").stat().st_size <= 2000
    r = CliRunner().invoke(app, ["encode", str(src), "-o", str(tmp_path / "b.bin"), "--target-bpp", "0.5"])
    assert r.exit_code == 0 and (tmp_path / "b.bin").stat().st_size * 8 / (192 * 128) <= 0.5
    r = CliRunner().invoke(app, ["encode", str(src), "-o", str(tmp_path / "c.bin"), "--quality", "20", "--step", "2"])
    assert r.exit_code == 2 and "choose one of" in r.stderr
    r = CliRunner().invoke(app, ["encode", str(src), "-o", str(tmp_path / "d.bin"), "--target-size", "lots"])
    assert r.exit_code == 2 and "size" in r.stderr
