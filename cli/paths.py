"""Choosing output paths for one or many inputs (shared by encode and decode)."""

from __future__ import annotations

from pathlib import Path

from codec.errors import UsageError

STDIO = "-"


def plan_outputs(inputs: list[str], output: str | None, suffix: str) -> list[str]:
    """Output path per input.

    One input: `-o FILE`, `-o DIR/` (or an existing directory), `-o -` (stdout), or the input's
    name with `suffix` beside it (stdin input defaults to stdout). Several inputs: `-o` must be
    a directory (created if it ends with '/'), or outputs go beside the inputs.
    """
    if not inputs:
        raise UsageError("no input files given")
    if inputs.count(STDIO) > 1 or (STDIO in inputs and len(inputs) > 1):
        raise UsageError("'-' (standard input) cannot be combined with other inputs")
    as_dir = output is not None and output != STDIO and (output.endswith(("/", "\\")) or Path(output).is_dir())
    if len(inputs) > 1 and output is not None and not as_dir:
        raise UsageError(f"several inputs need -o to be a directory (end it with '/'), got {output!r}")
    if as_dir:
        Path(output).mkdir(parents=True, exist_ok=True)
    outs = []
    for src in inputs:
        if output is not None and not as_dir:
            outs.append(output)
        elif src == STDIO:
            if as_dir:
                raise UsageError("standard input has no name: give -o a file name")
            outs.append(STDIO)
        else:
            name = Path(src).with_suffix(suffix).name
            outs.append(str(Path(output) / name) if as_dir else str(Path(src).with_suffix(suffix)))
    dupes = {o for o in outs if outs.count(o) > 1 and o != STDIO}
    if dupes:
        raise UsageError(f"several inputs would write the same output: {sorted(dupes)[0]}")
    return outs
