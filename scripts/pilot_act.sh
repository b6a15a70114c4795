#!/usr/bin/env bash
# GDN against ReLU over the same CPU budget (64/96 channels, 128 crops, bf16, batch 8, lambda 0.0067),
# one after the other so each gets both cores. Compare the validation RD cost in each run's log.csv.
#   MINUTES=12 bash scripts/pilot_act.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${MINUTES:-12}
for act in gdn relu; do
  python -m codec train hyperprior --data "${CODEC_DATA:-../shared/data}/train" --run-dir "${CODEC_CACHE:-$HOME/.cache/codec}/train/pilot_$act" \
    --config small-$act --batch 8 --crop 128 --bf16 --threads 2 --max-minutes "$MINUTES" --max-steps 1000000 \
    --val-every 500 --no-resume
done
