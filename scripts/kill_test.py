"""Kill test: SIGKILL `codec encode` and `codec decode` at random moments; outputs must be all or nothing.

    python scripts/kill_test.py 200        # 200 kills; prints the counts, writes results/faults/kill_test.md

Four commands run as real processes (`python -m codec`, this checkout first on PYTHONPATH): encode
assets/coffee.png, decode its bitstream to PNG, encode frames 0:4 of assets/carphone.mp4, decode them
to .mkv; each also with --force over an existing output. An unkilled run of each gives the reference
output and the duration; each kill lands at a uniform random moment of that duration (model load,
coding or write) or, about one attempt in four, as soon as the temporary output file appears.

After each kill the output path must hold nothing, the old file intact (--force), or the complete new
output (the reference's bytes; for .mkv, whose muxer writes random ids, the reference's frames), and
no other file may appear beside it except temporary files `.<name>.codec-<hex>.tmp`, which a killed
process cannot remove. Those are counted; at the end they are aged past `STALE_TEMP_SECONDS` and one
more run of each command must have removed them. The machinery is codec.testing.kills; tests/test_faults.py
runs a few kills of each.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from codec.atomic import STALE_TEMP_SECONDS  # noqa: E402
from codec.testing.kills import OUTCOMES, Scenario, Tally, clean_up, kill_once, prepare  # noqa: E402


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
