"""Does storing the shipped image models' weights in 16 bits change RD? The parameters rounded to
float16 or bfloat16 (the coding tables stay float64, recomputed from them by from_module), the 8 fixed
Kodak images at step 1, whole files; totals of bytes and mean PSNR-RGB against the float32 weights.

    python scripts/weights_16bit.py        (one thread; about 2 minutes on 2 cores)
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codec.io import read_image  # noqa: E402
from codec.metrics import psnr  # noqa: E402
from codec.pipeline.hyperprior import from_module  # noqa: E402
from codec.pipeline.image import compress, decompress  # noqa: E402
from codec.settings import data_dir  # noqa: E402
from codec.weights import load_model  # noqa: E402

MODELS = ("hyperprior-mse-l0067", "hyperprior-mse-l025")
IMAGES = ("01", "04", "07", "10", "13", "16", "19", "22")


def rounded(model, dtype):
    module = copy.deepcopy(model.module)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p.to(dtype).to(torch.float32))
    return from_module(module, f"{model.model_id}-{str(dtype).split('.')[-1]}")


def main() -> None:
    torch.set_num_threads(1)
    images = [read_image(data_dir() / "kodak" / f"kodim{i}.png").pixels for i in IMAGES]
    for model_id in MODELS:
        base = load_model(model_id)
        variants = {"float32": base, "float16": rounded(base, torch.float16), "bfloat16": rounded(base, torch.bfloat16)}
        totals = {}
        for name, model in variants.items():
            size, quality = 0, 0.0
            for px in images:
                enc = compress(model, px, 1.0)
                size += len(enc.data)
                quality += psnr(decompress(enc.data, model).pixels, px) / len(images)
            totals[name] = (size, quality)
        b0, p0 = totals["float32"]
        for name, (b, p) in totals.items():
            print(f"| {model_id} | {name} | {b:,} | {p:.3f} | {100 * (b / b0 - 1):+.2f}% bytes, {p - p0:+.3f} dB |")


if __name__ == "__main__":
    main()
