#!/usr/bin/env bash
# What -q means across the zoo (issue 16): the default and the high-rate model swept over steps on the
# 8 fixed Kodak images (AVIF and WebP in the same run), then scripts/quality_routes.py chooses where the
# high-rate model takes over and its reference quality; WRITE=1 stores that in weights/manifest.json.
# Rows cached in results/quality-routes/cache (resumable). About 25 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${CODEC_DATA:-../shared/data}
SUBSET=out/overfit-kodak8
mkdir -p "$SUBSET"
for i in 01 04 07 10 13 16 19 22; do ln -sf "$(realpath "$DATA/kodak/kodim$i.png")" "$SUBSET/kodim$i.png"; done
.venv/bin/codec eval "$SUBSET" -c "ours:hyperprior-mse-l0067@8,5.66,4,2,1,0.8,0.65,0.5,0.4,0.32,0.25" \
  -c "ours:hyperprior-mse-l025@4,3,2.5,2,1.6,1.3,1,0.8,0.65,0.5,0.4,0.32,0.25" -c webp -c avif --anchor webp \
  --cache results/quality-routes/cache -o results/quality-routes
.venv/bin/python scripts/quality_routes.py results/quality-routes/results.json ${WRITE:+--write} | tee results/quality-routes/routes.md
