"""Rate-distortion training of the mean-scale hyperprior.

Loss = lambda * 255^2 * MSE + bpp, with the lambda boosted x`lambda_boost` over the first
`boost_fraction` of training (as in M2T/VCT: the transforms first learn at a high rate).
Learning rate: linear warm-up, constant, then cosine decay over the last `decay_fraction`.
Progress is the larger of steps/max_steps and minutes/max_minutes, so a run can be sized by
wall time (GPU loans) or by steps (reproducible CPU runs). Checkpoints hold model, optimisers,
step, elapsed seconds and RNG states; `resume` continues where a run stopped.
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from codec.models.hyperprior import HyperpriorConfig, MeanScaleHyperprior
from codec.train.data import CropSampler, fixed_crops, list_images
from codec.train.run import LoopConfig


@dataclass(kw_only=True)
class TrainConfig(LoopConfig):
    data: str
    run_dir: str
    config: str = "base"
    lmbda: float = 0.0067
    batch: int = 8
    crop: int = 256
    lr: float = 4e-4
    warmup_steps: int = 300
    lambda_boost: float = 10.0
    boost_fraction: float = 0.15
    val_every: int = 500
    shard_dir: str = ""
    levels: str = ""  # variable rate: comma-separated lambdas (one gain unit each); lmbda is then unused
    init: str = ""  # warm start: a shipped model id or a .safetensors path (used when no checkpoint)
    gain_lr: float = 0.0  # variable rate: a separate learning rate for the gain units (0 = lr)
    train_only: str = ""  # comma-separated parameter-name prefixes to train (others frozen), e.g. log_gain
    downscale: float = 1.0  # random downscaling: crops of up to crop x this, area-resized to crop
    compile: bool = False  # torch.compile the model for training steps (2.2x per step on CPU with bf16 GDN)
    extra: dict = field(default_factory=dict)


def lr_at(cfg: LoopConfig, step: int, progress: float) -> float:
    warm = min(1.0, (step + 1) / max(1, cfg.warmup_steps))
    start = 1.0 - cfg.decay_fraction
    if progress <= start:
        return cfg.lr * warm
    t = min(1.0, (progress - start) / cfg.decay_fraction)
    return cfg.lr * warm * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * t)))


def save_shards(state: dict, folder: Path, prefix: str, max_bytes: int = 12 << 20) -> list[Path]:
    """Model weights as safetensors shards of at most max_bytes each (for size-capped transfers)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    shards, current, size = [], {}, 0
    for name, t in state.items():
        nbytes = t.numel() * t.element_size()
        if current and size + nbytes > max_bytes:
            shards.append(current)
            current, size = {}, 0
        current[name] = t.detach().float().cpu().contiguous()
        size += nbytes
    shards.append(current)
    paths = []
    for i, shard in enumerate(shards):
        path = folder / f"{prefix}_{i}.safetensors"
        save_file(shard, str(path.with_suffix(".tmp")))
        path.with_suffix(".tmp").replace(path)
        paths.append(path)
    return paths


def load_shards(folder: Path, prefix: str) -> dict:
    from safetensors.torch import load_file

    state = {}
    for path in sorted(Path(folder).glob(f"{prefix}_*.safetensors")):
        state.update(load_file(str(path)))
    return state


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
    from pathlib import Path as _Path

    from safetensors.torch import load_file

    init_lmbda = 0.0
    if _Path(init).exists():
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


def validate(model, val, levels, lmbda) -> list:
    """Validation bpp and PSNR (likelihood estimate); for variable rate, at every level, ';'-joined."""
    model.eval()
    with torch.no_grad():
        if not levels:
            _, vbpp, vmse = rd_loss(model, val, lmbda)
            return [float(vbpp), _psnr(float(vmse))]
        bpps, psnrs = [], []
        for i, lam in enumerate(levels):
            _, vbpp, vmse = rd_loss(model, val, lam, torch.full((val.shape[0],), i))
            bpps.append(f"{float(vbpp):.4f}")
            psnrs.append(f"{_psnr(float(vmse)):.2f}")
        return [";".join(bpps), ";".join(psnrs)]


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


def train(cfg: TrainConfig, resume: bool = True, log=print, on_step=None, on_progress=None) -> Path:
    """Runs (or resumes) a training run; `on_step(step, loss)` after every step (tests, tools);
    `on_progress(fraction, text)` after every step (progress bars)."""
    device = torch.device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / "checkpoint.pt"

    torch.manual_seed(cfg.seed)
    levels = tuple(float(v) for v in cfg.levels.split(",")) if cfg.levels else ()
    base = HyperpriorConfig.preset(cfg.config)
    model = MeanScaleHyperprior(HyperpriorConfig(N=base.N, M=base.M, levels=levels, act=base.act,
                                                 lmbda=0.0 if levels else cfg.lmbda))
    if cfg.init and not (resume and ckpt_path.exists()):
        warm_start(model, cfg.init, log)
    model = model.to(device)
    model = model.to(memory_format=torch.channels_last)
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
    aux_opt = torch.optim.Adam(aux_params, lr=1e-3)
    gen = torch.Generator().manual_seed(cfg.seed)
    step, elapsed = 0, 0.0
    if resume and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        aux_opt.load_state_dict(state["aux_opt"])
        step, elapsed = int(state["step"]), float(state["elapsed"])
        gen.set_state(state["gen"].cpu())
        torch.set_rng_state(state["torch_rng"].cpu())
        log(f"resumed at step {step} ({elapsed / 60:.1f} min)")

    train_files, val_files = list_images(Path(cfg.data), "train"), list_images(Path(cfg.data), "val")
    step_model = torch.compile(model) if cfg.compile else model  # shares the parameters of `model`
    sampler = CropSampler(train_files, cfg.crop, device, downscale=cfg.downscale)
    if not val_files:
        log("no held-back validation image in this folder: validating on training crops")
        val_files = train_files
    val = fixed_crops(val_files, cfg.crop).to(device)
    log(f"{len(sampler.images)} training images, {val.shape[0]} validation crops, device {device}")

    csv_path = run_dir / "log.csv"
    new_csv = not csv_path.exists()
    csv_file = open(csv_path, "a", newline="")
    writer = csv.writer(csv_file)
    if new_csv:
        writer.writerow(["step", "loss", "bpp", "psnr", "lr", "lambda", "seconds", "val_bpp", "val_psnr"])

    def save():
        state = {
            "model": model.state_dict(), "opt": opt.state_dict(), "aux_opt": aux_opt.state_dict(),
            "step": step, "elapsed": elapsed, "gen": gen.get_state(), "torch_rng": torch.get_rng_state(),
            "config": asdict(cfg),
        }
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(ckpt_path)
        if cfg.shard_dir:
            save_shards(model.state_dict(), Path(cfg.shard_dir), f"lambda{cfg.lmbda:g}")

    t0 = time.monotonic() - elapsed
    last_ckpt = time.monotonic()
    progress = 0.0
    while True:
        elapsed = time.monotonic() - t0
        progress = max(step / cfg.max_steps, elapsed / 60.0 / cfg.max_minutes)
        if progress >= 1.0:
            break
        lr = lr_at(cfg, step, progress)
        for g in opt.param_groups:
            g["lr"] = lr * g.get("lr_scale", 1.0)
        boost = cfg.lambda_boost if progress < cfg.boost_fraction else 1.0
        x = sampler.sample(cfg.batch, gen).contiguous(memory_format=torch.channels_last)
        if levels:
            level = torch.randint(len(levels), (cfg.batch,), generator=gen)
            lmbda = torch.tensor(levels)[level] * boost
        else:
            level, lmbda = None, cfg.lmbda * boost
        model.train()
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            loss, bpp, mse = rd_loss(step_model, x, lmbda, level)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(main_params, cfg.clip)
        opt.step()
        aux = model.aux_loss()
        aux_opt.zero_grad(set_to_none=True)
        aux.backward()
        aux_opt.step()
        step += 1
        if on_step is not None:
            on_step(step, loss.item())
        if step % 50 == 0 or step == 1 or step % cfg.val_every == 0:
            row = [step, loss.item(), bpp.item(), _psnr(mse.item()), lr, float(torch.as_tensor(lmbda).mean()),
                   round(elapsed, 1), "", ""]
            if step % cfg.val_every == 0:
                row[7:] = validate(model, val, levels, cfg.lmbda)
            writer.writerow(row)
            csv_file.flush()
            if step % 500 == 0 or step == 1:
                eta = elapsed / max(progress, 1e-9) * (1 - progress) / 60 if progress > 0 else float("nan")
                log(
                    f"step {step} {progress * 100:5.1f}% loss {loss.item():.3f} bpp {bpp.item():.3f} "
                    f"psnr {_psnr(mse.item()):.2f} lr {lr:.2e} aux {aux.item():.1f} {elapsed / 60:.1f} min "
                    f"eta {eta:.1f} min"
                    + (f" | val bpp {row[7]} psnr {row[8]}" if row[7] != "" else "")
                )
        if on_progress is not None:
            on_progress(progress, f"step {step} loss {loss.item():.3f} bpp {bpp.item():.3f} psnr {_psnr(mse.item()):.2f}")
        if time.monotonic() - last_ckpt > cfg.ckpt_minutes * 60:
            save()
            last_ckpt = time.monotonic()
    save()
    csv_file.close()
    log(f"finished at step {step}, {elapsed / 60:.1f} min")
    return ckpt_path
