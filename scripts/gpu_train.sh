#!/usr/bin/env bash
# Train the shipped hyperprior models on a lent GPU, two rate points side by side.
# Usage (device tool, repository root, data packed by scripts/pack_train_subset.py into .gpu_data):
#   MINUTES=8.3 bash scripts/gpu_train.sh
# Weights come back as safetensors shards under $OUT (re-saved every CKPT minutes), logs as text.
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
DEVICE=${DEVICE:-cuda}; MINUTES=${MINUTES:-8.3}; CKPT=${CKPT:-2}; BATCH=${BATCH:-16}
LAMBDAS=${LAMBDAS:-"0.0067 0.025"}; CONFIG=${CONFIG:-base}
python3 -c "import torch; print(torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name())"
for lam in $LAMBDAS; do
  python -m codec train hyperprior --data .gpu_data/train --run-dir "/tmp/run_$lam" --device "$DEVICE" \
    --config "$CONFIG" --batch "$BATCH" --crop 256 --max-minutes "$MINUTES" --max-steps 10000000 \
    --lmbda "$lam" --shard-dir "$OUT" --ckpt-minutes "$CKPT" --val-every 500 --no-resume \
    > "$OUT/log_$lam.txt" 2>&1 &
done
wait
for lam in $LAMBDAS; do echo "== $lam"; tail -4 "$OUT/log_$lam.txt"; cat "/tmp/run_$lam/log.csv" >> "$OUT/log_$lam.txt"; done
nvidia-smi --query-gpu=name,utilization.gpu,memory.used --format=csv 2>/dev/null || true
