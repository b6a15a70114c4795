"""Behaviour of codec.io and codec.atomic: reading any image to RGB, refusing what cannot be coded,
atomic writes, padding."""

from __future__ import annotations

import errno
import os
import struct
import time
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from codec import atomic
from codec import io as cio
from codec.errors import FormatError, InputError, LimitError, OutputError, UnsupportedError, UsageError


def noise(height: int = 5, width: int = 7, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def save(tmp_path: Path, image: Image.Image, name: str, **options) -> Path:
    path = tmp_path / name
    image.save(path, **options)
    return path


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def rgb16_png(samples: np.ndarray) -> bytes:
    """A 16-bit RGB PNG (Pillow cannot write one), from a (H, W, 3) uint16 array."""
    height, width = samples.shape[:2]
    rows = b"".join(b"\x00" + samples[y].astype(">u2").tobytes() for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(rows))
            + png_chunk(b"IEND", b""))


# ---------------------------------------------------------------- formats read


def test_rgb_png_round_trip_is_exact(tmp_path):
    pixels = noise()
    written = cio.write_image(pixels, tmp_path / "a.png")
    result = cio.read_image(tmp_path / "a.png")
    assert written == (tmp_path / "a.png").stat().st_size
    assert result.source_format == "PNG"
    assert result.warnings == ()
    assert result.pixels.dtype == np.uint8 and result.pixels.shape == (5, 7, 3)
    np.testing.assert_array_equal(result.pixels, pixels)


def test_jpeg_is_read_as_rgb(tmp_path):
    path = save(tmp_path, Image.new("RGB", (7, 5), (200, 40, 10)), "a.jpg", quality=95)
    result = cio.read_image(path)
    assert result.source_format == "JPEG"
    assert result.pixels.shape == (5, 7, 3)
    assert np.abs(result.pixels.astype(int) - [200, 40, 10]).max() <= 6


@pytest.mark.parametrize(("suffix", "options"), [(".webp", {"lossless": True}), (".tif", {}), (".bmp", {})])
def test_lossless_formats_are_read_exactly(tmp_path, suffix, options):
    pixels = noise(seed=1)
    path = save(tmp_path, Image.fromarray(pixels), "a" + suffix, **options)
    np.testing.assert_array_equal(cio.read_image(path).pixels, pixels)


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tiff", ".webp"])
def test_write_image_round_trips_each_output_format(tmp_path, suffix):
    pixels = noise(seed=2)
    cio.write_image(pixels, tmp_path / ("out" + suffix))
    np.testing.assert_array_equal(cio.read_image(tmp_path / ("out" + suffix)).pixels, pixels)


def test_bytes_input_is_decoded_like_a_file(tmp_path):
    pixels = noise(seed=3)
    data = cio.encode_image_bytes(pixels, "png")
    result = cio.read_image(data)
    np.testing.assert_array_equal(result.pixels, pixels)
    assert result.source_format == "PNG"


# ---------------------------------------------------------------- conversions


def test_grayscale_is_expanded_to_three_equal_channels(tmp_path):
    gray = noise(seed=4)[:, :, 0]
    pixels = cio.read_image(save(tmp_path, Image.fromarray(gray, mode="L"), "g.png")).pixels
    assert pixels.shape == (5, 7, 3)
    for channel in range(3):
        np.testing.assert_array_equal(pixels[:, :, channel], gray)


def test_palette_image_is_converted_to_its_colours(tmp_path):
    image = Image.new("P", (7, 5), 1)
    image.putpalette([0, 0, 0, 10, 20, 30] + [0] * (3 * 254))
    pixels = cio.read_image(save(tmp_path, image, "p.png")).pixels
    assert (pixels == [10, 20, 30]).all()


def test_cmyk_jpeg_is_converted_to_rgb(tmp_path):
    path = save(tmp_path, Image.new("CMYK", (7, 5), (0, 255, 255, 0)), "c.jpg", quality=95)
    pixels = cio.read_image(path).pixels
    assert np.abs(pixels.astype(int) - [255, 0, 0]).max() <= 8


def test_exif_orientation_6_rotates_the_image_upright(tmp_path):
    image = Image.new("RGB", (16, 8), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 8, 8))  # left half red
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = save(tmp_path, image, "r.jpg", exif=exif.tobytes(), quality=95)
    pixels = cio.read_image(path).pixels.astype(int)
    assert pixels.shape == (16, 8, 3)  # width and height swapped
    assert pixels[2, 4, 0] > 200 and pixels[2, 4, 2] < 60  # the left half is now on top
    assert pixels[13, 4, 2] > 200 and pixels[13, 4, 0] < 60


def test_16_bit_grayscale_is_scaled_to_8_bits_with_a_warning(tmp_path):
    samples = np.array([[65535, 256, 0, 511, 32768]], dtype=np.uint16)
    result = cio.read_image(save(tmp_path, Image.fromarray(samples), "16.png"))
    assert result.pixels[0, :, 0].tolist() == [255, 1, 0, 1, 128]
    assert (result.pixels == result.pixels[:, :, :1]).all()
    assert any("16-bit" in note for note in result.warnings)


def test_16_bit_rgb_png_is_scaled_to_8_bits_with_a_warning(tmp_path):
    samples = np.array([[[0x1234, 0xFFFF, 0x00FF]]], dtype=np.uint16)
    result = cio.read_image(rgb16_png(samples))
    assert result.pixels[0, 0].tolist() == [0x12, 0xFF, 0x00]
    assert any("16-bit" in note for note in result.warnings)


# ---------------------------------------------------------------- refusals


def test_rgba_with_transparency_is_refused_naming_alpha(tmp_path):
    rgba = np.dstack([noise(), np.full((5, 7), 255, np.uint8)])
    rgba[2, 3, 3] = 0
    path = save(tmp_path, Image.fromarray(rgba, mode="RGBA"), "t.png")
    with pytest.raises(UnsupportedError, match="alpha") as info:
        cio.read_image(path)
    assert "t.png" in str(info.value) and "flatten" in str(info.value)
    assert "\n" not in str(info.value)


def test_palette_with_a_used_transparent_index_is_refused(tmp_path):
    image = Image.new("P", (7, 5), 0)
    image.putpalette([0, 0, 0, 10, 20, 30] + [0] * (3 * 254))
    path = save(tmp_path, image, "pt.png", transparency=0)
    with pytest.raises(UnsupportedError, match="alpha"):
        cio.read_image(path)


def test_fully_opaque_rgba_is_accepted_with_a_warning(tmp_path):
    pixels = noise(seed=5)
    rgba = np.dstack([pixels, np.full((5, 7), 255, np.uint8)])
    result = cio.read_image(save(tmp_path, Image.fromarray(rgba, mode="RGBA"), "o.png"))
    np.testing.assert_array_equal(result.pixels, pixels)
    assert any("alpha" in note for note in result.warnings)


def test_animated_gif_is_refused_naming_the_frame_count(tmp_path):
    frames = [Image.new("RGB", (7, 5), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    path = save(tmp_path, frames[0], "a.gif", save_all=True, append_images=frames[1:])
    with pytest.raises(UnsupportedError, match="3 frames"):
        cio.read_image(path)


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no such file") as info:
        cio.read_image(tmp_path / "nope.png")
    assert "nope.png" in str(info.value)


def test_directory_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="directory"):
        cio.read_image(tmp_path)


def test_text_file_is_unsupported_not_an_image(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello, not an image\n")
    with pytest.raises(UnsupportedError, match="not an image") as info:
        cio.read_image(path)
    assert "notes.txt" in str(info.value)


def test_truncated_png_is_a_format_error(tmp_path):
    data = cio.encode_image_bytes(noise(16, 16, seed=6))
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError) as info:
        cio.read_image(path)
    assert "cut.png" in str(info.value) and "\n" not in str(info.value)


def test_truncated_bytes_input_names_standard_input():
    data = cio.encode_image_bytes(noise(16, 16, seed=6))
    with pytest.raises(FormatError, match="standard input"):
        cio.read_image(data[: len(data) // 2])


@pytest.mark.parametrize("max_pixels", [5000, 1000])  # within and beyond Pillow's own 2x error band
def test_decompression_bomb_is_a_limit_error_naming_the_flag(tmp_path, max_pixels):
    path = save(tmp_path, Image.new("RGB", (100, 100)), "big.png")
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(LimitError, match="--max-pixels") as info:
        cio.read_image(path, max_pixels=max_pixels)
    assert str(max_pixels) in str(info.value)
    assert Image.MAX_IMAGE_PIXELS == before


def test_size_limit_is_checked_before_pixel_data_is_decoded(tmp_path):
    data = cio.encode_image_bytes(np.zeros((100, 100, 3), np.uint8))
    with pytest.raises(LimitError):  # a truncated body would be a FormatError if it were decoded
        cio.read_image(data[:60], max_pixels=5000)


def test_limit_above_pillows_default_is_honoured(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow alone would refuse 100x100
    path = save(tmp_path, Image.new("RGB", (100, 100)), "big.png")
    assert cio.read_image(path, max_pixels=10_000).pixels.shape == (100, 100, 3)
    assert Image.MAX_IMAGE_PIXELS == 1000


# ---------------------------------------------------------------- read_bytes


def test_read_bytes_returns_the_file(tmp_path):
    (tmp_path / "b.bin").write_bytes(b"abc")
    assert cio.read_bytes(tmp_path / "b.bin", max_bytes=3) == b"abc"


def test_read_bytes_refuses_a_file_over_the_limit(tmp_path):
    (tmp_path / "b.bin").write_bytes(b"abcd")
    with pytest.raises(LimitError, match="4 bytes"):
        cio.read_bytes(tmp_path / "b.bin", max_bytes=3)


def test_read_bytes_refuses_missing_files_and_directories(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        cio.read_bytes(tmp_path / "none.bin", max_bytes=10)
    with pytest.raises(InputError, match="directory"):
        cio.read_bytes(tmp_path, max_bytes=10)


# ---------------------------------------------------------------- writing


def test_unknown_suffix_is_a_usage_error_listing_choices(tmp_path):
    with pytest.raises(UsageError, match=r"\.png.*\.webp"):
        cio.write_image(noise(), tmp_path / "out.jpg")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_refuses_an_existing_file_and_leaves_it_unchanged(tmp_path):
    dest = tmp_path / "out.bin"
    dest.write_bytes(b"old")
    with pytest.raises(InputError, match="--force"):
        atomic.atomic_write(dest, b"new")
    assert dest.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_atomic_write_with_force_overwrites(tmp_path):
    dest = tmp_path / "out.bin"
    dest.write_bytes(b"old")
    assert atomic.atomic_write(dest, b"newer", force=True) == 5
    assert dest.read_bytes() == b"newer"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_atomic_write_leaves_no_temp_file_and_respects_umask(tmp_path):
    dest = tmp_path / "out.bin"
    assert atomic.atomic_write(dest, b"data") == 4
    assert os.listdir(tmp_path) == ["out.bin"]
    umask = os.umask(0)
    os.umask(umask)
    assert dest.stat().st_mode & 0o777 == 0o666 & ~umask


def test_atomic_write_uses_a_hidden_temp_name_beside_dest(tmp_path, monkeypatch):
    seen = []
    real_link = os.link
    monkeypatch.setattr(os, "link", lambda src, dst: (seen.append(Path(src)), real_link(src, dst)))
    atomic.atomic_write(tmp_path / "out.bin", b"data")
    (tmp, ) = seen
    assert tmp.parent == tmp_path and tmp.name.startswith(".out.bin.") and tmp.name.endswith(".tmp")


@pytest.mark.parametrize("force", [False, True])
def test_failed_write_removes_the_temp_file_and_reports_one_line(tmp_path, monkeypatch, force):
    def fail(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace" if force else "link", fail)
    with pytest.raises(OutputError, match="no space left") as info:
        atomic.atomic_write(tmp_path / "out.bin", b"data", force=force)
    assert "out.bin" in str(info.value)
    assert os.listdir(tmp_path) == []


def test_interrupted_write_removes_the_temp_file_and_reraises(tmp_path, monkeypatch):
    def interrupt(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        atomic.atomic_write(tmp_path / "out.bin", b"data")
    assert os.listdir(tmp_path) == []


def test_file_system_without_hard_links_falls_back_to_replace(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    atomic.atomic_write(tmp_path / "out.bin", b"data")
    assert (tmp_path / "out.bin").read_bytes() == b"data"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_file_appearing_before_the_link_is_not_overwritten(tmp_path, monkeypatch):
    dest = tmp_path / "out.bin"
    real_link = os.link

    def race(src, dst):
        dest.write_bytes(b"theirs")
        return real_link(src, dst)

    monkeypatch.setattr(os, "link", race)
    with pytest.raises(InputError, match="exists"):
        atomic.atomic_write(dest, b"ours")
    assert dest.read_bytes() == b"theirs"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_temp_file_is_locked_while_it_is_written(tmp_path):
    fcntl = pytest.importorskip("fcntl")
    with atomic.atomic_file(tmp_path / "out.bin") as fp:
        fp.write(b"data")
        (tmp,) = tmp_path.iterdir()
        assert tmp.name.startswith(".out.bin.codec-") and tmp.name.endswith(".tmp")
        with open(tmp, "rb") as other, pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert os.listdir(tmp_path) == ["out.bin"]


def test_next_write_removes_stale_temp_files_of_its_output_only(tmp_path):
    """What a SIGKILL leaves (unlocked, old, our name for this output) goes; everything else stays."""
    fcntl = pytest.importorskip("fcntl")
    names = {
        "stale": ".out.bin.codec-0123abcd.tmp",
        "young": ".out.bin.codec-4567cdef.tmp",
        "locked": ".out.bin.codec-89ab0123.tmp",
        "other output": ".other.bin.codec-0123abcd.tmp",
        "not ours": ".out.bin.0123abcd.tmp",
    }
    old = time.time() - 2 * atomic.STALE_TEMP_SECONDS
    for key, name in names.items():
        (tmp_path / name).write_bytes(b"partial")
        if key != "young":
            os.utime(tmp_path / name, (old, old))
    with open(tmp_path / names["locked"], "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        atomic.atomic_write(tmp_path / "out.bin", b"data")
    left = set(os.listdir(tmp_path))
    assert left == {"out.bin"} | set(names.values()) - {names["stale"]}


def test_read_bytes_allocates_the_file_not_the_limit(tmp_path):
    (tmp_path / "small.bin").write_bytes(b"x" * 1000)
    tracemalloc.start()
    try:
        assert cio.read_bytes(tmp_path / "small.bin", max_bytes=1 << 30) == b"x" * 1000
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20  # one 1 MiB read piece at most, not the gigabyte of the limit


def test_missing_output_directory_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        atomic.atomic_write(tmp_path / "no" / "out.bin", b"data")
    with pytest.raises(InputError, match="directory"):
        atomic.atomic_write(tmp_path, b"data", force=True)


# ---------------------------------------------------------------- padding


@pytest.mark.parametrize(("height", "width", "multiple"), [(1, 1, 64), (65, 3, 64), (5, 7, 1), (64, 128, 64)])
def test_pad_gives_multiples_and_crop_restores_the_original(height, width, multiple):
    pixels = noise(height, width, seed=7)
    padded, (pad_bottom, pad_right) = cio.pad_to_multiple(pixels, multiple)
    assert padded.shape == (height + pad_bottom, width + pad_right, 3)
    assert padded.shape[0] % multiple == 0 and padded.shape[1] % multiple == 0
    assert 0 <= pad_bottom < multiple and 0 <= pad_right < multiple
    np.testing.assert_array_equal(cio.crop(padded, height, width), pixels)


def test_padding_replicates_the_last_row_and_column():
    pixels = noise(3, 2, seed=8)
    padded, pads = cio.pad_to_multiple(pixels, 4)
    assert pads == (1, 2)
    np.testing.assert_array_equal(padded[3, :2], pixels[2])
    np.testing.assert_array_equal(padded[:3, 2], pixels[:, 1])
    np.testing.assert_array_equal(padded[:3, 3], pixels[:, 1])
    np.testing.assert_array_equal(padded[3, 3], pixels[2, 1])


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(1, 16))
def test_pad_crop_round_trip_for_any_size(height, width, multiple):
    pixels = np.arange(height * width, dtype=np.int32).reshape(height, width)
    padded, _ = cio.pad_to_multiple(pixels, multiple)
    assert padded.shape[0] % multiple == 0 and padded.shape[1] % multiple == 0
    np.testing.assert_array_equal(cio.crop(padded, height, width), pixels)


def test_io_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, codec.io; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent.parent).returncode == 0
