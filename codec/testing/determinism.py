"""Decode a bitstream in a fresh process under chosen threads and CPU kernels, and hash what it computed.

    python -m codec.testing.determinism BITSTREAM PIXELS_NPY     # one probe; prints one JSON line

A setting is (torch intra-op threads, ATen's CPU kernels, oneDNN's instruction set), passed to the
process as OMP_NUM_THREADS, ATEN_CPU_CAPABILITY (default, avx2, avx512) and ONEDNN_MAX_CPU_ISA (AVX2,
or unset for the machine's best, which stands in for another machine's convolution kernels); they are
read when torch loads, hence one process per setting. Each probe records the sha256 (16 hex digits) of
the entropy parameters (images: the raw float64 hyperprior output before snapping), of the decoded
symbols or latents, and of the pixels, which it saves as .npy for `matrix` to compare.
scripts/determinism.py runs the whole matrix; tests/test_determinism.py a few settings.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from codec.settings import REPO_ROOT

__all__ = ["SETTINGS", "cpu_has_avx512", "matrix", "probe", "run_probe", "setting_env"]

SETTINGS = [(t, cap, isa) for isa in ("best", "AVX2") for cap in ("default", "avx2", "avx512") for t in (1, 2, 8)]
"""Every (threads, ATen capability, oneDNN ISA) of the full matrix; avx512 only where the CPU has it."""


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def probe(path: str, pixels_out: str) -> dict:
    """Decode ``path`` in this process; hashes of what it computed (and the pixels saved as .npy).

    Args:
        path: an image or video bitstream.
        pixels_out: where to save the decoded pixels, (N, H, W, 3) uint8 (N = 1 for an image).

    Returns:
        {"threads", "capability", "onednn_isa", "symbols", "pixels"} and, for an image, "params".
    """
    import numpy as np
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))  # as asked, even above the cores
    data = Path(path).read_bytes()
    from codec.container import header_kind

    row = {"threads": torch.get_num_threads(), "capability": torch.backends.cpu.get_cpu_capability(),
           "onednn_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "best")}
    if header_kind(data) == 0:
        from codec.container import read_container
        from codec.pipeline import hyperprior, image

        container = read_container(data)
        model = image.load_model(container.header.model_id)
        hp = getattr(model, "hp", model)  # M2T models: the hyperprior's side information
        if hasattr(hp, "entropy"):  # the overfitted family's parameters follow from its symbols exactly
            _, scale = hp.entropy.parameters(hyperprior.decode_side(hp, container))
            row.update(params=_sha(scale.numpy().tobytes()))
        dec = image.decompress(container, model)
        row.update(symbols=_sha(dec.y_sym.tobytes()))
        pixels = dec.pixels[None]
    else:
        from codec.testing.digests import decode_video_with_latents_sha256

        frames, latents_sha = decode_video_with_latents_sha256(data)
        row.update(symbols=latents_sha[:16])
        pixels = np.stack(frames)
    row["pixels"] = _sha(pixels.tobytes())
    np.save(pixels_out, pixels)
    return row


def setting_env(threads: int, cap: str, isa: str) -> dict:
    """The environment of a process under a setting, with this checkout on PYTHONPATH."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), ATEN_CPU_CAPABILITY=cap, PYTHONPATH=str(REPO_ROOT))
    env.pop("ONEDNN_MAX_CPU_ISA", None)
    if isa != "best":
        env["ONEDNN_MAX_CPU_ISA"] = isa
    return env


def run_probe(path: Path, out: Path, threads: int, cap: str, isa: str) -> dict:
    """`probe` of ``path`` in a fresh process under the setting (threads, cap, isa); its row."""
    res = subprocess.run([sys.executable, "-m", "codec.testing.determinism", str(path), str(out)],
                         env=setting_env(threads, cap, isa), capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def cpu_has_avx512() -> bool:
    """Whether this CPU has AVX-512 (so that ATen's avx512 kernels can run)."""
    try:
        return "avx512f" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def matrix(bitstream: Path, work: Path, settings) -> list[dict]:
    """`run_probe` of ``bitstream`` under each setting, the first one the reference.

    Returns:
        The probes' rows, each with "setting" (in words), "max_diff" (the largest difference of a pixel
        value from the reference's) and "differing" (the fraction of pixel values that differ).
    """
    import numpy as np

    rows, ref = [], None
    for i, (t, cap, isa) in enumerate(settings):
        out = work / f"pixels_{i}.npy"
        row = run_probe(bitstream, out, t, cap, isa)
        pixels = np.load(out).astype(np.int16)
        if ref is None:
            ref = pixels
        row["max_diff"] = int(np.abs(pixels - ref).max())
        row["differing"] = float((pixels != ref).mean())
        row["setting"] = f"threads {t}, ATen {cap}, oneDNN {isa}"
        rows.append(row)
    return rows


if __name__ == "__main__":
    print(json.dumps(probe(*sys.argv[1:3])))
