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
Checkpoints every few minutes, `--resume` by default, CSV log, as `codec train`.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from codec.entropy.gaussian import gaussian_likelihood
from codec.models.vct import VCT, VCTConfig, blocks_of, windows_of
from codec.settings import data_dir
from codec.train.args import ArgumentParser, parse_config
from codec.train import run

LATENT_STRIDE = 16
VAL_LOG_STEPS = (-1.0, 0.0, 1.0, 2.0)
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".y4m")


@dataclass(kw_only=True)
class VideoTrainConfig(run.LoopConfig):
    run_dir: str
    ae: str = "hyperprior-mse-l0067"
    data: str = ""  # default: the shared data folder (codec.settings.data_dir)
    config: str = "small"
    crop: int = 192  # pixels, a multiple of 64
    video_samples: int = 2400
    photo_samples: int = 1600
    val_samples: int = 48  # per source
    eval_frames: int = 32
    min_log_step: float = -1.0
    max_log_step: float = 2.0
    warmup_steps: int = 150
    max_steps: int = 1_000_000
    val_every: int = 200


# --- sequences --------------------------------------------------------------------------------


def _crop_at(frame: np.ndarray, r: int, c: int, size: int) -> np.ndarray:
    return np.ascontiguousarray(frame[r : r + size, c : c + size])


def _halve(frame: np.ndarray) -> np.ndarray:
    from PIL import Image

    h, w = frame.shape[:2]
    return np.asarray(Image.fromarray(frame).resize((w // 2, h // 2), Image.BICUBIC))


def video_sequences(folder: Path, crop: int, count: int, first: int, last: int | None,
                    rng: np.random.Generator, log=print) -> list[np.ndarray]:
    """`count` sequences (3, crop, crop, 3) uint8 from the clips' frames first..last-1 (None: to the
    end), spread over the clips in proportion to their usable frames. Streams each clip once."""
    import av

    clips = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS)
    usable = []
    for path in clips:
        with av.open(str(path)) as box:
            s = box.streams.video[0]
            frames, h, w = s.frames or 0, s.codec_context.height, s.codec_context.width
            if not frames and box.duration and s.average_rate:  # Matroska / AVI: no count, estimate
                frames = int(box.duration / 1e6 * float(s.average_rate))
        stop = frames if last is None else min(frames, last)
        if min(h, w) >= crop and stop - first >= 5:
            usable.append((path, stop))
    total = sum(stop - first for _, stop in usable)
    out: list[np.ndarray] = []
    for path, stop in usable:
        want = max(1, round(count * (stop - first) / total)) if total else 0
        starts = set(rng.choice(np.arange(first, stop - 4), size=min(want, stop - 4 - first), replace=False).tolist())
        ring: list[np.ndarray] = []
        with av.open(str(path)) as box:
            for i, frame in enumerate(box.decode(video=0)):
                if i >= stop:
                    break
                if i < first:
                    continue
                ring = (ring + [frame.to_ndarray(format="rgb24")])[-5:]
                t0 = i - 4
                if t0 in starts and len(ring) == 5:
                    gap = int(rng.integers(1, 3))
                    seq = [ring[0], ring[gap], ring[2 * gap]]
                    if min(seq[0].shape[:2]) >= 2 * crop and rng.random() < 0.5:
                        seq = [_halve(f) for f in seq]
                    h, w = seq[0].shape[:2]
                    r, c = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
                    out.append(np.stack([_crop_at(f, r, c, crop) for f in seq]))
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
def latents_of(ae, sequences: list[np.ndarray], batch: int = 8) -> torch.Tensor:
    """(N, 3, crop, crop, 3) uint8 sequences -> y (N, 3, C, crop/16, crop/16) float16."""
    out = []
    flat = np.concatenate([s for s in sequences]) if sequences else np.zeros((0,))
    for i in range(0, len(flat), batch * 3):
        x = torch.from_numpy(flat[i : i + batch * 3]).permute(0, 3, 1, 2).float().div_(255.0)
        out.append(ae.module.g_a(x).half())
    y = torch.cat(out)
    return y.view(-1, 3, *y.shape[1:])


def intra_bpp(ae, frames: list[np.ndarray], log_steps) -> list[float]:
    """The image model's real coded size (ZSTR + YSTR bytes) of `frames` at each step, mean bpp."""
    from codec.container import YSTR, ZSTR, read_container
    from codec.pipeline.image import analyse, encode_analysis
    from codec.pipeline.rate import rate_for

    sums = [0.0] * len(log_steps)
    for f in frames:
        a = analyse(ae, f)
        for j, ls in enumerate(log_steps):
            c = read_container(encode_analysis(ae, a, rate_for(ae, step=2.0**ls)).data)
            sums[j] += 8 * (len(c.get(ZSTR)) + len(c.get(YSTR))) / (f.shape[0] * f.shape[1])
    return [s / max(1, len(frames)) for s in sums]


# --- loss -------------------------------------------------------------------------------------


def rate_loss(tf: VCT, seq: torch.Tensor, log_step: torch.Tensor, side: torch.Tensor | None = None) -> torch.Tensor:
    """Bits per pixel (N,) of frame t of each sequence y (N, 3, C, h, w) given frames t-2 and t-1,
    at quantisation steps 2^log_step (N,); side (N, 2, C, h, w): frame t's hyperprior mean and scale
    (models with config.side). The side information's own bits are not counted here."""
    n, _, c, h, w = seq.shape
    step = (2.0 ** log_step).view(n, 1, 1, 1, 1).to(seq.dtype)
    # what the decoder holds (up to the coding's mean shift): rounded latents, for the previous frames
    # and the already-decoded tokens of the block; exact zeros where a channel is unused, as in coding
    q = torch.round(seq / step) * step
    cfg = tf.config
    per = (h // cfg.block) * (w // cfg.block)
    ls = log_step.repeat_interleave(per)
    cur = blocks_of(seq[:, 2], cfg.block)  # (N * per, w^2, C): the values to code
    side_tokens = None if side is None else (blocks_of(side[:, 0], cfg.block), blocks_of(side[:, 1], cfg.block))
    mean, scale = tf(blocks_of(q[:, 2], cfg.block), windows_of(q[:, 1], cfg), windows_of(q[:, 0], cfg), ls, side_tokens)
    s = step.view(n, 1, 1).repeat_interleave(per, 0)  # (N * per, 1, 1)
    r = (cur - mean) / s
    r = r + (torch.round(r) - r).detach()  # the symbol coding will write (straight-through gradient)
    lik = gaussian_likelihood(r, scale / s)
    bits = -torch.log2(lik.clamp_min(1e-9)).sum((1, 2)).view(n, per).sum(1)
    return bits / (h * w * LATENT_STRIDE**2)


@torch.no_grad()
def validate(tf: VCT, val: torch.Tensor, val_side: torch.Tensor | None = None, z_bpp: float = 0.0) -> list[float]:
    """Mean bpp of the validation sequences at each of VAL_LOG_STEPS, the side
    information's `z_bpp` included for models that use it."""
    tf.eval()
    out = []
    for ls in VAL_LOG_STEPS:
        bpp = torch.cat([rate_loss(tf, val[i : i + 32].float(), torch.full((len(val[i : i + 32]),), ls),
                                   None if val_side is None else val_side[i : i + 32].float())
                         for i in range(0, len(val), 32)])
        out.append(float(bpp.mean()) + (z_bpp if val_side is not None else 0.0))
    tf.train()
    return out


@torch.no_grad()
def side_of(ae, y: torch.Tensor, batch: int = 64) -> tuple[torch.Tensor, float]:
    """The hyperprior's (mean, scale) of latents y (N, C, h, w) -> (N, 2, C, h, w) float16, and the
    mean bits per pixel of their z (likelihood of the rounded z: what an inter frame's side costs)."""
    module = ae.module
    med = module.z_density.medians.view(1, -1, 1, 1)
    out, z_bits = [], 0.0
    for i in range(0, len(y), batch):
        yb = y[i : i + batch].float()
        z_hat = torch.round(module.h_a(yb) - med) + med
        mean, scale = module.entropy_parameters(z_hat)
        out.append(torch.stack([mean, scale], 1).half())
        z_bits += float(-torch.log2(module.z_density.likelihood(z_hat).clamp_min(1e-9)).sum())
    return torch.cat(out), z_bits / (len(y) * y.shape[2] * y.shape[3] * LATENT_STRIDE**2)


# --- the loop ---------------------------------------------------------------------------------


def _data(cfg: VideoTrainConfig, ae, run_dir: Path, log) -> dict:
    from codec.train.data import list_images

    key = json.dumps({"ae": ae.sha256, "crop": cfg.crop, "video": cfg.video_samples, "photo": cfg.photo_samples,
                      "val": cfg.val_samples, "eval_frames": cfg.eval_frames, "seed": cfg.seed}, sort_keys=True)
    cache = run_dir / "latents.pt"
    if cache.exists():
        saved = torch.load(cache, weights_only=True)
        if saved.get("key") == key:
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
        "train": latents_of(ae, vids + photos),
        "val": latents_of(ae, val_seqs),
        "val_intra": intra_bpp(ae, [s[2] for s in val_seqs], VAL_LOG_STEPS),
    }
    torch.save(saved, cache)
    log(f"latents ready ({time.monotonic() - t0:.0f} s)")
    return saved


def train_video(cfg: VideoTrainConfig, resume: bool = True, log=print, on_step=None) -> Path:
    from codec.weights import load_model

    if cfg.crop % 64:
        raise ValueError(f"crop must be a multiple of 64, got {cfg.crop}")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / "checkpoint.pt"
    torch.manual_seed(cfg.seed)
    ae = load_model(cfg.ae)
    device = torch.device(cfg.device)
    tf_cfg = VCTConfig.preset(cfg.config, ae.module.config.M)
    tf = VCT(tf_cfg).to(device)
    opt = torch.optim.Adam(tf.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    step, elapsed = run.resume(ckpt_path, tf, opt, gen, log) if resume else (0, 0.0)
    data = _data(cfg, ae, run_dir, log)
    if tf_cfg.side and "train_side" not in data:
        data["train_side"], _ = side_of(ae, data["train"][:, 2])
        data["val_side"], data["val_z_bpp"] = side_of(ae, data["val"][:, 2])
        torch.save(data, run_dir / "latents.pt")
    train, val = data["train"], data["val"].to(device)
    train_side = data["train_side"] if tf_cfg.side else None
    val_side = data["val_side"].to(device) if tf_cfg.side else None
    z_bpp = data.get("val_z_bpp", 0.0)
    log(f"{len(train)} training and {len(val)} validation sequences, {sum(p.numel() for p in tf.parameters())} "
        f"parameters; all-intra (the image model, real streams) codes the validation frames at "
        + ", ".join(f"{b:.4f}" for b in data["val_intra"]) + f" bpp for log2 steps {VAL_LOG_STEPS}")

    def save(step: int, elapsed: float) -> None:
        run.save(ckpt_path, tf, opt, gen, step, elapsed, config=asdict(cfg), tf_config=tf_cfg.to_dict(),
                 val_intra=data["val_intra"])

    def loss() -> torch.Tensor:
        idx = torch.randint(len(train), (cfg.batch,), generator=gen)
        seq = train[idx].float()
        side = train_side[idx].float() if train_side is not None else None
        if torch.rand((), generator=gen) < 0.5:  # mirror (the side information was computed unmirrored)
            seq = seq.flip(-1)
            side = side.flip(-1) if side is not None else None
        log_step = cfg.min_log_step + (cfg.max_log_step - cfg.min_log_step) * torch.rand(cfg.batch, generator=gen)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            return rate_loss(tf, seq.to(device), log_step.to(device), side.to(device) if side is not None else None).mean()

    run.fit(cfg, tf, opt, step, elapsed, loss=loss, save=save, validate=lambda: validate(tf, val, val_side, z_bpp),
            log_path=run_dir / "log.csv", val_columns=[f"val_bpp_{ls:g}" for ls in VAL_LOG_STEPS], log=log,
            on_step=on_step)
    return ckpt_path


def export_video(checkpoint: Path, model_id: str, *, training: dict | None = None, folder: Path | None = None,
                 make_default: bool = False, force: bool = False) -> dict:
    """Writes <folder>/<model_id>.safetensors (the transformer; the image model is referenced by id
    and sha256) and its manifest entry."""
    from codec.train.export import write_model
    from codec.weights import load_model, serialize_vct

    if not Path(checkpoint).is_file():
        from codec.errors import InputError

        raise InputError(f"no checkpoint at {checkpoint}")
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    run_cfg = state["config"]
    ae = load_model(run_cfg["ae"])
    tf = VCT(VCTConfig(**state["tf_config"]))
    tf.load_state_dict(state["model"])
    data = serialize_vct(tf, model_id)
    entry = write_model(data, model_id, {
        "family": "vct", "config": {"ae": ae.model_id, "ae_sha256": ae.sha256, "tf": tf.config.to_dict()},
        "training": {"autoencoder": run_cfg["ae"], "steps": int(state["step"]),
                     "minutes": round(float(state["elapsed"]) / 60, 1), "crop": run_cfg["crop"],
                     "data": "DATA/video (frames after each clip's evaluation window) + synthetic motion "
                             "from DATA/train photos", **(training or {})},
    }, folder=folder, make_default=False, force=force)
    from codec.zoo import read_manifest, write_manifest

    manifest = read_manifest(folder)
    if make_default or not manifest.get("default_video"):
        manifest["default_video"] = model_id
        write_manifest(manifest, folder)
    return entry


def main(argv=None, prog: str = "codec train video") -> None:
    cfg, resume = parse_config(argv, VideoTrainConfig, prog, __doc__)
    train_video(cfg, resume=resume, log=lambda s: print(s, flush=True, file=sys.stdout))


def export_main(argv=None, prog: str = "codec train video-export") -> None:
    p = ArgumentParser(prog=prog, description="Export a VCT training run to weights/.")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--model-id", required=True)
    p.add_argument("--training", default="{}", help="JSON facts about the run for the manifest")
    p.add_argument("--weights-dir", default=None)
    p.add_argument("--default", action="store_true", help="make it the default video model")
    p.add_argument("--force", action="store_true")
    a = p.parse_args(argv)
    entry = export_video(Path(a.checkpoint), a.model_id, training=json.loads(a.training), folder=a.weights_dir,
                         make_default=a.default, force=a.force)
    print(json.dumps({k: entry[k] for k in ("file", "sha256", "bytes")}))


if __name__ == "__main__":
    main(prog="python -m codec.train.video")
