"""The NETS chunk of an overfitted image (docs/FORMAT.md section 15): the decoder's size, the
quantization shifts of its networks and their coded integers.

Layout (little-endian, all u8 unless noted)::

    grids L (1..7) | arm_context K (6, 12, 24) | arm_hidden (0..4) | taps T (2..8) | convs (0..4)
    tile (0: none, else log2 of the ARM's tile side, 3..12)
    n_widths (1..4) | widths[n_widths] (1..128)
    shifts: arm, arm_bias, taps, synthesis, synthesis_bias (each 0..15; arm_bias <= 8 + arm,
            synthesis_bias <= 12 + synthesis)
    scale indexes: one per tensor (0..63), in the order of `tensor_shapes`
    u32 stream length | stream (the networks' Laplace stream, codec.entropy.networks)

The tensors, in order: each ARM hidden layer's weight (K, K) and bias (K,), the ARM output layer's
weight (2, K) and bias (2,), the L - 1 upsampling filters (T,) (finest level first), each synthesis
MLP layer's weight (out, in) and bias (out,) (in = L first, out = 3 last), each 3x3 layer's weight
(3, 3, 3, 3) and bias (3,).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from codec.errors import FormatError

ARM_CONTEXTS = (6, 12, 24)
MAX_GRIDS, MAX_HIDDEN, MAX_CONVS, MAX_WIDTHS, MAX_WIDTH = 7, 4, 4, 4, 128
TAPS_RANGE = (2, 8)
TILE_LOG2_RANGE = (3, 12)
MAX_SHIFT = 15
SCALE_COUNT = 64
ARM_FRAC, SYNTHESIS_FRAC = 8, 12  # activations' fractional bits (codec.entropy.arm, codec.models.overfit_int)


@dataclass(frozen=True)
class Nets:
    """The parsed NETS chunk (the integers are still coded: `stream`)."""

    grids: int
    arm_context: int
    arm_hidden: int
    taps: int
    convs: int
    tile_log2: int  # 0: the ARM codes whole grids; t: tiles of 2^t x 2^t
    widths: tuple[int, ...]
    shifts: tuple[int, int, int, int, int]  # arm, arm_bias, taps, synthesis, synthesis_bias
    scale_indexes: tuple[int, ...]
    stream: bytes

    @property
    def tile(self) -> int:
        return 1 << self.tile_log2 if self.tile_log2 else 0

    def tensor_shapes(self) -> list[tuple[int, ...]]:
        k = self.arm_context
        shapes: list[tuple[int, ...]] = []
        for _ in range(self.arm_hidden):
            shapes += [(k, k), (k,)]
        shapes += [(2, k), (2,)]
        shapes += [(self.taps,)] * (self.grids - 1)
        dims = (self.grids, *self.widths, 3)
        for a, b in zip(dims[:-1], dims[1:]):
            shapes += [(b, a), (b,)]
        for _ in range(self.convs):
            shapes += [(3, 3, 3, 3), (3,)]
        return shapes


def pack_nets(nets: Nets) -> bytes:
    _check(nets)
    head = bytes([nets.grids, nets.arm_context, nets.arm_hidden, nets.taps, nets.convs, nets.tile_log2, len(nets.widths),
                  *nets.widths, *nets.shifts, *nets.scale_indexes])
    return head + struct.pack("<I", len(nets.stream)) + nets.stream


def unpack_nets(data: bytes | memoryview) -> Nets:
    """Raises FormatError on any field out of range or a length that does not add up."""
    data = bytes(data)

    def take(n: int, at: int) -> bytes:
        if at + n > len(data):
            raise FormatError(f"corrupt bitstream: NETS chunk is truncated ({len(data)} bytes)")
        return data[at:at + n]

    grids, k, hidden, taps, convs, tile_log2, n_widths = take(7, 0)
    if not 1 <= n_widths <= MAX_WIDTHS:
        raise FormatError(f"corrupt bitstream: NETS has {n_widths} synthesis widths (1..{MAX_WIDTHS})")
    at = 7
    widths = tuple(take(n_widths, at))
    at += n_widths
    shifts = tuple(take(5, at))
    at += 5
    partial = Nets(grids, k, hidden, taps, convs, tile_log2, widths, shifts, (), b"")
    _check(partial, tensors=False)
    count = len(partial.tensor_shapes())
    indexes = tuple(take(count, at))
    at += count
    (length,) = struct.unpack("<I", take(4, at))
    at += 4
    if at + length != len(data):
        raise FormatError(f"corrupt bitstream: NETS stream length {length} does not match the chunk "
                          f"({len(data) - at} bytes left)")
    nets = Nets(grids, k, hidden, taps, convs, tile_log2, widths, shifts, indexes, data[at:])
    _check(nets)
    return nets


def _check(n: Nets, tensors: bool = True) -> None:
    def bad(what: str) -> FormatError:
        return FormatError(f"corrupt bitstream: NETS {what}")

    if not 1 <= n.grids <= MAX_GRIDS:
        raise bad(f"grid count {n.grids} outside 1..{MAX_GRIDS}")
    if n.arm_context not in ARM_CONTEXTS:
        raise bad(f"ARM context {n.arm_context} not one of {ARM_CONTEXTS}")
    if not 0 <= n.arm_hidden <= MAX_HIDDEN or not 0 <= n.convs <= MAX_CONVS:
        raise bad(f"layer counts {n.arm_hidden}/{n.convs} outside 0..{MAX_HIDDEN}")
    if n.tile_log2 and not TILE_LOG2_RANGE[0] <= n.tile_log2 <= TILE_LOG2_RANGE[1]:
        raise bad(f"tile log2 {n.tile_log2} outside {TILE_LOG2_RANGE[0]}..{TILE_LOG2_RANGE[1]}")
    if not TAPS_RANGE[0] <= n.taps <= TAPS_RANGE[1]:
        raise bad(f"filter half-length {n.taps} outside {TAPS_RANGE[0]}..{TAPS_RANGE[1]}")
    if not 1 <= len(n.widths) <= MAX_WIDTHS or any(not 1 <= w <= MAX_WIDTH for w in n.widths):
        raise bad(f"synthesis widths {n.widths} outside 1..{MAX_WIDTH}")
    if any(not 0 <= s <= MAX_SHIFT for s in n.shifts) or len(n.shifts) != 5:
        raise bad(f"shifts {n.shifts} outside 0..{MAX_SHIFT}")
    arm, arm_bias, _, syn, syn_bias = n.shifts
    if arm_bias > ARM_FRAC + arm or syn_bias > SYNTHESIS_FRAC + syn:
        raise bad(f"bias shifts {n.shifts} finer than their accumulators")
    if tensors:
        if len(n.scale_indexes) != len(n.tensor_shapes()) or any(i >= SCALE_COUNT for i in n.scale_indexes):
            raise bad("scale indexes do not fit the networks")
