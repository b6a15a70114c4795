"""Rate-distortion training of the mean-scale hyperprior, and its export.

    photos ─► CropSampler ─► model (g_a, h_a, ..., g_s) ─► lambda * 255^2 * MSE + bpp ─► fit (codec.train.loop)
                                                            aux loss (quantiles) ─► aux optimiser

Loss = lambda * 255^2 * MSE + bpp, with the lambda boosted x`lambda_boost` over the first
`boost_fraction` of training (as in M2T/VCT: the transforms first learn at a high rate). Variable
rate (`levels`): one gain unit per lambda, a level drawn per image. The factorized density's
quantiles are trained by their own optimiser on the model's aux loss. Checkpoints hold both
optimisers (`opt`, `aux_opt`) and the run's config, which the export reads.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path

import torch

from codec.errors import UsageError
from codec.models.hyperprior import HyperpriorConfig, MeanScaleHyperprior
from codec.train.config import HyperpriorExportConfig, HyperpriorTrainConfig
from codec.train.data import CropSampler, fixed_crops, list_images
from codec.train.export import export_module, read_checkpoint
from codec.train.loop import Checkpoint, ExtraOptimizer, fit, start
from codec.train.shards import load_shards, save_shards

LOG_COLUMNS = ["step", "loss", "bpp", "psnr", "lr", "lambda", "seconds", "val_bpp", "val_psnr"]


def model_config(preset: str, levels: tuple[float, ...], lmbda: float) -> HyperpriorConfig:
    """A preset's transforms with the rate configuration of a run (variable rate: no single lambda)."""
    base = HyperpriorConfig.preset(preset)
    return HyperpriorConfig(N=base.N, M=base.M, levels=levels, act=base.act, lmbda=0.0 if levels else lmbda)


def parse_levels(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split(",")) if text else ()


def rd_loss(model, x, lmbda, level=None):
    """lambda * 255^2 * MSE + bpp, averaged over the batch; lmbda may be a (B,) tensor (variable rate).
    Returns (loss, bpp, mse) with bpp and mse batch means."""
    out = model(x, level)
    pixels = x.shape[2] * x.shape[3]
    bits = -(torch.log2(out.y_likelihoods).sum((1, 2, 3)) + torch.log2(out.z_likelihoods).sum((1, 2, 3)))
    bpp = bits / pixels  # (B,)
    mse = torch.mean((out.x_hat - x) ** 2, dim=(1, 2, 3))  # (B,)
    lmbda = torch.as_tensor(lmbda, dtype=mse.dtype, device=mse.device)
    return torch.mean(lmbda * 255.0**2 * mse + bpp), bpp.mean(), mse.mean()


def warm_start(model, init: str, log) -> None:
    """Copies matching tensors from a shipped model id or a safetensors file (tables skipped)."""
    from safetensors.torch import load_file

    init_lmbda = 0.0
    if Path(init).exists():
        tensors = load_file(init)
    else:
        from codec.zoo import get_entry

        entry = get_entry(init)
        tensors = load_file(str(entry.file))
        init_lmbda = float(entry.config.get("lmbda", 0.0))
    own = model.state_dict()
    take = {k: v for k, v in tensors.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(take, strict=False)
    if model.config.variable_rate and init_lmbda > 0 and "log_gain" not in take:
        # Re-centre the gain units on the lambda the warm-start weights were trained for: level k then
        # starts as that model at quantisation step (init_lmbda / lambda_k)^0.5.
        with torch.no_grad():
            g = torch.tensor([0.5 * math.log(lam / init_lmbda) for lam in model.config.levels]).view(-1, 1)
            model.log_gain.copy_(g.expand_as(model.log_gain))
            model.log_inv_gain.copy_(-g.expand_as(model.log_inv_gain))
    log(f"warm start from {init}: {len(take)} of {len(own)} tensors")


def _psnr(mse: float) -> float:
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def validate(model, val, levels, lmbda) -> dict:
    """Validation bpp and PSNR (likelihood estimate); for variable rate, at every level, ';'-joined."""
    model.eval()
    with torch.no_grad():
        if not levels:
            _, vbpp, vmse = rd_loss(model, val, lmbda)
            return {"val_bpp": float(vbpp), "val_psnr": _psnr(float(vmse))}
        bpps, psnrs = [], []
        for i, lam in enumerate(levels):
            _, vbpp, vmse = rd_loss(model, val, lam, torch.full((val.shape[0],), i))
            bpps.append(f"{float(vbpp):.4f}")
            psnrs.append(f"{_psnr(float(vmse)):.2f}")
        return {"val_bpp": ";".join(bpps), "val_psnr": ";".join(psnrs)}


def validation_cost(model, val, levels=(), lmbda=0.0, seed: int = 0) -> float:
    """Mean RD cost (lambda * 255^2 * MSE + bpp, likelihood estimate) on fixed crops, over every level
    of a variable-rate model; the noise is seeded so two models compare on equal terms."""
    model.eval()
    torch.manual_seed(seed)
    with torch.no_grad():
        if not levels:
            return float(rd_loss(model, val, lmbda)[0])
        costs = [float(rd_loss(model, val, lam, torch.full((val.shape[0],), i))[0]) for i, lam in enumerate(levels)]
    return sum(costs) / len(costs)


def _optimizers(model: MeanScaleHyperprior, cfg: HyperpriorTrainConfig):
    """(main optimiser, aux optimiser of the quantiles, the parameters the main one trains); the gain
    units get their own learning-rate scale with `gain_lr`, `train_only` freezes the rest."""
    if cfg.train_only:
        prefixes = tuple(v.strip() for v in cfg.train_only.split(",") if v.strip())
        for n, p in model.named_parameters():
            p.requires_grad_(n.startswith(prefixes) or n.endswith("quantiles"))
    main_params = [p for n, p in model.named_parameters() if not n.endswith("quantiles") and p.requires_grad]
    aux_params = [p for n, p in model.named_parameters() if n.endswith("quantiles")]
    is_gain = {id(p) for n, p in model.named_parameters() if n in ("log_gain", "log_inv_gain")}
    groups = [{"params": [p for p in main_params if id(p) not in is_gain], "lr_scale": 1.0}]
    if is_gain & {id(p) for p in main_params}:
        groups.append({"params": [p for p in main_params if id(p) in is_gain],
                       "lr_scale": cfg.gain_lr / cfg.lr if cfg.gain_lr and cfg.lr else 1.0})
    opt = torch.optim.Adam([g for g in groups if g["params"]], lr=cfg.lr)
    return opt, torch.optim.Adam(aux_params, lr=1e-3), main_params


def train_hyperprior(cfg: HyperpriorTrainConfig, resume: bool = True, log=print, on_step=None,
                     on_progress=None) -> Path:
    """Runs (or resumes) a training run; returns RUN/checkpoint.pt. `on_step(step, loss)` and
    `on_progress(fraction, text)` after every step (tests, progress bars)."""
    device = torch.device(cfg.device)
    run_dir = start(cfg)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    ckpt_path = run_dir / "checkpoint.pt"
    levels = parse_levels(cfg.levels)
    model = MeanScaleHyperprior(model_config(cfg.config, levels, cfg.lmbda))
    if cfg.init and not (resume and ckpt_path.exists()):
        warm_start(model, cfg.init, log)
    model = model.to(device).to(memory_format=torch.channels_last)
    opt, aux_opt, main_params = _optimizers(model, cfg)
    gen = torch.Generator().manual_seed(cfg.seed)

    train_files, val_files = list_images(Path(cfg.data), "train"), list_images(Path(cfg.data), "val")
    step_model = torch.compile(model) if cfg.compile else model  # shares the parameters of `model`
    sampler = CropSampler(train_files, cfg.crop, device, downscale=cfg.downscale)
    if not val_files:
        log("no held-back validation image in this folder: validating on training crops")
        val_files = train_files
    val = fixed_crops(val_files, cfg.crop).to(device)
    log(f"{len(sampler.images)} training images, {val.shape[0]} validation crops, device {device}")

    def loss(progress: float):
        boost = cfg.lambda_boost if progress < cfg.boost_fraction else 1.0
        x = sampler.sample(cfg.batch, gen).contiguous(memory_format=torch.channels_last)
        if levels:
            level = torch.randint(len(levels), (cfg.batch,), generator=gen)
            lmbda = torch.tensor(levels)[level] * boost
        else:
            level, lmbda = None, cfg.lmbda * boost
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            value, bpp, mse = rd_loss(step_model, x, lmbda, level)
        psnr = 10 * torch.log10(1.0 / mse.detach().float().clamp_min(1e-12))
        return value, {"loss": value, "bpp": bpp, "psnr": psnr, "lambda": torch.as_tensor(lmbda).mean()}

    shards = (lambda: save_shards(model.state_dict(), Path(cfg.shard_dir), f"lambda{cfg.lmbda:g}")) if cfg.shard_dir else None
    ckpt = Checkpoint(ckpt_path, model, opt, gen, optimizers={"aux_opt": aux_opt}, facts={"config": asdict(cfg)},
                      after_save=shards)
    fit(cfg, ckpt, loss=loss, validate=lambda: validate(model, val, levels, cfg.lmbda), columns=LOG_COLUMNS,
        resume=resume, clip_params=main_params, extra=[ExtraOptimizer("aux", aux_opt, model.aux_loss)], log=log,
        on_step=on_step, on_progress=on_progress, log_every=50)
    return ckpt_path


# --- export -----------------------------------------------------------------------------------


def module_of_run(cfg: HyperpriorExportConfig) -> MeanScaleHyperprior:
    """The trained module of a checkpoint (its own preset and rate configuration) or of shards."""
    if bool(cfg.shards) == bool(cfg.checkpoint):
        raise UsageError("give one of --checkpoint, --shards")
    preset, levels, lmbda = cfg.config, (), cfg.lmbda
    if cfg.shards:
        state = load_shards(Path(cfg.shards), cfg.prefix)
    else:
        ckpt = read_checkpoint(cfg.checkpoint)
        state, run = ckpt["model"], ckpt.get("config", {})
        preset, levels = run.get("config", cfg.config), parse_levels(run.get("levels", ""))
        lmbda = run.get("lmbda", lmbda)
    module = MeanScaleHyperprior(model_config(preset, levels, lmbda))
    module.load_state_dict(state, strict=True)
    return module


def compare_with_existing(module: MeanScaleHyperprior, model_id: str, folder: Path, data: Path,
                          crop: int = 256) -> tuple[float, float]:
    """(new cost, existing cost) on the validation crops; UsageError when they cannot be compared."""
    from safetensors.torch import load_file

    from codec.zoo import get_entry

    entry = get_entry(model_id, folder)
    cfg = module.config
    old_levels = tuple(float(v) for v in entry.config.get("levels", ()))
    if old_levels != tuple(cfg.levels) or (not cfg.levels and float(entry.config.get("lmbda", 0)) != cfg.lmbda):
        raise UsageError(f"model {model_id!r} exists with another rate configuration; pass --force to replace it")
    old = MeanScaleHyperprior(HyperpriorConfig(**entry.config))
    own = old.state_dict()
    old.load_state_dict({k: v for k, v in load_file(str(entry.file)).items() if k in own and own[k].shape == v.shape})
    val = fixed_crops(list_images(data, "val") or list_images(data, "train"), crop)
    return (validation_cost(module, val, cfg.levels, cfg.lmbda), validation_cost(old, val, old_levels, cfg.lmbda))


def export_hyperprior(cfg: HyperpriorExportConfig, log=print) -> dict:
    """Exports a run to weights/. An id that exists is replaced only when the new model has a lower
    validation RD cost on the held-back crops (same rate configuration), or with `force`."""
    from codec.settings import data_dir
    from codec.zoo import read_manifest

    training = cfg.facts()
    module = module_of_run(cfg)
    folder, replace = cfg.folder(), cfg.force
    if cfg.model_id in read_manifest(folder)["models"] and not cfg.force:
        new, old = compare_with_existing(module, cfg.model_id, folder, Path(cfg.data) if cfg.data else data_dir() / "train",
                                         cfg.val_crop)
        if new >= old:
            raise UsageError(f"model {cfg.model_id!r} exists and is not worse (validation RD cost {old:.4f}, "
                             f"this one {new:.4f}); pass --force to replace it")
        log(f"replacing {cfg.model_id}: validation RD cost {old:.4f} -> {new:.4f}")
        replace = True
    return export_module(module, cfg.model_id, training=training, folder=folder, make_default=cfg.default, force=replace)
