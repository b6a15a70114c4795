#!/usr/bin/env bash
# Train the shipped VCT model (transformer + temporal prior of z) on a lent GPU, started from a
# shipped VCT model. Run by the device tool in the repository root, with .gpu_data carried:
#   .gpu_data/video    the clips (a copy of DATA/video; frames after each clip's evaluation window train)
#   .gpu_data/train    photos for synthetic motion (python scripts/pack_train_subset.py SRC .gpu_data/train --mb 10)
#   .gpu_data/wheels   constriction for the machine's Python (pip download constriction==0.5.0
#                      --python-version 3.12 --only-binary=:all: --no-deps -d .gpu_data/wheels)
# The machine has no PyAV: clips are read with OpenCV there (codec.train.video._clip_frames).
#   MINUTES=6.5 bash scripts/gpu_train_video.sh
# Back under $OUT: checkpoint.pt (copied every 30 s), log.csv, train.log. Export here with
#   codec train video-export --checkpoint OUT/checkpoint.pt --model-id ID [--default]
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
MINUTES=${MINUTES:-6.5}; BATCH=${BATCH:-64}; INIT=${INIT:-vct-l0067}; LR=${LR:-5e-4}; CONFIG=${CONFIG:-small}
RUN=${RUN:-/tmp/vct_gpu}
python3 -m pip install --no-deps --no-index -q .gpu_data/wheels/*.whl 2>&1 | tail -2
python3 -c "import torch; print(torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name())"
python -m codec train video --run-dir "$RUN" --data .gpu_data --init "$INIT" --config "$CONFIG" --device cuda \
  --batch "$BATCH" --lr "$LR" --warmup-steps 100 --min-log-step -1.5 --max-log-step 3.0 --max-minutes "$MINUTES" \
  --ckpt-minutes 1 --val-every 250 --no-resume > "$OUT/train.log" 2>&1 &
pid=$!
while kill -0 "$pid" 2>/dev/null; do
  sleep 30
  cp "$RUN/checkpoint.pt" "$OUT/checkpoint.pt.tmp" 2>/dev/null && mv "$OUT/checkpoint.pt.tmp" "$OUT/checkpoint.pt"
  cp "$RUN/log.csv" "$OUT/" 2>/dev/null
done
wait "$pid"; echo "exit $?"
cp "$RUN/checkpoint.pt" "$RUN/log.csv" "$OUT/" 2>/dev/null
tail -5 "$OUT/train.log"
nvidia-smi --query-gpu=name,utilization.gpu,memory.used --format=csv 2>/dev/null || true
