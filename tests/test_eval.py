"""codec eval: BD-rate arithmetic, a tiny end-to-end sweep of every installed codec, the CI check."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from codec.cli.app import make_app
from codec.eval.bd import clean_curve, delta
from codec.eval.codecs import CLASSICAL, make_codec
from codec.eval.report import check
from codec.errors import UnsupportedError, UsageError

RATES = [0.1, 0.2, 0.4, 0.8, 1.6, 2.0]
PSNRS = [28.0, 30.0, 32.5, 35.0, 38.0, 39.0]


def test_bd_rate_of_a_curve_against_itself_is_zero():
    d = delta(RATES, PSNRS, RATES, PSNRS)
    assert d.bd_rate == pytest.approx(0.0, abs=1e-9)
    assert d.bd_quality == pytest.approx(0.0, abs=1e-9)


def test_bd_rate_of_rates_scaled_by_0_9_is_minus_10_percent():
    d = delta(RATES, PSNRS, [r * 0.9 for r in RATES], PSNRS)
    assert d.bd_rate == pytest.approx(-10.0, abs=0.01)
    assert d.bd_quality > 0


def test_bd_rate_refuses_curves_that_do_not_overlap():
    d = delta(RATES, PSNRS, [0.1, 0.2, 0.3], [40.0, 41.0, 42.0])
    assert d.bd_rate is None and "overlap" in d.warning


def test_short_overlap_is_flagged():
    d = delta(RATES, PSNRS, [1.5, 1.9, 2.5, 3.0], [37.0, 38.5, 40.0, 41.0])
    assert d.warning and "short overlap" in d.warning


def test_non_monotone_points_are_dropped_before_interpolation():
    r, q, dropped = clean_curve([0.3, 0.1, 0.2, 0.4], [31.0, 29.0, 30.0, 30.5])
    assert list(r) == [0.1, 0.2, 0.3] and dropped == 1


def test_unknown_codec_lists_the_valid_ones():
    with pytest.raises(UsageError, match="webp"):
        make_codec("gif")


@pytest.fixture(scope="module")
def two_images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:72, 0:104]
    for i in range(2):
        img = np.stack([120 + 90 * np.sin(xx / (7 + i) + c) * np.cos(yy / 11) for c in range(3)], -1)
        img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"img{i}.png")
    return folder


def installed_classical() -> list[str]:
    names = []
    for name in CLASSICAL:
        try:
            make_codec(name)
            names.append(name)
        except UnsupportedError:
            pass
    return names


@pytest.fixture(scope="module")
def tiny_eval(two_images, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    codecs = installed_classical()
    args = ["eval", str(two_images), "-o", str(out), "--anchor", "webp", "-c", "ours:hyperprior-mse-l0067@2.0,1.4,1.0,0.7"]
    for c in codecs:
        args += ["-c", c]
    result = CliRunner().invoke(make_app(), args)
    assert result.exit_code == 0, result.output
    return out, codecs


def test_tiny_eval_runs_every_installed_codec_and_writes_json_table_and_plot(tiny_eval):
    out, codecs = tiny_eval
    results = json.loads((out / "results.json").read_text())
    assert {"jpeg", "webp"} <= set(codecs)
    assert set(results["codecs"]) == {"ours:hyperprior-mse-l0067", *codecs}
    for c in results["codecs"].values():
        r = c["results"]
        assert len(r["bpp"]) == len(r["psnr-rgb"]) == len(r["ms-ssim-rgb"]) == len(c["settings"] and r["quality"])
        assert all(b > 0 for b in r["bpp"]) and c["version"]
        assert r["bpp"] == sorted(r["bpp"])
    assert len(results["per_image"]) == 2 * sum(len(c["results"]["bpp"]) for c in results["codecs"].values())
    assert "ours:hyperprior-mse-l0067" in results["bd"]["webp"]["psnr-rgb"]
    table = (out / "table.md").read_text()
    assert "BD-rate vs webp" in table and "codec hyperprior-mse-l0067" in table
    assert (out / "rd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "rd-ms-ssim.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_each_codec_gets_a_compressai_style_json(tiny_eval):
    out, codecs = tiny_eval
    results = json.loads((out / "results.json").read_text())
    files = {json.loads(p.read_text())["name"]: json.loads(p.read_text()) for p in (out / "compressai").glob("*.json")}
    assert len(files) == len(results["codecs"]) + len(results["published"])
    for c in results["codecs"].values():
        mine = files[c["label"]]["results"]
        assert mine["bpp"] == c["results"]["bpp"] and mine["psnr-rgb"] == c["results"]["psnr-rgb"]
        assert mine["ms-ssim"] == c["results"]["ms-ssim-rgb"]


def test_the_plot_axes_hold_every_point_of_every_curve(tmp_path):
    from codec.eval import report

    drawn = {}

    def spy(fig, ax, path, xlabel, ylabel, title):
        drawn["x"], drawn["y"] = ax.get_xlim(), ax.get_ylim()

    results = {"images": ["a"], "codecs": {"ours:x": {"name": "ours:x", "label": "x", "results": {
        "bpp": [0.1, 3.5], "psnr-rgb": [24.0, 44.0]}}}, "published": {"vtm": {"name": "vtm", "label": "VTM", "published": True,
        "results": {"bpp": [0.05, 4.2], "psnr-rgb": [22.0, 47.0]}}}}
    original = report.save_plot
    report.save_plot = spy
    try:
        report.plot(results, tmp_path / "rd.png")
    finally:
        report.save_plot = original
    assert drawn["x"][1] >= 4.2 and drawn["y"][0] <= 22.0 and drawn["y"][1] >= 47.0


def test_ours_bpp_counts_the_whole_file(tiny_eval, two_images, tmp_path):
    """Each of our rows is the size of the file `codec encode` writes at that step, and bpp is 8 times
    that size over the pixels."""
    out, _ = tiny_eval
    rows = [r for r in json.loads((out / "results.json").read_text())["per_image"] if r["codec"].startswith("ours")]
    assert len(rows) == 2 * 4
    for r in rows:
        bitstream = tmp_path / f"{r['image']}-{r['quality']}.bin"
        result = CliRunner().invoke(make_app(), ["encode", str(two_images / r["image"]), "-m", "hyperprior-mse-l0067",
                                                 "--step", str(r["quality"]), "-o", str(bitstream)])
        assert result.exit_code == 0, result.output
        size = bitstream.stat().st_size
        assert r["bytes"] == size
        assert r["bpp"] == pytest.approx(size * 8 / (72 * 104), rel=1e-12)


def test_check_fails_against_a_better_baseline_and_passes_against_itself(tiny_eval):
    out, _ = tiny_eval
    results = json.loads((out / "results.json").read_text())
    assert check(results, results, tolerance=1.0) == []
    better = copy.deepcopy(results)
    ours = better["codecs"]["ours:hyperprior-mse-l0067"]["results"]
    ours["bpp"] = [b * 0.8 for b in ours["bpp"]]  # the baseline needed 20% fewer bits
    failures = check(results, better, tolerance=1.0)
    assert failures and "ours:hyperprior-mse-l0067" in failures[0] and "psnr-rgb" in failures[0]


def test_check_through_the_cli_exits_non_zero_naming_codec_and_metric(tiny_eval, two_images, tmp_path):
    out, _ = tiny_eval
    baseline = json.loads((out / "results.json").read_text())
    ours = baseline["codecs"]["ours:hyperprior-mse-l0067"]["results"]
    ours["bpp"] = [b * 0.8 for b in ours["bpp"]]
    (tmp_path / "baseline.json").write_text(json.dumps(baseline))
    result = CliRunner().invoke(make_app(), [
        "eval", str(two_images), "-o", str(tmp_path / "o"), "-c", "ours:hyperprior-mse-l0067@2.0,1.4,1.0,0.7",
        "-c", "jpeg", "--check", str(tmp_path / "baseline.json"), "--tolerance", "1.0"])
    assert result.exit_code == 6
    assert "ours:hyperprior-mse-l0067 psnr-rgb" in result.stderr


def test_shipped_default_model_has_not_regressed_against_the_committed_baseline(tmp_path):
    """Our own CI guard: the default model's RD curve on two held-out crops must stay within 1%
    BD-rate of tests/golden/eval_baseline.json (scripts/make_eval_baseline.sh regenerates it)."""
    from pathlib import Path

    golden = Path(__file__).resolve().parent / "golden"
    result = CliRunner().invoke(make_app(), [
        "eval", str(golden / "eval_images"), "-o", str(tmp_path), "-c", "ours:hyperprior-mse-l0067@2.0,1.4,1.0,0.7",
        "-c", "jpeg", "--check", str(golden / "eval_baseline.json"), "--tolerance", "1.0"])
    assert result.exit_code == 0, result.output


def test_parallel_jobs_give_the_same_files_as_one_process(two_images):
    from pathlib import Path

    from codec.eval.sweep import run_sweep
    from codec.io import find_images

    images = find_images(str(two_images))
    specs = ["jpeg", "ours:hyperprior-mse-l0067@2,1"]
    one = run_sweep(specs, images, jobs=1)
    two = run_sweep(specs, images, jobs=2)
    def files(rows):
        return {(r["image"], r["codec"], str(r["quality"])): r["bytes"] for r in rows}

    assert len(two) == len(one) and files(two) == files(one)
    assert [r["image"] for r in two] == [r["image"] for r in one]  # rows come back in image order
    assert {Path(p).name for p in images} == {r["image"] for r in two}


def test_published_curves_join_the_bd_table_marked_as_published(two_images, tmp_path):
    from codec.eval.published import available

    if "vtm" not in available():
        pytest.skip("no ../shared/anchors/kodak here")
    result = CliRunner().invoke(make_app(), ["eval", str(two_images), "-o", str(tmp_path), "-c", "jpeg", "-c", "webp",
                                             "--published", "vtm"])
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["published"]["published:vtm"]["published"] is True
    assert "published:vtm" in results["bd"]["jpeg"]["psnr-rgb"]
    assert "VTM (published)" in (tmp_path / "table.md").read_text()


def test_bd_psnr_without_shared_rates_is_missing_not_nan():
    from codec.eval.bd import delta

    d = delta([0.1, 0.2, 0.4, 0.8], [30, 32, 34, 36], [0.01, 0.02, 0.04, 0.08], [31, 33, 35, 37])
    assert d.bd_rate is not None and d.bd_rate < 0  # the quality ranges overlap: BD-rate exists
    assert d.bd_quality is None and "no shared rate range" in d.warning


def test_a_cached_sweep_reuses_its_rows_and_a_new_setting_is_measured(tmp_path):
    from codec.eval.sweep import run_sweep

    rng = np.random.default_rng(0)
    image = tmp_path / "a.png"
    Image.fromarray(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)).save(image)
    cache = tmp_path / "cache"
    first = run_sweep(["jpeg"], [image], cache=cache)
    assert not any(r.get("cached") for r in first) and len(list(cache.glob("*.json"))) == len(first)
    again = run_sweep(["jpeg"], [image], cache=cache)
    assert all(r["cached"] for r in again)
    assert [(r["quality"], r["bytes"], r["psnr-rgb"]) for r in again] == [(r["quality"], r["bytes"], r["psnr-rgb"]) for r in first]
    Image.fromarray(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)).save(image)  # other pixels, same name
    assert not any(r.get("cached") for r in run_sweep(["jpeg"], [image], cache=cache))


@pytest.mark.parametrize("tolerance", ["nan", "inf", "-inf", "-1"])
def test_a_tolerance_that_is_not_a_finite_non_negative_percentage_is_a_usage_error(tmp_path, tolerance):
    """Found: `--tolerance nan` made every --check pass. Refused before any image is coded."""
    result = CliRunner().invoke(make_app(), ["eval", str(tmp_path / "none"), "-o", str(tmp_path / "o"), "-c", "jpeg",
                                             "--check", str(tmp_path / "baseline.json"), "--tolerance", tolerance])
    assert result.exit_code == 2, result.output
    assert "--tolerance" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    with pytest.raises(ValueError, match="tolerance"):
        check({"codecs": {}}, {"codecs": {}}, float(tolerance))


def test_eval_takes_a_model_file_outside_the_zoo(two_images, tmp_path):
    """`-c ours:DIR/<id>.safetensors`: an exported model that is not in the zoo, found by the manifest
    beside it; a file no manifest lists is a weights error (exit 5)."""
    import torch

    from codec.models.hyperprior import HyperpriorConfig, MeanScaleHyperprior
    from codec.train.export import export_module

    torch.manual_seed(3)
    export_module(MeanScaleHyperprior(HyperpriorConfig.tiny()), "outside-x", folder=tmp_path / "w")
    path = tmp_path / "w" / "outside-x.safetensors"
    result = CliRunner().invoke(make_app(), ["eval", str(two_images), "-o", str(tmp_path / "out"), "--anchor", "jpeg",
                                             "-c", f"ours:{path}@1.0,2.0", "-c", "jpeg"])
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    curve = results["codecs"][f"ours:{path}"]["results"]
    assert len(curve["bpp"]) == 2 and all(b > 0 for b in curve["bpp"])
    stray = tmp_path / "stray.safetensors"
    stray.write_bytes(path.read_bytes())
    refused = CliRunner().invoke(make_app(), ["eval", str(two_images), "-o", str(tmp_path / "o2"), "-c", f"ours:{stray}"])
    assert refused.exit_code == 5 and "manifest" in refused.stderr
