"""Transformer pieces shared by the entropy models (M2T, VCT): multi-head attention written out
(the same operations in the same order everywhere, so cached and one-pass forms agree) and the
pre-norm self-attention layer."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def split_heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, n, d) -> (B, heads, n, d / heads)."""
    b, n, d = t.shape
    return t.view(b, n, heads, d // heads).transpose(1, 2)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Scaled dot-product attention of (B, heads, n, d/heads) queries over keys and values; mask
    (n, m) bool, True = attend, or None. Returns (B, n, d)."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    att = torch.softmax(scores, dim=-1) @ v
    b, _, n, _ = att.shape
    return att.transpose(1, 2).reshape(b, n, -1)


class Block(nn.Module):
    """Pre-norm transformer layer; attention takes extra (cached) keys and values in front."""

    def __init__(self, width: int, heads: int, mlp_ratio: int):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.ln2 = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, mlp_ratio * width)
        self.fc2 = nn.Linear(mlp_ratio * width, width)

    def keys_values(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q, k, v = self.qkv(self.ln1(h)).chunk(3, dim=-1)
        return split_heads(q, self.heads), split_heads(k, self.heads), split_heads(v, self.heads)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None,
                past: tuple[torch.Tensor, torch.Tensor] | None = None):
        """h (B, n, d); mask (n, n_past + n) bool (True = attend) or None (all); returns (h, (k, v))
        with this call's own keys and values (B, heads, n, d / heads)."""
        q, k, v = self.keys_values(h)
        keys, values = (torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)) if past is not None else (k, v)
        h = h + self.proj(attend(q, keys, values, mask))
        h = h + self.fc2(F.gelu(self.fc1(self.ln2(h))))
        return h, (k, v)
