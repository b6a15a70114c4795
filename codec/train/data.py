"""Training photos held in memory as uint8 tensors; random crops and flips drawn on the device.

The split is deterministic: every file whose name hashes into the validation bucket (and the
demo sample, skimage_coffee) is held back, so the demo never shows a training image.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

EXTENSIONS = (".png", ".jpg", ".jpeg")
HELD_OUT = {"skimage_coffee.png"}


def is_validation(name: str, fraction: float = 0.05) -> bool:
    if name.endswith(".png.jpg"):  # a PNG re-encoded by scripts/pack_train_subset.py
        name = name[: -len(".jpg")]
    if name in HELD_OUT:
        return True
    h = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)
    return h < fraction * 16**8


def list_images(folder: Path, split: str) -> list[Path]:
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in EXTENSIONS)
    want_val = split == "val"
    return [p for p in files if is_validation(p.name) == want_val]


def load_photo(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB")).copy()


class CropSampler:
    """Random crop x flip batches from images kept on `device`. Output float (B,3,S,S) in [0,1]."""

    def __init__(self, paths: list[Path], crop: int, device: torch.device, workers: int = 4, downscale: float = 1.0):
        with ThreadPoolExecutor(workers) as pool:
            arrays = list(pool.map(load_photo, paths))
        self.images = [torch.from_numpy(a).permute(2, 0, 1).contiguous().to(device) for a in arrays if min(a.shape[:2]) >= crop]
        if not self.images:
            raise ValueError(f"no training image of at least {crop}x{crop} among {len(paths)} files")
        self.crop = crop
        self.device = device
        self.downscale = max(1.0, float(downscale))  # crops of up to crop * downscale, resized to crop

    def sample(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        idx = torch.randint(len(self.images), (batch,), generator=generator)
        out = []
        for i in idx.tolist():
            img = self.images[i]
            _, h, w = img.shape
            size = self.crop
            if self.downscale > 1.0:  # random downscaling: a larger crop, area-resized to `crop`
                s = 1.0 + (self.downscale - 1.0) * torch.rand(1, generator=generator).item()
                size = min(int(round(self.crop * s)), h, w)
            top = int(torch.randint(h - size + 1, (1,), generator=generator))
            left = int(torch.randint(w - size + 1, (1,), generator=generator))
            patch = img[:, top : top + size, left : left + size]
            if size != self.crop:
                patch = torch.nn.functional.interpolate(patch[None].float(), size=(self.crop, self.crop), mode="area")
                patch = patch[0].round_().clamp_(0, 255).to(img.dtype)
            if torch.rand(1, generator=generator).item() < 0.5:
                patch = patch.flip(-1)
            out.append(patch)
        return torch.stack(out).float().div_(255.0)


def fixed_crops(paths: list[Path], crop: int, limit: int = 8) -> torch.Tensor:
    """Centre crops of the first `limit` validation images: a fixed validation batch (B,3,S,S)."""
    crops = []
    for p in paths:
        a = load_photo(p)
        h, w = a.shape[:2]
        if min(h, w) < crop:
            continue
        t, l = (h - crop) // 2, (w - crop) // 2
        crops.append(torch.from_numpy(a[t : t + crop, l : l + crop]).permute(2, 0, 1))
        if len(crops) == limit:
            break
    if not crops:
        raise ValueError(f"no validation image of at least {crop}x{crop}")
    return torch.stack(crops).float().div_(255.0)
