"""Kill test: SIGKILL `codec encode` and `codec decode` at random moments; outputs must be all or nothing.

    python scripts/kill_test.py 200        # 200 kills; prints the counts, writes results/faults/kill_test.md

Four commands run as real processes (`python -m cli.app`, this checkout first on PYTHONPATH): encode
assets/coffee.png, decode its bitstream to PNG, encode frames 0:4 of assets/carphone.mp4, decode them
to .mkv; each also with --force over an existing output. An unkilled run of each gives the reference
output and the duration; each kill lands at a uniform random moment of that duration (model load,
coding or write) or, about one attempt in four, as soon as the temporary output file appears.

After each kill the output path must hold nothing, the old file intact (--force), or the complete new
output (the reference's bytes; for .mkv, whose muxer writes random ids, the reference's frames), and
no other file may appear beside it except temporary files `.<name>.codec-<hex>.tmp`, which a killed
process cannot remove. Those are counted; at the end they are aged past `STALE_TEMP_SECONDS` and one
more run of each command must have removed them. tests/test_faults.py runs a few kills of each.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from codec.io import STALE_TEMP_SECONDS  # noqa: E402
from codec.videoio import open_video  # noqa: E402

OLD = b"the output of an earlier run, to be kept or replaced whole\n"
OUTCOMES = ("nothing", "old", "complete")


def codec_command(*args: str) -> list[str]:
    """`codec ARGS` as a process of this Python on this checkout (not whatever `codec` is installed)."""
    return [sys.executable, "-m", "cli.app", *args]


def codec_env(**extra: str) -> dict[str, str]:
    """The environment of a codec process: this checkout first on PYTHONPATH, shipped weights, no debug."""
    env = {k: v for k, v in os.environ.items() if k not in ("CODEC_DEBUG", "CODEC_WEIGHTS")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    env.update(extra)
    return env


def temp_files(folder: Path, output: str) -> list[str]:
    """Temporary files of `output` in `folder` (what a killed writer leaves)."""
    return sorted(n for n in os.listdir(folder) if n.startswith(f".{output}.") and n.endswith(".tmp"))


def same_frames(a: Path, b: Path) -> bool:
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
    shutil.copy(REPO / "assets" / "coffee.png", work / "photo.png")
    shutil.copy(REPO / "assets" / "carphone.mp4", work / "clip.mp4")
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
    deadline = time.monotonic() + (3 * scenario.seconds if at_write else rng.uniform(0, scenario.seconds))
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


def run(kills: int, work: Path, seed: int = 0) -> tuple[list[Scenario], Tally]:
    """`kills` kills spread evenly over the scenarios (runs that finish before their kill do not count)."""
    rng = random.Random(seed)
    scenarios = prepare(work)
    tally = Tally()
    attempts = 0
    while tally.kills < kills and attempts < 3 * kills + 10:
        scenario = scenarios[attempts % len(scenarios)]
        kill_once(scenario, work, rng, at_write=rng.random() < 0.25, tally=tally)
        attempts += 1
    clean_up(scenarios, work, tally)
    return scenarios, tally


def report(scenarios: list[Scenario], tally: Tally, seed: int) -> str:
    """The results as markdown."""
    lines = [
        "# Kill test",
        "",
        f"`python scripts/kill_test.py {tally.kills} --seed {seed}`: SIGKILL at a uniform random moment of an "
        "unkilled run's duration, or (about one attempt in four) as soon as the temporary file appears.",
        "",
        "| command | unkilled run s | " + " | ".join(OUTCOMES) + " |",
        "|---|---:|" + "---:|" * len(OUTCOMES),
    ]
    for s in scenarios:
        counts = tally.by_scenario.get(s.name, Counter())
        lines.append(f"| `codec {' '.join(s.args)} -o {s.output}{' --force' if s.force else ''}` | {s.seconds:.2f} | "
                     + " | ".join(str(counts[o]) for o in OUTCOMES) + " |")
    lines += [
        "",
        f"- kills: {tally.kills} ({tally.mid_write} during the write, i.e. with the temporary file present); "
        f"runs that finished before their kill: {tally.finished}",
        "- outcomes: " + ", ".join(f"{o} {tally.outcomes[o]}" for o in OUTCOMES),
        f"- temporary files left by the kills: {tally.temps_left}; left after one more run with them aged "
        f"past {STALE_TEMP_SECONDS:.0f} s: {tally.temps_after_cleanup}",
        f"- violations: {len(tally.violations)}",
        *[f"  - {v}" for v in tally.violations],
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kills", type=int, nargs="?", default=100, help="number of kills (default 100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "results" / "faults" / "kill_test.md")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="codec-kill-") as tmp:
        scenarios, tally = run(args.kills, Path(tmp), args.seed)
    text = report(scenarios, tally, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 1 if tally.violations or tally.temps_after_cleanup else 0


if __name__ == "__main__":
    sys.exit(main())
