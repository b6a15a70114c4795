"""How the encoders' optimisations run on this machine: bfloat16 only where the hardware computes it
(codec.pipeline.precision) and freed memory kept in the heap (codec.pipeline.allocator)."""

import platform
import subprocess
import sys

import numpy as np
import pytest
import torch

from codec.models.overfit import OverfitConfig
from codec.pipeline import precision
from codec.pipeline.overfit_fit import Fit, FitSchedule


def _fit(**schedule) -> Fit:
    pixels = np.zeros((8, 8, 3), np.uint8)
    return Fit(pixels, OverfitConfig(arm_context=6, arm_hidden=1, widths=(4,), convs=1), 0.01, FitSchedule(**schedule))


@pytest.mark.parametrize("native", [False, True])
def test_bfloat16_follows_the_hardware_by_default(monkeypatch, native):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    with _fit().autocast():
        assert torch.is_autocast_enabled("cpu") == native
    for forced in (False, True):  # an explicit setting wins
        with _fit(bf16=forced).autocast():
            assert torch.is_autocast_enabled("cpu") == forced


def test_amx_counts_as_native_bfloat16(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert precision.use_bf16(None) and not precision.use_bf16(False)


HEAP_PROBE = """
import ctypes, sys, torch
from codec.pipeline import allocator

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "retain":
    assert allocator.retain_freed_memory()
x = torch.ones(1 << 24)  # 64 MiB: past glibc's largest mmap threshold (32 MiB)
del x
print(libc.mallinfo2().fordblks)  # free bytes the heap keeps for the next step
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_freed_tensors_stay_in_the_heap():
    def kept(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", HEAP_PROBE, mode], capture_output=True, text=True, check=True)
        return int(out.stdout.strip().splitlines()[-1])

    assert kept("retain") >= 1 << 26
    assert kept("default") < 1 << 26  # glibc's default: the block went back to the system
