"""Behaviour of the `codec` command line (STYLE rule 8).

Most tests drive the Typer app in-process with CliRunner (typer >= 0.29 keeps `result.stdout`
and `result.stderr` apart; `result.output` holds both). A few run real processes: the installed
`codec` executable, the CODEC_DEBUG traceback, and the checks that `--help`, `info` and `models`
never import torch. They use the shipped default model on purpose, on tiny images, so that each
encode or decode takes a fraction of a second.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from codec.cli.app import main, make_app

REPO = Path(__file__).resolve().parent.parent
WEIGHTS = REPO / "weights"
MANIFEST = json.loads((WEIGHTS / "manifest.json").read_text())
DEFAULT_MODEL = MANIFEST["default"]
SHIPPED_MODELS = sorted(MANIFEST["models"])
OTHER_MODEL = next(m for m in SHIPPED_MODELS if m != DEFAULT_MODEL)

RUNNER = CliRunner()
APP = make_app()


# ----------------------------------------------------------------------------------------------
# Helpers and fixtures
# ----------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch):
    """Tests use the shipped weights and no debug mode unless they ask otherwise."""
    monkeypatch.delenv("CODEC_DEBUG", raising=False)
    monkeypatch.delenv("CODEC_WEIGHTS", raising=False)


def gradient(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth (H, W, 3) uint8 test picture with a little noise: cheap to code, easy to check."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    base = np.stack([255 * xx / max(width - 1, 1), 255 * yy / max(height - 1, 1),
                     127.5 + 100 * np.sin((xx + yy) / 9)], axis=-1)
    noise = np.random.default_rng(seed).normal(0, 3, base.shape)
    return np.clip(base + noise, 0, 255).round().astype(np.uint8)


def save_png(path: Path, pixels: np.ndarray, mode: str | None = None) -> Path:
    Image.fromarray(pixels, mode).save(path)
    return path


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def cli(*args, input: bytes | None = None, env: dict | None = None):
    """Runs `codec ARGS` in-process; paths may be Path objects."""
    return RUNNER.invoke(APP, [str(a) for a in args], input=input, env=env)


def assert_ok(result) -> None:
    assert result.exit_code == 0, f"exit {result.exit_code}\nstderr: {result.stderr}\nexception: {result.exception!r}"


def assert_one_line_error(result, code: int, *fragments: str) -> str:
    """The error boundary's contract: exit `code`, one `Error: ...` line on stderr, nothing on
    stdout (under --json: exactly the one failure object, saying the same), no traceback, and the
    exception did not escape the command."""
    assert isinstance(result.exception, SystemExit), f"exception escaped the boundary: {result.exception!r}"
    assert result.exit_code == code, f"exit {result.exit_code}, expected {code}; stderr: {result.stderr}"
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got: {result.stderr!r}"
    assert lines[0].startswith("Error: "), lines[0]
    if result.stdout_bytes:
        failure = json.loads(result.stdout)  # one object, one line
        assert result.stdout.count("\n") == 1 and failure["schema"] == 1 and failure["ok"] is False
        assert failure["error"] == {"message": lines[0].removeprefix("Error: "), "exit_code": code}
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


def single_json(result) -> dict:
    """stdout must be exactly one JSON object, as a whole."""
    obj = json.loads(result.stdout)
    assert isinstance(obj, dict)
    assert result.stdout.count("\n") == 1 and result.stdout.endswith("\n")
    return obj


@pytest.fixture(scope="session")
def sample(tmp_path_factory):
    """A 64x48 picture and its bitstream, encoded once through the CLI; copy before changing."""
    folder = tmp_path_factory.mktemp("sample")
    png = save_png(folder / "photo.png", gradient(64, 48))
    result = cli("encode", png)
    assert_ok(result)
    return {"png": png, "pixels": np.asarray(Image.open(png)), "bin": (folder / "photo.bin").read_bytes()}


@pytest.fixture
def photo_bin(tmp_path, sample) -> Path:
    path = tmp_path / "photo.bin"
    path.write_bytes(sample["bin"])
    return path


def codec_executable() -> Path:
    candidate = Path(sys.executable).parent / "codec"
    if candidate.exists():
        return candidate
    found = shutil.which("codec")
    if not found:
        pytest.skip("the codec executable is not installed")
    return Path(found)


def subprocess_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("CODEC_DEBUG", "CODEC_WEIGHTS")}
    env.update(extra)
    return env


# ----------------------------------------------------------------------------------------------
# Round trip and default names
# ----------------------------------------------------------------------------------------------


def test_encode_info_decode_round_trip_with_default_names(tmp_path):
    pixels = gradient(64, 48, seed=1)
    png = save_png(tmp_path / "photo.png", pixels)
    original_png = png.read_bytes()

    enc = cli("encode", png)
    assert_ok(enc)
    bitstream = tmp_path / "photo.bin"
    assert bitstream.is_file() and bitstream.stat().st_size > 0
    assert enc.stdout == "", "encode to a file must keep stdout free of human lines"
    assert "photo.bin" in enc.stderr

    info = cli("info", bitstream)
    assert_ok(info)
    assert DEFAULT_MODEL in info.output
    assert "CRC" in info.output
    assert "64x48" in info.output

    for force in ((), ("--force",)):  # the default name is photo.dec.png: never the original photo.png
        assert_ok(cli("decode", bitstream, *force))
        assert png.read_bytes() == original_png
    assert Image.open(tmp_path / "photo.dec.png").size == (64, 48)
    refused = cli("decode", bitstream)  # a rerun without --force keeps the decoded file
    line = assert_one_line_error(refused, 2, "--force")
    assert "photo.dec.png" in line

    out = tmp_path / "out.png"
    dec = cli("decode", bitstream, "-o", out)
    assert_ok(dec)
    decoded = np.asarray(Image.open(out))
    assert decoded.shape == pixels.shape
    assert psnr(decoded, pixels) > 24, "the decoded picture should resemble the original"


def test_decode_with_force_overwrites_the_default_output(tmp_path, sample):
    png = tmp_path / "photo.dec.png"
    png.write_bytes(b"placeholder, not an image")
    bitstream = tmp_path / "photo.bin"
    bitstream.write_bytes(sample["bin"])
    assert_ok(cli("decode", bitstream, "--force"))
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size == (64, 48)


def test_decode_into_a_directory_uses_the_input_name(tmp_path, photo_bin):
    assert_ok(cli("decode", photo_bin, "-o", f"{tmp_path / 'out'}/"))
    assert Image.open(tmp_path / "out" / "photo.dec.png").size == (64, 48)


@pytest.mark.parametrize("size", [(1, 1), (65, 3), (1, 700), (700, 1), (33, 17)],
                         ids=["1x1", "65x3", "1x700", "700x1", "33x17"])
def test_odd_sizes_come_back_at_their_own_size(tmp_path, size):
    width, height = size
    png = save_png(tmp_path / "odd.png", gradient(width, height, seed=2))
    assert_ok(cli("encode", png))
    out = tmp_path / "odd_out.png"
    assert_ok(cli("decode", tmp_path / "odd.bin", "-o", out))
    assert Image.open(out).size == (width, height)


# ----------------------------------------------------------------------------------------------
# Inputs of every kind (docs/ROBUSTNESS.md, "Inputs"): coded as 8-bit RGB, or refused in one line
# ----------------------------------------------------------------------------------------------


def palette_image(transparent: int | None) -> Image.Image:
    """A 40x24 palette image of two colours; index `transparent`, if given, is marked transparent."""
    image = Image.fromarray((gradient(40, 24)[:, :, 0] > 127).astype(np.uint8), "P")
    image.putpalette([200, 30, 30, 20, 40, 220] + [0] * 762)
    if transparent is not None:
        image.info["transparency"] = transparent
    return image


def with_alpha(pixels: np.ndarray, alpha: int) -> np.ndarray:
    """`pixels` (H, W) or (H, W, C) with a constant alpha channel appended."""
    return np.dstack([pixels, np.full(pixels.shape[:2], alpha, np.uint8)])


def _exif_rotated_jpeg(path: Path) -> None:
    image = Image.new("RGB", (64, 32), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 32, 32))  # left half red; orientation 6 turns it to the top
    exif = image.getexif()
    exif[0x0112] = 6
    image.save(path, exif=exif.tobytes(), quality=95)


# name -> (file name, writer, (width, height) coded, warning fragment or None)
ACCEPTED_INPUTS = {
    "16-bit-png": ("deep.png", lambda p: save_png(p, gradient(40, 24)[:, :, 1].astype(np.uint16) * 257), (40, 24),
                   "16-bit"),
    "palette": ("pal.png", lambda p: palette_image(None).save(p), (40, 24), None),
    "palette-unused-transparency": ("palt.png", lambda p: palette_image(7).save(p), (40, 24), "alpha"),
    "grayscale-L": ("gray.png", lambda p: save_png(p, gradient(40, 24)[:, :, 0], "L"), (40, 24), None),
    "grayscale-LA-opaque": ("la.png", lambda p: save_png(p, with_alpha(gradient(40, 24)[:, :, 0], 255), "LA"),
                            (40, 24), "alpha"),
    "rgba-opaque": ("rgba.png", lambda p: save_png(p, with_alpha(gradient(40, 24), 255), "RGBA"), (40, 24), "alpha"),
    "cmyk-jpeg": ("cmyk.jpg", lambda p: Image.fromarray(gradient(40, 24)).convert("CMYK").save(p, quality=95),
                  (40, 24), None),
    "exif-rotated-jpeg": ("rotated.jpg", _exif_rotated_jpeg, (32, 64), None),
    "one-frame-gif": ("still.gif", lambda p: Image.fromarray(gradient(40, 24)).save(p), (40, 24), None),
}


@pytest.mark.parametrize("kind", ACCEPTED_INPUTS, ids=list(ACCEPTED_INPUTS))
def test_every_accepted_kind_of_image_round_trips_with_its_warning(tmp_path, kind):
    name, write, (width, height), warning = ACCEPTED_INPUTS[kind]
    source = tmp_path / name
    write(source)
    enc = cli("encode", source, "-o", tmp_path / "x.bin")
    assert_ok(enc)
    if warning is None:
        assert "Warning" not in enc.stderr
    else:
        assert f"Warning: {source}" in enc.stderr and warning in enc.stderr
    assert_ok(cli("decode", tmp_path / "x.bin", "-o", tmp_path / "x.png"))
    decoded = np.asarray(Image.open(tmp_path / "x.png"))
    assert decoded.shape == (height, width, 3)
    from codec.io import read_image

    assert psnr(decoded, read_image(source).pixels) > 22


def test_exif_orientation_is_applied_before_coding(tmp_path):
    _exif_rotated_jpeg(tmp_path / "r.jpg")
    assert_ok(cli("encode", tmp_path / "r.jpg"))
    assert_ok(cli("decode", tmp_path / "r.bin", "-o", tmp_path / "r.png"))
    pixels = np.asarray(Image.open(tmp_path / "r.png")).astype(int)
    assert pixels.shape == (64, 32, 3)
    assert pixels[8, 16, 0] > 180 and pixels[8, 16, 2] < 80  # the red half is on top
    assert pixels[56, 16, 2] > 180 and pixels[56, 16, 0] < 80


def _animated(path: Path, **options) -> None:
    frames = [Image.new("RGB", (16, 8), colour) for colour in ((255, 0, 0), (0, 255, 0))]
    frames[0].save(path, save_all=True, append_images=frames[1:], **options)


def _truncated(path: Path, fmt: str, keep: float) -> None:
    buffer = io.BytesIO()
    Image.fromarray(gradient(64, 48)).save(buffer, fmt)
    data = buffer.getvalue()
    path.write_bytes(data[: int(len(data) * keep)])


# name -> (file name, writer, exit code, fragments of the message)
REFUSED_INPUTS = {
    "rgba-alpha": ("a.png", lambda p: save_png(p, with_alpha(gradient(16, 8), 9), "RGBA"), 4, ("alpha", "flatten")),
    "grayscale-LA-alpha": ("la.png", lambda p: save_png(p, with_alpha(gradient(16, 8)[:, :, 0], 9), "LA"),
                           4, ("alpha",)),
    "palette-used-transparency": ("pt.png", lambda p: palette_image(1).save(p), 4, ("alpha",)),
    "animated-gif": ("anim.gif", _animated, 4, ("animated", "2 frames")),
    "animated-webp": ("anim.webp", lambda p: _animated(p, lossless=True), 4, ("animated", "2 frames")),
    "truncated-png": ("cut.png", lambda p: _truncated(p, "PNG", 0.5), 3, ("truncated",)),
    "truncated-jpeg": ("cut.jpg", lambda p: _truncated(p, "JPEG", 0.5), 3, ("truncated",)),
    "jpeg-cut-in-its-header": ("head.jpg", lambda p: _truncated(p, "JPEG", 0.01), 3, ("truncated", "JPEG")),
    "text": ("notes.txt", lambda p: p.write_text("not an image\n"), 4, ("not an image",)),
    "zero-bytes": ("empty.png", lambda p: p.write_bytes(b""), 4, ("empty",)),
    "directory": ("folder", lambda p: p.mkdir(), 2, ("folder",)),
    "missing": ("missing.png", lambda p: None, 2, ("no such file",)),
}


@pytest.mark.parametrize("kind", REFUSED_INPUTS, ids=list(REFUSED_INPUTS))
def test_every_refused_kind_of_input_is_one_line_with_its_exit_code(tmp_path, kind):
    name, write, code, fragments = REFUSED_INPUTS[kind]
    source = tmp_path / name
    write(source)
    assert_one_line_error(cli("encode", source, "-o", tmp_path / "x.bin"), code, name, *fragments)
    assert not (tmp_path / "x.bin").exists()


def test_version_is_printed():
    result = cli("--version")
    assert_ok(result)
    assert result.stdout.startswith("codec ")


# ----------------------------------------------------------------------------------------------
# --json: exactly one object on stdout, human lines elsewhere
# ----------------------------------------------------------------------------------------------


def test_encode_json_is_one_object_with_sizes_and_model(tmp_path, sample):
    out = tmp_path / "x.bin"
    result = cli("encode", sample["png"], "-o", out, "--json")
    assert_ok(result)
    obj = single_json(result)
    size = out.stat().st_size
    assert obj["command"] == "encode"
    assert obj["model_id"] == DEFAULT_MODEL
    assert obj["bytes"] == size
    assert obj["failed"] == []
    (row,) = obj["files"]
    assert row["bytes"] == size
    assert row["bpp"] == pytest.approx(size * 8 / (64 * 48))
    assert (row["width"], row["height"]) == (64, 48)
    assert "->" not in result.stdout and result.stderr == ""


def test_decode_json_is_one_object_with_sizes_and_model(tmp_path, photo_bin):
    result = cli("decode", photo_bin, "-o", tmp_path / "y.png", "--json")
    assert_ok(result)
    obj = single_json(result)
    assert obj["command"] == "decode"
    assert obj["failed"] == []
    (row,) = obj["files"]
    size = photo_bin.stat().st_size
    assert row["model_id"] == DEFAULT_MODEL
    assert row["bytes"] == size
    assert row["bpp"] == pytest.approx(size * 8 / (64 * 48))
    assert "->" not in result.stdout and result.stderr == ""


def test_info_json_is_one_object_with_header_and_bpp(photo_bin):
    result = cli("info", photo_bin, "--json")
    assert_ok(result)
    obj = single_json(result)
    size = photo_bin.stat().st_size
    assert obj["size"] == size
    assert obj["bpp"] == pytest.approx(size * 8 / (64 * 48))
    assert obj["header"]["model_id"] == DEFAULT_MODEL
    assert (obj["header"]["width"], obj["header"]["height"]) == (64, 48)
    assert obj["crc_ok"] is True
    assert {c["type"].strip() for c in obj["chunks"]} >= {"HEAD", "END"}
    assert result.stderr == ""


def test_json_mode_sends_warnings_to_stderr(tmp_path):
    rgba = np.concatenate([gradient(64, 48), np.full((48, 64, 1), 255, np.uint8)], axis=-1)
    png = save_png(tmp_path / "opaque.png", rgba, "RGBA")
    result = cli("encode", png, "--json")
    assert_ok(result)
    assert single_json(result)["files"][0]["input"] == str(png)
    assert "Warning:" in result.stderr and "alpha" in result.stderr


@pytest.mark.parametrize("command", ["encode", "decode"])
def test_json_refuses_data_on_stdout(tmp_path, sample, photo_bin, command):
    src = sample["png"] if command == "encode" else photo_bin
    assert_one_line_error(cli(command, src, "-o", "-", "--json"), 2, "--json")


# ----------------------------------------------------------------------------------------------
# Several files
# ----------------------------------------------------------------------------------------------


@pytest.fixture
def batch_inputs(tmp_path):
    a = save_png(tmp_path / "a.png", gradient(64, 48, seed=3))
    b = save_png(tmp_path / "b.png", gradient(48, 32, seed=4))
    bad = tmp_path / "notanimage.txt"
    bad.write_text("hello, I am text\n")
    return a, b, bad


def test_batch_encode_writes_the_good_files_and_reports_the_bad_one(tmp_path, batch_inputs):
    outdir = tmp_path / "outdir"
    result = cli("encode", *batch_inputs, "-o", f"{outdir}/")
    assert result.exit_code == 4, result.stderr
    assert isinstance(result.exception, SystemExit)
    assert sorted(p.name for p in outdir.iterdir()) == ["a.bin", "b.bin"]
    for name in ("a.bin", "b.bin"):
        assert_ok(cli("info", outdir / name))
    assert "notanimage.txt" in result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    summary = [line for line in lines if line.startswith("2 files encoded, 1 failed;")]  # the summary line
    assert len(summary) == 1
    assert all(line.startswith(("Error: ", "a.png", "b.png", str(batch_inputs[0]), str(batch_inputs[1])))
               for line in lines if line not in summary)
    assert result.stdout == ""


def test_batch_encode_json_lists_the_failed_file(tmp_path, batch_inputs):
    result = cli("encode", *batch_inputs, "-o", f"{tmp_path / 'outdir'}/", "--json")
    assert result.exit_code == 4, result.stderr
    obj = single_json(result)
    assert [Path(r["input"]).name for r in obj["files"]] == ["a.png", "b.png"]
    (failed,) = obj["failed"]
    assert Path(failed["input"]).name == "notanimage.txt"
    assert failed["exit_code"] == 4
    assert obj["bytes"] == sum(r["bytes"] for r in obj["files"])


def test_several_inputs_need_a_directory_output(tmp_path, batch_inputs):
    a, b, _ = batch_inputs
    assert_one_line_error(cli("encode", a, b, "-o", tmp_path / "single.bin"), 2, "directory")
    assert not (tmp_path / "single.bin").exists()


def test_two_inputs_that_would_write_one_output_are_refused(tmp_path, batch_inputs):
    a, _, _ = batch_inputs
    assert_one_line_error(cli("encode", a, a, "-o", f"{tmp_path / 'o'}/"), 2, "same output")


# ----------------------------------------------------------------------------------------------
# Errors: one line, documented exit code, no traceback
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["encode", "decode", "info"])
def test_missing_input_is_a_usage_error(tmp_path, command):
    missing = tmp_path / "missing.file"
    assert_one_line_error(cli(command, missing), 2, "missing.file")


def test_input_that_is_not_an_image_is_unsupported(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    assert_one_line_error(cli("encode", text), 4, "notes.txt")
    assert not (tmp_path / "notes.bin").exists()


def test_image_with_real_alpha_is_unsupported(tmp_path):
    rgba = np.concatenate([gradient(32, 16), np.full((16, 32, 1), 128, np.uint8)], axis=-1)
    png = save_png(tmp_path / "alpha.png", rgba, "RGBA")
    assert_one_line_error(cli("encode", png), 4, "alpha")


@pytest.mark.parametrize("command", ["decode", "info"])
def test_flipped_byte_in_the_middle_is_reported_as_corrupt(tmp_path, sample, command):
    data = bytearray(sample["bin"])
    data[len(data) // 2] ^= 0xFF
    bad = tmp_path / "corrupt.bin"
    bad.write_bytes(bytes(data))
    assert_one_line_error(cli(command, bad, *(["-o", tmp_path / "c.png"] if command == "decode" else [])), 3)
    assert not (tmp_path / "c.png").exists()


@pytest.mark.parametrize("command", ["decode", "info"])
def test_truncated_bitstream_is_reported_as_corrupt(tmp_path, sample, command):
    bad = tmp_path / "truncated.bin"
    bad.write_bytes(sample["bin"][: len(sample["bin"]) // 2])
    line = assert_one_line_error(cli(command, bad, *(["-o", tmp_path / "t.png"] if command == "decode" else [])), 3)
    assert "truncated" in line
    assert not (tmp_path / "t.png").exists()


def test_every_truncation_and_every_flipped_byte_exits_3(sample):
    """No damage to a bitstream, anywhere, is an internal error or a crash: `info` and `decode` both
    exit 3 with one `Error: ...` line on stderr and nothing on stdout."""
    data = sample["bin"]
    bad = []
    for i in range(len(data)):
        for blob in (data[:i], data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]):
            for args in (("info", "-"), ("decode", "-", "-o", "-")):
                result = cli(*args, input=blob)
                lines = result.stderr.strip().splitlines()
                if (result.exit_code != 3 or len(lines) != 1 or not lines[0].startswith("Error: ")
                        or "Traceback" in result.output or result.stdout_bytes):
                    bad.append((args[0], i, len(blob), result.exit_code, result.stderr[:120]))
    assert not bad, bad[:5]


def test_image_given_to_decode_says_it_looks_like_an_image(tmp_path, sample):
    line = assert_one_line_error(cli("decode", sample["png"], "-o", tmp_path / "x.png"), 3, "looks like a PNG")
    assert "encode" in line


def test_existing_output_is_refused_and_left_unchanged(tmp_path, sample):
    out = tmp_path / "taken.bin"
    out.write_bytes(b"precious")
    assert_one_line_error(cli("encode", sample["png"], "-o", out), 2, "--force", "taken.bin")
    assert out.read_bytes() == b"precious"
    assert_ok(cli("encode", sample["png"], "-o", out, "--force"))
    assert out.read_bytes() == sample["bin"]


def test_batch_existing_outputs_are_refused_per_file(tmp_path, sample):
    a = tmp_path / "a.bin"
    b = tmp_path / "b.bin"
    a.write_bytes(sample["bin"])
    b.write_bytes(sample["bin"])
    (tmp_path / "a.dec.png").write_bytes(b"keep me")
    result = cli("decode", a, b)
    assert result.exit_code == 2
    assert "a.dec.png" in result.stderr and "--force" in result.stderr
    assert (tmp_path / "a.dec.png").read_bytes() == b"keep me"
    assert Image.open(tmp_path / "b.dec.png").size == (64, 48)


def test_unknown_option_is_one_line_usage_error_through_main(sample, capsys):
    code = main(["encode", str(sample["png"]), "--bogus"])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "--bogus" in lines[0]
    assert "Traceback" not in captured.err


def test_unknown_option_exits_2_through_the_runner(sample):
    result = cli("encode", sample["png"], "--bogus")
    assert result.exit_code == 2
    assert "--bogus" in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize("argv", [["nosuchcommand"], ["encode"], ["encode", "x.png", "--threads", "0"]],
                         ids=["unknown-command", "missing-argument", "bad-value"])
def test_usage_errors_through_main_exit_2_in_one_line(argv, capsys):
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")


def test_bare_codec_prints_help_not_an_error(capsys):
    main([])
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "Commands:" in text
    assert not text.lstrip().startswith("Error:")
    assert "(see codec --help)" not in text


def test_unknown_model_exits_5_and_lists_the_shipped_ones(tmp_path, sample):
    line = assert_one_line_error(cli("encode", sample["png"], "-m", "nope", "-o", tmp_path / "n.bin"), 5, "nope")
    for model_id in SHIPPED_MODELS:
        assert model_id in line
    assert not (tmp_path / "n.bin").exists()


@pytest.fixture
def weights_copy(tmp_path, monkeypatch):
    """A private weights folder at $CODEC_WEIGHTS, with the model cache emptied for the test."""
    import codec.weights

    folder = tmp_path / "weights"
    folder.mkdir()
    shutil.copy(WEIGHTS / "manifest.json", folder / "manifest.json")
    monkeypatch.setenv("CODEC_WEIGHTS", str(folder))
    monkeypatch.setattr(codec.weights, "_CACHE", {})
    return folder


def corrupt_default_weights(folder: Path) -> Path:
    name = MANIFEST["models"][DEFAULT_MODEL]["file"]
    data = bytearray((WEIGHTS / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (folder / name).write_bytes(bytes(data))
    return folder / name


def test_weights_that_fail_their_sha256_exit_5_on_encode(tmp_path, sample, weights_copy):
    bad = corrupt_default_weights(weights_copy)
    line = assert_one_line_error(cli("encode", sample["png"], "-o", tmp_path / "w.bin"), 5, bad.name)
    assert "sha256" in line
    assert not (tmp_path / "w.bin").exists()


def test_weights_that_fail_their_sha256_exit_5_on_decode(tmp_path, photo_bin, weights_copy):
    bad = corrupt_default_weights(weights_copy)
    assert_one_line_error(cli("decode", photo_bin, "-o", tmp_path / "w.png"), 5, bad.name, "sha256")
    assert not (tmp_path / "w.png").exists()


def test_bitstream_made_with_other_weights_exits_5(tmp_path, photo_bin, weights_copy):
    """The default id now names another (valid) weights file: the header's hash must catch it."""
    other = MANIFEST["models"][OTHER_MODEL]
    manifest = json.loads((weights_copy / "manifest.json").read_text())
    manifest["models"][DEFAULT_MODEL].update(file=other["file"], sha256=other["sha256"])
    (weights_copy / "manifest.json").write_text(json.dumps(manifest))
    os.symlink(WEIGHTS / other["file"], weights_copy / other["file"])
    assert_one_line_error(cli("decode", photo_bin, "-o", tmp_path / "m.png"), 5, "weights")
    assert not (tmp_path / "m.png").exists()


def test_limits_refuse_a_large_declared_size(tmp_path, photo_bin):
    assert_one_line_error(cli("decode", photo_bin, "--max-dimension", "10", "-o", tmp_path / "l.png"), 4,
                          "--max-dimension")
    assert_one_line_error(cli("info", photo_bin, "--max-pixels", "100"), 4, "--max-pixels")


def test_codec_debug_lets_the_exception_escape(tmp_path, sample):
    result = cli("encode", sample["png"], "-m", "nope", "-o", tmp_path / "d.bin", env={"CODEC_DEBUG": "1"})
    from codec.errors import ModelError

    assert isinstance(result.exception, ModelError)
    assert result.exit_code != 0


def test_internal_errors_are_one_line_exit_1(tmp_path, sample, monkeypatch):
    import codec.pipeline.image

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(codec.pipeline.image, "compress", broken)
    line = assert_one_line_error(cli("encode", sample["png"], "-o", tmp_path / "i.bin"), 1, "internal error", "boom")
    assert "CODEC_DEBUG=1" in line


# ----------------------------------------------------------------------------------------------
# '-' is standard input / output
# ----------------------------------------------------------------------------------------------


def test_encode_from_stdin_writes_the_same_bitstream(tmp_path, sample):
    out = tmp_path / "out.bin"
    result = cli("encode", "-", "-o", out, input=sample["png"].read_bytes())
    assert_ok(result)
    assert out.read_bytes() == sample["bin"]
    assert result.stdout_bytes == b""


def test_encode_to_stdout_writes_only_the_bitstream(sample):
    result = cli("encode", sample["png"], "-o", "-")
    assert_ok(result)
    assert result.stdout_bytes == sample["bin"]


def test_decode_to_stdout_writes_only_png_bytes(tmp_path, photo_bin):
    to_file = tmp_path / "file.png"
    assert_ok(cli("decode", photo_bin, "-o", to_file))
    result = cli("decode", photo_bin, "-o", "-")
    assert_ok(result)
    assert result.stdout_bytes.startswith(b"\x89PNG\r\n\x1a\n")
    piped = np.asarray(Image.open(io.BytesIO(result.stdout_bytes)))
    np.testing.assert_array_equal(piped, np.asarray(Image.open(to_file)))


def test_decode_from_stdin_defaults_to_stdout(sample):
    result = cli("decode", "-", input=sample["bin"])
    assert_ok(result)
    assert Image.open(io.BytesIO(result.stdout_bytes)).size == (64, 48)


def test_empty_stdin_is_not_a_bitstream():
    assert_one_line_error(cli("decode", "-", "-o", "-", input=b""), 3, "empty")


# ----------------------------------------------------------------------------------------------
# codec models
# ----------------------------------------------------------------------------------------------


def test_models_lists_the_shipped_models_and_marks_the_default():
    result = cli("models")
    assert_ok(result)
    lines = result.output.splitlines()
    for model_id in SHIPPED_MODELS:
        assert any(model_id in line for line in lines), model_id
    default_lines = [line for line in lines if "(default)" in line]
    assert len(default_lines) == 1 and DEFAULT_MODEL in default_lines[0]


def test_models_json_lists_ids_hashes_and_one_default():
    result = cli("models", "--json")
    assert_ok(result)
    obj = single_json(result)
    assert obj["default"] == DEFAULT_MODEL
    from codec.registry import BUILTIN

    assert sorted(m["model_id"] for m in obj["models"]) == sorted(SHIPPED_MODELS + list(BUILTIN))
    assert [m["model_id"] for m in obj["models"] if m["default"]] == [DEFAULT_MODEL]
    assert [m["model_id"] for m in obj["models"] if m["default_video"]] == [obj["default_video"]]
    assert all(m["family"] == "vct" for m in obj["models"] if m["default_video"])
    for m in obj["models"]:
        if m["model_id"] in BUILTIN:  # fitted to each image: no weights file
            assert m["config"] == {"built_in": True} and m["bytes"] == 0
            continue
        assert m["sha256"] == MANIFEST["models"][m["model_id"]]["sha256"]
        assert m["bytes"] > 0
    assert result.stderr == ""


# ----------------------------------------------------------------------------------------------
# Real processes: no torch where none is needed; the installed executable; CODEC_DEBUG
# ----------------------------------------------------------------------------------------------

_NO_TORCH = (
    "import json, sys\n"
    "from codec.cli.app import main\n"
    "code = main(json.loads(sys.argv[1]))\n"
    "assert 'torch' not in sys.modules, 'torch was imported'\n"
    "sys.exit(code)\n"
)


@pytest.mark.parametrize("argv", [["--help"], ["models"], ["models", "--json"], ["info", "BIN"], ["info", "--json", "BIN"]],
                         ids=["help", "models", "models-json", "info", "info-json"])
def test_commands_that_need_no_model_do_not_import_torch(tmp_path, photo_bin, argv):
    argv = [str(photo_bin) if a == "BIN" else a for a in argv]
    proc = subprocess.run([sys.executable, "-c", _NO_TORCH, json.dumps(argv)], cwd=tmp_path, env=subprocess_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert (proc.stdout + proc.stderr).strip()


def test_installed_executable_encodes_decodes_and_reports_errors(tmp_path):
    exe = codec_executable()
    save_png(tmp_path / "small.png", gradient(40, 24, seed=5))
    env = subprocess_env()

    def run(*args):
        return subprocess.run([str(exe), *args], cwd=tmp_path, env=env, capture_output=True, timeout=120)

    enc = run("encode", "small.png")
    assert enc.returncode == 0, enc.stderr
    assert (tmp_path / "small.bin").stat().st_size > 0
    assert enc.stdout == b""

    dec = run("decode", "small.bin", "-o", "back.png")
    assert dec.returncode == 0, dec.stderr
    assert Image.open(tmp_path / "back.png").size == (40, 24)

    missing = run("decode", "missing.bin")
    assert missing.returncode == 2
    err = missing.stderr.decode()
    assert err.startswith("Error:") and "missing.bin" in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "CODEC_DEBUG=1"])
def test_tracebacks_only_with_codec_debug(tmp_path, debug):
    exe = codec_executable()
    env = subprocess_env(**({"CODEC_DEBUG": "1"} if debug else {}))
    proc = subprocess.run([str(exe), "info", "missing.bin"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode != 0
    if debug:
        assert "Traceback" in proc.stderr and "InputError" in proc.stderr
    else:
        assert proc.returncode == 2
        assert "Traceback" not in proc.stderr and proc.stderr.startswith("Error:")


# ----------------------------------------------------------------------------------------------
# Inputs and options the encoder must refuse cleanly, and failures mapped to their exit codes
# ----------------------------------------------------------------------------------------------


VIDEO_MODEL = MANIFEST["default_video"]


def tiny_clip(path: Path, frames: int = 2, size: int = 32) -> Path:
    """A lossless .mkv of a few small frames."""
    from fractions import Fraction

    from codec.videoio import open_writer

    with open_writer(path, size, size, Fraction(25)) as writer:
        for t in range(frames):
            writer.write(gradient(size, size, seed=t))
    return path


def test_an_image_with_a_video_model_is_a_usage_error_naming_the_model(tmp_path, sample):
    """Found: `codec encode a.png -m vct-zt-l0067` was exit 1 (AttributeError), later exit 5."""
    import codec
    from codec.errors import UsageError

    for extra in ((), ("--target-size", "1KB")):
        result = cli("encode", sample["png"], "-m", VIDEO_MODEL, "-o", tmp_path / "v.bin", *extra)
        assert_one_line_error(result, 2, f"{VIDEO_MODEL} is a video model")
    with pytest.raises(UsageError, match=f"{VIDEO_MODEL} is a video model"):
        codec.encode_image(sample["pixels"], VIDEO_MODEL)
    assert not (tmp_path / "v.bin").exists()


def test_a_video_with_an_image_model_is_a_usage_error_naming_the_model(tmp_path):
    clip = tiny_clip(tmp_path / "clip.mkv")
    result = cli("encode", clip, "-m", DEFAULT_MODEL, "-o", tmp_path / "clip.bin")
    assert_one_line_error(result, 2, f"{DEFAULT_MODEL} is an image model")
    assert not (tmp_path / "clip.bin").exists()


OOM = "DefaultCPUAllocator: can't allocate memory: you tried to allocate 123 bytes. Error code 12"


def _out_of_memory(*args, **kwargs):
    raise RuntimeError(OOM)


def test_torch_out_of_memory_while_decoding_is_exit_4(tmp_path, photo_bin, monkeypatch, capsys):
    """Found: torch raises RuntimeError, not MemoryError, so running out of memory was exit 1."""
    import codec.pipeline

    monkeypatch.setattr(codec.pipeline, "decompress", _out_of_memory)
    assert_one_line_error(cli("decode", photo_bin, "-o", tmp_path / "a.png"), 4, "not enough memory")
    assert main(["decode", str(photo_bin), "-o", str(tmp_path / "b.png")]) == 4
    err = capsys.readouterr().err
    assert err.startswith("Error: not enough memory") and len(err.strip().splitlines()) == 1


def test_out_of_memory_while_loading_weights_is_not_called_a_weights_mismatch(tmp_path, sample, monkeypatch):
    """Found: load_entry caught torch's allocation failure and said the weights do not fit their config
    (exit 5)."""
    import types

    import codec.weights

    monkeypatch.setattr(codec.weights, "_CACHE", {})
    monkeypatch.setattr(codec.weights, "get_family", lambda name: types.SimpleNamespace(load=_out_of_memory))
    line = assert_one_line_error(cli("encode", sample["png"], "-o", tmp_path / "o.bin"), 4, "not enough memory")
    assert "do not fit" not in line


@pytest.mark.parametrize("fps", ["2147483648/2147483647", "1/2147483648", "2147483648/4294967295"])
def test_fps_terms_of_2_to_the_31_or_more_are_a_usage_error(tmp_path, fps):
    """Found: `--fps 2147483648/2147483647` encoded, and decoding the file to .mkv or .y4m crashed."""
    clip = tiny_clip(tmp_path / "clip.mkv")
    result = cli("encode", clip, "--fps", fps, "-o", tmp_path / "clip.bin")
    assert_one_line_error(result, 2, "--fps", "2^31")
    assert not (tmp_path / "clip.bin").exists()


@pytest.mark.parametrize("threads", ["1025", "100000", str(2**31)])
def test_threads_over_the_maximum_is_a_usage_error(tmp_path, sample, threads, capsys):
    """Found: --threads 100000 was a segmentation fault, 20000 an OpenMP abort, 2^31 exit 1 (encode
    and decode take the bound from cli/options.py)."""
    bitstream = tmp_path / "in.bin"
    bitstream.write_bytes(sample["bin"])
    for command in (["encode", str(sample["png"])], ["decode", str(bitstream)]):
        assert main([*command, "--threads", threads, "-o", str(tmp_path / "out.png")]) == 2
        err = capsys.readouterr().err
        assert "--threads" in err and "1024" in err and len(err.strip().splitlines()) == 1


def test_an_image_the_default_decoder_refuses_is_not_encoded(tmp_path):
    """Found: a 65537x1 image encoded (exit 0) into a file that `codec decode` refused (exit 4)."""
    wide = save_png(tmp_path / "wide.png", gradient(65537, 1))
    result = cli("encode", wide, "-o", tmp_path / "wide.bin")
    assert_one_line_error(result, 4, "65537", "max_dimension")
    assert not (tmp_path / "wide.bin").exists()


def test_check_encodable_names_each_limit():
    from codec.container import Limits
    from codec.container.format import check_encodable
    from codec.errors import LimitError

    check_encodable(1 << 16, 1)
    small = Limits(max_pixels=100, max_dimension=20, max_frames=3)
    check_encodable(10, 10, 3, small)
    for size, name in (((21, 1, 1), "max_dimension"), ((1, 21, 1), "max_dimension"), ((11, 10, 1), "max_pixels"),
                       ((10, 10, 4), "max_frames")):
        with pytest.raises(LimitError, match=name):
            check_encodable(*size, limits=small)


def _video_bitstream(tmp_path: Path) -> Path:
    bitstream = tmp_path / "clip.bin"
    assert_ok(cli("encode", tiny_clip(tmp_path / "clip.mkv"), "-o", bitstream))
    return bitstream


def test_salvage_with_the_first_frame_damaged_is_corrupt_input(tmp_path):
    """Found: with nothing decodable, `decode --salvage` was exit 2 (usage) instead of 3."""
    from codec.container.format import FRAM
    from codec.container.framing import frame_chunk
    from codec.container.video import VideoReader

    bitstream = _video_bitstream(tmp_path)
    data = bytearray(bitstream.read_bytes())
    with open(bitstream, "rb") as fp:
        first = next(VideoReader(fp).frames())
    payload = bytearray(data[first.offset + 8 : first.offset + first.size - 4])
    payload[1] = 7  # frame 0's mode (after its one-byte number), with a valid CRC: read, then refused
    data[first.offset : first.offset + first.size] = frame_chunk(FRAM, bytes(payload))
    bitstream.write_bytes(bytes(data))
    assert_one_line_error(cli("decode", bitstream, "-o", tmp_path / "a.mkv"), 3, "frame 0")
    assert_one_line_error(cli("decode", bitstream, "--salvage", "-o", tmp_path / "b.mkv"), 3, "frame 0")
    assert not (tmp_path / "b.mkv").exists()


def test_a_video_bitstream_without_frames_is_corrupt_input(tmp_path):
    from fractions import Fraction

    from codec.container.video import VideoHeader, VideoWriter
    from codec.pipeline.rate import rate_for
    from codec.pipeline.video import load_video_model, video_header

    model = load_video_model(VIDEO_MODEL)
    bitstream = tmp_path / "empty.bin"
    with open(bitstream, "wb") as fp:
        VideoWriter(fp, video_header(model, rate_for(model, quality=None, step=1.0), 32, 32),
                    VideoHeader(Fraction(25), 8)).finish()
    for salvage in ((), ("--salvage",)):
        assert_one_line_error(cli("decode", bitstream, *salvage, "-o", tmp_path / "e.mkv"), 3, "no frame")


def test_info_and_json_report_the_quality_the_user_gave(tmp_path, sample):
    """Found: `codec info` and --json showed the raw header field (0, 2000, 10001), not the -q given."""
    for model, q in (("hyperprior-mse-l0067", "80"), ("hyperprior-mse-l0067", "33.5"), ("hyperprior-vr", "35")):
        out = tmp_path / f"{model}-{q}.bin"
        enc = json.loads(cli("encode", sample["png"], "-m", model, "-q", q, "-o", out, "--json").stdout)
        assert enc["files"][0]["quality"] == float(q)
        header = json.loads(cli("info", out, "--json").stdout)["header"]
        assert header["quality"] == pytest.approx(float(q), abs=0.01) and header["quality_field"] not in (float(q),)


def test_shell_completion_is_offered():
    # typer finds the shell among the process's ancestors (shellingham) unless told to take the one
    # named: a run started in the background, re-parented to init, has no shell above it
    env = {**os.environ, "SHELL": "/bin/bash", "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    proc = subprocess.run([sys.executable, "-m", "codec", "--show-completion", "bash"], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0 and "_codec_completion" in proc.stdout


def test_quality_spans_the_zoo_and_grows_bytes_and_psnr_over_the_whole_range(tmp_path):
    """Found: -q above about 65 bought bytes without PSNR on the default model (kodim06 -q 100: 1.26 bpp
    at 31.9 dB). With no -m, -q routes to the model best at that rate (manifest 'quality'), and both
    bytes and PSNR grow with q from 0 to 100; info reports the q given."""
    from codec.zoo import quality_table, route_quality

    routes = quality_table().get("routes")
    if not routes:
        pytest.skip("this manifest has no quality routes")
    crop = np.asarray(Image.open(REPO / "assets" / "coffee.png").convert("RGB"))[100:228, 200:392]
    png = save_png(tmp_path / "crop.png", crop)
    points = []
    for q in range(0, 101, 10):
        out = tmp_path / f"q{q}.bin"
        assert_ok(cli("encode", png, "-q", str(q), "-o", out))
        header = json.loads(cli("info", out, "--json").stdout)["header"]
        assert header["model_id"] == route_quality(q) and header["quality"] == pytest.approx(q, abs=0.05)
        assert_ok(cli("decode", out, "-o", tmp_path / f"q{q}.png"))
        points.append((out.stat().st_size, psnr(np.asarray(Image.open(tmp_path / f"q{q}.png")), crop)))
    assert {route_quality(q) for q in (0, 100)} == {r["model"] for r in routes}  # both ends differ
    assert all(b2 > b1 and p2 > p1 for (b1, p1), (b2, p2) in zip(points, points[1:])), points
