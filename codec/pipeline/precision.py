"""Whether the encoders' optimisations run their matrix products in bfloat16 on this machine.

bfloat16 autocast pays only where the hardware computes in it: on a CPU with AVX-512 BF16 or AMX
it cut the overfitted family's step 1.6-2x (an AMD EPYC with AVX-512 BF16, session 10); on a CPU
without them (an AMD EPYC with AVX2 only) every product is emulated and converted, and the same
step was 2-3x slower than float32 (scripts/bench_overfit.py; results/overfit/speed.md). CUDA GPUs
of the last generations all compute bfloat16 natively. So the default is decided per device.
"""

from __future__ import annotations

import torch


def native_bf16(device: str = "cpu") -> bool:
    """True where bfloat16 matrix products run natively on `device` ("cpu" or "cuda")."""
    if torch.device(device).type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    cpu = torch.cpu
    return bool(getattr(cpu, "_is_avx512_bf16_supported", lambda: False)()
                or getattr(cpu, "_is_amx_tile_supported", lambda: False)())


def use_bf16(setting: bool | None, device: str = "cpu") -> bool:
    """A schedule's bf16 setting resolved: None (the default) follows the hardware."""
    return native_bf16(device) if setting is None else bool(setting)
