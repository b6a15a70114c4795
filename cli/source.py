"""A bitstream a user names, read once: `decode` and `info` learn its kind (image or video) from
its first bytes before they look at any output, and a stream (stdin, a FIFO, `<(...)`) is read a
single time into memory, bounded by --max-chunk-bytes, since it cannot be reopened."""

from __future__ import annotations

import io
import os
import stat
from dataclasses import dataclass
from typing import BinaryIO

from codec.errors import InputError

STDIO = "-"


@dataclass(frozen=True)
class Bitstream:
    """`name` as the user typed it; `kind` the HEAD kind (codec.container.chunks KIND_IMAGE or
    KIND_VIDEO); `data` the whole input where it came from a stream, None for a regular file
    (read when it is decoded)."""

    name: str
    kind: int
    data: bytes | None = None

    def open(self) -> BinaryIO:
        """The bytes as a binary file (the file itself, or the bytes read from the stream)."""
        if self.data is not None:
            return io.BytesIO(self.data)
        try:
            return open(self.name, "rb")
        except OSError as exc:
            raise InputError(f"cannot read {self.name}: {exc.strerror or exc}") from None

    def read(self, max_bytes: int) -> bytes:
        from codec.io import read_bytes

        return self.data if self.data is not None else read_bytes(self.name, max_bytes=max_bytes)


def probe(src: str, max_bytes: int) -> Bitstream:
    """The kind of the bitstream `src` ('-': standard input), from its first bytes.

    Raises:
        InputError: missing, a directory, unreadable, or an empty path.
        FormatError: not a codec bitstream (the message says what it looks like), or truncated.
        LimitError: a stream larger than `max_bytes`.
    """
    from codec.container import KIND_PROBE_BYTES, header_kind
    from codec.container.chunks import KIND_IMAGE
    from codec.container.format import unpack_preamble
    from codec.io import read_at_most

    from .output import read_stdin_bytes

    if src == "":
        raise InputError("an input path is empty")
    if src == STDIO:
        data = read_stdin_bytes(max_bytes)
        head = data[:KIND_PROBE_BYTES]
    else:
        try:
            mode = os.stat(src).st_mode
        except FileNotFoundError:
            raise InputError(f"cannot read {src}: no such file") from None
        except OSError as exc:
            raise InputError(f"cannot read {src}: {exc.strerror or exc}") from None
        if stat.S_ISDIR(mode):
            raise InputError(f"cannot read {src}: it is a directory")
        try:
            with open(src, "rb") as fp:
                if stat.S_ISREG(mode):
                    data, head = None, fp.read(KIND_PROBE_BYTES)
                else:  # a FIFO, a device, a process substitution: one read, kept
                    data = read_at_most(fp, max_bytes + 1)
                    if len(data) > max_bytes:
                        from codec.errors import LimitError

                        raise LimitError(f"{src} is larger than {max_bytes} bytes; raise --max-chunk-bytes to allow it")
                    head = data[:KIND_PROBE_BYTES]
        except OSError as exc:
            raise InputError(f"cannot read {src}: {exc.strerror or exc}") from None
    kind = header_kind(head)
    if kind is None:  # the container's own message: not a bitstream (what it looks like), truncated, newer
        unpack_preamble(head)
        kind = KIND_IMAGE  # a good preamble without a readable HEAD: the image reader says what is wrong
    return Bitstream(src, kind, data)
