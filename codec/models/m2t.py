"""M2T entropy model (Mentzer, Agustsson, Tschannen, ICCV 2023: "M2T: Masking Transformers Twice
for Faster Decoding of Neural Image Compression").

Tokens are the C-channel columns of the latent y, coded in independent P x P patches (the last,
partial patches keep their valid positions only). A fixed schedule splits each patch into S groups:
positions come from Roberts' R2 low-discrepancy sequence quantised to the grid (QLDS), and the
cumulative group sizes grow as T * (s / S)^alpha, so the first steps code a few far-apart tokens and
the last steps many tokens with dense context. Step s predicts a Gaussian (mean, scale) per channel
of every token in group s from the tokens of groups < s.

The transformer runs two streams through shared pre-norm layers:
  - value stream: embed(y_hat / delta) + position + quality, one token per already-coded position;
    a value token of group g attends to the value tokens of groups <= g;
  - query stream: mask token + position + quality, one token per position to predict; a query of
    group g attends to the value tokens of groups < g and to the queries of its own group.
One forward pass with this block-triangular mask gives every step's parameters (teacher forcing,
the M2T training). Decoding runs step by step and caches each layer's keys and values of the
value tokens, so step s only pushes the new group's tokens through the layers; both forms compute
the same function, which `tests/test_m2t.py` checks (and checks that it fails without the mask).

`forward_mt` is the plain MT alternative (one stream, random masking, full attention) used as the
training baseline: it needs S full passes to decode.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from codec.entropy.gaussian import SCALE_MIN
from codec.models.transformer import Block

PLASTIC = 1.324717957244746  # the plastic number: R2 uses 1 / rho and 1 / rho^2


@dataclass(frozen=True)
class M2TConfig:
    channels: int = 192  # C, latent channels (tokens are C-vectors)
    width: int = 256  # transformer width
    layers: int = 6
    heads: int = 8
    mlp_ratio: int = 4
    patch: int = 16  # P: tokens per patch side
    steps: int = 8  # S
    alpha: float = 2.2
    delta: float = 5.0  # input and output scaling of latent values
    side: bool = False  # hyperprior side stream: its (mean, scale) per token as input, output as a correction

    @classmethod
    def preset(cls, name: str, channels: int = 192) -> "M2TConfig":
        presets = {
            "tiny": dict(width=32, layers=2, heads=2, patch=4, steps=4),
            "tiny-side": dict(width=32, layers=2, heads=2, patch=4, steps=4, side=True),
            "small": dict(width=192, layers=4, heads=6),
            "base": dict(width=256, layers=6, heads=8),
            "small-side": dict(width=192, layers=4, heads=6, side=True),
            "base-side": dict(width=256, layers=6, heads=8, side=True),
        }
        if name not in presets:
            raise KeyError(f"unknown M2T config {name!r}; valid: {', '.join(presets)}")
        return cls(channels=channels, **presets[name])

    def to_dict(self) -> dict:
        return asdict(self)


# --- the schedule -----------------------------------------------------------------------------


def qlds_order(patch: int) -> list[tuple[int, int]]:
    """Every (row, col) of a patch x patch grid once, in the order Roberts' R2 sequence visits them
    (points (0.5 + n / rho, 0.5 + n / rho^2) mod 1, quantised; repeats skipped). Pure Python floats:
    IEEE double arithmetic, identical on every machine."""
    a1, a2 = 1.0 / PLASTIC, 1.0 / PLASTIC**2
    seen: set[tuple[int, int]] = set()
    order: list[tuple[int, int]] = []
    n, limit = 0, 1000 * patch * patch
    while len(order) < patch * patch and n < limit:
        u, v = (0.5 + a1 * n) % 1.0, (0.5 + a2 * n) % 1.0
        pos = (int(u * patch), int(v * patch))
        if pos not in seen:
            seen.add(pos)
            order.append(pos)
        n += 1
    order += [(r, c) for r in range(patch) for c in range(patch) if (r, c) not in seen]  # never hit for P <= 64
    return order


def group_sizes(tokens: int, steps: int, alpha: float) -> list[int]:
    """Sizes of the S groups: cumulative counts round(T * (s / S)^alpha), each group at least one."""
    steps = max(1, min(steps, tokens))
    cum = [0]
    for s in range(1, steps + 1):
        target = tokens if s == steps else int(round(tokens * (s / steps) ** alpha))
        cum.append(min(tokens - (steps - s), max(cum[-1] + 1, target)))
    return [b - a for a, b in zip(cum, cum[1:])]


@dataclass(frozen=True)
class Schedule:
    """The coding order of one patch shape: `positions` (T,) flat indexes r * P + c into the full
    patch, sorted by group then QLDS rank; `groups` (T,) their step; `bounds[s]:bounds[s+1]` the
    slice of step s."""

    positions: torch.Tensor
    groups: torch.Tensor
    bounds: tuple[int, ...]

    @property
    def tokens(self) -> int:
        return int(self.positions.numel())


@functools.lru_cache(maxsize=64)
def schedule(patch: int, steps: int, alpha: float, rows: int | None = None, cols: int | None = None) -> Schedule:
    """The schedule of a full patch, or of a partial one (rows x cols valid positions): the full
    patch's groups restricted to the valid positions, so every position keeps its step. Cached:
    both sides of every image ask for the same few shapes (treat the tensors as read-only)."""
    rows, cols = rows or patch, cols or patch
    order = qlds_order(patch)
    sizes = group_sizes(patch * patch, steps, alpha)
    group_of = {}
    i = 0
    for s, n in enumerate(sizes):
        for pos in order[i : i + n]:
            group_of[pos] = s
        i += n
    kept = [(group_of[p], rank, p) for rank, p in enumerate(order) if p[0] < rows and p[1] < cols]
    kept.sort()
    positions = torch.tensor([r * patch + c for _, _, (r, c) in kept], dtype=torch.long)
    groups = torch.tensor([g for g, _, _ in kept], dtype=torch.long)
    n_steps = len(sizes)
    bounds = [0] + [int((groups <= s).sum()) for s in range(n_steps)]
    return Schedule(positions, groups, tuple(bounds))


def patch_batches(height: int, width: int, patch: int) -> dict[tuple[int, int], list[tuple[int, int]]]:
    """Patch origins of a height x width latent grouped by patch shape (rows, cols), in a fixed order."""
    batches: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
    for r0 in range(0, height, patch):
        for c0 in range(0, width, patch):
            batches[(min(patch, height - r0), min(patch, width - c0))].append((r0, c0))
    return dict(sorted(batches.items()))


def token_index(origins, rows: int, cols: int, patch: int, positions: torch.Tensor, width: int) -> torch.Tensor:
    """Flat latent indexes (B, T) of each patch's tokens in schedule order."""
    r, c = positions // patch, positions % patch
    base = torch.tensor([r0 * width + c0 for r0, c0 in origins], dtype=torch.long)
    return base[:, None] + (r * width + c)[None, :]


def two_stream_mask(groups: torch.Tensor, last: int) -> torch.Tensor:
    """Allowed attention (bool, (V + T, V + T)) for [value tokens of groups < last, query tokens]."""
    value_groups = groups[groups < last]
    keys = torch.cat([value_groups, groups])
    is_value = torch.cat([torch.ones_like(value_groups, dtype=torch.bool), torch.zeros_like(groups, dtype=torch.bool)])
    q_groups, q_is_value = keys[:, None], is_value[:, None]
    k_groups, k_is_value = keys[None, :], is_value[None, :]
    value_to_value = q_is_value & k_is_value & (k_groups <= q_groups)
    query_to_value = ~q_is_value & k_is_value & (k_groups < q_groups)
    query_to_query = ~q_is_value & ~k_is_value & (k_groups == q_groups)
    return value_to_value | query_to_value | query_to_query


# --- the transformer --------------------------------------------------------------------------


class M2T(nn.Module):
    """Predicts per-channel Gaussian (mean, scale) of latent tokens from already-coded tokens."""

    def __init__(self, config: M2TConfig = M2TConfig()):
        super().__init__()
        self.config = c = config
        self.embed = nn.Linear(c.channels, c.width)
        self.pos = nn.Parameter(torch.randn(c.patch * c.patch, c.width) * 0.02)
        self.mask_token = nn.Parameter(torch.randn(c.width) * 0.02)
        self.quality = nn.Linear(1, c.width)  # quality position t in [0, 1]
        if c.side:
            self.side_embed = nn.Linear(2 * c.channels, c.width)
        self.blocks = nn.ModuleList(Block(c.width, c.heads, c.mlp_ratio) for _ in range(c.layers))
        self.ln_out = nn.LayerNorm(c.width)
        self.head = nn.Linear(c.width, 2 * c.channels)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    # inputs of the two streams; `side` = (mean, scale) of the hyperprior per token, (B, n, C) each
    def _side_in(self, side) -> torch.Tensor | float:
        if not self.config.side:
            return 0.0
        mean, scale = side
        return self.side_embed(torch.cat([mean / self.config.delta, torch.log(scale)], -1))

    def _values_in(self, y_hat, positions, quality, side=None) -> torch.Tensor:
        return (self.embed(y_hat / self.config.delta) + self.pos[positions] + self.quality(quality[:, None])[:, None]
                + self._side_in(side))

    def _queries_in(self, positions, quality, side=None) -> torch.Tensor:
        q = (self.mask_token + self.pos[positions])[None] + self.quality(quality[:, None])[:, None]
        return q + self._side_in(side)

    def _entropy_params(self, h: torch.Tensor, side=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Gaussian mean and scale per channel; with side information, a correction of the
        hyperprior's (the head starts at zero: an untrained model codes like the hyperprior)."""
        out = self.head(self.ln_out(h))
        mean, raw = (out.float() if out.dtype == torch.bfloat16 else out).chunk(2, dim=-1)
        if self.config.side:
            hp_mean, hp_scale = side
            return hp_mean + self.config.delta * mean, (hp_scale * torch.exp(raw)).clamp_min(SCALE_MIN)
        scale = self.config.delta * F.softplus(raw + 0.5)
        return self.config.delta * mean, scale.clamp_min(SCALE_MIN)

    @staticmethod
    def _take(side, index):
        return None if side is None else (side[0][:, index], side[1][:, index])

    def forward(self, y_hat: torch.Tensor, sched: Schedule, quality: torch.Tensor, side=None, masked: bool = True):
        """One pass, every step at once (training, reference). y_hat (B, T, C) in schedule order,
        quality (B,) in [0, 1], side None or (mean, scale) (B, T, C) -> mean, scale (B, T, C) for
        every token from the tokens of earlier groups. `masked=False` drops the attention mask
        (only for tests that prove it matters)."""
        last = len(sched.bounds) - 2
        keep = sched.groups < last  # the last group's values condition nothing
        b = y_hat.shape[0]
        h = torch.cat([self._values_in(y_hat[:, keep], sched.positions[keep], quality, self._take(side, keep)),
                       self._queries_in(sched.positions, quality, side).expand(b, -1, -1)], 1)
        mask = two_stream_mask(sched.groups, last).to(h.device) if masked else None
        for block in self.blocks:
            h, _ = block(h, mask)
        return self._entropy_params(h[:, int(keep.sum()):], side)

    def forward_mt(self, y_hat: torch.Tensor, visible: torch.Tensor, sched: Schedule, quality: torch.Tensor, side=None):
        """Plain MT: one stream; visible tokens (B, T) bool carry their values, the others the mask
        token; full attention. -> mean, scale (B, T, C) (meaningful for the masked tokens)."""
        values = self._values_in(y_hat, sched.positions, quality, side)
        queries = self._queries_in(sched.positions, quality, side).expand_as(values)
        h = torch.where(visible[..., None], values, queries)
        for block in self.blocks:
            h, _ = block(h)
        return self._entropy_params(h, side)


class StepDecoder:
    """Step-by-step parameters with key/value caching, for a batch of patches of one shape.

        dec = StepDecoder(model, sched, quality, side)
        for s in range(dec.steps):
            mean, scale = dec.predict(s)      # (B, n_s, C) for the tokens of group s
            ... code group s ...
            dec.push(s, y_hat_s)              # (B, n_s, C) their decoded values

    `cache=False` recomputes every earlier value token at each step (the uncached baseline: the
    same function, more work)."""

    def __init__(self, model: M2T, sched: Schedule, quality: torch.Tensor, side=None, cache: bool = True):
        self.model, self.sched, self.quality, self.side, self.cache = model, sched, quality, side, cache
        self.steps = len(sched.bounds) - 1
        self.past: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self.values: list[torch.Tensor] = []

    def _slice(self, s: int) -> slice:
        return slice(self.sched.bounds[s], self.sched.bounds[s + 1])

    @torch.no_grad()
    def predict(self, s: int) -> tuple[torch.Tensor, torch.Tensor]:
        sl = self._slice(s)
        side = self.model._take(self.side, sl)
        b = self.quality.shape[0]
        h = self.model._queries_in(self.sched.positions[sl], self.quality, side).expand(b, -1, -1)
        past = self.past if self.cache else self._recompute_past(s)
        for i, block in enumerate(self.model.blocks):
            h, _ = block(h, None, past[i] if past is not None else None)
        return self.model._entropy_params(h, side)

    def _recompute_past(self, s: int):
        if s == 0:
            return None
        sl = slice(0, self.sched.bounds[s])
        h = self.model._values_in(torch.cat(self.values, 1), self.sched.positions[sl], self.quality,
                                  self.model._take(self.side, sl))
        groups = self.sched.groups[sl]
        mask = groups[None, :] <= groups[:, None]
        past = []
        for block in self.model.blocks:
            h, kv = block(h, mask)
            past.append(kv)
        return past

    @torch.no_grad()
    def push(self, s: int, y_hat: torch.Tensor) -> None:
        """Feeds the decoded values of group s (B, n_s, C); not needed after the last step."""
        self.values.append(y_hat)
        if not self.cache or s >= self.steps - 1:
            return
        sl = self._slice(s)
        h = self.model._values_in(y_hat, self.sched.positions[sl], self.quality, self.model._take(self.side, sl))
        new_past = []
        for i, block in enumerate(self.model.blocks):
            past = self.past[i] if self.past is not None else None
            h_next, (k, v) = block(h, None, past)
            new_past.append((torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)) if past is not None else (k, v))
            h = h_next
        self.past = new_past
