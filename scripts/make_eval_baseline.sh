#!/usr/bin/env bash
# Regenerate the committed RD baseline that tests/test_eval.py guards the default model with
# (run when the shipped default model changes on purpose; a worse model must not get here quietly).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
codec eval tests/golden/eval_images -c "ours:hyperprior-mse-l0067@2.0,1.4,1.0,0.7" -c jpeg -o "$out"
python - "$out/results.json" tests/golden/eval_baseline.json <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
keep = {k: r[k] for k in ("name", "description", "date", "command", "machine", "images")}
keep["codecs"] = {k: v for k, v in r["codecs"].items() if k.startswith("ours")}
json.dump(keep, open(sys.argv[2], "w"), indent=1)
PY
echo "wrote tests/golden/eval_baseline.json"
