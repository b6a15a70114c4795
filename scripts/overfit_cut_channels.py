"""Channels the synthesis's ReLU cuts off when a fit starts from the shipped start (issue 15,
results/overfit/collapse-r9.md): fits a whole Kodak image for a few hundred steps and prints, every
100 steps, the PSNR and the share of pixels above zero in each channel of the MLP's image and after
the first 3x3 layer (the ReLU's input).

    python scripts/overfit_cut_channels.py kodim10 80 r10|zeroconv|r11 [steps] [size]

r10: revision 10's start (the start's networks, the MLP's output bias set to the mean colour);
zeroconv: that with the start's 3x3 layers at zero; r11: the encoder's own start (Fit.start).
"""
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from codec.io import read_image  # noqa: E402
from codec.models.overfit import PRESETS, OverfitModel, conv3x3  # noqa: E402
from codec.pipeline import overfit  # noqa: E402
from codec.pipeline.overfit_fit import Fit, FitSchedule  # noqa: E402
from codec.pipeline.overfit_start import apply, load_start  # noqa: E402
from codec.settings import data_dir  # noqa: E402


def above_zero(model) -> tuple[list, list]:
    """Share of pixels above zero per channel: the MLP's image, and after the first 3x3 layer."""
    with torch.no_grad():
        img = model.synthesis.forward_mlp(model.dense(torch.round(model.canvas) * model.mask))
        conv = model.synthesis.convs[0]
        mid = img + conv3x3(img, conv.weight, conv.bias)
        return ([round(float((img[k] > 0).float().mean()), 3) for k in range(3)],
                [round(float((mid[k] > 0).float().mean()), 3) for k in range(3)])


def main() -> None:
    image, quality, variant = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    steps = int(sys.argv[4]) if len(sys.argv) > 4 else 300
    size = sys.argv[5] if len(sys.argv) > 5 else "medium"
    torch.set_num_threads(1)
    x = read_image(data_dir() / "kodak" / f"{image}.png").pixels
    fit = Fit(x, PRESETS[size], overfit.rate_for(quality).lam, FitSchedule(iterations=1550, candidates=1, warmup=0),
              start=load_start(size).tensors)

    def start(seed):
        if variant == "r11":
            return Fit.start(fit, seed)
        model = OverfitModel(fit.config, fit.h, fit.w, seed=seed)
        apply(model, fit.start_tensors)
        with torch.no_grad():
            model.synthesis.mlp[-1].bias.copy_(fit.x.mean(dim=(1, 2)))
            if variant == "zeroconv":
                for conv in model.synthesis.convs:
                    conv.weight.zero_()
                    conv.bias.zero_()
        return model

    fit.start = start
    model = fit.start(0)
    print(image, quality, variant, "step 0", above_zero(model), flush=True)

    def report(i, n, bpp, psnr):
        if i % 100 == 0:
            print(f"step {i} bpp {bpp:.4f} PSNR {psnr:.2f}", above_zero(model), flush=True)

    fit._optimise(model, 0, steps, 1550, report)
    cost = fit.hard_cost(model)
    print("hard cost", round(cost[0], 4), "PSNR", round(10 * math.log10(255 ** 2 / cost[2]), 2))


if __name__ == "__main__":
    main()
