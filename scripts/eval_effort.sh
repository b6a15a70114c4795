#!/usr/bin/env bash
# Effort levels of the default model on a fixed subset of 8 Kodak images (every third: kodim01, 04,
# ..., 22), against effort 0, AVIF and WebP in the same run and the published VTM curve; rows cached
# in results/effort/cache so that an interrupted run resumes (the top level takes hours on 2 cores).
#   bash scripts/eval_effort.sh [LEVELS]        LEVELS: space-separated effort levels (default "1 2 3")
#   IMAGES=24 bash scripts/eval_effort.sh 2     all 24 images (results/effort-kodak24)
#   JOBS=2 ...                                  images in parallel processes (one thread each)
#   MODEL=m2t-vr STEPS=15,30,45,60 OUT=results/effort-m2t ...   another model (STEPS: its rate settings)
set -euo pipefail
cd "$(dirname "$0")/.."
LEVELS=${1:-"1 2 3"}
DATA=${CODEC_DATA:-../shared/data}
MODEL=${MODEL:-hyperprior-mse-l0067}
STEPS=${STEPS:-3,2,1.4,1}
if [[ "${IMAGES:-8}" == 24 ]]; then SUBSET=out/kodak24; OUT=${OUT:-results/effort-kodak24}; else SUBSET=out/kodak8; OUT=${OUT:-results/effort}; fi
mkdir -p "$SUBSET"
for i in $(if [[ "${IMAGES:-8}" == 24 ]]; then seq -w 1 24; else echo 01 04 07 10 13 16 19 22; fi); do
  ln -sf "$(realpath "$DATA/kodak/kodim$i.png")" "$SUBSET/kodim$i.png"
done
CODECS=(-c "ours:$MODEL@$STEPS")
for level in $LEVELS; do CODECS+=(-c "ours:$MODEL@$STEPS;effort=$level"); done
.venv/bin/codec eval "$SUBSET" "${CODECS[@]}" -c avif -c webp --anchor avif --published vtm \
  --cache results/effort/cache -j "${JOBS:-1}" -o "$OUT"
