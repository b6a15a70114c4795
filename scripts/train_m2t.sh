#!/usr/bin/env bash
# The M2T recipe of the shipped model: the MT/M2T pilot at equal wall time, then the main run.
# Runs on CPU (2 threads); add --device cuda style options only through codec train m2t's flags.
set -euo pipefail
RUNS=${CODEC_CACHE:-$HOME/.cache/codec}/train
COMMON=(--ae hyperprior-vr --data "${CODEC_DATA:-../shared/data}/train" --config small-side --steps-train 4,8,12
        --batch 16 --lr 5e-4 --warmup-steps 100 --bf16 --threads 2 --val-every 100 --ckpt-minutes 3)
codec train m2t "${COMMON[@]}" --run-dir "$RUNS/m2t" --objective m2t --max-minutes 8    # pilot, M2T
mkdir -p "$RUNS/mt" && ln -f "$RUNS/m2t/latents.pt" "$RUNS/mt/latents.pt"                # same latents
codec train m2t "${COMMON[@]}" --run-dir "$RUNS/mt" --objective mt --max-minutes 8      # pilot, MT
codec train m2t "${COMMON[@]}" --run-dir "$RUNS/m2t" --objective m2t --max-minutes 30   # resume: main run
codec train m2t-export --checkpoint "$RUNS/m2t/checkpoint.pt" --model-id m2t-vr
