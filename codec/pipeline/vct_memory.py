"""The VCT family's latent memory (issue 18): decoded latents of earlier frames, kept so that a
scene that returns (a cut back, a camera that pans away and back) is coded inter against what was
seen before instead of intra.

    an intra frame -> stored in the slot its file names (0..N-1; the encoder's choice, below)
    a cut (an intra frame off the GOP schedule, or a frame of mode 3) -> may also store the frame
        before it, the last view of the scene the cut leaves, in the slot it names (version 6)
    a keyframe -> every slot back to the last intra frame stored in it (empty if none): the
        entries of inter frames last until the next keyframe, so that a decoder that seeks rebuilds
        the memory from the intra frames the index lists
    a frame of mode 3 -> its z (coded on its own) -> ranked: the stored entries by the L1 distance of
        their z symbols to it (int64, exact), nearer first, the newer first among equals
        -> the entry at the rank the frame records -> the context of the frame's inter coding

The slots are written in the file (each intra frame's, and again in the index), so the decoder
never repeats the encoder's policy: a decoder that seeks to a keyframe reads, for each slot, the last
intra frame stored there before it from the index and decodes only those (an intra frame needs no
other); a sequential decoder reaches the same memory at that keyframe by the refresh above. The
ranking is integer arithmetic on decoded symbols: the same order on any machine and thread count.

The encoder's policy (`choose_slot`; not part of the format): an intra frame whose z is within
SAME_SCENE per z element of an entry's replaces that entry (the same scene, seen again: the newer
view is the better reference); otherwise it takes an empty slot, or else the nearest entry's slot
when that is within NEAR_SCENE, or else the slot least recently stored or used as a reference. So a
scene coded intra frame after frame (a clip the inter model cannot predict) keeps one slot instead
of pushing every other scene out. The frame a cut leaves
goes the same way, except that it replaces only another such entry: a scene that returns may
continue where it stopped (its newest view is the better reference) or start again (its intra
frame is), and the encoder tries mode 3 against the nearest entries (codec.pipeline.vct.RANKS_TRIED).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Entry", "LatentMemory", "NEAR_SCENE", "NOT_STORED", "SAME_SCENE", "distance"]

NOT_STORED = 0xFF
"""The slot byte of an intra frame that the memory does not keep."""
SAME_SCENE = 0.1
"""Mean absolute difference of z symbols under which an intra frame replaces an entry (encoder
policy). Measured on the shipped model: consecutive frames of one shot 0.02-0.05 per element,
the same shot 8 frames apart about 0.08, different scenes 0.25 and more (carphone / foreman)."""
NEAR_SCENE = 0.25
"""With every slot taken, a frame within this per z element of an entry replaces the nearest entry
instead of the least recently used one (encoder policy): a scene the inter model cannot predict,
coded intra frame after frame, drifts past SAME_SCENE but must not push the other scenes out."""


@dataclass(frozen=True)
class Entry:
    """One remembered frame: its number, its slot, the context its inter coding needs (the family's
    latent tuple: y_hat, windows, encoding), its z symbols (int32) and whether it was intra-coded
    (entries of inter frames last until the next keyframe)."""

    number: int
    slot: int
    latent: tuple
    z: np.ndarray
    intra: bool = True


def distance(a: np.ndarray, b: np.ndarray) -> int:
    """L1 distance of two z symbol arrays of one shape (an exact integer)."""
    return int(np.abs(a.astype(np.int64) - b.astype(np.int64)).sum())


class LatentMemory:
    """`size` slots, each empty or holding an Entry; for each slot also the last intra entry stored
    in it, which `refresh` (a keyframe) puts back: at most 2 x size entries are held."""

    def __init__(self, size: int):
        if size < 1:
            raise ValueError(f"a memory holds at least one entry, got {size}")
        self.size = size
        self.slots: list[Entry | None] = [None] * size
        self._intra: list[Entry | None] = [None] * size
        self._used = [-1] * size  # encoder policy: the last frame that stored or referenced a slot

    def __len__(self) -> int:
        return sum(e is not None for e in self.slots)

    @property
    def entries(self) -> list[Entry]:
        """The stored entries, oldest frame first."""
        return sorted((e for e in self.slots if e is not None), key=lambda e: e.number)

    def store(self, entry: Entry) -> None:
        if not 0 <= entry.slot < self.size:
            raise ValueError(f"slot {entry.slot} of a memory of {self.size}")
        self.slots[entry.slot] = entry
        if entry.intra:
            self._intra[entry.slot] = entry
        self.touch(entry.slot, entry.number)

    def refresh(self) -> None:
        """At a keyframe: every slot back to the last intra entry stored in it (what the index gives a
        decoder that seeks there)."""
        self.slots = list(self._intra)

    def touch(self, slot: int, number: int) -> None:
        self._used[slot] = max(self._used[slot], number)

    def ranked(self, z: np.ndarray) -> list[tuple[int, Entry]]:
        """(distance, entry) of every stored entry, nearest to z first, the newer first among equals."""
        return sorted(((distance(z, e.z), e) for e in self.slots if e is not None),
                      key=lambda d_e: (d_e[0], -d_e[1].number))

    def choose_slot(self, z: np.ndarray, intra: bool = True, taken: int | None = None) -> int:
        """The encoder's slot for a frame with z symbols `z` (see the module's docstring); the frame
        a cut leaves (`intra` False) replaces only an entry of an inter frame, so that both the
        scene's intra frame and its newest view stay, and never `taken` (the slot the cutting frame
        itself goes to)."""
        free = [s for s in range(self.size) if s != taken]
        if not free:
            return NOT_STORED
        near = [(d, e) for d, e in self.ranked(z) if e.slot != taken]
        same = [(d, e) for d, e in near if intra or not e.intra]
        if same and same[0][0] <= SAME_SCENE * z.size:
            return same[0][1].slot
        empty = [s for s in free if self.slots[s] is None]
        if empty:
            return empty[0]
        if near and near[0][0] <= NEAR_SCENE * z.size:  # a view of a scene already held: it replaces that
            return near[0][1].slot
        return min(free, key=lambda s: self._used[s])
