"""The VCT family (Mentzer et al. 2022): a transformer predicts each frame's latents from the two
previous frames' decoded latents; intra frames are the image model's coding. One frame, both
directions; the streaming loops, the container and seeking are `codec.pipeline.video`'s.

    encode, frame t:  padded pixels -g_a-> y_t
        keyframe:  intra, exactly the hyperprior family's coding (z stream + y stream)
        otherwise: inter: [models with side information: z -> stream (mode 1: the image model's
                   factorized prior; mode 2, models with a temporal prior: z_t - z_{t-1} under
                   ZPrior(z_{t-1}, z_{t-2}), whichever is shorter), h_s -> mean_hp, scale_hp]
                   VCT(y_hat[t-1], y_hat[t-2] [, mean_hp, scale_hp]) -> for token k = 0..15 of every 4x4 block:
                       mean, scale (float64) -snap-> y_sym = rd_round((y - mean_q) / enc_step) -> stream
                       y_hat = y_sym * dec_mult + mean_q -> pushed into the decoder's cache
                   and intra instead when that costs less (bits + squared latent error / rdo)
                   with a latent memory (codec.pipeline.vct_memory): also mode 3, the same token
                   loop with the stored frame nearest in z as both previous frames (z coded on its
                   own, the entry's rank in a byte); intra frames name their memory slot, and at a
                   cut (intra off the schedule, or mode 3) the slot of the frame before (version 6)
        -> (mode, streams); y_hat_t kept as the next frames' context
    decode, frame t:  (mode, streams) -> (same parameter path) -> y_hat_t -g_s-> pixels

Models with a recurrent state (config.state, RLVC): both sides update it with every frame's y_hat
(from zero at a keyframe, so seeking needs nothing before it) and the token loop reads it; it is the
model's, not the file's: the model id names it.

The encoder never runs g_s: the context is the decoded latents, which it has exactly. Both sides run
the identical token loop (`_inter`) in float64 on CPU, snapped to the grids of the image model, so
the parameters the encoder codes with are the ones the decoder recomputes. The encoder rounds each
residual to the nearer integer or to the one next to it nearer zero, whichever costs less in squared
error plus `rdo` x bits under the token's Gaussian (`rd_round`; the decoder never needs to know, and
later tokens are predicted from the symbols actually chosen). The first inter frame
after an intra frame sees that frame as both t-1 and t-2.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch

from codec.container.video import INTER, INTER_MEM, INTER_TZ, INTRA, MAX_MEMORY, Frame
from codec.entropy.gaussian import rd_round, snap_means
from codec.errors import FormatError, WeightsError
from codec.family import Family, safetensors_bytes
from codec.models.vct import VCT, VCTConfig, StepDecoder, blocks_of, unblock, windows_of
from codec.pipeline import hyperprior
from codec.pipeline.rate import Rate
from codec.pipeline.tiles import synthesize
from codec.pipeline.vct_memory import NOT_STORED, SAME_SCENE, Entry, LatentMemory, distance

RDO_LAMBDA = 0.05  # the encoder's rate-distortion trade-off: inter rounding, mode decision (results/ablate)
RANKS_TRIED = 2  # mode 3: the encoder codes against the nearest entries in z and keeps the cheapest
TF_PREFIX = "tf."


@dataclass(frozen=True)
class VCTModel(hyperprior.WithTransformer):
    """A VCT video model ready to code; `hp` also codes the intra frames. Its weights file holds the
    transformer only (`tf`: a VCT); the image model is referenced by id and sha256 in the manifest and
    checked at load."""

    family = "vct"


def serialize_transformer(tf: VCT, model_id: str) -> bytes:
    """The safetensors bytes of a VCT model's transformer."""
    tensors = {TF_PREFIX + k: v.detach().float().contiguous() for k, v in tf.state_dict().items()}
    return safetensors_bytes(tensors, "vct", model_id)


def from_modules(hp: hyperprior.HyperpriorModel, tf: VCT, model_id: str) -> VCTModel:
    """A model straight from modules (tests, training), sha256 as export would write it."""
    return VCTModel.of(hp, copy.deepcopy(tf), model_id, hashlib.sha256(serialize_transformer(tf, model_id)).hexdigest())


# --- one frame, both directions ----------------------------------------------------------------


@dataclass
class _Context:
    """What both sides keep between frames: the last two decoded latents with their E_sep encodings,
    and the last two frames' z symbols (for the temporal prior of the side information)."""

    model: VCTModel
    rate: Rate
    log_step: float
    latents: list = field(default_factory=list)  # [(y_hat (C, h, w) float64, windows, encoding)]
    zs: list = field(default_factory=list)  # [z symbols (N, h/4, w/4) int32]

    def latent(self, y_hat: torch.Tensor) -> tuple:
        """(y_hat, its 8x8 windows, their E_sep encoding): what an inter frame's context needs of a frame."""
        tf, cfg = self.model.tf64, self.model.tf64.config
        windows = windows_of(y_hat[None], cfg)
        ls = torch.full((windows.shape[0],), self.log_step, dtype=torch.float64)
        with torch.no_grad():
            enc = tf.encode_previous(windows, ls)
        return y_hat, windows, enc

    def push(self, y_hat: torch.Tensor, z_sym: np.ndarray) -> None:
        self.latents = (self.latents + [self.latent(y_hat)])[-2:]
        self.zs = (self.zs + [z_sym])[-2:]

    def start_from(self, entry: Entry) -> None:
        """The context of an inter frame coded against a memory entry: that entry as t-1 and t-2."""
        self.latents, self.zs = [entry.latent], [entry.z]

    def clear(self) -> None:
        self.latents, self.zs = [], []


# side information: z symbols, their two codings, and the hyperprior parameters they give

Z_GAINS = tuple(range(-6, 7))  # the temporal prior's scale times 2^(g/2), g picked by the encoder per frame


def _z_of(model: VCTModel, y: torch.Tensor) -> np.ndarray:
    """z symbols (N, h/4, w/4) int32 of latents y (1, C, h, w)."""
    with torch.no_grad():
        return model.hp.entropy.z_symbols(model.hp.module.h_a(y))


def _z_code(model: VCTModel, z_sym: np.ndarray) -> bytes:
    """The image model's coding of z (factorized prior): intra frames and mode-1 inter frames."""
    return model.hp.entropy.compress_z(z_sym)


def _z_decode(model: VCTModel, stream: bytes, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    return model.hp.entropy.decompress_z(stream, h // 4, w // 4)


def _z_scale(ctx: _Context) -> torch.Tensor:
    """The temporal prior's scale (N, h/4, w/4) float64 from the previous two frames' z (both sides)."""
    z1 = torch.from_numpy(ctx.zs[-1].astype(np.float64))[None]
    z2 = torch.from_numpy(ctx.zs[-2 if len(ctx.zs) > 1 else -1].astype(np.float64))[None]
    with torch.no_grad():
        return ctx.model.tf64.zprior(z1, z2)[0]


def _z_code_temporal(ctx: _Context, z_sym: np.ndarray) -> bytes:
    """Mode 2: u8 gain index | Gaussian stream of z_t - z_{t-1} at scale * 2^(g/2); the encoder
    tries every gain and keeps the shortest."""
    scale, gc = _z_scale(ctx), ctx.model.hp.entropy.y
    residual = z_sym.astype(np.int64) - ctx.zs[-1]
    best = None
    for i, g in enumerate(Z_GAINS):
        data = bytes([i]) + gc.compress(residual, gc.index(scale * 2.0 ** (g / 2)))
        if best is None or len(data) < len(best):
            best = data
    return best


def _z_decode_temporal(ctx: _Context, stream: bytes) -> np.ndarray:
    if not stream or stream[0] >= len(Z_GAINS):
        raise FormatError("corrupt side information: bad gain of the temporal prior")
    g = Z_GAINS[stream[0]]
    gc = ctx.model.hp.entropy.y
    residual = gc.decompress(stream[1:], gc.index(_z_scale(ctx) * 2.0 ** (g / 2)))
    z = residual.astype(np.int64) + ctx.zs[-1]
    if z.min(initial=0) < np.iinfo(np.int32).min or z.max(initial=0) > np.iinfo(np.int32).max:
        raise FormatError("corrupt side information: z beyond int32")
    return z.astype(np.int32)


def _side(model: VCTModel, z_sym: np.ndarray, z_stream: bytes | None = None):
    """(z_stream, mean_q (1, C, h, w) float32 snapped, scale (1, C, h, w) float64) of z symbols."""
    mean_q, scale = model.hp.entropy.parameters(z_sym)
    return z_stream, mean_q, scale


def _intra(model: VCTModel, rate: Rate, y: torch.Tensor | bytes, side) -> tuple[bytes | None, torch.Tensor]:
    """The image pipeline's coding of y given its side information (z_stream, mean_q, scale).
    Encoder: y (1, C, h, w) -> (y stream, y_hat); decoder: y stream given as `y` bytes -> (None, y_hat).
    y_hat (C, h, w) float64."""
    entropy = model.hp.entropy
    _, mean_q, scale = side
    idx = entropy.scale_index(scale, rate.enc_step)
    if isinstance(y, torch.Tensor):
        y_sym = hyperprior.quantize(y, mean_q, rate)
        stream = entropy.y.compress(y_sym, idx)
    else:
        y_sym = entropy.y.decompress(y, idx)
        stream = None
    return stream, hyperprior.dequantize(y_sym, mean_q, rate, torch.float64)[0]


def _inter(ctx: _Context, y: torch.Tensor | None, stream: bytes | None, shape: tuple[int, int],
           side=None, rdo: float = 0.0, state: torch.Tensor | None = None) -> tuple[bytes | None, torch.Tensor]:
    """The token loop both sides run. Encoder: y (C, h, w) -> (stream, y_hat); decoder: stream ->
    (None, y_hat). y_hat (C, h, w) float64. `side`: the frame's (z_stream, mean_q, scale) for models
    with config.side; `state`: the recurrent state (1, S, h, w) for models with config.state."""
    model, rate = ctx.model, ctx.rate
    tf, cfg = model.tf64, model.tf64.config
    _, windows1, enc1 = ctx.latents[-1]
    _, windows2, enc2 = ctx.latents[-2] if len(ctx.latents) > 1 else ctx.latents[-1]
    h, w = shape
    ls = torch.full((windows1.shape[0],), ctx.log_step, dtype=torch.float64)
    side_tokens = None
    if cfg.side:
        side_tokens = (blocks_of(side[1].double(), cfg.block), blocks_of(side[2].double(), cfg.block))
    state_tokens = blocks_of(state, cfg.block) if cfg.state else None
    dec = StepDecoder(tf, enc1, enc2, windows1, windows2, ls, side_tokens, state=state_tokens)
    enc_step, dec_mult = rate.enc_step.double(), rate.dec_mult.double()
    cur = blocks_of(y.double()[None], cfg.block) if y is not None else None  # (B, w^2, C)
    out = torch.zeros(windows1.shape[0], cfg.tokens, cfg.channels, dtype=torch.float64)
    gc = model.hp.entropy.y
    writer = gc.encoder() if y is not None else gc.decoder(stream, what="inter frame")
    for k in range(cfg.tokens):
        mean, scale = dec.predict(k)  # (B, C)
        mean_q = snap_means(mean).double()
        idx = gc.index(scale / enc_step)
        if cur is not None:
            r = (cur[:, k] - mean_q) / enc_step
            sym = rd_round(r, gc.scales(idx), rdo)
            writer.encode(sym.to(torch.int64).numpy().astype(np.int32), idx)
        else:
            sym = torch.from_numpy(writer.decode(idx).astype(np.float64))
        hat = sym * dec_mult + mean_q
        out[:, k] = hat
        dec.push(k, hat)
    if cur is not None:
        data = writer.finish()
    else:
        writer.finish()
        data = None
    return data, unblock(out, 1, h, w, cfg.block)[0]


def _rd_cost(y: torch.Tensor, y_hat: torch.Tensor, streams: list[bytes], rate: Rate, lam: float) -> float:
    """The mode decision's cost of one coding of a frame: bits, plus the squared error of its
    latents in quantisation steps over `lam` when lam > 0 (the cost `rd_round` weighs)."""
    bits = 8.0 * sum(map(len, streams))
    if lam <= 0:
        return bits
    err = (y[0].double() - y_hat) / rate.enc_step.double().view(-1, 1, 1)
    return bits + float((err**2).sum()) / lam


def _log_step(rate: Rate) -> float:
    return float(torch.log2(rate.enc_step.double()).mean())


# --- the frame coder the streaming loops drive ---------------------------------------------------


class FrameCoder:
    """Codes the frames of one video at one rate, in order, keeping the context both sides share.

        fc = FrameCoder(model, rate, gop)
        mode, streams, y_hat = fc.encode(x, key)      # encoder: x (1, 3, Hp, Wp) float32 in [0, 1]
        y_hat = fc.decode(frame)                      # decoder: a container Frame
        pixels = fc.pixels(y_hat, height, width)

    Encoder settings (the bitstream format is the same for any): `mode_decision` codes an inter
    frame intra when that costs less; `rdo` is the lambda of the rate-distortion choices (inter
    rounding and the mode decision: bits + squared latent error in steps / rdo; 0 = plain rounding
    and the fewer bytes); `z_deadzone` keeps z_{t-1} where z moved by at most this much (models
    with a temporal prior).

    `memory` (recorded in the file, both sides): the slots of a latent memory
    (codec.pipeline.vct_memory; 0 = none). With one, every intra frame names the slot it is stored
    in (a third stream; the index lists them, for a seeking decoder), and the encoder's mode decision
    gains mode 3: inter against the memory entry whose z is nearest the frame's, tried when that
    entry is nearer than the previous frame (a scene that returns). `scene_ends` (version 6; False
    writes and reads version 5): a cut also stores the frame before it, the newest view of the
    scene it leaves; such entries last until the next keyframe. An intra frame off the GOP schedule keeps the context
    as without a memory (clearing it made a drifting still clip all-intra: inter right after an intra
    frame, seen as both previous frames, lost to intra again and again)."""

    def __init__(self, model: VCTModel, rate: Rate, gop: int, *, memory: int = 0, scene_ends: bool = True,
                 mode_decision: bool = True, z_deadzone: int = 1, rdo: float = RDO_LAMBDA):
        if not 0 <= memory <= MAX_MEMORY:
            raise ValueError(f"memory must be within 0..{MAX_MEMORY} entries, got {memory}")
        self.model, self.rate, self.gop = model, rate, gop
        self.mode_decision, self.z_deadzone, self.rdo = mode_decision, z_deadzone, rdo
        self.ctx = _Context(model, rate, _log_step(rate))
        self.cfg = model.tf64.config
        self.memory = LatentMemory(memory) if memory else None
        self.scene_ends = scene_ends
        self.slot_bytes = 2 if scene_ends else 1  # of an intra frame's slot stream and a mode-3 reference
        self.state: torch.Tensor | None = None  # the recurrent state (1, S, h, w) float64 (config.state)
        self.number = 0  # the encoder's next frame number

    @property
    def temporal_side(self) -> bool:
        """Whether the files need the container version that carries mode-2 frames."""
        return bool(self.cfg.zprior)

    def encode(self, x: torch.Tensor, key: bool) -> tuple[int, list[bytes], torch.Tensor]:
        model, rate = self.model, self.rate
        with torch.no_grad():
            y = model.module.g_a(x)
        shape = (y.shape[2], y.shape[3])
        if key and self.memory is not None:
            self.memory.refresh()  # (again in _after, a no-op then) so that the keyframe's slot is chosen among what stays
        z_sym, side = None, None
        if key or self.mode_decision or self.cfg.side:
            z_sym = _z_of(model, y)
            side = _side(model, z_sym, _z_code(model, z_sym))
        intra = None
        if key or self.mode_decision:
            y_stream, intra_hat = _intra(model, rate, y, side)
            streams = [side[0], y_stream] + ([self._slots(self.memory.choose_slot(z_sym))] if self.memory is not None else [])
            intra = (INTRA, streams, intra_hat, z_sym, None)
        candidates = [intra] if intra is not None else []
        if not key:
            candidates.append(self._encode_inter(y, z_sym, side, shape))
            if self.memory:  # (not empty)
                candidates += self._encode_from_memory(y, z_sym, side, shape)
        # the first candidate of least cost: intra, inter, inter against the memory
        mode, streams, y_hat, z_kept, entry = min(candidates, key=lambda c: _rd_cost(y, c[2], c[1], rate, self.rdo))
        if self.memory is not None and self.scene_ends and mode in (INTRA, INTER_MEM):
            at = 2 if mode == INTRA else 0
            streams = list(streams)
            own = streams[at][0] if mode == INTRA and streams[at][0] != NOT_STORED else None
            streams[at] = self._slots(streams[at][0], self._scene_end_slot(mode, key, z_sym, own))
        self._after(mode, key, y_hat, z_kept, self.number, streams, entry)
        self.number += 1
        return mode, streams, y_hat

    def _encode_from_memory(self, y, z_sym, side, shape) -> list:
        """Mode 3 against the nearest entry, when it is nearer than the previous frame: streams
        [rank (u8), z on its own, y]."""
        if z_sym is None or not self.ctx.zs:
            return []
        ranked = self.memory.ranked(z_sym)
        if ranked[0][0] >= distance(z_sym, self.ctx.zs[-1]):
            return []
        out = []
        for rank, (_, entry) in enumerate(ranked[:RANKS_TRIED]):
            ctx = _Context(self.model, self.rate, self.ctx.log_step)
            ctx.start_from(entry)
            stream, hat = _inter(ctx, y[0], None, shape, side, self.rdo, self.state)
            out.append((INTER_MEM, [self._slots(rank), side[0], stream], hat, z_sym, entry))
        return out

    def _slots(self, first: int, scene_end: int = NOT_STORED) -> bytes:
        """An intra frame's slot stream or a mode-3 frame's reference: [slot or rank] (version 5) or
        [slot or rank, slot of the frame before] (version 6)."""
        return bytes([first, scene_end][: self.slot_bytes])

    def _scene_end_slot(self, mode: int, key: bool, z_sym: np.ndarray, own_slot: int | None) -> int:
        """The encoder's choice: the slot that keeps the frame before this one, the last view of the
        scene a cut leaves (NOT_STORED unless this frame cuts: intra off the schedule or mode 3, its z
        farther than SAME_SCENE per element from the previous frame's)."""
        ctx = self.ctx
        if key or not ctx.latents or ctx.zs[-1] is None:
            return NOT_STORED
        previous = ctx.zs[-1]
        if distance(z_sym, previous) <= SAME_SCENE * previous.size:
            return NOT_STORED
        if any(e.number == self.number - 1 for e in self.memory.slots if e is not None):
            return NOT_STORED  # stored already (an intra frame)
        return self.memory.choose_slot(previous, intra=False, taken=own_slot)

    def _after(self, mode: int, key: bool, y_hat, z_sym, number: int, streams, entry: Entry | None) -> None:
        """Both sides, once a frame is coded: the context (and the memory) as the next frame sees it
        (`entry`: the memory entry a mode-3 frame was coded against). Memory first: a keyframe
        refreshes it; a cut stores the frame before it (the context's last latent)."""
        if self.memory is not None:
            if key:
                self.memory.refresh()
            if self.scene_ends and mode in (INTRA, INTER_MEM):
                scene_end = streams[2 if mode == INTRA else 0][1]
                if scene_end != NOT_STORED:
                    self.memory.store(Entry(number - 1, scene_end, self.ctx.latents[-1], self.ctx.zs[-1], intra=False))
        if mode == INTER_MEM:
            self.memory.touch(entry.slot, number)
            self.ctx.start_from(entry)
        elif mode == INTRA and key:
            self.ctx.clear()
        self._keep(y_hat, z_sym, key)
        if self.memory is not None and mode == INTRA and streams[2][0] != NOT_STORED:
            latent = self.ctx.latents[-1] if self.ctx.latents else self.ctx.latent(y_hat)
            self.memory.store(Entry(number, streams[2][0], latent, z_sym))

    def _memory_entry(self, rank: int, z_sym: np.ndarray) -> Entry:
        ranked = self.memory.ranked(z_sym) if self.memory else []
        if rank >= len(ranked):
            raise FormatError(f"inter against memory entry {rank} of {len(ranked)}")
        return ranked[rank][1]

    def remember(self, frame: Frame, shape: tuple[int, int], slot: int) -> None:
        """A seeking decoder: add the intra frame `frame`, which the index lists in `slot`, to the memory
        without decoding its pixels or touching the context (codec.pipeline.video rebuilds the memory
        from the index; an index that disagrees with the frame is corrupt)."""
        if frame.mode != INTRA:
            raise FormatError(f"frame {frame.number} is listed as intra but is not intra-coded")
        self._check_streams(frame)
        if frame.streams[2][0] != slot:
            raise FormatError(f"frame {frame.number} is stored in slot {frame.streams[2][0]}, the index says {slot}")
        z_sym = _z_decode(self.model, frame.streams[0], shape)
        _, y_hat = _intra(self.model, self.rate, frame.streams[1], _side(self.model, z_sym))
        self.memory.store(Entry(frame.number, frame.streams[2][0], self.ctx.latent(y_hat), z_sym))

    def _check_streams(self, frame: Frame) -> None:
        cfg, memory = self.cfg, self.memory is not None
        if frame.mode == INTER_MEM and not memory:
            raise FormatError("inter against the memory in a video without one")
        want = {INTRA: 2 + memory, INTER: 1 + bool(cfg.side), INTER_TZ: 2, INTER_MEM: 3}[frame.mode]
        if len(frame.streams) != want:
            raise FormatError(f"{len(frame.streams)} streams in a frame of mode {frame.mode}, expected {want}")
        if memory and frame.mode == INTRA:
            slot = frame.streams[2]
            if len(slot) != self.slot_bytes or (slot[0] >= self.memory.size and slot[0] != NOT_STORED):
                raise FormatError(f"corrupt memory slot of an intra frame (a memory of {self.memory.size})")
        if frame.mode == INTER_MEM and len(frame.streams[0]) != self.slot_bytes:
            raise FormatError("corrupt reference to the memory")

    def _check_scene_end(self, frame: Frame, key: bool) -> None:
        """A decoder: the slot byte of the frame before a cut names a slot, and that frame exists here
        (not before a keyframe: what the refresh would drop and a seeking decoder never has)."""
        if self.memory is None or not self.scene_ends or frame.mode not in (INTRA, INTER_MEM):
            return
        scene_end = frame.streams[2 if frame.mode == INTRA else 0][1]
        if scene_end == NOT_STORED:
            return
        if scene_end >= self.memory.size:
            raise FormatError(f"corrupt memory slot of the frame before a cut (a memory of {self.memory.size})")
        if key or not self.ctx.latents or self.ctx.zs[-1] is None:
            raise FormatError("the frame before a keyframe, or before the first frame, stored in the memory")

    def _encode_inter(self, y, z_sym, side, shape) -> tuple[int, list[bytes], torch.Tensor, np.ndarray, None]:
        ctx, model = self.ctx, self.model
        inter_z, inter_side = z_sym, side
        if self.cfg.zprior and self.z_deadzone > 0:  # keep z_{t-1} where z barely moved (lossy side information)
            inter_z = np.where(np.abs(z_sym - ctx.zs[-1]) <= self.z_deadzone, ctx.zs[-1], z_sym).astype(np.int32)
            if not np.array_equal(inter_z, z_sym):  # else the frame's own side information stands
                inter_side = _side(model, inter_z, _z_code(model, inter_z))
        stream, inter_hat = _inter(ctx, y[0], None, shape, inter_side, self.rdo, self.state)
        mode, streams = INTER, [stream]
        if self.cfg.side:
            streams = [inter_side[0], stream]
            if self.cfg.zprior:  # z given the previous frames' z when that is shorter
                z_temporal = _z_code_temporal(ctx, inter_z)
                if len(z_temporal) < len(inter_side[0]):
                    mode, streams = INTER_TZ, [z_temporal, stream]
        return mode, streams, inter_hat, inter_z, None

    def decode(self, frame: Frame, shape: tuple[int, int]) -> torch.Tensor:
        """y_hat (C, h, w) float64 of a frame; FormatError when it is damaged."""
        cfg, ctx = self.cfg, self.ctx
        key = frame.number % self.gop == 0
        self._check_streams(frame)
        self._check_scene_end(frame, key)
        if frame.mode != INTRA and not ctx.latents:
            raise FormatError("inter-coded with no frame before it")
        z_sym, side, entry = None, None, None
        if frame.mode == INTER_TZ:
            if not cfg.zprior:
                raise FormatError(f"mode 2 (temporal side information) but model {self.model.model_id!r} "
                                  "has no temporal prior")
            z_sym = _z_decode_temporal(ctx, frame.streams[0])
        elif frame.mode != INTER or cfg.side:  # intra, inter with side information, against the memory
            z_at = 1 if frame.mode == INTER_MEM else 0
            z_sym = _z_decode(self.model, frame.streams[z_at], shape)
            side = _side(self.model, z_sym, frame.streams[z_at])
        if z_sym is not None and side is None:
            side = _side(self.model, z_sym, frame.streams[0])
        if frame.mode == INTRA:
            _, y_hat = _intra(self.model, self.rate, frame.streams[1], side)
        else:
            if frame.mode == INTER_MEM:
                entry = self._memory_entry(frame.streams[0][0], z_sym)
                ctx = _Context(self.model, self.rate, ctx.log_step)
                ctx.start_from(entry)
            _, y_hat = _inter(ctx, None, frame.streams[-1], shape, side, state=self.state)
        self._after(frame.mode, key, y_hat, z_sym, frame.number, frame.streams, entry)
        return y_hat

    def _keep(self, y_hat: torch.Tensor, z_sym, key: bool = False) -> None:
        if self.gop > 1:  # all-intra needs no temporal context
            self.ctx.push(y_hat, z_sym)
            if self.cfg.state:  # a keyframe starts it again from zero (seeking needs nothing before)
                with torch.no_grad():
                    self.state = self.model.tf64.recurrent(None if key else self.state, y_hat[None])

    def pixels(self, y_hat: torch.Tensor, height: int, width: int) -> np.ndarray:
        return synthesize(self.model.module.g_s, y_hat.float()[None], height, width)


class VCTFamily(Family):
    name = "vct"
    kind = "video"

    def load(self, model_id, sha256, config, tensors, resolve) -> VCTModel:
        hp = resolve(config["ae"])
        if hp.sha256 != config["ae_sha256"]:
            raise WeightsError(f"model {model_id!r} was trained on {config['ae']!r} with sha256 "
                               f"{config['ae_sha256'][:16]}..., the installed one is {hp.sha256[:16]}...")
        tf = VCT(VCTConfig(**config["tf"]))
        tf.load_state_dict({k[len(TF_PREFIX):]: v for k, v in tensors.items() if k.startswith(TF_PREFIX)}, strict=True)
        return VCTModel.of(hp, tf, model_id, sha256)

    def serialize(self, model: VCTModel) -> bytes:
        return serialize_transformer(model.tf, model.model_id)

    def config(self, model: VCTModel) -> dict:
        return {"ae": model.hp.model_id, "ae_sha256": model.hp.sha256, "tf": model.tf.config.to_dict()}

    def frame_coder(self, model: VCTModel, rate: Rate, gop: int, memory: int = 0, **settings) -> FrameCoder:
        return FrameCoder(model, rate, gop, memory=memory, **settings)


FAMILY = VCTFamily()
