"""The overfitted image model (after Cool-chic and C3; ../shared/REFERENCES.md 2.10), in torch for the
encoder's optimisation. The decoder runs the same function in exact fixed point with numpy
(codec.models.overfit_int and codec.entropy.arm); this module mirrors it in float.

    latent grids y_0 (H x W) .. y_{L-1} (H/2^{L-1}) ----------------------- ARM (rate) --> bits
        |  progressive 2x upsampling (one learned symmetric separable filter a level):
        |  dense = y_{L-1}; dense = cat(up(dense), y_i) for i = L-2 .. 0      # (L, H, W)
        v
    synthesis: per-pixel MLP (L -> widths -> 3), then 3x3 residual layers on 3 channels --> image

All the latents live in one canvas tensor (Layout): grid 0 on the left, the coarser grids stacked
in a column on its right, zero gaps as wide as the ARM's reach; the ARM's contexts are K shifted
views of the whole canvas, so one matrix product chain serves every grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from codec.entropy import arm as arm_int
from codec.models.overfit_int import grid_shapes

LOG_MIN = arm_int.LOG_MIN / 2 ** arm_int.FRAC
LOG_MAX = (arm_int.LOG_MIN + (len(arm_int.SCALE_INTS) - 1) * arm_int.LOG_STEP) / 2 ** arm_int.FRAC


@dataclass(frozen=True)
class OverfitConfig:
    """Decoder size of an overfitted file (recorded in the file).

    Attributes:
        arm_context: K causal neighbours of the ARM (6, 12 or 24).
        arm_hidden: residual hidden layers of the ARM (width K).
        taps: T, half the length of the upsampling filters (2T taps, symmetric).
        widths: hidden widths of the per-pixel synthesis MLP.
        convs: 3x3 residual layers on the 3 output channels.
        tile: side of the squares the ARM codes independently (0: whole grids; codec.entropy.arm).
    """

    arm_context: int = 12
    arm_hidden: int = 2
    taps: int = 4
    widths: tuple[int, ...] = (32,)
    convs: int = 2
    tile: int = 0

    def macs_per_pixel(self, grids: int) -> float:
        """Multiplications per decoded pixel (latents per pixel: sum of 4^-i)."""
        latents = sum(4.0 ** -i for i in range(grids))
        k = self.arm_context
        arm = (self.arm_hidden * k * k + 2 * k) * latents
        ups = sum((grids - 1 - i) * 4.0 ** -i * 2 * self.taps * 1.5 for i in range(grids - 1))
        dims = (grids, *self.widths, 3)
        mlp = sum(a * b for a, b in zip(dims[:-1], dims[1:]))
        return arm + ups + mlp + self.convs * 81


TILE = 256
"""The presets' ARM tile: a 768x512 image decodes in 256 + slope x 255 wavefronts instead of
768 + slope x 511 (766 instead of 1,790 for the small decoder's ARM, slope 2; 1,021 instead of
2,301 for the medium one's, slope 3) for about 1% more latent bits (a fitted kodim23, medium, not
refitted: +0.9%)."""
PRESETS = {
    "small": OverfitConfig(arm_context=6, arm_hidden=2, widths=(16,), tile=TILE),
    "medium": OverfitConfig(arm_context=12, arm_hidden=2, widths=(32,), tile=TILE),
    "large": OverfitConfig(arm_context=24, arm_hidden=1, widths=(48, 16), tile=TILE),
}


def grid_count(height: int, width: int) -> int:
    """L: grids down to about 8 latents on the short side, at most 7."""
    return max(1, min(7, int(math.log2(max(1, min(height, width)) / 8)) + 1))


@dataclass
class Layout:
    """Where each grid sits in the canvas (rows, cols) and the canvas's mask of real latents."""

    shapes: list[tuple[int, int]]
    reach: tuple[int, int]  # (rows above, columns either side) the ARM sees
    origins: list[tuple[int, int]] = field(default_factory=list)
    size: tuple[int, int] = (0, 0)

    def __post_init__(self):
        up, side = self.reach
        (h0, w0), rest = self.shapes[0], self.shapes[1:]
        self.origins = [(up, side)]
        col = side + w0 + side
        row = up
        for h, _ in rest:
            self.origins.append((row, col))
            row += h + up
        right = max((w for _, w in rest), default=0)
        self.size = (max(up + h0, row), col + right + side)

    def mask(self) -> torch.Tensor:
        m = torch.zeros(self.size)
        for (r, c), (h, w) in zip(self.origins, self.shapes):
            m[r:r + h, c:c + w] = 1
        return m

    def grids(self, canvas: torch.Tensor) -> list[torch.Tensor]:
        return [canvas[r:r + h, c:c + w] for (r, c), (h, w) in zip(self.origins, self.shapes)]


class ShiftedViews(torch.autograd.Function):
    """x (..., R, C) -> K windows of size `size` starting at `starts` (row, column), stacked at
    `dim`; the backward adds each window's gradient into one buffer in place (autograd's own would
    allocate and fill a full zero tensor per window, which dominated the profile)."""

    @staticmethod
    def forward(ctx, x, starts, size, dim=-1):
        ctx.starts, ctx.size, ctx.shape, ctx.dim = starts, size, x.shape, dim
        n_r, n_c = size
        return torch.stack([x[..., r:r + n_r, c:c + n_c] for r, c in starts], dim=dim)

    @staticmethod
    def backward(ctx, grad):
        n_r, n_c = ctx.size
        out = grad.new_zeros(ctx.shape)
        for k, (r, c) in enumerate(ctx.starts):
            out[..., r:r + n_r, c:c + n_c] += grad.select(ctx.dim, k)
        return out, None, None, None


def shifted_views(x: torch.Tensor, starts, size, dim: int = -1) -> torch.Tensor:
    """ShiftedViews in eager mode; under torch.compile the plain stack of slices, whose backward
    the compiler fuses itself (through the custom Function it measured 13x slower than eager)."""
    if torch.compiler.is_compiling():
        n_r, n_c = size
        return torch.stack([x[..., r:r + n_r, c:c + n_c] for r, c in starts], dim=dim)
    return ShiftedViews.apply(x, starts, size, dim)


class Arm(nn.Module):
    """Float mirror of codec.entropy.arm.Arm: contexts (N, K) -> (mu, log-scale)."""

    def __init__(self, k: int, hidden: int):
        super().__init__()
        self.hidden = nn.ModuleList(nn.Linear(k, k) for _ in range(hidden))
        self.out = nn.Linear(k, 2)
        for layer in self.hidden:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        nn.init.normal_(self.out.weight, std=1.0 / k ** 2)
        nn.init.zeros_(self.out.bias)

    def forward(self, ctx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = ctx
        for layer in self.hidden:
            x = F.relu(layer(x) + x)
        out = self.out(x).float()  # the rate in float32 even under bfloat16 autocast
        return out[:, 0], out[:, 1]


def laplace_bits(y: torch.Tensor, mu: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """-log2 P(y) of the unit bin around y under Laplace(mu, exp(log_scale)), per element."""
    b = torch.exp(log_scale.clamp(LOG_MIN, LOG_MAX))
    d = (y - mu).abs()
    # P = F(d + .5) - F(d - .5) for the folded distribution; stable in both regimes
    upper = torch.exp(-(d + 0.5) / b)
    lower = torch.where(d >= 0.5, torch.exp(-(d - 0.5).clamp_min(0) / b), 2 - torch.exp(-(0.5 - d).clamp_min(0) / b))
    p = 0.5 * (lower - upper)
    return -torch.log2(p.clamp_min(2.0 ** -24))


def upsample2x(x: torch.Tensor, taps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Float mirror of codec.fixedpoint.upsample2x: (C, h, w) -> (C, H, W)."""
    return _up_axis(_up_axis(x, taps, 1)[:, :size[0]], taps, 2)[:, :, :size[1]]


def edge_pad(x: torch.Tensor, n: int, axis: int) -> torch.Tensor:
    """x with its first and last slices along `axis` repeated n times on each side (replicate
    padding written with cat, which torch.compile differentiates without trouble)."""
    size = list(x.shape)
    size[axis] = n
    first, last = x.narrow(axis, 0, 1).expand(size), x.narrow(axis, x.shape[axis] - 1, 1).expand(size)
    return torch.cat([first, x, last], dim=axis)


def _up_axis(x: torch.Tensor, taps: torch.Tensor, axis: int) -> torch.Tensor:
    t = taps.shape[0]
    n = x.shape[axis]
    padded = edge_pad(x, t, axis)
    phases = []
    for phase in (0, 1):
        acc = 0
        for j in range(-t, t + 1):
            k = t - 1 + phase - 2 * j
            if 0 <= k < 2 * t:
                m = t - 1 - k if k < t else k - t
                acc = acc + taps[m] * padded.narrow(axis, t + j, n)
        phases.append(acc)
    shape = list(x.shape)
    shape[axis] *= 2
    return torch.stack(phases, dim=axis + 1).reshape(shape)


def _compute_dtype(x: torch.Tensor) -> torch.Tensor:
    """x in the autocast dtype when autocast is on for its device (cast once, before the views are
    stacked)."""
    device = x.device.type
    return x.to(torch.get_autocast_dtype(device)) if torch.is_autocast_enabled(device) else x


def conv3x3(img: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """(C, H, W) -> (O, H, W), replicate padding, as one matrix product over nine shifted views
    (a 3x3 convolution of 3 channels is far faster this way on a CPU, backward included)."""
    c, h, w = img.shape
    p = F.pad(img[None], (1, 1, 1, 1), mode="replicate")[0]
    cols = shifted_views(p, [(dy, dx) for dy in range(3) for dx in range(3)], (h, w), 1)  # (C, 9, H, W)
    out = weight.reshape(weight.shape[0], c * 9) @ cols.reshape(c * 9, h * w)
    return (out + bias[:, None]).float().reshape(-1, h, w)


def bilinear_taps(t: int) -> torch.Tensor:
    taps = torch.zeros(t)
    taps[0], taps[1] = 0.75, 0.25
    return taps


class Synthesis(nn.Module):
    """Per-pixel MLP (as matrix products over (pixels, channels)) then 3x3 residual layers."""

    def __init__(self, grids: int, widths: tuple[int, ...], convs: int):
        super().__init__()
        dims = (grids, *widths, 3)
        self.mlp = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.convs = nn.ModuleList(nn.Conv2d(3, 3, 3) for _ in range(convs))
        for conv in self.convs:
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    @torch.no_grad()
    def cut_channels(self) -> int:
        """Channels that a ReLU between the 3x3 layers cuts off entirely while the latents are zero
        (the image is then constant, so a channel at or below zero there is below zero everywhere
        and gets no gradient): 0 for a synthesis that can start learning."""
        img = self.forward_mlp(torch.zeros(self.mlp[0].in_features, 3, 3))
        cut = 0
        for conv in self.convs[:-1]:
            img = img + conv3x3(img, conv.weight, conv.bias)
            cut += int((img.amax(dim=(1, 2)) <= 0).sum())
            img = F.relu(img)
        return cut

    def forward_mlp(self, dense: torch.Tensor) -> torch.Tensor:
        """(L, H, W) upsampled latents -> (3, H, W) the per-pixel MLP's image, float32."""
        c, h, w = dense.shape
        x = _compute_dtype(dense).reshape(c, h * w).T  # (P, L)
        for i, layer in enumerate(self.mlp):
            x = layer(x)
            if i < len(self.mlp) - 1:
                x = F.relu(x)
        return x.T.reshape(3, h, w).float().contiguous()

    def forward(self, dense: torch.Tensor) -> torch.Tensor:
        img = self.forward_mlp(dense)
        for i, conv in enumerate(self.convs):
            img = img + conv3x3(img, conv.weight, conv.bias)
            if i < len(self.convs) - 1:
                img = F.relu(img)
        return img


class OverfitModel(nn.Module):
    """The whole overfitted model of one image: canvas of latents, ARM, upsampling, synthesis."""

    def __init__(self, config: OverfitConfig, height: int, width: int, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.config, self.height, self.width = config, height, width
        self.grid_count = grid_count(height, width)
        offsets = arm_int.context_offsets(config.arm_context)
        self.offsets = [tuple(int(v) for v in o) for o in offsets]
        reach = (int(-offsets[:, 0].min()), int(abs(offsets[:, 1]).max()))
        self.layout = Layout(grid_shapes(height, width, self.grid_count), reach)
        self.canvas = nn.Parameter(torch.zeros(self.layout.size))
        self.register_buffer("mask", self.layout.mask(), persistent=False)
        self.register_buffer("tile_mask", self._tile_mask(config.tile), persistent=False)
        self.arm = Arm(config.arm_context, config.arm_hidden)
        self.taps = nn.ParameterList(nn.Parameter(bilinear_taps(config.taps)) for _ in range(self.grid_count - 1))
        self.synthesis = Synthesis(self.grid_count, config.widths, config.convs)

    def contexts(self, q: torch.Tensor) -> torch.Tensor:
        """(N, K) contexts of every canvas position (rows up.., columns side..)."""
        up, side = self.layout.reach
        rows, cols = self.layout.size
        n_r, n_c = rows - up, cols - 2 * side
        starts = [(up + dy, side + dx) for dy, dx in self.offsets]
        ctx = shifted_views(_compute_dtype(q), starts, (n_r, n_c)).reshape(n_r * n_c, len(starts))
        return ctx if self.tile_mask is None else ctx * self.tile_mask.to(ctx.dtype)

    def _tile_mask(self, tile: int) -> torch.Tensor | None:
        """(N, K) 1 where a context lies in the latent's own tile, 0 across a tile border (the
        decoder sees zeros there); None without tiles."""
        if not tile:
            return None
        up, side = self.layout.reach
        rows, cols = self.layout.size
        mask = torch.ones(rows - up, cols - 2 * side, len(self.offsets))
        for (r0, c0), (h, w) in zip(self.layout.origins, self.layout.shapes):
            r = torch.arange(h)[:, None]
            c = torch.arange(w)[None, :]
            for k, (dy, dx) in enumerate(self.offsets):
                same = ((r + dy).div(tile, rounding_mode="floor") == r // tile) & \
                       ((c + dx).div(tile, rounding_mode="floor") == c // tile)
                mask[r0 - up:r0 - up + h, c0 - side:c0 - side + w, k] = same.float()
        return mask.reshape(-1, len(self.offsets))

    def rate_bits(self, q: torch.Tensor) -> torch.Tensor:
        """Total bits of the latents in q (the canvas, quantized or relaxed) under the float ARM."""
        up, side = self.layout.reach
        mu, log_scale = self.arm(self.contexts(q))
        target = q[up:, side:q.shape[1] - side].reshape(-1)
        valid = self.mask[up:, side:q.shape[1] - side].reshape(-1)
        return (laplace_bits(target, mu, log_scale) * valid).sum()

    def dense(self, q: torch.Tensor) -> torch.Tensor:
        """(L, H, W): the grids of q upsampled to the image and stacked, the synthesis's input."""
        grids = self.layout.grids(q)
        dense = grids[-1][None]
        for i in range(self.grid_count - 2, -1, -1):
            dense = torch.cat([upsample2x(dense, self.taps[i], self.layout.shapes[i]), grids[i][None]])
        return dense

    def image(self, q: torch.Tensor) -> torch.Tensor:
        return self.synthesis(self.dense(q))


@dataclass(frozen=True)
class Shifts:
    """Fractional bits of each module's integer weights and biases (quantization step 2^-shift)."""

    arm: int = 8
    arm_bias: int = 8
    taps: int = 8
    synthesis: int = 8
    synthesis_bias: int = 8

    def as_tuple(self) -> tuple[int, ...]:
        return (self.arm, self.arm_bias, self.taps, self.synthesis, self.synthesis_bias)


def _layer(weight: torch.Tensor, bias: torch.Tensor, shift: int, bias_shift: int):
    from codec import fixedpoint as fp

    w = weight.detach().double().numpy()
    return fp.Layer(fp.quantize(w, shift), fp.quantize(bias.detach().double().numpy(), bias_shift), shift, bias_shift)


def quantized(model: OverfitModel, shifts: Shifts):
    """The exact decoder networks (codec.models.overfit_int.Networks) of `model` at `shifts`."""
    from codec import fixedpoint as fp
    from codec.models import overfit_int

    hidden = [_layer(l.weight, l.bias, shifts.arm, shifts.arm_bias) for l in model.arm.hidden]
    arm = arm_int.Arm(hidden, _layer(model.arm.out.weight, model.arm.out.bias, shifts.arm, shifts.arm_bias))
    taps = [fp.quantize(t.detach().double().numpy(), shifts.taps) for t in model.taps]
    mlp = [_layer(l.weight, l.bias, shifts.synthesis, shifts.synthesis_bias) for l in model.synthesis.mlp]
    convs = [_layer(c.weight, c.bias, shifts.synthesis, shifts.synthesis_bias) for c in model.synthesis.convs]
    return overfit_int.Networks(arm, taps, shifts.taps, mlp, convs)


def latent_grids(model: OverfitModel) -> list:
    """The integer grids (numpy int32, finest first) of the model's canvas."""
    q = torch.round(model.canvas.detach()).clamp(-2 ** 15, 2 ** 15)
    return [g.numpy().astype("int32") for g in model.layout.grids(q)]
