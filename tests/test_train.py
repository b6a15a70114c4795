"""Training path on a tiny config: a few steps run, resume continues, export loads and codes."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from codec.errors import UsageError
from codec.pipeline.image import compress, decompress
from codec.train.config import HyperpriorTrainConfig as TrainConfig
from codec.train.export import export_module
from codec.train.hyperprior import train_hyperprior as train
from codec.weights import load_entry
from codec.zoo import get_entry, read_manifest


@pytest.fixture()
def photo_dir(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(6):
        img = rng.integers(0, 256, (80, 96, 3), dtype=np.uint8)
        Image.fromarray(img).save(folder / f"img_{i}.png")
    return folder


def test_tiny_training_runs_resumes_and_exports_a_working_model(photo_dir, tmp_path):
    cfg = TrainConfig(data=str(photo_dir), run_dir=str(tmp_path / "run"), config="tiny", batch=2, crop=64,
                      max_steps=4, val_every=2, warmup_steps=2, threads=1)
    ckpt = train(cfg, resume=False, log=lambda s: None)
    state = torch.load(ckpt, weights_only=True)
    assert state["step"] == 4
    cfg.max_steps = 6
    train(cfg, resume=True, log=lambda s: None)
    assert torch.load(ckpt, weights_only=True)["step"] == 6
    rows = list(csv.DictReader(open(tmp_path / "run" / "log.csv")))
    assert rows and all(np.isfinite(float(r["loss"])) for r in rows)

    from codec.models.hyperprior import HyperpriorConfig, MeanScaleHyperprior

    module = MeanScaleHyperprior(HyperpriorConfig.tiny())
    module.load_state_dict(torch.load(ckpt, weights_only=True)["model"])
    wdir = tmp_path / "weights"
    export_module(module, "tiny-trained", training={"steps": 6}, folder=wdir)
    with pytest.raises(FileExistsError):
        export_module(module, "tiny-trained", folder=wdir)
    assert read_manifest(wdir)["default"] == "tiny-trained"
    model = load_entry(get_entry("tiny-trained", wdir))
    pixels = np.asarray(Image.open(photo_dir / "img_0.png"))
    enc = compress(model, pixels)
    np.testing.assert_array_equal(decompress(enc.data, model).y_sym, enc.y_sym)


def test_a_few_steps_on_one_fixed_batch_lower_the_loss():
    from codec.models.hyperprior import HyperpriorConfig, MeanScaleHyperprior
    from codec.train.hyperprior import rd_loss

    torch.manual_seed(0)
    model = MeanScaleHyperprior(HyperpriorConfig.tiny())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(2, 3, 64, 64)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        torch.manual_seed(1)  # same noise each step: the change comes from the weights alone
        loss, _, _ = rd_loss(model, x, 0.01)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert losses[-1] < losses[0]


def test_resume_reproduces_the_next_losses_of_an_uninterrupted_run(photo_dir, tmp_path):
    common = dict(data=str(photo_dir), config="tiny", batch=2, crop=64, warmup_steps=1, decay_fraction=0.0,
                  val_every=1000, threads=1, max_minutes=1e6)
    straight: dict = {}
    train(TrainConfig(run_dir=str(tmp_path / "a"), max_steps=6, **common), resume=False, log=lambda s: None,
          on_step=lambda s, loss: straight.setdefault(s, loss))
    resumed: dict = {}
    cfg = TrainConfig(run_dir=str(tmp_path / "b"), max_steps=4, **common)
    train(cfg, resume=False, log=lambda s: None, on_step=lambda s, loss: resumed.setdefault(s, loss))
    cfg.max_steps = 6
    train(cfg, resume=True, log=lambda s: None, on_step=lambda s, loss: resumed.setdefault(s, loss))
    assert sorted(resumed) == [1, 2, 3, 4, 5, 6]
    assert [resumed[s] for s in (5, 6)] == [straight[s] for s in (5, 6)]


def test_variable_rate_training_runs_and_exports_a_model_whose_quality_orders_the_rate(photo_dir, tmp_path):
    from codec.models.hyperprior import HyperpriorConfig, MeanScaleHyperprior

    cfg = TrainConfig(data=str(photo_dir), run_dir=str(tmp_path / "vr"), config="tiny", batch=2, crop=64,
                      max_steps=2, val_every=2, threads=1, levels="0.002,0.01,0.05")
    ckpt = train(cfg, resume=False, log=lambda s: None)
    rows = list(csv.DictReader(open(tmp_path / "vr" / "log.csv")))
    assert any(";" in r["val_bpp"] for r in rows)  # validation at every level
    module = MeanScaleHyperprior(HyperpriorConfig(N=8, M=12, levels=(0.002, 0.01, 0.05)))
    module.load_state_dict(torch.load(ckpt, weights_only=True)["model"])
    with torch.no_grad():  # make the tiny model's latents big enough to show the gains at work
        module.g_a[-1].weight.mul_(300.0)
    export_module(module, "tiny-vr", folder=tmp_path / "w")
    model = load_entry(get_entry("tiny-vr", tmp_path / "w"))
    assert model.module.config.levels == (0.002, 0.01, 0.05)
    pixels = np.asarray(Image.open(photo_dir / "img_1.png"))
    sizes = [len(compress(model, pixels, quality=q).data) for q in (0, 50, 100)]
    assert sizes[0] < sizes[1] < sizes[2]
    enc = compress(model, pixels, quality=37.5)
    dec = decompress(enc.data, model)
    np.testing.assert_array_equal(dec.y_sym, enc.y_sym)
    assert enc.header.quality == 3751


def test_export_then_load_gives_identical_outputs(tmp_path):
    from codec.models.hyperprior import HyperpriorConfig, MeanScaleHyperprior
    from codec.pipeline.hyperprior import from_module

    torch.manual_seed(5)
    module = MeanScaleHyperprior(HyperpriorConfig.tiny())
    export_module(module, "tiny-x", folder=tmp_path)
    loaded = load_entry(get_entry("tiny-x", tmp_path))
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)
    fresh = from_module(module, "tiny-x")  # the module as trained, tables recomputed
    a, b = compress(loaded, pixels), compress(fresh, pixels)
    np.testing.assert_array_equal(a.z_sym, b.z_sym)
    np.testing.assert_array_equal(a.y_sym, b.y_sym)
    np.testing.assert_array_equal(decompress(a.data, loaded).pixels, decompress(b.data, fresh).pixels)


def test_relu_variant_codes_and_exports_its_nonlinearity(tmp_path):
    from codec.models.hyperprior import HyperpriorConfig, MeanScaleHyperprior

    torch.manual_seed(2)
    module = MeanScaleHyperprior(HyperpriorConfig(N=8, M=12, act="relu"))
    assert not any(type(m).__name__ == "GDN" for m in module.modules())
    entry = export_module(module, "tiny-relu", folder=tmp_path)
    assert entry["config"]["act"] == "relu"
    model = load_entry(get_entry("tiny-relu", tmp_path))
    assert model.module.config.act == "relu"
    pixels = np.random.default_rng(3).integers(0, 256, (40, 72, 3), dtype=np.uint8)
    enc = compress(model, pixels)
    np.testing.assert_array_equal(decompress(enc.data, model).y_sym, enc.y_sym)


def test_codec_train_and_export_commands_replace_a_model_only_when_it_is_better(photo_dir, tmp_path):
    from codec.cli.app import main

    wdir, run = tmp_path / "w", tmp_path / "run"
    common = ["--config", "tiny", "--batch", "2", "--crop", "64", "--threads", "1", "--val-every", "100"]
    assert main(["train", "--data", str(photo_dir), "--run-dir", str(run), "--max-steps", "1", "--lr", "0", *common]) == 0
    trained, untrained = run / "checkpoint.pt", tmp_path / "untrained.pt"
    untrained.write_bytes(trained.read_bytes())
    assert main(["train", "--data", str(photo_dir), "--run-dir", str(run), "--max-steps", "40", "--lr", "3e-3",
                 "--warmup-steps", "1", "--lambda-boost", "1", *common]) == 0
    export = ["train", "export", "--config", "tiny", "--model-id", "t", "--weights-dir", str(wdir), "--data", str(photo_dir),
              "--val-crop", "64"]
    assert main([*export, "--checkpoint", str(trained)]) == 0
    sha_trained = read_manifest(wdir)["models"]["t"]["sha256"]
    # the untrained weights are worse on the held-back crops: refused, the better model stays
    assert main([*export, "--checkpoint", str(untrained)]) == 2
    assert read_manifest(wdir)["models"]["t"]["sha256"] == sha_trained
    assert main([*export, "--checkpoint", str(untrained), "--force"]) == 0
    assert read_manifest(wdir)["models"]["t"]["sha256"] != sha_trained
    # and the trained one replaces the worse one without --force
    assert main([*export, "--checkpoint", str(trained)]) == 0
    assert read_manifest(wdir)["models"]["t"]["sha256"] == sha_trained


def test_codec_train_usage_errors_are_one_line_with_exit_2(capsys):
    from codec.cli.app import main

    assert main(["train", "--bogus"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error:") and "codec train hyperprior --help" in err[0]


def test_random_downscaling_draws_larger_areas_resized_to_the_crop(tmp_path):
    from codec.train.data import CropSampler

    ramp = np.tile((np.arange(128) * 2).astype(np.uint8)[None, :, None], (128, 1, 3))  # 2 levels per pixel
    Image.fromarray(ramp).save(tmp_path / "ramp.png")

    def spans(downscale):
        sampler = CropSampler([tmp_path / "ramp.png"], 32, torch.device("cpu"), downscale=downscale)
        batch = sampler.sample(16, torch.Generator().manual_seed(0)) * 255
        assert batch.shape == (16, 3, 32, 32)
        return (batch.amax((1, 2, 3)) - batch.amin((1, 2, 3))).mean().item()

    plain, scaled = spans(1.0), spans(3.0)
    assert plain == pytest.approx(62, abs=1)  # 31 pixels x 2 levels
    assert scaled > 1.5 * plain


def test_fit_steps_extra_optimizers_passes_progress_and_resumes(tmp_path):
    from codec.train.config import LoopConfig
    from codec.train.loop import Checkpoint, ExtraOptimizer, fit

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    aux = torch.nn.Parameter(torch.ones(1))
    opt, aux_opt = torch.optim.SGD(model.parameters(), lr=0.1), torch.optim.SGD([aux], lr=0.5)
    cfg = LoopConfig(run_dir=str(tmp_path), max_steps=4, val_every=2, warmup_steps=1, max_minutes=1e6)
    progress: list[float] = []

    def loss(p):
        progress.append(p)
        value = model(torch.ones(1, 3)).pow(2).sum()
        return value, {"loss": value}

    ckpt = Checkpoint(tmp_path / "checkpoint.pt", model, opt, torch.Generator(), optimizers={"aux_opt": aux_opt},
                      facts={"config": {"name": "toy"}})
    run = dict(loss=loss, validate=lambda: {"val": 1.5}, columns=["step", "loss", "lr", "val"], log=lambda s: None,
               extra=[ExtraOptimizer("aux", aux_opt, lambda: aux.pow(2).sum())])
    assert fit(cfg, ckpt, resume=False, **run)[0] == 4
    assert progress == pytest.approx([0.0, 0.25, 0.5, 0.75]) and float(aux.detach()) == pytest.approx(0.0)  # 1 * (1 - 2 * 0.5)^4
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["step"] == 4 and state["config"] == {"name": "toy"} and "aux_opt" in state
    cfg.max_steps = 6
    assert fit(cfg, ckpt, **run)[0] == 6 and progress[4:] == pytest.approx([4 / 6, 5 / 6])
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [r["step"] for r in rows] == ["1", "2", "4", "6"]  # step 1, then every val_every
    assert [r["val"] for r in rows] == ["", "1.5", "1.5", "1.5"]


@pytest.mark.parametrize("command", ["hyperprior", "export", "m2t", "m2t-export", "video", "video-export"])
def test_every_train_command_documents_its_options_with_defaults(command, capsys):
    from codec.cli.app import main

    assert main(["train", command, "--help"]) == 0
    out = capsys.readouterr().out
    assert f"Usage: codec train {command}" in out and ("--model-id" in out or "--run-dir" in out)
    assert "[default: " in out


def test_codec_train_without_a_subcommand_lists_them_and_loads_no_torch(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys\nfrom codec.cli.app import main\ncode = main(['train', '--help'])\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\nsys.exit(code)\n")
    repo = Path(__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for command in ("hyperprior", "export", "m2t", "m2t-export", "video", "video-export"):
        assert command in proc.stdout
    same = subprocess.run([sys.executable, "-m", "codec", "train", "--help"], cwd=repo, capture_output=True,
                          text=True, timeout=60)
    assert same.returncode == 0 and same.stdout == proc.stdout  # where the executable is not installed
    old = subprocess.run([sys.executable, "-m", "codec.train", "--data", "D"], cwd=repo, capture_output=True,
                         text=True, timeout=60)
    assert old.returncode == 2 and "codec train --data D" in old.stderr


def test_exports_refuse_bad_facts_missing_checkpoints_and_existing_ids_as_usage_errors(tmp_path, capsys):
    from codec.cli.app import main
    from codec.models.hyperprior import HyperpriorConfig, MeanScaleHyperprior

    assert main(["train", "m2t-export", "--checkpoint", "x.pt", "--model-id", "m", "--training", "[1]"]) == 2
    assert "JSON object" in capsys.readouterr().err
    assert main(["train", "video-export", "--checkpoint", str(tmp_path / "none.pt"), "--model-id", "v"]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    module = MeanScaleHyperprior(HyperpriorConfig.tiny())
    export_module(module, "tiny-a", folder=tmp_path)
    with pytest.raises(UsageError, match="--force"):
        export_module(module, "tiny-a", folder=tmp_path)


@pytest.mark.parametrize("command", ["hyperprior", "m2t", "video", "overfit-start"])
@pytest.mark.parametrize("threads", ["1025", "100000", "-1"])
def test_codec_train_threads_out_of_range_is_a_usage_error(tmp_path, capsys, command, threads):
    """Found: --threads had no upper bound (100000: a segmentation fault, 20000: an OpenMP abort)."""
    from codec.cli.app import main
    from codec.cli.options import MAX_THREADS
    from codec.train.config import MAX_THREADS as MAX_TRAIN_THREADS

    assert MAX_THREADS == MAX_TRAIN_THREADS == 1024
    required = {"hyperprior": ["--data", "none"], "m2t": ["--data", "none", "--ae", "none"]}.get(command, [])
    argv = ["train", command, "--run-dir", str(tmp_path / "run"), *required, "--threads", threads]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--threads" in err[0] and "1024" in err[0]
    assert not (tmp_path / "run").exists()
    assert torch.get_num_threads() <= MAX_THREADS
