"""The step-stream payload of M2T models' YSTR chunk: the S sub-streams of the step loop in one chunk.

    offset  size     field
    0       1        S                u8, the number of steps the model codes
    1       4 * S    lengths          u32 each, little-endian, in step order
    1+4S    ...      the S streams    concatenated, in step order

`unpack_steps` checks the step count and that the lengths add up to the payload before slicing.
"""

from __future__ import annotations

import struct

from codec.errors import FormatError

_U32 = struct.Struct("<I")


def pack_steps(streams: list[bytes]) -> bytes:
    if not 1 <= len(streams) <= 255:
        raise ValueError(f"a step stream holds 1..255 steps, got {len(streams)}")
    return bytes([len(streams)]) + b"".join(_U32.pack(len(s)) for s in streams) + b"".join(streams)


def unpack_steps(data: bytes, steps: int) -> list[bytes]:
    """Mirror of `pack_steps`; FormatError when the payload does not hold `steps` streams exactly."""
    if not data or data[0] != steps:
        raise FormatError(f"latent stream holds {data[0] if data else 0} steps, the model codes {steps}")
    head = 1 + 4 * steps
    if len(data) < head:
        raise FormatError("latent stream is truncated (step table)")
    lengths = [_U32.unpack_from(data, 1 + 4 * i)[0] for i in range(steps)]
    if head + sum(lengths) != len(data):
        raise FormatError("latent stream is corrupt (step lengths do not add up to its size)")
    out, pos = [], head
    for n in lengths:
        out.append(bytes(data[pos : pos + n]))
        pos += n
    return out
