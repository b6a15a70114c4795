"""Training the M2T entropy model on the latents of a frozen variable-rate autoencoder, and its export.

    codec train m2t --ae MODEL_ID --data DIR --run-dir DIR [--config small] [--objective m2t|mt] ...

The autoencoder's analysis runs once over every training photo (and its mirror image); the latents
are kept (float16, in memory and in RUN/latents.pt) and training draws P x P token windows from
them, each with a random quality t in [0, 1] (the position among the autoencoder's trained levels).
Rate only: the loss is the bits per pixel of the tokens under the predicted Gaussians, with
uniform noise of one quantisation step standing in for rounding (inputs and likelihoods).

Objectives: `m2t` (two streams, block-triangular mask: every step trained in one pass) and `mt`
(one stream, 5-99% of the tokens masked at random, loss on the masked ones). Validation codes the
held-back photos' windows with the fixed S-step schedule for both (MT: S passes), so the two
compare on what decoding will actually cost. The loop, checkpoints and resume: `codec.train.loop`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict
from pathlib import Path

import torch

from codec.entropy.gaussian import gaussian_likelihood
from codec.models.m2t import M2T, M2TConfig, schedule
from codec.train.config import ExportConfig, M2TTrainConfig
from codec.train.export import export, read_checkpoint, run_facts, transformer_of
from codec.train.loop import Checkpoint, fit, start

LATENT_STRIDE = 16


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
    from codec.train.data import load_photo

    module = model.module
    out = []
    for i, path in enumerate(paths):
        pixels = load_photo(path)
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


def _latents(cfg: M2TTrainConfig, ae, side: bool, run_dir: Path, log) -> tuple[list, list]:
    """(training, validation) latent stacks of the photos, cached in RUN/latents.pt (keyed by the
    autoencoder's sha256 and whether they carry the side information)."""
    from codec.train.data import list_images

    cache = run_dir / "latents.pt"
    key = f"{ae.sha256}:{'side' if side else 'y'}"
    saved = torch.load(cache, weights_only=True) if cache.exists() else {}
    if saved.get("key") == key:
        return saved["train"], saved["val"]
    data = Path(cfg.data)
    train_files, val_files = list_images(data, "train"), list_images(data, "val")
    log(f"analysis of {len(train_files)} training and {len(val_files)} validation photos")
    train_lat = image_latents(ae, train_files, True, side, log)
    val_lat = image_latents(ae, val_files or train_files[:4], False, side, log)
    torch.save({"key": key, "train": train_lat, "val": val_lat}, cache)
    return train_lat, val_lat


def train_m2t(cfg: M2TTrainConfig, resume: bool = True, log=print, on_step=None, on_progress=None) -> Path:
    """Runs (or resumes) an M2T training run; returns RUN/checkpoint.pt."""
    if cfg.objective not in ("m2t", "mt"):
        raise ValueError(f"objective must be m2t or mt, got {cfg.objective!r}")
    run_dir = start(cfg)
    ae = load_autoencoder(cfg.ae)
    channels = ae.module.config.M
    tf_cfg = dataclasses.replace(M2TConfig.preset(cfg.config, channels), patch=cfg.patch, steps=cfg.steps)
    tf = M2T(tf_cfg)
    opt = torch.optim.Adam(tf.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    train_lat, val_lat = _latents(cfg, ae, tf_cfg.side, run_dir, log)
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

    def loss(progress: float):
        windows = sample_windows(train_lat, tf_cfg.patch, cfg.batch, gen)
        t = torch.rand(cfg.batch, generator=gen)
        sched_b = train_scheds[int(torch.randint(len(train_scheds), (1,), generator=gen))]
        with torch.no_grad():
            steps = enc_steps(ae, t).float()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
            y_tok, side_tok = split(windows, sched_b)
            bpp, _ = rate_loss(tf, y_tok, steps, t, sched_b, cfg.objective, gen, side_tok)
        return bpp.mean(), {"bpp": bpp.mean()}

    ckpt = Checkpoint(run_dir / "checkpoint.pt", tf, opt, gen, facts={"config": asdict(cfg), "tf_config": tf_cfg.to_dict()})
    fit(cfg, ckpt, loss=loss, validate=lambda: {"val_bpp": validate(tf, val, val_steps, val_t, sched, cfg.objective)},
        columns=["step", "bpp", "lr", "seconds", "val_bpp"], resume=resume, log=log, on_step=on_step,
        on_progress=on_progress, log_every=50)
    return ckpt.path


def export_m2t(cfg: ExportConfig) -> dict:
    """Writes <weights>/<model_id>.safetensors (the whole autoencoder + the transformer) and its entry."""
    from codec.pipeline.m2t import from_modules

    training = cfg.facts()
    state = read_checkpoint(cfg.checkpoint)
    run_cfg = state["config"]
    ae = load_autoencoder(run_cfg["ae"])
    tf = transformer_of(state, M2T, M2TConfig)
    model = from_modules(ae.module, tf, cfg.model_id)
    return export(model, {"autoencoder": run_cfg["ae"], "objective": run_cfg["objective"], **run_facts(state), **training},
                  folder=cfg.folder(), make_default=cfg.default, force=cfg.force)
