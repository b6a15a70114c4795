"""Photo metadata (EXIF, ICC, XMP) travels through a bitstream and back (issue 16)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image, ImageCms
from typer.testing import CliRunner

from codec.cli.app import make_app
from codec.container import add_chunks, read_container
from codec.metadata import parse_selection

RUNNER = CliRunner()
APP = make_app()
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/">codec test</x:xmpmeta>'
CAMERA = 0x010F
ORIENTATION = 0x0112


def cli(*args, input=None):
    return RUNNER.invoke(APP, [str(a) for a in args], input=input)


PROFILE = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()  # made once: it holds a time


def rgb_profile() -> bytes:
    return PROFILE


@pytest.fixture
def photo(tmp_path):
    """A 48x32 JPEG whose EXIF says 'rotate 90' (upright: 32x48), with an RGB ICC profile and XMP."""
    pixels = np.random.default_rng(0).integers(0, 255, (32, 48, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[CAMERA] = "TestCam"
    exif[ORIENTATION] = 6
    path = tmp_path / "photo.jpg"
    Image.fromarray(pixels).save(path, exif=exif.tobytes(), icc_profile=rgb_profile(), xmp=XMP)
    return path


def test_exif_icc_and_xmp_survive_encode_and_decode(tmp_path, photo):
    assert cli("encode", photo).exit_code == 0
    chunks = {c.type for c in read_container((tmp_path / "photo.bin").read_bytes()).chunks}
    assert {b"exif", b"iccp", b"xmpd"} <= chunks
    assert cli("decode", tmp_path / "photo.bin").exit_code == 0
    out = Image.open(tmp_path / "photo.dec.png")
    assert out.size == (32, 48)  # coded upright
    assert out.getexif()[CAMERA] == "TestCam" and out.getexif().get(ORIENTATION, 1) == 1  # never rotated twice
    assert out.info["icc_profile"] == rgb_profile()
    assert XMP.decode() in out.info["XML:com.adobe.xmp"]
    png = Image.open(io.BytesIO(cli("decode", tmp_path / "photo.bin", "-o", "-").stdout_bytes))  # stdout too
    assert png.info["icc_profile"] == rgb_profile()


def test_metadata_none_and_a_selection(tmp_path, photo):
    assert cli("encode", photo, "-o", tmp_path / "none.bin", "--metadata", "none").exit_code == 0
    assert cli("encode", photo, "-o", tmp_path / "icc.bin", "--metadata", "icc").exit_code == 0
    kinds = {name: {c.type for c in read_container((tmp_path / name).read_bytes()).chunks} - {b"HEAD", b"ZSTR", b"YSTR", b"END "}
             for name in ("none.bin", "icc.bin")}
    assert kinds == {"none.bin": set(), "icc.bin": {b"iccp"}}
    assert cli("encode", photo, "-o", tmp_path / "x.bin", "--metadata", "gps").exit_code == 2
    assert cli("encode", photo, "-o", tmp_path / "all.bin").exit_code == 0
    assert cli("decode", tmp_path / "all.bin", "-o", tmp_path / "bare.png", "--metadata", "none").exit_code == 0
    assert "icc_profile" not in Image.open(tmp_path / "bare.png").info
    assert parse_selection("exif, XMP") == {"exif", "xmp"} and parse_selection("all") == {"exif", "icc", "xmp"}


def test_a_profile_that_is_not_rgb_is_dropped_with_a_warning(tmp_path):
    cmyk = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()  # any non-RGB colour space
    path = tmp_path / "lab.png"
    Image.new("RGB", (16, 16), (200, 30, 30)).save(path, icc_profile=cmyk)
    result = cli("encode", path)
    assert result.exit_code == 0 and "not RGB" in result.stderr
    assert b"iccp" not in {c.type for c in read_container((tmp_path / "lab.bin").read_bytes()).chunks}


def test_a_format_without_metadata_warns_and_target_size_counts_the_metadata(tmp_path, photo):
    assert cli("encode", photo).exit_code == 0
    result = cli("decode", tmp_path / "photo.bin", "-o", tmp_path / "out.bmp")
    assert result.exit_code == 0 and "BMP cannot hold" in result.stderr
    budget = 1500
    report = json.loads(cli("encode", photo, "-o", tmp_path / "t.bin", "--target-size", str(budget), "--json").stdout)
    assert report["files"][0]["metadata_bytes"] > 0 and (tmp_path / "t.bin").stat().st_size <= budget


def test_add_chunks_refuses_critical_and_repeated_types(tmp_path, photo):
    assert cli("encode", photo, "-o", tmp_path / "p.bin", "--metadata", "none").exit_code == 0
    data = (tmp_path / "p.bin").read_bytes()
    with pytest.raises(ValueError):
        add_chunks(data, [(b"ZSTR", b"x")])
    with pytest.raises(ValueError):
        add_chunks(data, [(b"exif", b"a"), (b"exif", b"b")])
    grown = add_chunks(data, [(b"exif", b"a")])
    assert read_container(grown).find(b"exif") == b"a" and grown.startswith(data[:-12])
