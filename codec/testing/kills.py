"""SIGKILL `codec encode` / `codec decode` processes at chosen moments and judge what is left at the output.

Each command runs as a real process (`python -m codec`, this checkout first on PYTHONPATH), because
what is checked, a SIGKILL in the middle of a write, cannot happen in-process. `prepare` makes the
reference outputs with unkilled, timed runs of four commands (encode assets/coffee.png, decode its
bitstream to PNG, encode frames 0:4 of assets/carphone.mp4, decode them to .mkv), each also with
--force over an existing output; `kill_once` kills one run at a random moment of that duration (model
load, coding or write) or as soon as its temporary output file appears, and records in a `Tally` what
it left.

After each kill the output path must hold nothing, the old file intact (--force), or the complete new
output (the reference's bytes; for .mkv, whose muxer writes random ids, the reference's frames), and no
other file may appear beside it except temporary files `.<name>.codec-<hex>.tmp`, which a killed
process cannot remove; `clean_up` ages them past `STALE_TEMP_SECONDS` and checks that one more run of
each command removes them. scripts/kill_test.py runs many kills; tests/test_faults.py a few of each.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from codec.atomic import STALE_TEMP_SECONDS
from codec.settings import REPO_ROOT
from codec.videoio import open_video

__all__ = ["OLD", "OUTCOMES", "Scenario", "Tally", "clean_up", "codec_command", "codec_env", "kill_once", "prepare",
           "same_frames", "temp_files"]

OLD = b"the output of an earlier run, to be kept or replaced whole\n"
OUTCOMES = ("nothing", "old", "complete")


def codec_command(*args: str) -> list[str]:
    """`codec ARGS` as a process of this Python on this checkout (not whatever `codec` is installed)."""
    return [sys.executable, "-m", "codec", *args]


def codec_env(**extra: str) -> dict[str, str]:
    """The environment of a codec process: this checkout first on PYTHONPATH, shipped weights, no debug."""
    env = {k: v for k, v in os.environ.items() if k not in ("CODEC_DEBUG", "CODEC_WEIGHTS")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    env.update(extra)
    return env


def temp_files(folder: Path, output: str) -> list[str]:
    """Temporary files of `output` in `folder` (what a killed writer leaves)."""
    return sorted(n for n in os.listdir(folder) if n.startswith(f".{output}.") and n.endswith(".tmp"))


def same_frames(a: Path, b: Path) -> bool:
    """Whether two video files decode to the same frames, pixel for pixel."""
    with open_video(a) as va, open_video(b) as vb:
        fa, fb = list(va), list(vb)
    return len(fa) == len(fb) and all(np.array_equal(x, y) for x, y in zip(fa, fb))


@dataclass(frozen=True)
class Scenario:
    """One command whose output is `output` in the work folder; `reference` is an unkilled run's output."""

    name: str
    args: tuple[str, ...]
    output: str
    reference: Path
    seconds: float
    force: bool

    def argv(self) -> list[str]:
        return codec_command(*self.args, "-o", self.output, *(["--force"] if self.force else []))

    def complete(self, path: Path) -> bool:
        """Whether `path` is the whole new output."""
        if self.output.endswith(".mkv"):
            try:
                return same_frames(path, self.reference)
            except Exception:  # noqa: BLE001 - any failure to read it back means it is not complete
                return False
        return path.read_bytes() == self.reference.read_bytes()


@dataclass
class Tally:
    """What the kills found. `outcomes` counts nothing / old / complete per scenario; `mid_write`, the
    kills that left a temporary file (the write had begun); `finished`, runs that ended before the kill."""

    kills: int = 0
    finished: int = 0
    mid_write: int = 0
    temps_left: int = 0
    temps_after_cleanup: int = 0
    outcomes: Counter = field(default_factory=Counter)
    by_scenario: dict[str, Counter] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)


def prepare(work: Path) -> list[Scenario]:
    """Copies the inputs into `work` and makes the reference outputs with unkilled, timed runs."""
    refs = work / "refs"
    refs.mkdir()
    shutil.copy(REPO_ROOT / "assets" / "coffee.png", work / "photo.png")
    shutil.copy(REPO_ROOT / "assets" / "carphone.mp4", work / "clip.mp4")
    plans = [
        ("encode image", ("encode", "photo.png"), "photo.bin"),
        ("decode image", ("decode", "refs/photo.bin"), "photo_out.png"),
        ("encode video", ("encode", "clip.mp4", "--frames", "0:4"), "clip.bin"),
        ("decode video", ("decode", "refs/clip.bin"), "clip_out.mkv"),
    ]
    scenarios = []
    for name, args, output in plans:  # in order: each decode reads the bitstream encoded before it
        t0 = time.perf_counter()
        proc = subprocess.run(codec_command(*args, "-o", str(refs / output)), cwd=work, env=codec_env(),
                              capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"reference run of {name} failed: {proc.stderr.strip()}")
        for force in (False, True):
            scenarios.append(Scenario(name + (" --force" if force else ""), args, output, refs / output, seconds, force))
    return scenarios


def kill_once(scenario: Scenario, work: Path, rng: random.Random, at_write: bool, tally: Tally) -> None:
    """Runs `scenario`, SIGKILLs it, and checks what is left at its output path."""
    out = work / scenario.output
    if out.exists():
        out.unlink()
    if scenario.force:
        out.write_bytes(OLD)
    before = set(os.listdir(work))
    proc = subprocess.Popen(scenario.argv(), cwd=work, env=codec_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    # a random moment of the first 80% of the reference duration: a run whose timing wavers (a busy
    # machine) is still killed, and the last moments, the write, are what `at_write` kills aim at
    deadline = time.monotonic() + (3 * scenario.seconds if at_write else rng.uniform(0, 0.8 * scenario.seconds))
    while proc.poll() is None and time.monotonic() < deadline:
        if at_write and temp_files(work, scenario.output):
            break
        time.sleep(0.0005 if at_write else 0.002)
    if proc.poll() is not None:  # it finished first: an ordinary run, which must have succeeded
        tally.finished += 1
        stderr = proc.communicate()[1].decode(errors="replace").strip()
        if proc.returncode != 0 or not scenario.complete(out):
            tally.violations.append(f"{scenario.name}: unkilled run exited {proc.returncode}: {stderr}")
        return
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    tally.kills += 1
    temps = [n for n in temp_files(work, scenario.output) if n not in before]
    tally.temps_left += len(temps)
    tally.mid_write += bool(temps)
    if not out.exists():
        outcome = "nothing"
        if scenario.force:
            tally.violations.append(f"{scenario.name}: the old output vanished after a kill")
    elif scenario.force and out.read_bytes() == OLD:
        outcome = "old"
    elif scenario.complete(out):
        outcome = "complete"
    else:
        outcome = "violation"
        tally.violations.append(f"{scenario.name}: a partial or wrong file of {out.stat().st_size} bytes "
                                f"at the output after a kill")
    stray = set(os.listdir(work)) - before - {scenario.output} - set(temps)
    if stray:
        tally.violations.append(f"{scenario.name}: unexpected files after a kill: {sorted(stray)}")
    tally.outcomes[outcome] += 1
    tally.by_scenario.setdefault(scenario.name, Counter())[outcome] += 1


def clean_up(scenarios: list[Scenario], work: Path, tally: Tally) -> None:
    """Ages the temporary files the kills left, runs each command once more, and counts what remains."""
    past = time.time() - 2 * STALE_TEMP_SECONDS
    for output in {s.output for s in scenarios}:
        for name in temp_files(work, output):
            os.utime(work / name, (past, past))
    for scenario in scenarios:
        if not scenario.force:
            continue
        proc = subprocess.run(scenario.argv(), cwd=work, env=codec_env(), capture_output=True, text=True)
        if proc.returncode != 0 or not scenario.complete(work / scenario.output):
            tally.violations.append(f"{scenario.name}: the run after the kills failed: {proc.stderr.strip()}")
    tally.temps_after_cleanup = sum(len(temp_files(work, s.output)) for s in scenarios if s.force)
