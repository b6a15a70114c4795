"""Latents of whole clips, computed once by the frozen image model and cached, for training VCT on
runs of consecutive frames (a recurrent state needs more than the three frames of
`codec.train.video`'s sequences).

    DATA/video clip -> per clip, `per_clip` crop windows (crop x crop, fixed for the clip) over its
        frames first..last-1 -> g_a -> y (n, C, crop/16, crop/16) float16  -> one track per window
        -> h_a -> z symbols (n, Nz, crop/64, crop/64) int16 -> h_s -> (mean, scale) float16
    runs(...): `length` consecutive frames of random tracks -> (N, length, ...) batches

The transforms are frozen, so nothing of this changes during training: a training step then costs
the entropy model alone (scripts/bench_train_cached.py measures it against running g_a per step).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from codec.train.clips import VIDEO_EXTENSIONS, clip_frames, clip_info, crop_at, module_on


@torch.no_grad()
def analyse(module, crops: list[np.ndarray], batch: int, device) -> dict:
    """(n, crop, crop, 3) uint8 frames of one track -> its latents, z symbols and side information."""
    med = module.z_density.medians.view(1, -1, 1, 1)
    ys, zs, sides = [], [], []
    for i in range(0, len(crops), batch):
        x = torch.from_numpy(np.stack(crops[i : i + batch])).permute(0, 3, 1, 2).float().div_(255.0)
        y = module.g_a(x.to(device or "cpu"))
        z = torch.round(module.h_a(y) - med)
        mean, scale = module.entropy_parameters(z + med)
        ys.append(y.half().cpu())
        zs.append(z.clamp(-32768, 32767).to(torch.int16).cpu())
        sides.append(torch.stack([mean, scale], 1).half().cpu())
    return {"y": torch.cat(ys), "z": torch.cat(zs), "side": torch.cat(sides)}


def clip_latents(ae, folder: Path, crop: int, first: int, last: int | None, per_clip: int,
                 rng: np.random.Generator, log=print, batch: int = 8, device=None) -> list[dict]:
    """The tracks of every clip of `folder` at least crop x crop with 8 or more frames in first..last-1
    (None: to the end): `per_clip` windows each, at random places drawn once per clip. A track:
    {"clip", "top", "left", "y", "z", "side"}."""
    module = module_on(ae, device)
    tracks = []
    for path in sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS):
        frames, h, w = clip_info(path)
        stop = frames if last is None else min(frames, last)
        if min(h, w) < crop or stop - first < 8:
            continue
        places = [(int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))) for _ in range(per_clip)]
        crops: list[list[np.ndarray]] = [[] for _ in places]
        for i, frame in enumerate(clip_frames(path)):
            if i >= stop:
                break
            if i >= first:
                for k, (r, c) in enumerate(places):
                    crops[k].append(crop_at(frame, r, c, crop))
        for (r, c), track in zip(places, crops):
            if len(track) >= 8:
                tracks.append({"clip": path.name, "top": r, "left": c, **analyse(module, track, batch, device)})
        log(f"{path.name}: {len(crops[0])} frames x {len(places)} windows")
    return tracks


def runs(tracks: list[dict], length: int, count: int, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    """`count` runs of `length` consecutive frames, each from a random track at a random start (tracks
    drawn in proportion to their starts): y (N, L, C, h, w), z (N, L, Nz, h/4, w/4), side
    (N, L, 2, C, h, w), all float32. Tracks of one batch share their latent size (one crop)."""
    starts = torch.tensor([max(0, len(t["y"]) - length + 1) for t in tracks], dtype=torch.float64)
    picks = torch.multinomial(starts, count, replacement=True, generator=gen).tolist()
    ys, zs, sides = [], [], []
    for k in picks:
        t = tracks[k]
        s = int(torch.randint(len(t["y"]) - length + 1, (), generator=gen))
        ys.append(t["y"][s : s + length])
        zs.append(t["z"][s : s + length])
        sides.append(t["side"][s : s + length])
    return torch.stack(ys).float(), torch.stack(zs).float(), torch.stack(sides).float()


def fixed_runs(tracks: list[dict], length: int) -> tuple[torch.Tensor, ...]:
    """Every non-overlapping run of `length` frames of every track, from its first frame (validation)."""
    ys, zs, sides = [], [], []
    for t in tracks:
        for s in range(0, len(t["y"]) - length + 1, length):
            ys.append(t["y"][s : s + length])
            zs.append(t["z"][s : s + length])
            sides.append(t["side"][s : s + length])
    return torch.stack(ys).float(), torch.stack(zs).float(), torch.stack(sides).float()
