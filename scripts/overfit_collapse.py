"""The revision-9 plateau (issue 15): the medium decoder fitted from the shipped medium start, from
scratch, or from the start with the output bias at the image's mean colour (revision 10), on a
centre crop of a Kodak image; prints the hard cost, PSNR and the PSNR every few checks.

    python scripts/overfit_collapse.py kodim07 80 start|scratch|startmean 800 384
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import time, math, torch, numpy as np
torch.set_num_threads(1)
from codec.io import read_image, centre_crop
from codec.models.overfit import PRESETS
from codec.pipeline import overfit
from codec.pipeline.overfit_fit import Fit, FitSchedule
from codec.pipeline.overfit_start import load_start
img, q, arm, steps, crop = sys.argv[1], float(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
x = centre_crop(read_image(f"../shared/data/kodak/{img}.png").pixels, crop)
rate = overfit.rate_for(q)
start = load_start("medium").tensors if arm != "scratch" else None
fit = Fit(x, PRESETS["medium"], rate.lam, FitSchedule(iterations=steps, candidates=1, warmup=0), start=start)
if arm == "start":  # revision 9: the start's own output bias
    with_mean = fit.start

    def start_as_r9(seed):
        from codec.models.overfit import OverfitModel
        from codec.pipeline.overfit_start import apply

        m = OverfitModel(fit.config, fit.h, fit.w, seed=seed)
        apply(m, fit.start_tensors)
        return m
    fit.start = start_as_r9
if arm == "startmean":
    base = fit.start
    def start_mean(seed):
        m = base(seed)
        with torch.no_grad():
            m.synthesis.mlp[-1].bias.copy_(fit.x.mean(dim=(1, 2)))
        return m
    fit.start = start_mean
t0 = time.time()
log = []
model = fit.run(lambda i, n, bpp, psnr: log.append((i, round(bpp, 4), round(psnr, 2))))
print(img, q, arm, steps, crop, "hard", [round(v, 4) for v in fit.hard_cost(model)], "psnr", round(10*math.log10(255**2/fit.hard_cost(model)[2]),2), round(time.time()-t0), flush=True)
print("  ", log[::max(1, len(log)//8)], flush=True)
