#!/usr/bin/env bash
# The overfitted family's effort levels on a fixed development set, against the default hyperprior
# (effort 0), AVIF and WebP in the same run; rows cached in results/overfit/cache (resumable).
#   bash scripts/eval_overfit.sh [LEVELS] [QUALITIES]     default "1", "40,60,80"
#   SET=crops  (default) four 256x256 crops: kodim01 (256,256), kodim07 (128,256), kodim13 (256,128),
#              kodim19 (256,128) (row, column of the top-left corner; portrait images transposed first)
#   SET=kodak8 the 8 Kodak images of scripts/eval_effort.sh (kodim01, 04, ..., 22)
#   SET=kodak  all 24 Kodak images (the kodak8 rows come from the cache)
#   JOBS=2     images in parallel processes (one thread each)
set -euo pipefail
cd "$(dirname "$0")/.."
LEVELS=${1:-"1"}
QUALITIES=${2:-"40,60,80"}
DATA=${CODEC_DATA:-../shared/data}
SET=${SET:-crops}
SUBSET=out/overfit-$SET
mkdir -p "$SUBSET"
if [[ "$SET" == crops ]]; then
  .venv/bin/python - "$DATA/kodak" "$SUBSET" <<'PY'
import sys
from pathlib import Path
import numpy as np
from PIL import Image
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
for name, (r, c) in {"kodim01": (256, 256), "kodim07": (128, 256), "kodim13": (256, 128), "kodim19": (256, 128)}.items():
    img = np.array(Image.open(src / f"{name}.png").convert("RGB"))
    if img.shape[0] > img.shape[1]:
        img = img.transpose(1, 0, 2)
    Image.fromarray(img[r:r + 256, c:c + 256]).save(dst / f"{name}_crop.png")
PY
elif [[ "$SET" == kodak8 ]]; then
  for i in 01 04 07 10 13 16 19 22; do ln -sf "$(realpath "$DATA/kodak/kodim$i.png")" "$SUBSET/kodim$i.png"; done
elif [[ "$SET" == kodak ]]; then
  for f in "$DATA"/kodak/kodim*.png; do ln -sf "$(realpath "$f")" "$SUBSET/$(basename "$f")"; done
else
  echo "error: SET must be crops, kodak8 or kodak (got $SET)" >&2; exit 2
fi
CODECS=(-c "ours:hyperprior-mse-l0067@3,2,1.4,1")
for level in $LEVELS; do CODECS+=(-c "ours:overfit@$QUALITIES;effort=$level"); done
.venv/bin/codec eval "$SUBSET" "${CODECS[@]}" -c avif -c webp --anchor avif \
  --published vtm,bpg444 --cache results/overfit/cache -j "${JOBS:-1}" -o "results/overfit/${OUT:-$SET}"
