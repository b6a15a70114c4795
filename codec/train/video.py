"""Training the VCT entropy model on the latents of a frozen image autoencoder.

    codec train video --run-dir DIR [--ae hyperprior-mse-l0067] [--config small] [--max-minutes 60] ...

Data: three-frame sequences (t-2, t-1, t), each a random crop x crop window taken at the same place in
all three frames, from two sources:
  - the clips in DATA/video, frames from `--eval-frames` + 8 on (the first `--eval-frames` of every
    clip are the evaluation window of `codec eval --video`: never trained on; they give the video
    part of the validation set), at frame distance 1 or 2, large frames sometimes halved first;
  - synthetic motion made from the training photos (DATA/train, training split): pans, zooms, fades
    and blurs, each drawn per sequence.
The autoencoder's analysis runs once per frame; the latents are kept (float16, in RUN/latents.pt,
keyed by the autoencoder's sha256 and the data settings).

Loss: bits per pixel of the current latent under the predicted Gaussians, at a random quantisation
step per sequence (log2 step uniform in [--min-log-step, --max-log-step], the range `--quality`
spans). The context is what the decoder will hold: the previous frames and the block's earlier tokens
rounded to the step (so unused channels are exact zeros, as in coding). The rate is that of the
symbols coding writes, round((y - mean) / step), with a straight-through gradient: the usual
uniform-noise relaxation charges up to a bit for every confidently predicted zero (measured on the
validation set at step 4: 0.204 bpp estimated against 0.068 for the rounded symbols), which misleads
both training and validation at the coarse steps video runs at. Validation reports the
model's bpp next to the image model's real coded size of the same frames (all-intra), at fixed steps.
The loop, checkpoints (every few minutes; resumed unless --no-resume) and CSV log: `codec.train.loop`.

Runs (`--length L`, L > 3; needed by a recurrent state, `--state S`): instead of the sequences, L
consecutive frames of the clips' cached latents (`codec.train.clip_latents`: --windows crop windows a
clip, --clip-frames frames after its evaluation window; the evaluation window's runs validate), every
frame after the first coded given the two before it and the state of the frames before it
(`run_bits`); the y rate only (the side information's prior is not trained).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from codec.entropy.gaussian import gaussian_likelihood
from codec.errors import UsageError
from codec.models.vct import VCT, VCTConfig, blocks_of, windows_of
from codec.settings import data_dir
from codec.train.clips import VIDEO_EXTENSIONS, clip_frames, clip_info, crop_at, halve, module_on
from codec.train.config import ExportConfig, VideoTrainConfig
from codec.train.export import export, read_checkpoint, run_facts, transformer_of
from codec.train.loop import Checkpoint, fit, start

LATENT_STRIDE = 16
VAL_LOG_STEPS = (-1.0, 0.0, 1.0, 2.0)


# --- sequences --------------------------------------------------------------------------------


def video_sequences(folder: Path, crop: int, count: int, first: int, last: int | None,
                    rng: np.random.Generator, log=print) -> list[np.ndarray]:
    """`count` sequences (3, crop, crop, 3) uint8 from the clips' frames first..last-1 (None: to the
    end), spread over the clips in proportion to their usable frames. Streams each clip once."""
    clips = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS)
    usable = []
    for path in clips:
        frames, h, w = clip_info(path)
        stop = frames if last is None else min(frames, last)
        if min(h, w) >= crop and stop - first >= 5:
            usable.append((path, stop))
    total = sum(stop - first for _, stop in usable)
    out: list[np.ndarray] = []
    for path, stop in usable:
        want = max(1, round(count * (stop - first) / total)) if total else 0
        starts = set(rng.choice(np.arange(first, stop - 4), size=min(want, stop - 4 - first), replace=False).tolist())
        ring: list[np.ndarray] = []
        for i, frame in enumerate(clip_frames(path)):
            if i >= stop:
                break
            if i < first:
                continue
            ring = (ring + [frame])[-5:]
            t0 = i - 4
            if t0 in starts and len(ring) == 5:
                gap = int(rng.integers(1, 3))
                seq = [ring[0], ring[gap], ring[2 * gap]]
                if min(seq[0].shape[:2]) >= 2 * crop and rng.random() < 0.5:
                    seq = [halve(f) for f in seq]
                h, w = seq[0].shape[:2]
                r, c = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
                out.append(np.stack([crop_at(f, r, c, crop) for f in seq]))
        log(f"{path.name}: {len(out)} sequences so far")
    return out


def photo_sequences(paths: list[Path], crop: int, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """`count` synthetic sequences (3, crop, crop, 3) uint8: a window of a photo moved over three
    frames by a pan (up to 8 px per frame), a zoom (up to 4% per frame), a fade (up to 8% per frame)
    and, in a quarter of them, a changing blur."""
    from PIL import Image, ImageFilter, ImageOps

    out = []
    images = []
    for p in paths:
        with Image.open(p) as im:
            images.append(ImageOps.exif_transpose(im).convert("RGB"))
    for _ in range(count if images else 0):
        im = images[int(rng.integers(len(images)))]
        w, h = im.size
        if min(w, h) < crop * 1.3:
            continue
        v = rng.uniform(-8, 8, size=2)
        zoom = math.exp(rng.uniform(-0.04, 0.04))
        fade = rng.uniform(-0.08, 0.08) if rng.random() < 0.3 else 0.0
        blur = rng.uniform(0, 1.5, size=3) if rng.random() < 0.25 else None
        margin = crop * 0.6 + 20
        cx, cy = rng.uniform(margin, w - margin), rng.uniform(margin, h - margin)
        frames = []
        for k in range(3):
            s = zoom**k
            x0, y0 = cx + k * v[0] - crop / 2 * s, cy + k * v[1] - crop / 2 * s
            f = im.transform((crop, crop), Image.AFFINE, (s, 0, x0, 0, s, y0), resample=Image.BICUBIC)
            if blur is not None and blur[k] > 0.2:
                f = f.filter(ImageFilter.GaussianBlur(float(blur[k])))
            a = np.asarray(f).astype(np.float32) * (1.0 + fade * k)
            frames.append(np.clip(np.round(a), 0, 255).astype(np.uint8))
        out.append(np.stack(frames))
    return out


@torch.no_grad()
def latents_of(ae, sequences: list[np.ndarray], batch: int = 8, device=None) -> torch.Tensor:
    """(N, 3, crop, crop, 3) uint8 sequences -> y (N, 3, C, crop/16, crop/16) float16."""
    out = []
    module = module_on(ae, device)
    flat = np.concatenate([s for s in sequences]) if sequences else np.zeros((0,))
    for i in range(0, len(flat), batch * 3):
        x = torch.from_numpy(flat[i : i + batch * 3]).permute(0, 3, 1, 2).float().div_(255.0)
        out.append(module.g_a(x.to(device or "cpu")).half().cpu())
    y = torch.cat(out)
    return y.view(-1, 3, *y.shape[1:])


def intra_bpp(ae, frames: list[np.ndarray], log_steps) -> list[float]:
    """The image model's real coded size (ZSTR + YSTR bytes) of `frames` at each step, mean bpp."""
    from codec.container import YSTR, ZSTR, read_container
    from codec.pipeline.rate import rate_for
    from codec.registry import family_of

    family = family_of(ae)
    sums = [0.0] * len(log_steps)
    for f in frames:
        a = family.analyse(ae, f)
        for j, ls in enumerate(log_steps):
            c = read_container(family.encode(ae, a, rate_for(ae, step=2.0**ls)).data)
            sums[j] += 8 * (len(c.get(ZSTR)) + len(c.get(YSTR))) / (f.shape[0] * f.shape[1])
    return [s / max(1, len(frames)) for s in sums]


# --- loss -------------------------------------------------------------------------------------


def rate_loss(tf: VCT, seq: torch.Tensor, log_step: torch.Tensor, side: torch.Tensor | None = None,
              state: torch.Tensor | None = None) -> torch.Tensor:
    """Bits per pixel (N,) of frame t of each sequence y (N, 3, C, h, w) given frames t-2 and t-1,
    at quantisation steps 2^log_step (N,); side (N, 2, C, h, w): frame t's hyperprior mean and scale
    (models with config.side); state (N, S, h, w): the recurrent state frame t reads (config.state).
    The side information's own bits are not counted here."""
    n, _, c, h, w = seq.shape
    log_step = log_step.to(seq.device)
    step = (2.0 ** log_step).view(n, 1, 1, 1, 1).to(seq.dtype)
    # what the decoder holds (up to the coding's mean shift): rounded latents, for the previous frames
    # and the already-decoded tokens of the block; exact zeros where a channel is unused, as in coding
    q = torch.round(seq / step) * step
    cfg = tf.config
    per = (h // cfg.block) * (w // cfg.block)
    ls = log_step.repeat_interleave(per)
    cur = blocks_of(seq[:, 2], cfg.block)  # (N * per, w^2, C): the values to code
    side_tokens = None if side is None else (blocks_of(side[:, 0], cfg.block), blocks_of(side[:, 1], cfg.block))
    state_tokens = None if state is None else blocks_of(state, cfg.block)
    mean, scale = tf(blocks_of(q[:, 2], cfg.block), windows_of(q[:, 1], cfg), windows_of(q[:, 0], cfg), ls, side_tokens,
                     state=state_tokens)
    s = step.view(n, 1, 1).repeat_interleave(per, 0)  # (N * per, 1, 1)
    r = (cur - mean) / s
    r = r + (torch.round(r) - r).detach()  # the symbol coding will write (straight-through gradient)
    lik = gaussian_likelihood(r, scale / s)
    bits = -torch.log2(lik.clamp_min(1e-9)).sum((1, 2)).view(n, per).sum(1)
    return bits / (h * w * LATENT_STRIDE**2)


def run_states(tf: VCT, q: torch.Tensor) -> list[torch.Tensor | None]:
    """The recurrent state each frame of runs q (N, L, C, h, w) of decoded latents reads: frame t's
    from frames 0..t-1 only (None for frame 0 and for models without a state)."""
    states, state = [], None
    for t in range(q.shape[1]):
        states.append(state)
        if tf.config.state:
            state = tf.recurrent(state, q[:, t])
    return states


def run_bits(tf: VCT, run: torch.Tensor, log_step: torch.Tensor, side: torch.Tensor | None = None) -> torch.Tensor:
    """Bits per pixel (N, L-1) of frames 1..L-1 of runs y (N, L, C, h, w), each frame given the two
    before it (frame 1: frame 0 twice, as coding does after a keyframe) and, for models with a
    recurrent state, the state after the frames before it (`run_states`); side (N, L, 2, C, h, w)."""
    n, length = run.shape[:2]
    step = (2.0 ** log_step.to(run.device)).view(n, 1, 1, 1, 1).to(run.dtype)
    states = run_states(tf, torch.round(run / step) * step)
    bits = [rate_loss(tf, torch.stack([run[:, max(t - 2, 0)], run[:, t - 1], run[:, t]], 1), log_step,
                      None if side is None else side[:, t], states[t]) for t in range(1, length)]
    return torch.stack(bits, 1)


def run_loss(tf: VCT, run: torch.Tensor, log_step: torch.Tensor, side: torch.Tensor | None = None) -> torch.Tensor:
    """`run_bits` averaged over the frames (N,), so that it compares with `rate_loss`."""
    return run_bits(tf, run, log_step, side).mean(1)


def z_rate(tf: VCT, z: torch.Tensor) -> torch.Tensor:
    """Bits per pixel (N,) of frame t's z symbols under the temporal prior given frames t-1 and t-2,
    z (N, 3, Nz, h/4, w/4) integer-valued (the residual z_t - z_{t-1} is what mode 2 codes; the
    encoder's per-frame gain is left out: gain 0)."""
    n, _, _, h, w = z.shape
    scale = tf.zprior(z[:, 1], z[:, 0])
    lik = gaussian_likelihood(z[:, 2] - z[:, 1], scale)
    return -torch.log2(lik.clamp_min(1e-9)).sum((1, 2, 3)) / (h * w * (4 * LATENT_STRIDE) ** 2)


@torch.no_grad()
def validate(tf: VCT, val: torch.Tensor, val_side: torch.Tensor | None = None, z_bpp: float = 0.0,
             val_z: torch.Tensor | None = None, val_z_fact: torch.Tensor | None = None) -> list[float]:
    """Mean bpp of the validation sequences at each of VAL_LOG_STEPS, the side information included
    for models that use it (`z_bpp`: the factorized prior's mean; with a temporal prior, per sequence
    the shorter of it and the factorized `val_z_fact`, as the encoder picks), then the temporal
    prior's mean z bpp (models with one)."""
    tf.eval()
    side_bpp: torch.Tensor | float = z_bpp if val_side is not None else 0.0
    z_temporal = None
    if tf.config.zprior and val_z is not None:
        z_temporal = torch.cat([z_rate(tf, val_z[i : i + 64].float()) for i in range(0, len(val_z), 64)])
        side_bpp = torch.minimum(z_temporal, val_z_fact.to(z_temporal))
    out = []
    for ls in VAL_LOG_STEPS:
        bpp = torch.cat([rate_loss(tf, val[i : i + 32].float(), torch.full((len(val[i : i + 32]),), ls),
                                   None if val_side is None else val_side[i : i + 32].float())
                         for i in range(0, len(val), 32)])
        out.append(float((bpp + side_bpp).mean()))
    if z_temporal is not None:
        out.append(float(z_temporal.mean()))
    tf.train()
    return out


@torch.no_grad()
def side_of(ae, y: torch.Tensor, batch: int = 64, device=None) -> tuple[torch.Tensor, float]:
    """The hyperprior's (mean, scale) of latents y (N, C, h, w) -> (N, 2, C, h, w) float16, and the
    mean bits per pixel of their z (likelihood of the rounded z: what an inter frame's side costs)."""
    module = module_on(ae, device)
    med = module.z_density.medians.view(1, -1, 1, 1)
    out, z_bits = [], 0.0
    for i in range(0, len(y), batch):
        yb = y[i : i + batch].float().to(med.device)
        z_hat = torch.round(module.h_a(yb) - med) + med
        mean, scale = module.entropy_parameters(z_hat)
        out.append(torch.stack([mean, scale], 1).half().cpu())
        z_bits += float(-torch.log2(module.z_density.likelihood(z_hat).clamp_min(1e-9)).sum())
    return torch.cat(out), z_bits / (len(y) * y.shape[2] * y.shape[3] * LATENT_STRIDE**2)


@torch.no_grad()
def z_symbols(ae, y: torch.Tensor, batch: int = 64, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """z symbols of every frame of sequences y (N, 3, C, h, w) -> (N, 3, Nz, h/4, w/4) int16, and the
    factorized prior's bpp of each sequence's last frame (N,) (mode 1's price of the side information)."""
    module = module_on(ae, device)
    med = module.z_density.medians.view(1, -1, 1, 1)
    out, bits = [], []
    for i in range(0, len(y), batch):
        yb = y[i : i + batch].float().to(med.device)
        n = len(yb)
        z = torch.round(module.h_a(yb.flatten(0, 1)) - med)
        out.append(z.clamp(-32768, 32767).to(torch.int16).view(n, 3, *z.shape[1:]).cpu())
        last = z.view(n, 3, *z.shape[1:])[:, 2] + med
        bits.append(-torch.log2(module.z_density.likelihood(last).clamp_min(1e-9)).sum((1, 2, 3)).cpu())
    return torch.cat(out), torch.cat(bits) / (y.shape[3] * y.shape[4] * LATENT_STRIDE**2)


# --- the loop ---------------------------------------------------------------------------------


def _cached(path: Path, key: str) -> dict | None:
    """The run's cached data at `path` when it was made with the same settings (`key`), else None."""
    if path.exists():
        saved = torch.load(path, weights_only=True)
        if saved.get("key") == key:
            return saved
    return None


def _data(cfg: VideoTrainConfig, ae, run_dir: Path, log, device=None) -> dict:
    from codec.train.data import list_images

    key = json.dumps({"ae": ae.sha256, "crop": cfg.crop, "video": cfg.video_samples, "photo": cfg.photo_samples,
                      "val": cfg.val_samples, "eval_frames": cfg.eval_frames, "seed": cfg.seed}, sort_keys=True)
    cache = run_dir / "latents.pt"
    if (saved := _cached(cache, key)) is not None:
        return saved
    root = Path(cfg.data) if cfg.data else data_dir()
    rng = np.random.default_rng(cfg.seed)
    t0 = time.monotonic()
    vids = video_sequences(root / "video", cfg.crop, cfg.video_samples, cfg.eval_frames + 8, None, rng, log)
    val_vids = video_sequences(root / "video", cfg.crop, cfg.val_samples, 0, cfg.eval_frames, rng, log)
    photos = photo_sequences(list_images(root / "train", "train"), cfg.crop, cfg.photo_samples, rng)
    val_files = list_images(root / "train", "val") or list_images(root / "train", "train")[:4]
    val_photos = photo_sequences(val_files, cfg.crop, cfg.val_samples, rng)
    log(f"{len(vids)} video and {len(photos)} photo sequences for training, {len(val_vids)} + {len(val_photos)} "
        f"for validation ({time.monotonic() - t0:.0f} s); analysis ...")
    val_seqs = val_vids + val_photos
    saved = {
        "key": key,
        "train": latents_of(ae, vids + photos, device=device),
        "val": latents_of(ae, val_seqs, device=device),
        "val_intra": intra_bpp(ae, [s[2] for s in val_seqs], VAL_LOG_STEPS),
    }
    torch.save(saved, cache)
    log(f"latents ready ({time.monotonic() - t0:.0f} s)")
    return saved


def _init_from(tf: VCT, model_id: str, ae, log) -> None:
    """Copies the parameters of shipped VCT model `model_id` that `tf` shares (same names and shapes)."""
    from codec.weights import load_model

    src = load_model(model_id)
    if getattr(src, "hp", None) is None or src.hp.sha256 != ae.sha256:
        raise ValueError(f"--init {model_id!r} is not a VCT model on the same autoencoder")
    own = tf.state_dict()
    shared = {k: v for k, v in src.tf.state_dict().items() if k in own and own[k].shape == v.shape}
    tf.load_state_dict(shared, strict=False)
    log(f"initialised {len(shared)} of {len(own)} tensors from {model_id}")


def _with_side(data: dict, ae, tf_cfg: VCTConfig, run_dir: Path, device) -> dict:
    """Adds what the model's options need to the cached data (and the cache): the hyperprior's mean
    and scale (config.side), the z symbols (config.zprior)."""
    if tf_cfg.side and "train_side" not in data:
        data["train_side"], _ = side_of(ae, data["train"][:, 2], device=device)
        data["val_side"], data["val_z_bpp"] = side_of(ae, data["val"][:, 2], device=device)
        torch.save(data, run_dir / "latents.pt")
    if tf_cfg.zprior and "train_z" not in data:
        data["train_z"], _ = z_symbols(ae, data["train"], device=device)
        data["val_z"], data["val_z_fact"] = z_symbols(ae, data["val"], device=device)
        torch.save(data, run_dir / "latents.pt")
    return data


def _runs_data(cfg: VideoTrainConfig, ae, run_dir: Path, log, device=None) -> dict:
    """The clips' cached latents for training on runs (cfg.length > 3): tracks after each clip's
    evaluation window for training, tracks of the evaluation window for validation."""
    from codec.train.clip_latents import clip_latents

    key = json.dumps({"ae": ae.sha256, "crop": cfg.crop, "windows": cfg.windows, "clip_frames": cfg.clip_frames,
                      "eval_frames": cfg.eval_frames, "seed": cfg.seed}, sort_keys=True)
    cache = run_dir / "clip_latents.pt"
    if (saved := _cached(cache, key)) is not None:
        return saved
    root = Path(cfg.data) if cfg.data else data_dir()
    rng = np.random.default_rng(cfg.seed)
    t0 = time.monotonic()
    first = cfg.eval_frames + 8
    saved = {"key": key,
             "train": clip_latents(ae, root / "video", cfg.crop, first, first + cfg.clip_frames, cfg.windows, rng, log,
                                   device=device),
             "val": clip_latents(ae, root / "video", cfg.crop, 0, cfg.eval_frames, 1, rng, log, device=device)}
    torch.save(saved, cache)
    log(f"clip latents ready: {len(saved['train'])} training and {len(saved['val'])} validation tracks "
        f"({time.monotonic() - t0:.0f} s)")
    return saved


def _train_runs(cfg: VideoTrainConfig, tf: VCT, ae, run_dir: Path, ckpt_path: Path, device, resume, log, on_step,
                on_progress) -> Path:
    """The loop on runs of cfg.length frames from cached clip latents (y rate only: the side
    information's prior is left as it is)."""
    from codec.train.clip_latents import fixed_runs, runs

    data = _runs_data(cfg, ae, run_dir, log, device)
    if not any(len(t["y"]) >= cfg.length for t in data["train"]) or not any(len(t["y"]) >= cfg.length for t in data["val"]):
        raise UsageError(f"no clip gives runs of {cfg.length} frames of {cfg.crop}x{cfg.crop} both after and within its "
                         f"first {cfg.eval_frames} frames (--crop, --length, --eval-frames, --clip-frames)")
    val_y, _, val_side = fixed_runs(data["val"], cfg.length)
    opt = torch.optim.Adam([p for n, p in tf.named_parameters() if not n.startswith("zprior.")], lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    log(f"{len(data['train'])} training tracks, {len(val_y)} validation runs of {cfg.length} frames; "
        f"{sum(p.numel() for p in tf.parameters())} parameters")

    def loss(progress: float):
        y, _, side = runs(data["train"], cfg.length, cfg.batch, gen)
        if torch.rand((), generator=gen) < 0.5:  # mirror (the side information was computed unmirrored)
            y, side = y.flip(-1), side.flip(-1)
        log_step = cfg.min_log_step + (cfg.max_log_step - cfg.min_log_step) * torch.rand(cfg.batch, generator=gen)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            bpp = run_loss(tf, y.to(device), log_step.to(device), side.to(device) if tf.config.side else None)
            return bpp.mean(), {"bpp": bpp.mean()}

    @torch.no_grad()
    def validate_runs() -> dict:
        tf.eval()
        out = {}
        for ls in VAL_LOG_STEPS:
            bpp = torch.cat([run_loss(tf, val_y[i : i + 16].to(device), torch.full((len(val_y[i : i + 16]),), ls),
                                      val_side[i : i + 16].to(device) if tf.config.side else None)
                             for i in range(0, len(val_y), 16)])
            out[f"val_y_bpp_{ls:g}"] = float(bpp.mean())
        tf.train()
        return out

    columns = [f"val_y_bpp_{ls:g}" for ls in VAL_LOG_STEPS]
    ckpt = Checkpoint(ckpt_path, tf, opt, gen, facts={"config": asdict(cfg), "tf_config": tf.config.to_dict(),
                                                      "val_tracks": len(data["val"])})
    fit(cfg, ckpt, loss=loss, validate=validate_runs, columns=["step", "bpp", "lr", "seconds", *columns],
        resume=resume, log=log, on_step=on_step, on_progress=on_progress, log_every=25, validate_first=True)
    return ckpt_path


def train_video(cfg: VideoTrainConfig, resume: bool = True, log=print, on_step=None, on_progress=None) -> Path:
    """Runs (or resumes) a VCT training run; returns RUN/checkpoint.pt."""
    from codec.weights import load_model

    if cfg.crop % 64:
        raise ValueError(f"crop must be a multiple of 64, got {cfg.crop}")
    if cfg.state and cfg.length < 4:
        raise UsageError("a recurrent state (--state) trains on runs of frames: --length 4 or more")
    if cfg.length < 3 or cfg.state < 0:
        raise UsageError(f"--length must be 3 or more and --state 0 or more, got {cfg.length} and {cfg.state}")
    run_dir = start(cfg)
    ckpt_path = run_dir / "checkpoint.pt"
    ae = load_model(cfg.ae)
    device = torch.device(cfg.device)
    tf_cfg = dataclasses.replace(VCTConfig.preset(cfg.config, ae.module.config.M, ae.module.config.N), state=cfg.state)
    tf = VCT(tf_cfg)
    if cfg.init and not (resume and ckpt_path.exists()):
        _init_from(tf, cfg.init, ae, log)
    tf = tf.to(device)
    if cfg.length > 3:
        return _train_runs(cfg, tf, ae, run_dir, ckpt_path, device, resume, log, on_step, on_progress)
    opt = torch.optim.Adam(tf.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    data = _with_side(_data(cfg, ae, run_dir, log, device), ae, tf_cfg, run_dir, device)
    train, val = data["train"], data["val"].to(device)
    train_z = data["train_z"] if tf_cfg.zprior else None
    val_z = data["val_z"].to(device) if tf_cfg.zprior else None
    val_z_fact = data["val_z_fact"].to(device) if tf_cfg.zprior else None
    train_side = data["train_side"] if tf_cfg.side else None
    val_side = data["val_side"].to(device) if tf_cfg.side else None
    z_bpp = data.get("val_z_bpp", 0.0)
    log(f"{len(train)} training and {len(val)} validation sequences, {sum(p.numel() for p in tf.parameters())} "
        f"parameters; all-intra (the image model, real streams) codes the validation frames at "
        + ", ".join(f"{b:.4f}" for b in data["val_intra"]) + f" bpp for log2 steps {VAL_LOG_STEPS}")

    def loss(progress: float):
        idx = torch.randint(len(train), (cfg.batch,), generator=gen)
        seq = train[idx].float()
        side = train_side[idx].float() if train_side is not None else None
        z = train_z[idx].float() if train_z is not None else None
        if torch.rand((), generator=gen) < 0.5:  # mirror (the side information was computed unmirrored)
            seq = seq.flip(-1)
            side = side.flip(-1) if side is not None else None
            z = z.flip(-1) if z is not None else None
        log_step = cfg.min_log_step + (cfg.max_log_step - cfg.min_log_step) * torch.rand(cfg.batch, generator=gen)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            bpp = rate_loss(tf, seq.to(device), log_step.to(device), side.to(device) if side is not None else None)
            if z is not None:
                bpp = bpp + z_rate(tf, z.to(device))
            return bpp.mean(), {"bpp": bpp.mean()}

    columns = [f"val_bpp_{ls:g}" for ls in VAL_LOG_STEPS] + (["val_z_bpp_temporal"] if tf_cfg.zprior else [])
    ckpt = Checkpoint(ckpt_path, tf, opt, gen, facts={"config": asdict(cfg), "tf_config": tf_cfg.to_dict(),
                                                      "val_intra": data["val_intra"]})
    fit(cfg, ckpt, loss=loss, validate=lambda: dict(zip(columns, validate(tf, val, val_side, z_bpp, val_z, val_z_fact))),
        columns=["step", "bpp", "lr", "seconds", *columns], resume=resume, log=log, on_step=on_step,
        on_progress=on_progress, log_every=25, validate_first=True)
    return ckpt_path


def export_video(cfg: ExportConfig) -> dict:
    """Writes <weights>/<model_id>.safetensors (the transformer; the image model is referenced by id
    and sha256) and its manifest entry; `default` makes it the default video model."""
    from codec.pipeline.vct import from_modules
    from codec.weights import load_model

    training = cfg.facts()
    state = read_checkpoint(cfg.checkpoint)
    run_cfg = state["config"]
    ae = load_model(run_cfg["ae"])
    tf = transformer_of(state, VCT, VCTConfig)
    if run_cfg.get("length", 3) > 3:
        data = (f"DATA/video: runs of {run_cfg['length']} frames, {run_cfg['windows']} crop windows a clip, up to "
                f"{run_cfg['clip_frames']} frames after each clip's evaluation window (latents cached once)")
    else:
        data = "DATA/video (frames after each clip's evaluation window) + synthetic motion from DATA/train photos"
    facts = {"autoencoder": run_cfg["ae"], **run_facts(state), "crop": run_cfg["crop"], "data": data, **training}
    return export(from_modules(ae, tf, cfg.model_id), facts, folder=cfg.folder(), make_default=cfg.default,
                  force=cfg.force)
