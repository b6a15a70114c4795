"""torch.compile with a safe fallback: encoders compile their hot function when a C++ compiler is
present and run it eager otherwise (or after any compiler failure), with the same result up to
float rounding. Shapes are static (dynamic=False): one compile per image size."""

from __future__ import annotations

import shutil

import torch

CXX = ("c++", "g++", "clang++")  # torch.compile's CPU backend builds C++ kernels with one of these


def can_compile() -> bool:
    return any(shutil.which(c) for c in CXX)


class CompiledOrEager:
    """`fn` through torch.compile, or eager where compiling is impossible (no C++ compiler, an
    unsupported platform): the first failure switches to eager for good."""

    def __init__(self, fn):
        self.eager = fn
        self.compiled = torch.compile(fn, dynamic=False) if can_compile() else None

    def __call__(self, *args):
        if self.compiled is not None:
            try:
                return self.compiled(*args)
            except Exception:  # any compiler failure: fall back, never fail the encode
                self.compiled = None
        return self.eager(*args)
