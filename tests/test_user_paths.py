"""What a user's paths may and may not do (issue 16): no run destroys a source, folders and globs
are images, outputs onto FIFOs and devices stream into them, long names and odd standard streams
are handled, and a broken pipe is not a success. One regression test per bug found."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from codec.cli.app import make_app

RUNNER = CliRunner()
APP = make_app()


def cli(*args, input: bytes | None = None):
    return RUNNER.invoke(APP, [str(a) for a in args], input=input)


def code_of(result) -> int:
    assert "Traceback" not in (result.stderr or ""), result.stderr
    return result.exit_code


def picture(path: Path, seed: int = 0, size=(40, 24)) -> Path:
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, size[0] * size[1] * 3).reshape(size[1], size[0], 3)
    Image.fromarray((base + rng.normal(0, 8, base.shape)).clip(0, 255).astype(np.uint8)).save(path)
    return path


def frame_folder(tmp_path: Path) -> Path:
    """Two 32x32 frames in tmp_path/frames."""
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(2):
        picture(frames / f"{i:03d}.png", seed=i, size=(32, 32))
    return frames


def run(*args, cwd=None, **kw):
    """`codec ARGS` as a real process (standard streams as a shell would give them)."""
    return subprocess.run([sys.executable, "-m", "codec", *map(str, args)], cwd=cwd, capture_output=True, timeout=300, **kw)


@pytest.fixture
def photo(tmp_path) -> Path:
    return picture(tmp_path / "photo.png")


@pytest.fixture
def bitstream(tmp_path, photo) -> Path:
    assert cli("encode", photo).exit_code == 0
    return tmp_path / "photo.bin"


# A source is never destroyed ---------------------------------------------------------------------


def test_decode_never_names_its_output_after_the_source_photo_even_with_force(tmp_path, photo, bitstream):
    original = photo.read_bytes()
    assert cli("decode", bitstream, "--force").exit_code == 0
    assert photo.read_bytes() == original
    assert Image.open(tmp_path / "photo.dec.png").size == (40, 24)
    assert cli("decode", bitstream, "-o", f"{tmp_path / 'out'}/", "--force").exit_code == 0
    assert (tmp_path / "out" / "photo.dec.png").is_file()


def test_an_output_that_is_an_input_is_refused_even_with_force(tmp_path, photo):
    original = photo.read_bytes()
    assert code_of(cli("encode", photo, "-o", photo, "--force")) == 2
    alias = tmp_path / "d" / ".." / "photo.png"
    (tmp_path / "d").mkdir()
    assert code_of(cli("encode", photo, "-o", alias, "--force")) == 2
    os.link(photo, tmp_path / "hard.png")  # another name of the same file
    assert code_of(cli("encode", photo, "-o", tmp_path / "hard.png", "--force")) == 2
    assert photo.read_bytes() == original


def test_aliased_batch_inputs_that_would_share_an_output_are_refused(tmp_path, photo):
    (tmp_path / "d").mkdir()
    z = picture(tmp_path / "d" / "z.png")
    result = cli("encode", z, tmp_path / "d" / ".." / "d" / "z.png", "-o", f"{tmp_path / 'o'}/", "--force")
    assert code_of(result) == 2 and "same output" in result.stderr
    assert not (tmp_path / "o" / "z.bin").exists()


def test_empty_output_and_empty_input_are_usage_errors(tmp_path, photo):
    original = photo.read_bytes()
    os.chdir(tmp_path)
    assert code_of(cli("encode", photo, "-o", "", "--force")) == 2
    assert code_of(cli("encode", "")) == 2
    assert code_of(cli("decode", "")) == 2
    assert photo.read_bytes() == original and sorted(p.name for p in tmp_path.iterdir()) == ["photo.png"]


def test_decode_says_an_image_is_not_a_bitstream_before_looking_at_outputs(tmp_path, photo):
    (tmp_path / "photo.dec.png").write_bytes(b"taken")  # would be 'exists' (2) if outputs came first
    result = cli("decode", photo)
    assert code_of(result) == 3 and "looks like a PNG" in result.stderr


# Folders and globs are images ------------------------------------------------------------------


def test_a_folder_and_a_quoted_glob_are_images_not_a_video(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        picture(folder / f"p{i}.png", seed=i)
    assert cli("encode", folder, "-o", f"{tmp_path / 'a'}/").exit_code == 0
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["p0.bin", "p1.bin", "p2.bin"]
    assert cli("info", tmp_path / "a" / "p0.bin", "--json").stdout.count('"kind": "image"') == 1
    assert cli("encode", str(folder / "p[01].png"), "-o", f"{tmp_path / 'b'}/").exit_code == 0
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["p0.bin", "p1.bin"]


def test_an_output_name_is_never_a_literal_glob(tmp_path, photo):
    result = cli("encode", photo, "-o", str(tmp_path / "out" / "*.bin"))
    assert code_of(result) == 2 and "pattern" in result.stderr
    assert not (tmp_path / "out").exists()
    assert cli("encode", photo, "-o", tmp_path / "photo[1].bin").exit_code == 0  # brackets are a name


def test_video_from_a_folder_of_frames_needs_the_video_flag(tmp_path):
    frames = frame_folder(tmp_path)
    assert cli("encode", frames, "--video", "-o", tmp_path / "clip.bin").exit_code == 0
    assert '"kind": "video"' in cli("info", tmp_path / "clip.bin", "--json").stdout
    assert code_of(cli("encode", tmp_path / "frames" / "000.png", tmp_path / "frames" / "001.png", "--video")) == 2


# Outputs that are not plain files --------------------------------------------------------------


def test_output_onto_a_fifo_or_dev_null_streams_into_it_and_leaves_it_in_place(tmp_path, photo, bitstream):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = {}
    reader = threading.Thread(target=lambda: got.setdefault("data", fifo.read_bytes()))
    reader.start()
    assert cli("encode", photo, "-o", fifo, "--force").exit_code == 0
    reader.join(60)
    assert got["data"] == bitstream.read_bytes()
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert cli("decode", bitstream, "-o", os.devnull, "--force").exit_code == 0
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


def test_a_legal_long_output_name_is_written(tmp_path, photo):
    name = "n" * 251 + ".bin"  # 255 bytes: the most a file name may have
    assert cli("encode", photo, "-o", tmp_path / name).exit_code == 0
    assert (tmp_path / name).stat().st_size > 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("where", ["file", "parent_file"])
def test_an_output_folder_that_cannot_be_made_is_a_usage_error(tmp_path, photo, where):
    (tmp_path / "f").write_bytes(b"")
    target = tmp_path / "f" if where == "file" else tmp_path / "f" / "sub"
    result = cli("encode", photo, "-o", f"{target}/")
    assert code_of(result) == 2 and "cannot create directory" in result.stderr


# Inputs that are streams -----------------------------------------------------------------------


def test_decode_and_info_read_a_fifo_once(tmp_path, bitstream):
    for command in (("info",), ("decode", "-o", tmp_path / "x.png")):
        fifo = tmp_path / f"in-{command[0]}"
        os.mkfifo(fifo)
        writer = threading.Thread(target=lambda: fifo.write_bytes(bitstream.read_bytes()))
        writer.start()
        proc = run(*command[:1], fifo, *command[1:])
        writer.join(60)
        assert proc.returncode == 0, proc.stderr
    assert Image.open(tmp_path / "x.png").size == (40, 24)


def test_closed_standard_streams_and_infinite_targets_are_clear_errors(tmp_path, photo):
    closed_in = run("encode", "-", "-o", tmp_path / "x.bin", stdin=None, pass_fds=(), preexec_fn=lambda: os.close(0))
    assert closed_in.returncode == 2 and b"standard input" in closed_in.stderr
    closed_out = subprocess.run([sys.executable, "-m", "codec", "encode", str(photo), "-o", "-"],
                                stderr=subprocess.PIPE, timeout=300, preexec_fn=lambda: os.close(1))
    assert closed_out.returncode == 7 and b"standard output" in closed_out.stderr
    assert code_of(cli("encode", photo, "--target-bpp", "inf")) == 2


def test_a_broken_pipe_is_not_a_success(tmp_path):
    big = picture(tmp_path / "big.png", size=(512, 512))
    assert cli("encode", big).exit_code == 0
    proc = subprocess.Popen([sys.executable, "-m", "codec", "decode", str(tmp_path / "big.bin"), "-o", "-"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.read(10)
    proc.stdout.close()  # the reader goes away, as `| head -c 10` does
    err = proc.stderr.read()
    assert proc.wait(300) == 7 and b"Traceback" not in err and err.count(b"Error:") == 1


def test_a_video_bitstream_decodes_from_standard_input(tmp_path):
    frames = frame_folder(tmp_path)
    assert cli("encode", frames, "--video", "-o", tmp_path / "clip.bin").exit_code == 0
    data = (tmp_path / "clip.bin").read_bytes()
    assert cli("decode", "-", "-o", tmp_path / "clip.y4m", input=data).exit_code == 0
    assert (tmp_path / "clip.y4m").read_bytes().startswith(b"YUV4MPEG2")
    assert code_of(cli("decode", "-", input=data)) == 2  # a video needs a file name


# Batches ---------------------------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path) -> Path:
    d = tmp_path / "photos"
    d.mkdir()
    for i in range(3):
        picture(d / f"p{i}.png", seed=i)
    return d


def test_skip_existing_codes_only_what_is_missing(tmp_path, folder):
    import json

    assert cli("encode", folder, "-o", f"{tmp_path / 'b'}/").exit_code == 0
    (tmp_path / "b" / "p1.bin").unlink()
    before = (tmp_path / "b" / "p0.bin").stat().st_mtime_ns
    result = cli("encode", folder, "-o", f"{tmp_path / 'b'}/", "--skip-existing", "--json")
    report = json.loads(result.stdout)
    assert result.exit_code == 0 and [f["input"] for f in report["files"]] == [str(folder / "p1.png")]
    assert len(report["skipped"]) == 2 and (tmp_path / "b" / "p0.bin").stat().st_mtime_ns == before
    assert code_of(cli("encode", folder, "-o", f"{tmp_path / 'b'}/")) == 2  # without the flag: refused


def test_jobs_give_the_same_files_as_one_process(tmp_path, folder):
    assert cli("encode", folder, "-o", f"{tmp_path / 'one'}/").exit_code == 0
    assert cli("encode", folder, "-o", f"{tmp_path / 'two'}/", "-j", "2").exit_code == 0
    for name in ("p0.bin", "p1.bin", "p2.bin"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    assert cli("decode", *sorted((tmp_path / "two").iterdir()), "-o", f"{tmp_path / 'dec'}/", "-j", "2").exit_code == 0
    assert sorted(p.name for p in (tmp_path / "dec").iterdir()) == ["p0.dec.png", "p1.dec.png", "p2.dec.png"]


def test_json_is_one_versioned_object_on_success_and_on_failure(tmp_path, photo):
    import json

    ok = json.loads(cli("encode", photo, "--json", "-o", tmp_path / "x.bin").stdout)
    assert list(ok)[:2] == ["schema", "ok"] and ok["schema"] == 1 and ok["ok"] is True
    missing = cli("encode", tmp_path / "nothere.png", "--json")
    failure = json.loads(missing.stdout)
    assert missing.exit_code == 2 and failure["ok"] is False and failure["error"]["exit_code"] == 2
    assert "nothere.png" in failure["error"]["message"] and missing.stdout.count("\n") == 1
    (tmp_path / "bad.bin").write_bytes(b"\x89CDC\r\n\x1a\n" + b"\x00" * 40)
    corrupt = cli("decode", tmp_path / "bad.bin", "--json", "-o", tmp_path / "bad.png")
    assert corrupt.exit_code == 3 and json.loads(corrupt.stdout)["error"]["exit_code"] == 3


def test_quiet_says_nothing_and_a_batch_ends_with_a_summary_line(tmp_path, folder):
    quiet = cli("encode", folder, "-o", f"{tmp_path / 'q'}/", "--quiet")
    assert quiet.exit_code == 0 and quiet.stderr == ""
    loud = cli("encode", folder, "-o", f"{tmp_path / 'l'}/", "-v")
    last = loud.stderr.strip().splitlines()[-1]
    assert loud.exit_code == 0 and last.startswith("3 files encoded;") and "mean" in last and "bpp" in last
    assert "loaded in" in loud.stderr
