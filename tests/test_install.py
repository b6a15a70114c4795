"""Installing codec as a user does: the wheel carries the default models and the command line
inside the package and works from a fresh virtual environment outside the checkout; other models
install from a folder with `codec models install`, hash-checked."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from codec.errors import InputError, WeightsError
from codec.install import install_models
from codec.zoo import get_entry, list_models, read_manifest

REPO = Path(__file__).resolve().parent.parent
SMALL_MODEL = "vct-l0067"  # 3.4 MB and not shipped in the wheel: the one the install tests copy
SOURCE_IGNORE = shutil.ignore_patterns(".venv", ".git", "build", "dist", "out", "results", "tests", "scripts",
                                       "docs", "assets", "__pycache__", "*.egg-info", ".gpu_data", "logs")


def _folder_with(tmp: Path, *names: str) -> Path:
    folder = tmp / "models"
    folder.mkdir()
    for name in names:
        shutil.copy(REPO / "weights" / f"{name}.safetensors", folder)
    return folder


def test_install_copies_a_hash_checked_model_and_the_zoo_finds_it(tmp_path, monkeypatch):
    primary, user = tmp_path / "primary", tmp_path / "xdg" / "codec" / "weights"
    primary.mkdir()
    manifest = read_manifest(REPO / "weights")
    (primary / "manifest.json").write_text(json.dumps(manifest))  # lists every model, holds none of them
    monkeypatch.setenv("CODEC_WEIGHTS", str(primary))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert not get_entry(SMALL_MODEL).installed
    from codec.weights import read_tensors

    with pytest.raises(WeightsError, match="not installed.*codec models install"):
        read_tensors(get_entry(SMALL_MODEL))
    rows = install_models(_folder_with(tmp_path, SMALL_MODEL))  # into the user's folder of XDG_DATA_HOME
    assert [(r["id"], r["status"]) for r in rows] == [(SMALL_MODEL, "installed")]
    entry = get_entry(SMALL_MODEL)
    assert entry.installed and entry.file.parent == user
    assert read_tensors(entry)[1] == manifest["models"][SMALL_MODEL]["sha256"]
    assert {e.model_id for e in list_models() if e.installed} == {SMALL_MODEL}
    again = install_models(tmp_path / "models")  # a rerun copies nothing
    assert [r["status"] for r in again] == ["present"]


def test_install_refuses_an_altered_file_an_impostor_and_an_empty_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("CODEC_WEIGHTS", str(REPO / "weights"))
    folder = _folder_with(tmp_path, SMALL_MODEL)
    data = bytearray((folder / f"{SMALL_MODEL}.safetensors").read_bytes())
    data[-1] ^= 1
    (folder / f"{SMALL_MODEL}.safetensors").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="does not match"):
        install_models(folder, tmp_path / "user")
    assert not (tmp_path / "user" / f"{SMALL_MODEL}.safetensors").exists()
    # a folder whose own manifest gives a known id another hash: refused, whatever the file holds
    manifest = read_manifest(REPO / "weights")
    entry = dict(manifest["models"][SMALL_MODEL], sha256="0" * 64)
    (folder / "manifest.json").write_text(json.dumps({"format": 1, "models": {SMALL_MODEL: entry}}))
    with pytest.raises(WeightsError, match="not the model of that name"):
        install_models(folder, tmp_path / "user")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no model files"):
        install_models(empty, tmp_path / "user")


def _build_wheel(tmp: Path) -> Path:
    source = tmp / "source"
    shutil.copytree(REPO, source, ignore=SOURCE_IGNORE)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp / "dist"), str(source)], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp / "dist").glob("codec-*.whl")
    return wheel


def _fresh_venv(tmp: Path) -> Path:
    """A new virtual environment whose only link to this one is its third-party packages (torch & co.,
    through a .pth line): neither the checkout nor its editable install is importable there."""
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    site = next((venv / "lib").glob("python3*/site-packages"))
    import torch  # its folder's parent is this environment's site-packages

    (site / "deps.pth").write_text(str(Path(torch.__file__).resolve().parent.parent) + "\n")
    return venv


def test_the_wheel_installs_in_a_fresh_venv_and_codes_outside_the_checkout(tmp_path):
    wheel = _build_wheel(tmp_path)
    assert wheel.stat().st_size < 100e6
    names = zipfile.ZipFile(wheel).namelist()
    assert not any(n.startswith("cli/") for n in names)  # no generic top-level package
    for needed in ("codec/__main__.py", "codec/cli/app.py", "codec/cli/train/__init__.py", "codec/shipped/manifest.json",
                   "codec/shipped/hyperprior-mse-l0067.safetensors", "codec/shipped/vct-zt-l0067.safetensors",
                   "codec/shipped/overfit-start-small.safetensors"):
        assert needed in names, needed
    assert f"codec/shipped/{SMALL_MODEL}.safetensors" not in names
    venv = _fresh_venv(tmp_path)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    work = tmp_path / "work"
    work.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 40, 3), dtype=np.uint8)).save(work / "p.png")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CODEC_WEIGHTS", "CODEC_DATA")}
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")

    def codec(*args, exe=True):
        cmd = [str(venv / "bin" / "codec")] if exe else [str(venv / "bin" / "python"), "-m", "codec"]
        proc = subprocess.run([*cmd, *args], cwd=work, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import codec, importlib.util as u; "
                            "print(codec.__file__); print(u.find_spec('cli'))"], cwd=work, env=env,
                           capture_output=True, text=True, check=True).stdout.split()
    assert where[0].startswith(str(venv)) and where[1] == "None"
    listed = json.loads(codec("models", "--json"))
    state = {m["model_id"]: m["installed"] for m in listed["models"]}
    assert state["hyperprior-mse-l0067"] and state["vct-zt-l0067"] and not state[SMALL_MODEL]
    codec("encode", "p.png", "-o", "p.bin")
    codec("decode", "p.bin", "-o", "back.png", exe=False)  # python -m codec is the same command line
    assert Image.open(work / "back.png").size == (40, 24)
    assert json.loads(codec("info", "p.bin", "--json"))["header"]["model_id"] == "hyperprior-mse-l0067"
    codec("models", "install", str(_folder_with(tmp_path, SMALL_MODEL)))
    state = {m["model_id"]: m["installed"] for m in json.loads(codec("models", "--json"))["models"]}
    assert state[SMALL_MODEL]
