"""Training the M2T entropy model on the latents of a frozen variable-rate autoencoder.

    codec train m2t --ae MODEL_ID --data DIR --run-dir DIR [--config small] [--objective m2t|mt] ...

The autoencoder's analysis runs once over every training photo (and its mirror image); the latents
are kept (float16, in memory and in RUN/latents.pt) and training draws P x P token windows from
them, each with a random quality t in [0, 1] (the position among the autoencoder's trained levels).
Rate only: the loss is the bits per pixel of the tokens under the predicted Gaussians, with
uniform noise of one quantisation step standing in for rounding (inputs and likelihoods).

Objectives: `m2t` (two streams, block-triangular mask: every step trained in one pass) and `mt`
(one stream, 5-99% of the tokens masked at random, loss on the masked ones). Validation codes the
held-back photos' windows with the fixed S-step schedule for both (MT: S passes), so the two
compare on what decoding will actually cost. Checkpoints and resume as in `codec train`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from codec.entropy.gaussian import gaussian_likelihood
from codec.models.m2t import M2T, M2TConfig, schedule
from codec.train.args import ArgumentParser, parse_config
from codec.train import run

LATENT_STRIDE = 16


@dataclass(kw_only=True)
class M2TTrainConfig(run.LoopConfig):
    ae: str
    data: str
    run_dir: str
    config: str = "small"
    objective: str = "m2t"
    patch: int = 16
    steps: int = 8
    steps_train: str = ""  # e.g. "4,8,12": a random S per batch, so one model serves every S


def load_autoencoder(ae: str):
    from codec.weights import load_model

    model = load_model(ae)
    if not model.module.config.variable_rate:
        raise ValueError(f"M2T needs a variable-rate autoencoder; {ae!r} is single-rate")
    return model


@torch.no_grad()
def image_latents(model, paths: list[Path], mirror: bool, side: bool, log=print) -> list[torch.Tensor]:
    """Per photo (and its mirror image) a float16 stack (K, C, h, w): y = g_a(photo), and with
    `side` also the hyperprior's mean and scale of y (K = 3)."""
    import numpy as np

    from codec.io import pad_to_multiple
    from codec.models.hyperprior import STRIDE
    from codec.train.data import _load

    module = model.module
    out = []
    for i, path in enumerate(paths):
        pixels = _load(path)
        h, w = math.ceil(pixels.shape[0] / LATENT_STRIDE), math.ceil(pixels.shape[1] / LATENT_STRIDE)
        padded, _ = pad_to_multiple(pixels, STRIDE)
        x = torch.from_numpy(np.ascontiguousarray(padded)).permute(2, 0, 1)[None].float().div_(255.0)
        for xi in ([x, x.flip(-1)] if mirror else [x]):
            y = module.g_a(xi)
            parts = [y]
            if side:
                med = module.z_density.medians.view(1, -1, 1, 1)
                mean, scale = module.entropy_parameters(torch.round(module.h_a(y) - med) + med)
                parts += [mean, scale]
            out.append(torch.cat(parts)[:, :, :h, :w].half())
        if (i + 1) % 50 == 0:
            log(f"latents of {i + 1}/{len(paths)} photos")
    return out


def enc_steps(model, t: torch.Tensor) -> torch.Tensor:
    """Per-channel quantisation step (B, C) at quality positions t (B,) in [0, 1]."""
    levels = len(model.module.config.levels)
    g, _ = model.module.gains(t * (levels - 1))
    return 1.0 / g


def sample_windows(latents: list[torch.Tensor], patch: int, batch: int, gen: torch.Generator) -> torch.Tensor:
    """(B, K, C, P, P) random windows of the latent stacks (images smaller than P are skipped)."""
    usable = [y for y in latents if y.shape[2] >= patch and y.shape[3] >= patch]
    out = []
    for i in torch.randint(len(usable), (batch,), generator=gen).tolist():
        y = usable[i]
        r = int(torch.randint(y.shape[2] - patch + 1, (1,), generator=gen))
        c = int(torch.randint(y.shape[3] - patch + 1, (1,), generator=gen))
        out.append(y[:, :, r : r + patch, c : c + patch])
    return torch.stack(out).float()


def tokens(windows: torch.Tensor, sched) -> torch.Tensor:
    """(B, C, P, P) -> (B, T, C) in schedule order."""
    b, c = windows.shape[:2]
    return windows.reshape(b, c, -1)[:, :, sched.positions].transpose(1, 2)


def split(windows: torch.Tensor, sched):
    """(B, K, C, P, P) -> y tokens (B, T, C) and side None or (mean, scale) tokens."""
    y = tokens(windows[:, 0], sched)
    side = (tokens(windows[:, 1], sched), tokens(windows[:, 2], sched)) if windows.shape[1] == 3 else None
    return y, side


def rate_loss(tf: M2T, y: torch.Tensor, step: torch.Tensor, t: torch.Tensor, sched, objective: str,
              gen: torch.Generator | None = None, side=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Bits per pixel (B,) of the tokens y (B, T, C) at quantisation steps (B, C); for `mt` also the
    mask of tokens the loss counts. Noise of one step stands in for rounding."""
    noise = (torch.rand(y.shape, generator=gen) - 0.5).to(y.device)
    y_tilde = y + noise * step[:, None, :]
    if objective == "m2t":
        mean, scale = tf(y_tilde, sched, t, side)
        counted = torch.ones(y.shape[:2], dtype=torch.bool, device=y.device)
    else:
        ratio = 0.05 + 0.94 * torch.rand(y.shape[0], 1, generator=gen)
        counted = (torch.rand(y.shape[:2], generator=gen) < ratio).to(y.device)
        mean, scale = tf.forward_mt(y_tilde, ~counted, sched, t, side)
    lik = gaussian_likelihood((y_tilde - mean) / step[:, None, :], scale / step[:, None, :])
    bits = -torch.log2(lik.clamp_min(1e-9)).sum(-1)  # (B, T)
    bits = (bits * counted).sum(1) * (y.shape[1] / counted.sum(1).clamp_min(1))
    return bits / (y.shape[1] * LATENT_STRIDE**2), counted


@torch.no_grad()
def validate(tf: M2T, val: torch.Tensor, steps: torch.Tensor, t: torch.Tensor, sched, objective: str) -> float:
    """Mean bpp of the validation windows (B, K, C, P, P) coded with the S-step schedule
    (likelihood estimate; the side information's own bits are not counted here)."""
    tf.eval()
    gen = torch.Generator().manual_seed(1234)
    y, side = split(val, sched)
    y_tilde = y + (torch.rand(y.shape, generator=gen) - 0.5) * steps[:, None, :]
    if objective == "m2t":
        mean, scale = tf(y_tilde, sched, t, side)
    else:  # MT decoding: step s sees the tokens of groups < s, one full pass per step
        mean, scale = torch.zeros_like(y), torch.ones_like(y)
        for s in range(len(sched.bounds) - 1):
            visible = (sched.groups < s)[None].expand(y.shape[0], -1)
            m, sc = tf.forward_mt(y_tilde, visible, sched, t, side)
            lo, hi = sched.bounds[s], sched.bounds[s + 1]
            mean[:, lo:hi], scale[:, lo:hi] = m[:, lo:hi], sc[:, lo:hi]
    lik = gaussian_likelihood((y_tilde - mean) / steps[:, None, :], scale / steps[:, None, :])
    bits = -torch.log2(lik.clamp_min(1e-9)).sum((1, 2))
    tf.train()
    return float((bits / (y.shape[1] * LATENT_STRIDE**2)).mean())


@torch.no_grad()
def hyperprior_bpp(ae, windows: torch.Tensor, t: torch.Tensor) -> float:
    """The autoencoder's own hyperprior on the same windows (z + y bits, likelihood estimate): the
    baseline an M2T model has to beat. z is re-analysed per window (its bits are approximate); the
    y parameters are the stored whole-image ones when the windows carry them."""
    module = ae.module
    gen = torch.Generator().manual_seed(1234)
    y = windows[:, 0]
    z = module.h_a(y)
    med = module.z_density.medians.view(1, -1, 1, 1)
    z_bits = -torch.log2(module.z_density.likelihood(z + (torch.rand(z.shape, generator=gen) - 0.5))).sum((1, 2, 3))
    if windows.shape[1] == 3:  # the parameters from the whole image's z, as the codec (and M2T) see them
        mean, scale = windows[:, 1], windows[:, 2]
    else:
        mean, scale = module.entropy_parameters(torch.round(z - med) + med)
    g, _ = module.gains(t * (len(module.config.levels) - 1))
    g = g[:, :, None, None]
    noisy = (y - mean) * g + (torch.rand(y.shape, generator=gen) - 0.5)
    y_bits = -torch.log2(gaussian_likelihood(noisy, scale * g).clamp_min(1e-9)).sum((1, 2, 3))
    return float(((z_bits + y_bits) / (y.shape[2] * y.shape[3] * LATENT_STRIDE**2)).mean()), \
        float((y_bits / (y.shape[2] * y.shape[3] * LATENT_STRIDE**2)).mean())


def train_m2t(cfg: M2TTrainConfig, resume: bool = True, log=print, on_step=None) -> Path:
    from codec.train.data import list_images

    if cfg.objective not in ("m2t", "mt"):
        raise ValueError(f"objective must be m2t or mt, got {cfg.objective!r}")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / "checkpoint.pt"
    torch.manual_seed(cfg.seed)
    ae = load_autoencoder(cfg.ae)
    channels = ae.module.config.M
    tf_cfg = dataclasses.replace(M2TConfig.preset(cfg.config, channels), patch=cfg.patch, steps=cfg.steps)
    tf = M2T(tf_cfg)
    opt = torch.optim.Adam(tf.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    step, elapsed = run.resume(ckpt_path, tf, opt, gen, log) if resume else (0, 0.0)

    cache = run_dir / "latents.pt"
    key = f"{ae.sha256}:{'side' if tf_cfg.side else 'y'}"
    saved = torch.load(cache, weights_only=True) if cache.exists() else {}
    if saved.get("key") == key:
        train_lat, val_lat = saved["train"], saved["val"]
    else:
        data = Path(cfg.data)
        train_files, val_files = list_images(data, "train"), list_images(data, "val")
        log(f"analysis of {len(train_files)} training and {len(val_files)} validation photos")
        train_lat = image_latents(ae, train_files, True, tf_cfg.side, log)
        val_lat = image_latents(ae, val_files or train_files[:4], False, tf_cfg.side, log)
        torch.save({"key": key, "train": train_lat, "val": val_lat}, cache)
    sched = schedule(tf_cfg.patch, tf_cfg.steps, tf_cfg.alpha)
    choices = [int(v) for v in cfg.steps_train.split(",") if v.strip()] or [tf_cfg.steps]
    train_scheds = [schedule(tf_cfg.patch, n, tf_cfg.alpha) for n in choices]
    vgen = torch.Generator().manual_seed(99)
    val = sample_windows(val_lat, tf_cfg.patch, 32, vgen)
    val_t = torch.linspace(0, 1, val.shape[0])
    with torch.no_grad():
        val_steps = enc_steps(ae, val_t).float()
    log(f"{len(train_lat)} training latents, {val.shape[0]} validation windows, {sum(p.numel() for p in tf.parameters())} "
        "parameters; the hyperprior codes these windows at {:.4f} bpp (y alone {:.4f})".format(*hyperprior_bpp(ae, val, val_t)))

    def save(step: int, elapsed: float) -> None:
        run.save(ckpt_path, tf, opt, gen, step, elapsed, config=asdict(cfg), tf_config=tf_cfg.to_dict())

    def loss() -> torch.Tensor:
        windows = sample_windows(train_lat, tf_cfg.patch, cfg.batch, gen)
        t = torch.rand(cfg.batch, generator=gen)
        sched_b = train_scheds[int(torch.randint(len(train_scheds), (1,), generator=gen))]
        with torch.no_grad():
            steps = enc_steps(ae, t).float()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
            y_tok, side_tok = split(windows, sched_b)
            bpp, _ = rate_loss(tf, y_tok, steps, t, sched_b, cfg.objective, gen, side_tok)
        return bpp.mean()

    run.fit(cfg, tf, opt, step, elapsed, loss=loss, save=save, log_path=run_dir / "log.csv",
            validate=lambda: [validate(tf, val, val_steps, val_t, sched, cfg.objective)], val_columns=["val_bpp"],
            log=log, on_step=on_step, log_every=50, validate_first=False)
    return ckpt_path


def export_m2t(checkpoint: Path, model_id: str, *, training: dict | None = None, folder: Path | None = None,
               make_default: bool = False, force: bool = False) -> dict:
    """Writes <folder>/<model_id>.safetensors (the whole autoencoder + the transformer) and its entry."""
    from codec.train.export import write_model
    from codec.weights import serialize_m2t

    if not Path(checkpoint).is_file():
        from codec.errors import InputError

        raise InputError(f"no checkpoint at {checkpoint}")
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    run_cfg = state["config"]
    ae = load_autoencoder(run_cfg["ae"])
    tf = M2T(M2TConfig(**state["tf_config"]))
    tf.load_state_dict(state["model"])
    data, _ = serialize_m2t(ae.module, tf, model_id)
    return write_model(data, model_id, {
        "family": "m2t", "config": {"ae": ae.module.config.to_dict(), "tf": tf.config.to_dict()},
        "training": {"autoencoder": run_cfg["ae"], "objective": run_cfg["objective"], "steps": int(state["step"]),
                     "minutes": round(float(state["elapsed"]) / 60, 1), **(training or {})},
    }, folder=folder, make_default=make_default, force=force)


def main(argv=None, prog: str = "codec train m2t") -> None:
    cfg, resume = parse_config(argv, M2TTrainConfig, prog, __doc__)
    train_m2t(cfg, resume=resume, log=lambda s: print(s, flush=True, file=sys.stdout))


def export_main(argv=None, prog: str = "codec train m2t-export") -> None:
    p = ArgumentParser(prog=prog, description="Export an M2T training run to weights/.")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--model-id", required=True)
    p.add_argument("--training", default="{}", help="JSON facts about the run for the manifest")
    p.add_argument("--weights-dir", default=None)
    p.add_argument("--default", action="store_true")
    p.add_argument("--force", action="store_true")
    a = p.parse_args(argv)
    entry = export_m2t(Path(a.checkpoint), a.model_id, training=json.loads(a.training), folder=a.weights_dir,
                       make_default=a.default, force=a.force)
    print(json.dumps({k: entry[k] for k in ("file", "sha256", "bytes")}))


if __name__ == "__main__":
    main(prog="python -m codec.train.m2t")
