"""Choosing output paths for one or many inputs (shared by encode and decode).

The naming rule (docs/USAGE.md, "Files and names"):
  * `codec encode photo.png` writes `photo.bin` beside it; `-o DIR/` writes `DIR/photo.bin`.
  * `codec decode photo.bin` writes `photo.dec.png` (a video: `clip.dec.mkv`), never `photo.png`: a
    default name never lands on the source photo the bitstream came from, even with --force.
  * A folder or a glob as input means its images (sorted); a video comes from a video file, or from
    a folder, glob or %05d pattern of frames with `--video`.
  * No output may be an input of the same run (compared as real files: `d/z.png` and
    `d/../d/z.png` are one file), with or without --force; two inputs never share an output.
"""

from __future__ import annotations

import os
from pathlib import Path

from codec.errors import InputError, UsageError

STDIO = "-"
DECODED = ".dec"
"""Inserted before the suffix of a decoder's default output name: photo.bin -> photo.dec.png."""


def expand_inputs(inputs: list[str]) -> list[str]:
    """The files of a command line of images: a folder gives its images, a glob (one the shell did
    not expand, say quoted) its matches, sorted; '-' and plain paths stay as they are."""
    from codec.io import find_images

    if not inputs:
        raise UsageError("no input files given")
    out: list[str] = []
    for src in inputs:
        if src == "":
            raise UsageError("an input path is empty")
        if src != STDIO and (Path(src).is_dir() or (not os.path.lexists(src) and _has_glob(src))):
            out.extend(str(p) for p in find_images(src))
        else:
            out.append(src)
    return out


def _has_glob(text: str) -> bool:
    import glob

    return glob.has_magic(text)


def plan_outputs(inputs: list[str], output: str | None, suffix: str, *, decoded: bool = False) -> list[str]:
    """Output path per input.

    One input: `-o FILE`, `-o DIR/` (or an existing directory), `-o -` (stdout), or the input's
    name with `suffix` beside it (stdin input defaults to stdout). Several inputs: `-o` must be
    a directory (created if it ends with '/'), or outputs go beside the inputs. `decoded`: default
    names take `.dec` before the suffix (see the module's naming rule).
    """
    if not inputs:
        raise UsageError("no input files given")
    if any(src == "" for src in inputs):
        raise UsageError("an input path is empty")
    if output == "":
        raise UsageError("-o is empty: give a file, a directory ending in '/', or '-'")
    if inputs.count(STDIO) > 1 or (STDIO in inputs and len(inputs) > 1):
        raise UsageError("'-' (standard input) cannot be combined with other inputs")
    if output is not None and output != STDIO and any(c in output for c in "*?") and not os.path.lexists(output):
        # a glob the shell did not expand ('[' alone is left: names such as photo[1].bin are common)
        raise UsageError(f"-o {output!r} is a pattern, not a name: give a file, or a directory ending in '/'")
    as_dir = output is not None and output != STDIO and (output.endswith(("/", os.sep)) or Path(output).is_dir())
    if len(inputs) > 1 and output is not None and not as_dir:
        raise UsageError(f"several inputs need -o to be a directory (end it with '/'), got {output!r}")
    if as_dir:
        make_directory(Path(output))
    default_suffix = DECODED + suffix if decoded else suffix
    outs = []
    for src in inputs:
        if output is not None and not as_dir:
            outs.append(output)
        elif src == STDIO:
            if as_dir:
                raise UsageError("standard input has no name: give -o a file name")
            outs.append(STDIO)
        else:
            name = Path(src).with_suffix(default_suffix).name
            outs.append(str(Path(output) / name) if as_dir else str(Path(src).with_suffix(default_suffix)))
    refuse_aliases(inputs, outs)
    return outs


def make_directory(path: Path) -> None:
    """Creates the output folder of `-o DIR/` (and its parents), as a one-line error when it cannot."""
    from codec.atomic import write_error

    if path.exists() and not path.is_dir():
        raise InputError(f"cannot create directory {path}: a file of that name exists")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise InputError(f"cannot create directory {path}: a file is in the way") from None
    except NotADirectoryError:
        raise InputError(f"cannot create directory {path}: a parent of it is a file") from None
    except OSError as exc:
        raise write_error(path, exc) from None


def real(path: str) -> str:
    """The path of the file `path` names, with symbolic links, '.' and '..' resolved."""
    return os.path.realpath(path)


def _same_file(a: str, b: str) -> bool:
    if real(a) == real(b):
        return True
    try:
        return os.path.samefile(a, b)  # hard links
    except OSError:
        return False


def refuse_aliases(inputs: list[str], outputs: list[str]) -> None:
    """No output is an input of the run, and no two inputs share an output (as real files)."""
    files = [o for o in outputs if o != STDIO]
    sources = [s for s in inputs if s != STDIO]
    for o in files:
        for s in sources:
            if _same_file(o, s):
                raise UsageError(f"output {o} is the input {s}: refusing to overwrite a source (choose another -o)")
    seen: dict[str, str] = {}
    for o in files:
        key = real(o)
        if key in seen:
            raise UsageError(f"several inputs would write the same output: {seen[key]}"
                             + (f" (also named {o})" if o != seen[key] else ""))
        seen[key] = o
