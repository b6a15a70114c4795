#!/usr/bin/env bash
# Fuzz the decoder: N cases of scripts/fuzz_target.py (atheris, libFuzzer) on a copy of tests/fuzz_corpus.
#   bash scripts/fuzz.sh N [libFuzzer flags]        e.g. bash scripts/fuzz.sh 20000 -seed=1
#   JOBS=2 bash scripts/fuzz.sh 1000000             two processes of N/2 cases each, one thread each
# Needs `pip install -e '.[fuzz]'`. Environment: PYTHON (default .venv/bin/python), JOBS (1), TIMEOUT
# (seconds a case, 10), RSS_MB (3000), WORK (the work folder, default a new temporary one: its corpus/
# holds the seeds and every input libFuzzer found interesting), MERGE=1 (afterwards, merge the inputs that
# add coverage into tests/fuzz_corpus; otherwise the committed corpus is left untouched), KEEP_GOING=1
# (restart a job after a crash, with another seed, until its cases are done; 20 restarts at most).
# Writes results/fuzz/summary.md (cases, exec/s, coverage, crashes, date, CPU) and saves crashing,
# timing-out and out-of-memory inputs under results/fuzz/crashes/ (replay one: python
# scripts/fuzz_target.py FILE). A job without KEEP_GOING stops at its first crash.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:?usage: bash scripts/fuzz.sh N [libFuzzer flags]}
shift
PY=${PYTHON:-.venv/bin/python}
JOBS=${JOBS:-1}
WORK=${WORK:-$(mktemp -d -t codec-fuzz.XXXXXX)}
OUT=results/fuzz
mkdir -p "$WORK/corpus" "$OUT/crashes"
cp tests/fuzz_corpus/* "$WORK/corpus/"
echo "work folder: $WORK"
ls "$OUT/crashes" > "$WORK/crashes.before"
# libFuzzer runs scripts/fuzz_target.py itself to merge: its `#!/usr/bin/env python3` must find $PY's python3
PATH="$(cd "$(dirname "$(command -v "$PY")")" && pwd):$PATH"
export PATH OMP_NUM_THREADS=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
FLAGS=(-timeout="${TIMEOUT:-10}" -rss_limit_mb="${RSS_MB:-3000}" -print_final_stats=1
       -artifact_prefix="$OUT/crashes/" "$@")

job() {  # job index, cases: runs until the cases are done (or the first crash without KEEP_GOING)
  local i=$1 left=$2 seed=$(( $1 + 1 )) try=0 log ran
  while (( left > 0 )); do
    log="$WORK/job$i.$try.log"
    "$PY" scripts/fuzz_target.py -runs="$left" -seed="$seed" "${FLAGS[@]}" "$WORK/corpus" > "$log" 2>&1 || true
    grep -q '^Done [0-9]* runs' "$log" && break
    [[ -n "${KEEP_GOING:-}" && $try -lt 20 ]] || break
    ran=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    left=$(( left - ${ran:-0} )) seed=$(( seed + 1000 )) try=$(( try + 1 ))
  done
}

load=$(cut -d' ' -f1 /proc/loadavg)  # other work on the machine slows the cases: recorded in the summary
start=$(date +%s)
for (( i = 0; i < JOBS; i++ )); do
  job "$i" $(( N / JOBS + (i < N % JOBS ? 1 : 0) )) &
done
wait
seconds=$(( $(date +%s) - start ))

for log in "$WORK"/job*.log; do  # libFuzzer's final stats of each run
  echo "== $log"
  grep -E '^(Done|stat::)|ERROR: libFuzzer|Uncaught Python exception' "$log" || tail -5 "$log"
done

if [[ -n "${MERGE:-}" ]]; then
  "$PY" scripts/fuzz_target.py -merge=1 "${FLAGS[@]:0:2}" tests/fuzz_corpus "$WORK/corpus" > "$WORK/merge.log" 2>&1
  grep -E '^MERGE-OUTER: [0-9]+ new files' "$WORK/merge.log" || tail -3 "$WORK/merge.log"
fi

"$PY" - "$WORK" "$N" "$JOBS" "$seconds" "$load" "${FLAGS[*]:0:2}" "$*" <<'EOF'
"""results/fuzz/summary.md from the job logs."""
import datetime, os, re, subprocess, sys
from pathlib import Path

work, (n, jobs, seconds), (load, guards, flags) = Path(sys.argv[1]), map(int, sys.argv[2:5]), sys.argv[5:8]
rows, cases, cov, ft = [], 0, 0, 0
for log in sorted(work.glob("job*.log")):
    text = log.read_text(errors="replace")
    stat = dict(re.findall(r"^stat::(\w+): *(\d+)", text, re.M))
    status = re.findall(r"cov: (\d+) ft: (\d+) corp: (\d+)/", text)
    c, f, corp = map(int, status[-1]) if status else (0, 0, 0)
    done = int(stat.get("number_of_executed_units", 0))
    cases, cov, ft = cases + done, max(cov, c), max(ft, f)
    exc = re.search(r"Uncaught Python exception: ===\n(.+)", text)
    err = re.search(r"ERROR: libFuzzer: (.+)", text)
    end = (f"crash: {exc.group(1)}" if exc else err.group(1) if err
           else "done" if stat else "no result: see the log")
    rows.append(f"| {log.stem} | {done} | {stat.get('average_exec_per_sec', '-')} | {c} | {f} | {corp} | "
                f"{stat.get('peak_rss_mb', '-')} | {stat.get('slowest_unit_time_sec', '-')} | "
                f"{end} |")
before = set((work / "crashes.before").read_text().split())
crashes = sorted(set(os.listdir("results/fuzz/crashes")) - before)
cpu = re.search(r"Model name:\s*(.*)", subprocess.run(["lscpu"], capture_output=True, text=True).stdout)
atheris = subprocess.run([sys.executable, "-m", "pip", "show", "atheris"], capture_output=True, text=True).stdout
version = re.search(r"Version: (\S+)", atheris)
lines = [
    "# Fuzzing the decoder", "",
    f"`bash scripts/fuzz.sh {n}{' ' + flags if flags else ''}` with JOBS={jobs}, "
    f"{datetime.date.today().isoformat()}, on {cpu.group(1) if cpu else 'unknown CPU'} ({os.cpu_count()} CPUs, "
    f"load average {load} at the start), one thread a job, atheris {version.group(1) if version else '?'}. "
    "Target: scripts/fuzz_target.py "
    "(container parser, image and video decode to pixels, raw and CRC-repaired mutations), "
    f"its FUZZ_LIMITS, libFuzzer `{guards}`.", "",
    f"- cases: {cases} in {seconds} s, {cases / max(seconds, 1):.0f} exec/s (all jobs)",
    f"- coverage: {cov} edges (cov), {ft} features (ft), highest of the jobs",
    f"- crashes: {len(crashes)}" + "".join(f"\n  - results/fuzz/crashes/{c}" for c in crashes), "",
    "| run | cases | exec/s | cov | ft | corpus | peak RSS MB | slowest case s | end |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---|", *rows, "",
]
Path("results/fuzz/summary.md").write_text("\n".join(lines))
print("\n".join(lines))
EOF
