"""Decoding gives the same symbols everywhere and the same pixels for any thread count; the transforms
run in tiles without seams (codec.pipeline.tiles). The long version is scripts/determinism.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from codec.models.hyperprior import HyperpriorConfig, MeanScaleHyperprior
from codec.pipeline import tiles
from codec.testing.determinism import run_probe

REPO = Path(__file__).resolve().parent.parent


def _tiny(seed: int = 0) -> MeanScaleHyperprior:
    torch.manual_seed(seed)
    return MeanScaleHyperprior(HyperpriorConfig(N=8, M=12)).eval()


def test_tiled_synthesis_equals_one_pass_with_no_seams():
    module = _tiny()
    y = torch.randn(1, 12, 40, 70) * 3
    with torch.no_grad():
        whole = module.g_s(y)[0].clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    out = tiles.synthesize(module.g_s, y, 40 * 16 - 5, 70 * 16 - 9)  # a crop, as after padding
    assert out.shape == (635, 1111, 3)
    assert 40 > tiles.SYNTH_TILE and 70 > 2 * tiles.SYNTH_TILE  # several tiles each way
    diff = np.abs(out.astype(int) - whole[:635, :1111].astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-4  # float noise only, nowhere a seam


def test_synthesis_without_context_would_show_seams(monkeypatch):
    """The check above can fail: with no margin, pixels next to tile borders differ."""
    module = _tiny()
    y = torch.randn(1, 12, 40, 70) * 3
    with torch.no_grad():
        whole = module.g_s(y)[0].clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    monkeypatch.setattr(tiles, "SYNTH_MARGIN", 0)
    out = tiles.synthesize(module.g_s, y, 640, 1120)
    assert np.abs(out.astype(int) - whole.astype(int)).max() > 1


@pytest.mark.parametrize("threads", [1, 2, 5])
def test_tiled_synthesis_does_not_depend_on_the_worker_count(threads):
    module = _tiny(1)
    y = torch.randn(1, 12, 36, 50) * 3
    ref = tiles.synthesize(module.g_s, y, 576, 800, threads=1)
    np.testing.assert_array_equal(tiles.synthesize(module.g_s, y, 576, 800, threads=threads), ref)


def test_tiled_analysis_matches_one_pass(monkeypatch):
    module = _tiny(2)
    pixels = np.random.default_rng(0).integers(0, 256, (320, 448, 3), dtype=np.uint8)
    one = tiles.analyse_tiled(module.g_a, pixels)
    monkeypatch.setattr(tiles, "ANALYSIS_MIN_PIXELS", 0)
    monkeypatch.setattr(tiles, "ANALYSIS_TILE", 128)
    tiled = tiles.analyse_tiled(module.g_a, pixels)
    assert tiled.shape == one.shape == (1, 12, 20, 28)
    torch.testing.assert_close(tiled, one, atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def bitstream(tmp_path_factory) -> Path:
    from codec.io import read_image
    from codec.pipeline.image import compress, load_model

    pixels = read_image(REPO / "assets" / "coffee.png").pixels[:, :560]  # 560x400: 2 x 1 synthesis tiles
    path = tmp_path_factory.mktemp("det") / "coffee.bin"
    path.write_bytes(compress(load_model(), pixels).data)
    return path


def test_decoding_in_separate_processes_gives_the_same_symbols_and_pixels_for_any_threads(bitstream, tmp_path):
    rows = [run_probe(bitstream, tmp_path / f"{t}_{cap}.npy", t, cap, "best")
            for t, cap in ((1, "default"), (2, "default"), (2, "avx2"))]
    assert len({r["params"] for r in rows}) == 1  # raw float64 hyperprior output, before snapping
    assert len({r["symbols"] for r in rows}) == 1
    assert rows[0]["pixels"] == rows[1]["pixels"]  # 1 and 2 threads: identical pixels
    kernels = np.abs(np.load(tmp_path / "2_default.npy").astype(int) - np.load(tmp_path / "2_avx2.npy").astype(int))
    assert kernels.max() <= 1


def test_overfitted_file_decodes_identically_under_every_thread_count_and_kernel_set(tmp_path):
    """The overfitted family's decoder is exact integer arithmetic: the golden file gives the same
    symbols and the same pixels (not merely within a level) with 1, 2 or 8 threads and other
    kernels (OMP_NUM_THREADS also sets numpy's BLAS threads)."""
    path = REPO / "tests" / "golden" / "overfit_coffee_128x96.bin"
    settings = ((1, "default"), (2, "default"), (8, "avx2"))
    rows = [run_probe(path, tmp_path / f"{t}_{cap}.npy", t, cap, "best") for t, cap in settings]
    assert len({r["symbols"] for r in rows}) == 1
    assert len({r["pixels"] for r in rows}) == 1
