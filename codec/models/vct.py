"""VCT entropy model (Mentzer, Agustsson, Ballé, Minnen, Johnston, Toderici, NeurIPS 2022: "VCT: A
Video Compression Transformer").

Every frame is mapped to latents y_t by the image analysis transform alone (no motion, no warping);
this transformer predicts the distribution of the current latent from the two previous decoded
latents, per channel a Gaussian (mean, scale):

    y_hat[t-2], y_hat[t-1] (C, H, W) -pad 2, 8x8 windows, stride 4-> (n, 64, C) each
        -embed + window position + frame + rate-> E_sep (shared, per previous frame; cacheable:
         frame t-1's encoding is frame t+1's t-2 encoding)
        -concat-> memory (n, 128, d)
    y[t] (C, H, W) -4x4 blocks-> (n, 16, C) raster order within a block
        -shift right (start token first), embed + block position + rate->
        decoder layers: causal self-attention within the block, cross-attention to the memory, MLP
        -head-> mean = y_hat[t-1] at the same position + correction, scale   (n, 16, C)

All n blocks are independent and decoded in parallel; within a block decoding is autoregressive over
its 16 tokens (16 steps per frame). `forward` runs all 16 positions in one pass under the causal mask
(teacher forcing, training); `StepDecoder` runs them one by one with cached self-attention keys and
values and memory keys and values computed once per frame. `tests/test_vct.py` checks that both give
the same parameters and that removing the mask breaks it.

Deviations from the paper, stated: there is no separate joint encoder E_joint (the decoder
cross-attends to the concatenated E_sep outputs directly, which keeps CPU decoding cheap), no latent
residual predictor, and the rate (log2 of the quantisation step) is an input, so one model serves
every quality. The output is anchored:
  - `side=False` (the paper's setting): mean = y_hat[t-1] at the same position + correction, scale
    from the head (zero-initialised: an untrained model predicts "copy the previous frame");
  - `side=True` (default): the frame's own hyperprior side information (z coded first, as for an
    intra frame; its mean_hp, scale_hp per token enter the token inputs) and
        mean  = mean_hp + sigmoid(g) * (y_hat[t-1] - mean_hp) + correction
        scale = scale_hp * exp(s)
    with g, correction, s from the head (zero-initialised, g's bias at -4): an untrained model codes
    exactly like the image model and learns where the previous frame is the better guess. With the
    compute this project has for training, only this form beats all-intra (docs/RESEARCH.md, Video).

Recurrent probability model (`state=S`, RLVC: Yang, Mentzer, Van Gool, Timofte, IEEE JSTSP 2021):
a convolutional GRU over the latent grid carries a state (S, h, w) from frame to frame,

    s_t = snap(GRU(s_{t-1}, y_hat[t-1]))      s before a keyframe's update: zero

and token k of frame t reads s_t at its own position (a linear embedding added at its query,
zero-initialised: a model fine-tuned from a two-frame one starts as that model). The state sees
decoded frames only and never the current one; it is snapped to a grid of 2^-12 after every update
(float64 on both sides, like every entropy parameter), so that encoder and decoder hold it bit for bit.

Temporal prior of the side information (`zprior=True`): an inter frame's z is coded given the two
previous frames' z (`ZPrior`): the residual z_t - z_{t-1} (integers) under a zero-mean Gaussian whose
scale a small convolutional net predicts from z_{t-1} and z_{t-1} - z_{t-2}, times a per-frame gain
2^(g/2) the encoder picks. Static regions then cost next to nothing, where the image model's
factorized prior charges every frame the full price of its side information (measured: most of an
inter frame's bytes on static clips; docs/RESEARCH.md, Video).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from codec.entropy.gaussian import SCALE_MIN
from codec.models.transformer import Block, attend, split_heads


@dataclass(frozen=True)
class VCTConfig:
    channels: int = 192  # C, latent channels (tokens are C-vectors)
    width: int = 128  # d_model
    heads: int = 4
    mlp_ratio: int = 4
    enc_layers: int = 2  # E_sep
    dec_layers: int = 3
    block: int = 4  # w: current tokens per block side
    window: int = 8  # previous-frame window side (2w), centred on the block
    input_scale: float = 0.25  # latent values enter the embeddings multiplied by this
    side: bool = True  # condition on the frame's hyperprior (mean, scale) and anchor the output to it
    colocated: bool = True  # token k's query also sees y_hat[t-1] and y_hat[t-1] - y_hat[t-2] at its position
    zprior: bool = False  # code z_t given z_{t-1}, z_{t-2} (ZPrior); needs side
    z_channels: int = 128  # N, the hyperprior's z channels
    zprior_width: int = 64
    state: int = 0  # channels of the recurrent state (RecurrentState; 0: none, the two-frame context only)

    def __post_init__(self):
        if self.zprior and not self.side:
            raise ValueError("zprior needs side=True (the side information it codes)")

    @classmethod
    def preset(cls, name: str, channels: int = 192, z_channels: int = 128) -> "VCTConfig":
        presets = {
            "tiny": dict(width=32, heads=2, enc_layers=1, dec_layers=2, zprior=True, zprior_width=16),
            "small": dict(width=96, heads=4, enc_layers=2, dec_layers=3, zprior=True),
            "base": dict(width=128, heads=4, enc_layers=2, dec_layers=4, zprior=True),
            "tiny-pure": dict(width=32, heads=2, enc_layers=1, dec_layers=2, side=False, colocated=False),
            "small-pure": dict(width=96, heads=4, enc_layers=2, dec_layers=3, side=False, colocated=False),
        }
        if name not in presets:
            raise KeyError(f"unknown VCT config {name!r}; valid: {', '.join(presets)}")
        return cls(channels=channels, z_channels=z_channels, **presets[name])

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def tokens(self) -> int:
        return self.block * self.block

    @property
    def pad(self) -> int:
        return (self.window - self.block) // 2


# --- tokens in and out ------------------------------------------------------------------------


def blocks_of(y: torch.Tensor, w: int) -> torch.Tensor:
    """(N, C, H, W) with H, W multiples of w -> (N * H/w * W/w, w*w, C), blocks in raster order,
    tokens in raster order within a block."""
    n, c, h, wd = y.shape
    t = y.reshape(n, c, h // w, w, wd // w, w).permute(0, 2, 4, 3, 5, 1)  # (N, H/w, W/w, w, w, C)
    return t.reshape(n * (h // w) * (wd // w), w * w, c)


def unblock(t: torch.Tensor, n: int, h: int, wd: int, w: int) -> torch.Tensor:
    """Inverse of `blocks_of`: (N * H/w * W/w, w*w, C) -> (N, C, H, W)."""
    c = t.shape[-1]
    return t.reshape(n, h // w, wd // w, w, w, c).permute(0, 5, 1, 3, 2, 4).reshape(n, c, h, wd)


def windows_of(y: torch.Tensor, config: VCTConfig) -> torch.Tensor:
    """(N, C, H, W) -> (N * H/w * W/w, window^2, C): the window x window neighbourhood of every block
    (zero outside the latent), same block order as `blocks_of`."""
    n, c, h, wd = y.shape
    k, w, p = config.window, config.block, config.pad
    cols = F.unfold(F.pad(y, (p, p, p, p)), kernel_size=k, stride=w)  # (N, C*k*k, nblocks)
    return cols.view(n, c, k * k, -1).permute(0, 3, 2, 1).reshape(-1, k * k, c)


# --- layers -----------------------------------------------------------------------------------


class DecoderLayer(nn.Module):
    """Pre-norm decoder layer: causal self-attention (with cached keys/values in front), cross-attention
    to the memory, MLP."""

    def __init__(self, width: int, heads: int, mlp_ratio: int):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2, self.ln3 = nn.LayerNorm(width), nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.q_cross = nn.Linear(width, width)
        self.kv_cross = nn.Linear(width, 2 * width)
        self.proj_cross = nn.Linear(width, width)
        self.fc1, self.fc2 = nn.Linear(width, mlp_ratio * width), nn.Linear(mlp_ratio * width, width)

    def memory_kv(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of the memory (B, heads, m, d/heads), once per frame."""
        k, v = self.kv_cross(memory).chunk(2, dim=-1)
        return split_heads(k, self.heads), split_heads(v, self.heads)

    def forward(self, h: torch.Tensor, memory_kv, mask: torch.Tensor | None = None, past=None):
        """h (B, n, d); mask (n, n_past + n) bool (True = attend) or None; returns (h, (k, v)) with this
        call's own self-attention keys and values."""
        q, k, v = (split_heads(t, self.heads) for t in self.qkv(self.ln1(h)).chunk(3, dim=-1))
        keys, values = (torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)) if past is not None else (k, v)
        h = h + self.proj(attend(q, keys, values, mask))
        h = h + self.proj_cross(attend(split_heads(self.q_cross(self.ln2(h)), self.heads), *memory_kv, None))
        h = h + self.fc2(F.gelu(self.fc1(self.ln3(h))))
        return h, (k, v)


STATE_GRID = 2.0**-12
"""The recurrent state is snapped to multiples of this after every update."""


def snap_state(s: torch.Tensor) -> torch.Tensor:
    """The state on its grid; the identity's gradient in training (straight-through)."""
    snapped = torch.round(s / STATE_GRID) * STATE_GRID
    return s + (snapped - s).detach() if s.requires_grad else snapped


class RecurrentState(nn.Module):
    """A convolutional GRU: (state (N, S, h, w) or None for zero, decoded latents y_hat (N, C, h, w))
    -> the next state (N, S, h, w), snapped. Gates in the form n = tanh(W_n x + r * (U_n s))."""

    input_scale = 0.25

    def __init__(self, channels: int, state: int):
        super().__init__()
        self.state = state
        self.from_input = nn.Conv2d(channels, 3 * state, 3, padding=1)
        self.from_state = nn.Conv2d(state, 3 * state, 3, padding=1, bias=False)

    def forward(self, s: torch.Tensor | None, y_hat: torch.Tensor) -> torch.Tensor:
        gx = self.from_input(y_hat * self.input_scale)
        if s is None:
            s = torch.zeros(y_hat.shape[0], self.state, *y_hat.shape[2:], dtype=gx.dtype, device=gx.device)
        zx, rx, nx = gx.chunk(3, 1)
        zs, rs, ns = self.from_state(s).chunk(3, 1)
        z, r = torch.sigmoid(zx + zs), torch.sigmoid(rx + rs)
        return snap_state((1 - z) * s + z * torch.tanh(nx + r * ns))


class ZPrior(nn.Module):
    """Scale of the temporal residual z_t - z_{t-1} of the hyperprior's z symbols:
    (z_{t-1}, z_{t-2}) (N, Cz, h, w) integer-valued -> scale (N, Cz, h, w) > 0."""

    input_scale = 0.25

    def __init__(self, channels: int, width: int):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(2 * channels, width, 3, padding=1), nn.GELU(),
                                 nn.Conv2d(width, width, 3, padding=1), nn.GELU(),
                                 nn.Conv2d(width, channels, 3, padding=1))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)
        self.log_scale0 = nn.Parameter(torch.zeros(channels))

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        a = self.input_scale
        log_scale = self.net(torch.cat([z1 * a, (z1 - z2) * a], 1)) + self.log_scale0.view(1, -1, 1, 1)
        return torch.exp(log_scale.clamp(-10.0, 10.0)).clamp_min(SCALE_MIN)


# --- the model --------------------------------------------------------------------------------


class VCT(nn.Module):
    """Predicts per-channel Gaussian (mean, scale) of the current latent from two previous latents."""

    def __init__(self, config: VCTConfig = VCTConfig()):
        super().__init__()
        self.config = c = config
        d = c.width
        self.embed_prev = nn.Linear(c.channels, d)
        self.embed_cur = nn.Linear(c.channels, d)
        self.window_pos = nn.Parameter(torch.randn(c.window * c.window, d) * 0.02)
        self.frame_emb = nn.Parameter(torch.randn(2, d) * 0.02)  # t-1, t-2
        self.block_pos = nn.Parameter(torch.randn(c.tokens, d) * 0.02)
        self.start = nn.Parameter(torch.randn(d) * 0.02)
        self.rate_emb = nn.Linear(1, d)
        self.encoder = nn.ModuleList(Block(d, c.heads, c.mlp_ratio) for _ in range(c.enc_layers))  # full attention
        self.decoder = nn.ModuleList(DecoderLayer(d, c.heads, c.mlp_ratio) for _ in range(c.dec_layers))
        self.ln_out = nn.LayerNorm(d)
        self.head = nn.Linear(d, (3 if c.side else 2) * c.channels)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        if c.colocated:
            self.embed_colocated = nn.Linear(2 * c.channels, d)
        if c.side:
            self.embed_side = nn.Linear(2 * c.channels, d)
            with torch.no_grad():
                self.head.bias[: c.channels] = -4.0  # the gate starts almost closed: the image model's guess
        self.log_scale0 = nn.Parameter(torch.zeros(c.channels))
        if c.zprior:
            self.zprior = ZPrior(c.z_channels, c.zprior_width)
        if c.state:
            self.recurrent = RecurrentState(c.channels, c.state)
            self.embed_state = nn.Linear(c.state, d)
            nn.init.zeros_(self.embed_state.weight)
            nn.init.zeros_(self.embed_state.bias)

    # rate: (B,) log2 of the quantisation step of each block's frame

    def _rate(self, log_step: torch.Tensor) -> torch.Tensor:
        return self.rate_emb(log_step.to(self.start.dtype)[:, None])[:, None, :]  # (B, 1, d)

    def encode_previous(self, prev_windows: torch.Tensor, log_step: torch.Tensor) -> torch.Tensor:
        """E_sep: (B, window^2, C) decoded values of one previous frame -> (B, window^2, d)."""
        h = self.embed_prev(prev_windows * self.config.input_scale) + self.window_pos + self._rate(log_step)
        for layer in self.encoder:
            h, _ = layer(h)
        return h

    def memory(self, enc1: torch.Tensor, enc2: torch.Tensor) -> torch.Tensor:
        """Encoded t-1 and t-2 windows (B, window^2, d) each -> memory (B, 2 window^2, d)."""
        return torch.cat([enc1 + self.frame_emb[0], enc2 + self.frame_emb[1]], 1)

    def _current_in(self, shifted: torch.Tensor, positions: slice, log_step: torch.Tensor) -> torch.Tensor:
        return self.embed_cur(shifted * self.config.input_scale) + self.block_pos[positions] + self._rate(log_step)

    def _side_in(self, side) -> torch.Tensor | float:
        """Embedding of the tokens' own side information (mean_hp, scale_hp), each (B, n, C); 0 without."""
        if not self.config.side:
            return 0.0
        mean, scale = side
        return self.embed_side(torch.cat([mean * self.config.input_scale, torch.log(scale.clamp_min(SCALE_MIN))], -1))

    def _colocated_in(self, anchor1: torch.Tensor, anchor2: torch.Tensor) -> torch.Tensor | float:
        """Embedding of the previous two latents at the tokens' own positions, (B, n, C) each: the
        direct cue for "static here" (0 without config.colocated)."""
        if not self.config.colocated:
            return 0.0
        a = self.config.input_scale
        return self.embed_colocated(torch.cat([anchor1 * a, (anchor1 - anchor2) * a], -1))

    def _state_in(self, state: torch.Tensor | None) -> torch.Tensor | float:
        """Embedding of the recurrent state at the tokens' own positions, (B, n, S); 0 without."""
        if not self.config.state or state is None:
            return 0.0
        return self.embed_state(state)

    def _params(self, h: torch.Tensor, anchor: torch.Tensor, side=None) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.head(self.ln_out(h))
        if not self.config.side:
            mean, log_scale = out.chunk(2, dim=-1)
            scale = torch.exp((log_scale + self.log_scale0).clamp(-10.0, 10.0)).clamp_min(SCALE_MIN)
            return anchor + mean, scale
        gate, correction, log_scale = out.chunk(3, dim=-1)
        mean_hp, scale_hp = side
        mean = mean_hp + torch.sigmoid(gate) * (anchor - mean_hp) + correction
        scale = (scale_hp * torch.exp((log_scale + self.log_scale0).clamp(-10.0, 10.0))).clamp_min(SCALE_MIN)
        return mean, scale

    def anchor(self, prev1_windows: torch.Tensor) -> torch.Tensor:
        """The previous latent at the block's own positions: (B, window^2, C) -> (B, w^2, C)."""
        c = self.config
        k, w, p = c.window, c.block, c.pad
        grid = prev1_windows.view(-1, k, k, prev1_windows.shape[-1])[:, p : p + w, p : p + w]
        return grid.reshape(-1, w * w, prev1_windows.shape[-1])

    def forward(self, current: torch.Tensor, prev1_windows: torch.Tensor, prev2_windows: torch.Tensor,
                log_step: torch.Tensor, side=None, causal: bool = True,
                state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced parameters of every token of every block in one pass.

        current (B, w^2, C) decoded values of the block's tokens; prev*_windows (B, window^2, C);
        log_step (B,); side (config.side) the tokens' hyperprior (mean, scale), (B, w^2, C) each;
        state (config.state) the recurrent state at the tokens, (B, w^2, S).
        Returns mean, scale (B, w^2, C). `causal=False` drops the mask (only to show that the
        causality test catches it)."""
        memory = self.memory(self.encode_previous(prev1_windows, log_step),
                             self.encode_previous(prev2_windows, log_step))
        n = self.config.tokens
        first = (self.start + self.block_pos[0] + self._rate(log_step)[:, 0])[:, None, :]  # (B, 1, d)
        h = torch.cat([first, self._current_in(current[:, :-1], slice(1, n), log_step)], 1)  # (B, w^2, d)
        anchor1, anchor2 = self.anchor(prev1_windows), self.anchor(prev2_windows)
        # token k's own side information and co-located context sit at its query position k
        h = h + self._side_in(side) + self._colocated_in(anchor1, anchor2) + self._state_in(state)
        mask = torch.ones(n, n, dtype=torch.bool, device=h.device).tril() if causal else None
        for layer in self.decoder:
            h, _ = layer(h, layer.memory_kv(memory), mask)
        return self._params(h, anchor1, side)


class StepDecoder:
    """Token-by-token parameters of all blocks of a frame, with cached keys and values.

        dec = StepDecoder(model, enc1, enc2, prev1_windows, prev2_windows, log_step, side)
        for k in range(w * w):
            mean, scale = dec.predict(k)     # (B, C) for token k of every block
            ... code token k ...
            dec.push(k, y_hat_k)             # (B, C) its decoded values

    `cache=False` re-runs every earlier token at each step (the same function, more work)."""

    def __init__(self, model: VCT, enc1: torch.Tensor, enc2: torch.Tensor, prev1_windows: torch.Tensor,
                 prev2_windows: torch.Tensor, log_step: torch.Tensor, side=None, cache: bool = True,
                 state: torch.Tensor | None = None):
        self.model, self.log_step, self.cache, self.side = model, log_step, cache, side
        self.state = model._state_in(state)  # (B, w^2, d) or 0
        memory = model.memory(enc1, enc2)
        self.memory_kv = [layer.memory_kv(memory) for layer in model.decoder]
        self.anchor = model.anchor(prev1_windows)  # (B, w^2, C)
        self.colocated = model._colocated_in(self.anchor, model.anchor(prev2_windows))  # (B, w^2, d) or 0
        self.past: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self.values: list[torch.Tensor] = []
        self.pending: torch.Tensor | None = None  # input row of the next token

    def _side(self, k: int):
        return None if self.side is None else (self.side[0][:, k : k + 1], self.side[1][:, k : k + 1])

    def _input(self, k: int) -> torch.Tensor:
        m = self.model
        if k == 0:
            h = (m.start + m.block_pos[0] + m._rate(self.log_step)[:, 0])[:, None, :]
        else:
            h = m._current_in(self.values[k - 1][:, None, :], slice(k, k + 1), self.log_step)
        colocated = self.colocated[:, k : k + 1] if torch.is_tensor(self.colocated) else 0.0
        state = self.state[:, k : k + 1] if torch.is_tensor(self.state) else 0.0
        return h + m._side_in(self._side(k)) + colocated + state

    @torch.no_grad()
    def predict(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.cache:
            h, past, new_past = self._input(k), self.past, []
            for i, layer in enumerate(self.model.decoder):
                p = past[i] if past is not None else None
                h, (kk, vv) = layer(h, self.memory_kv[i], None, p)
                new_past.append((torch.cat([p[0], kk], 2), torch.cat([p[1], vv], 2)) if p is not None else (kk, vv))
            self.past = new_past
            h = h[:, 0]
        else:
            h = torch.cat([self._input(j) for j in range(k + 1)], 1)
            mask = torch.ones(k + 1, k + 1, dtype=torch.bool).tril()
            for i, layer in enumerate(self.model.decoder):
                h, _ = layer(h, self.memory_kv[i], mask)
            h = h[:, -1]
        side = self._side(k)
        return self.model._params(h, self.anchor[:, k], None if side is None else (side[0][:, 0], side[1][:, 0]))

    def push(self, k: int, y_hat: torch.Tensor) -> None:
        """Feeds the decoded values of token k (B, C)."""
        assert len(self.values) == k, "tokens must be pushed in order"
        self.values.append(y_hat)
