"""Faults: killed runs, full disks, tampered weights and decompression bombs (docs/ROBUSTNESS.md).

The kill and full-disk tests run `codec` as real processes (`python -m codec` on this checkout, the
shipped models) because what they check, a SIGKILL or a write refused by the kernel, cannot happen
in-process. The long kill test is `python scripts/kill_test.py N`; here each command is killed a
couple of times.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import pickle
import random
import resource
import shutil
import signal
import struct
import subprocess
import tracemalloc
import zlib
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from codec.cli.app import make_app
from codec.container import read_container, write_container
from codec.container.video import INTRA, VideoReader, VideoWriter
from codec.testing.kills import Tally, clean_up, codec_command, codec_env, kill_once, prepare

REPO = Path(__file__).resolve().parent.parent

WEIGHTS = REPO / "weights"
MANIFEST = json.loads((WEIGHTS / "manifest.json").read_text())
RUNNER = CliRunner()
APP = make_app()


@pytest.fixture(scope="module")
def kill_work(tmp_path_factory) -> tuple[Path, list]:
    """A work folder with the kill test's inputs and reference outputs (unkilled, timed runs)."""
    work = tmp_path_factory.mktemp("kill")
    return work, prepare(work)


def one_error_line(stderr: str, *fragments: str) -> str:
    """The CLI's error contract: one `Error: ...` line, no traceback, holding every fragment."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), stderr
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


# ----------------------------------------------------------------------------------------------
# SIGKILL at any moment: the output is absent, the old file, or the complete new one
# ----------------------------------------------------------------------------------------------


def test_sigkill_leaves_no_partial_output_and_the_next_run_removes_its_temporary_file(kill_work):
    work, scenarios = kill_work
    rng, tally = random.Random(1), Tally()
    for scenario in scenarios:  # a random moment of each command: model load, coding or write
        kill_once(scenario, work, rng, at_write=False, tally=tally)
    for scenario in scenarios[1::2]:  # the --force ones, killed as their temporary file appears
        kill_once(scenario, work, rng, at_write=True, tally=tally)
    assert not tally.violations
    assert tally.kills >= 10 and tally.mid_write >= 2, tally
    assert tally.outcomes["old"] >= 1
    assert tally.temps_left >= tally.mid_write  # a killed writer cannot remove its temporary file
    clean_up(scenarios, work, tally)
    assert not tally.violations
    assert tally.temps_after_cleanup == 0


# ----------------------------------------------------------------------------------------------
# Full disk: one line, exit 7, nothing at the output path
# ----------------------------------------------------------------------------------------------


def _file_size_limit(limit: int):
    """preexec_fn: files over `limit` bytes fail with EFBIG (SIGXFSZ ignored, as Python does anyway)."""
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


FULL_DISK_CASES = {
    "encode-image": (("encode", "photo.png"), "out.bin", 4096),
    "decode-image": (("decode", "refs/photo.bin"), "out.png", 65536),
    "encode-video": (("encode", "clip.mp4", "--frames", "0:4"), "out.bin", 2048),
    "decode-video": (("decode", "refs/clip.bin"), "out.mkv", 32768),
}


@pytest.mark.parametrize("case", FULL_DISK_CASES, ids=list(FULL_DISK_CASES))
def test_file_too_large_is_one_line_exit_7_and_leaves_no_file(kill_work, tmp_path, case):
    work, _ = kill_work
    args, output, limit = FULL_DISK_CASES[case]
    proc = subprocess.run(codec_command(*args, "-o", str(tmp_path / output)), cwd=work, env=codec_env(),
                          preexec_fn=_file_size_limit(limit), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 7, proc.stderr
    one_error_line(proc.stderr, output, "file too large")
    assert os.listdir(tmp_path) == []  # neither the output nor a temporary file


def _tmpfs_run(mount: Path, size: str, argv: list[str], cwd: Path) -> tuple[int, str, list[str]]:
    """Runs `argv` with a private tmpfs of `size` at `mount` (a mount namespace of its own, gone when it
    ends); returns the exit code, stderr and what the tmpfs held afterwards."""
    script = 'mount -t tmpfs -o size="$1" tmpfs "$0" || exit 99; shift; "$@" >/dev/null; rc=$?; ls -A "$0"; exit $rc'
    proc = subprocess.run(["unshare", "--mount", "sh", "-c", script, str(mount), size, *argv], cwd=cwd,
                          env=codec_env(), capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stderr, proc.stdout.split()


@pytest.fixture
def tiny_disk(tmp_path) -> Path:
    """A mount point for `_tmpfs_run`; skips where mounting is not permitted (not root, no namespaces)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if shutil.which("unshare") is None or _tmpfs_run(mount, "4k", ["true"], tmp_path)[0] != 0:
        pytest.skip("cannot mount a tmpfs here (needs root or user namespaces)")
    return mount


@pytest.mark.parametrize("args,output,size", [
    (("encode", "clip.mp4", "--frames", "0:4"), "out.bin", "4k"),
    (("decode", "refs/clip.bin"), "f%03d.png", "96k"),  # two frames fit, the third does not: all removed
], ids=["encode-video", "decode-video-frames"])
def test_no_space_left_is_one_line_exit_7_and_leaves_no_file(kill_work, tiny_disk, args, output, size):
    work, _ = kill_work
    code, stderr, left = _tmpfs_run(tiny_disk, size, codec_command(*args, "-o", str(tiny_disk / output)), work)
    assert code == 7, stderr
    one_error_line(stderr, "no space left on device")
    assert left == []


# ----------------------------------------------------------------------------------------------
# Weights: the sha256 is checked against the manifest, and loading never unpickles
# ----------------------------------------------------------------------------------------------


def _weights_with_one_altered(folder: Path, model_id: str) -> tuple[str, str]:
    """`folder` as a weights folder: the manifest, links to the shipped files, and a copy of
    `model_id`'s file with one bit flipped. Returns (expected, actual) sha256."""
    folder.mkdir()
    shutil.copy(WEIGHTS / "manifest.json", folder / "manifest.json")
    for entry in MANIFEST["models"].values():
        os.symlink(WEIGHTS / entry["file"], folder / entry["file"])
    entry = MANIFEST["models"][model_id]
    data = bytearray((WEIGHTS / entry["file"]).read_bytes())
    data[len(data) // 3] ^= 0x10
    (folder / entry["file"]).unlink()
    (folder / entry["file"]).write_bytes(data)
    return entry["sha256"], hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("model_id,args,output", [
    (MANIFEST["default"], ("encode", "photo.png"), "out.bin"),
    (MANIFEST["default_video"], ("encode", "clip.mp4", "--frames", "0:2"), "out.bin"),
    (MANIFEST["models"][MANIFEST["default_video"]]["config"]["ae"], ("decode", "refs/clip.bin"), "out.mkv"),
], ids=["image-model", "video-model", "image-model-under-the-video-model"])
def test_altered_weights_exit_5_naming_file_and_both_hashes(kill_work, tmp_path, model_id, args, output):
    work, _ = kill_work
    expected, actual = _weights_with_one_altered(tmp_path / "weights", model_id)
    out = tmp_path / output
    argv = [args[0], str(work / args[1]), *args[2:], "-o", str(out)]
    result = RUNNER.invoke(APP, argv, env={"CODEC_WEIGHTS": str(tmp_path / "weights"), "CODEC_DEBUG": None})
    assert result.exit_code == 5, result.stderr
    one_error_line(result.stderr, MANIFEST["models"][model_id]["file"], expected, actual)
    assert not out.exists()


def test_every_shipped_model_loads_without_unpickling(monkeypatch):
    import codec.weights

    def refuse(*args, **kwargs):
        raise AssertionError("weights loading must not unpickle")

    class Refused(pickle.Unpickler):
        def __init__(self, *args, **kwargs):
            refuse()

    for module, name in ((pickle, "load"), (pickle, "loads"), (torch, "load")):
        monkeypatch.setattr(module, name, refuse)
    monkeypatch.setattr(pickle, "Unpickler", Refused)
    monkeypatch.setattr(codec.weights, "_CACHE", {})
    for model_id in MANIFEST["models"]:
        assert codec.weights.load_model(model_id).model_id == model_id


# ----------------------------------------------------------------------------------------------
# Decompression bombs: refused from the header, before any large allocation
# ----------------------------------------------------------------------------------------------

SMALL_PEAK = 4 << 20  # bytes; the claimed sizes below would need gigabytes


def traced_cli(*args) -> tuple[object, int]:
    """Runs `codec ARGS` in-process; returns the result and the peak of Python allocations meanwhile
    (numpy arrays included; the model must already be loaded, its weights are not what is measured)."""
    tracemalloc.start()
    try:
        result = RUNNER.invoke(APP, [str(a) for a in args])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return result, peak


def assert_refused(result, peak: int, *fragments: str) -> None:
    assert result.exit_code == 4, (result.exit_code, result.stderr, result.exception)
    one_error_line(result.stderr, *fragments)
    assert peak < SMALL_PEAK, f"peak allocation {peak} bytes"


def test_bitstream_claiming_60000x60000_pixels_is_refused_with_a_small_peak(kill_work, tmp_path):
    work, _ = kill_work
    container = read_container((work / "refs" / "photo.bin").read_bytes())
    huge = dataclasses.replace(container.header, width=60000, height=60000, pad_right=32, pad_bottom=32)
    bomb = tmp_path / "bomb.bin"
    bomb.write_bytes(write_container(huge, container.streams))
    result, peak = traced_cli("decode", bomb, "-o", tmp_path / "bomb.png")
    assert_refused(result, peak, "3600000000", "268435456", "--max-pixels")
    assert not (tmp_path / "bomb.png").exists()


def forged_video(real: Path, frames: int | None = None, size: tuple[int, int] | None = None) -> bytes:
    """The frames of a real video bitstream under a header claiming `size` (width, height) and an index
    claiming `frames` frames."""
    reader = VideoReader(io.BytesIO(real.read_bytes()))
    header = reader.header
    if size is not None:
        header = dataclasses.replace(header, width=size[0], height=size[1], pad_right=-size[0] % 64,
                                     pad_bottom=-size[1] % 64)
    out = io.BytesIO()
    writer = VideoWriter(out, header, reader.video, temporal_side=reader.min_reader_version >= 3)
    for frame in reader.frames():
        writer.add(frame.mode, frame.streams, keyframe=frame.mode == INTRA)
    if frames is not None:
        writer.frames = frames  # what finish() writes into the index
    writer.finish()
    return out.getvalue()


def test_video_claiming_2_to_the_31_frames_is_refused_with_a_small_peak(kill_work, tmp_path):
    from codec.pipeline.video import load_video_model

    work, _ = kill_work
    bomb = tmp_path / "frames.bin"
    bomb.write_bytes(forged_video(work / "refs" / "clip.bin", frames=2**31))
    load_video_model()  # loaded once and cached: the decode below measures the bitstream only
    for args in (("info", bomb), ("decode", bomb, "--frames", "2:3", "-o", tmp_path / "f.mkv")):
        result, peak = traced_cli(*args)
        assert_refused(result, peak, str(2**31), "--max-frames")
    assert os.listdir(tmp_path) == ["frames.bin"]


def test_video_claiming_60000x60000_frames_is_refused_with_a_small_peak(kill_work, tmp_path):
    work, _ = kill_work
    bomb = tmp_path / "big.bin"
    bomb.write_bytes(forged_video(work / "refs" / "clip.bin", size=(60000, 60000)))
    result, peak = traced_cli("decode", bomb, "-o", tmp_path / "big.mkv")
    assert_refused(result, peak, "--max-pixels")
    assert os.listdir(tmp_path) == ["big.bin"]


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height RGB pixels, followed by a few bytes of image data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 1000))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("size", [(60000, 60000), (20000, 20000)], ids=["over-2x-the-limit", "within-2x"])
def test_png_declaring_a_huge_size_is_refused_before_its_pixels_are_decoded(tmp_path, size):
    from codec.pipeline import load_model

    png = tmp_path / "huge.png"
    png.write_bytes(png_declaring(*size))
    load_model()
    result, peak = traced_cli("encode", png, "-o", tmp_path / "huge.bin")
    assert_refused(result, peak, "huge.png", "268435456", "--max-pixels")
    assert not (tmp_path / "huge.bin").exists()


def test_running_out_of_memory_is_one_line_with_exit_4(tmp_path, monkeypatch, capsys):
    """A file may declare a size within the limits that this machine still cannot hold: the CLI says so
    in one line (exit 4), not as an internal error."""
    import codec.pipeline
    from codec.cli.app import main

    def no_memory(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(codec.pipeline, "decompress", no_memory)
    src = Path(__file__).parent / "golden" / "coffee_128x96.bin"
    assert main(["decode", str(src), "-o", str(tmp_path / "out.png")]) == 4
    err = capsys.readouterr().err.strip()
    assert err.startswith("Error: not enough memory") and "--max-pixels" in err and "\n" not in err
    assert not (tmp_path / "out.png").exists()
