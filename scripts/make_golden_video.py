"""Regenerate the golden video bitstream (run after a deliberate change of the video model or format).

    python scripts/make_golden_video.py [--model ID] [--suffix S] [--memory N [--version5]] [--gop G]

One golden file per shipped video format: video_carphone_6f.bin (vct-l0067, container version 2),
video_carphone_6f_zt.bin (vct-zt-l0067, version 3: temporal side information, compact frames),
video_carphone_9f_memory.bin (vct-zt-l0067 with a latent memory of 4, version 5; recipe "returning":
`--model vct-zt-l0067 --memory 4 --version5 --suffix _memory`) and video_carphone_9f_scenes.bin (the
same with scene ends, version 6, gop 8 so that the frames a cut leaves are stored and a keyframe
refreshes the memory: `--model vct-zt-l0067 --memory 4 --gop 8 --suffix _scenes`).

Codes the first 6 frames of assets/carphone.mp4 (gop 4: a keyframe, inter frames, a second GOP; the
recipe is codec.testing.golden_video) with the shipped video model and writes
tests/golden/video_carphone_6f.bin and golden_video.json (sizes, modes, sha256 of the bitstream, of the
decoded latents and of the source frames, mean PSNR). tests/test_shipped_video.py checks that the
bitstream still decodes to exactly those latents (and that PSNR) and that the source re-encodes to the
same bytes.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from codec.metrics import mean_psnr  # noqa: E402
from codec.pipeline.vct import RDO_LAMBDA  # noqa: E402
from codec.pipeline.video import load_video_model  # noqa: E402
from codec.testing import golden_video as golden  # noqa: E402
from codec.testing.digests import decode_video_with_latents_sha256, frames_sha256  # noqa: E402

GOLDEN = REPO / "tests" / "golden"


def main() -> None:
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("--model", default=None, help="video model id (default: the manifest's default_video)")
    p.add_argument("--suffix", default="", help="file names video_carphone_<n>f{S}.bin, golden_video{S}.json")
    p.add_argument("--memory", type=int, default=0, help="a latent memory of N entries, on the 'returning' recipe")
    p.add_argument("--gop", type=int, default=golden.GOP, help=f"intra period (default {golden.GOP})")
    p.add_argument("--version5", action="store_true", help="a memory without scene ends (container version 5)")
    a = p.parse_args()
    model = load_video_model(a.model)
    recipe = "returning" if a.memory else "first"
    frames = golden.source_frames(recipe)
    h, w = frames[0].shape[:2]
    encoder = {"rdo": RDO_LAMBDA}  # the encoder's choices this golden file pins (the test re-encodes with them)
    if a.memory:
        encoder["memory"] = a.memory
        if a.version5:
            encoder["scene_ends"] = False
    if a.gop != golden.GOP:
        encoder["gop"] = a.gop
    data, stats = golden.encode(model, frames, encoder)
    decoded, latents_sha = decode_video_with_latents_sha256(data, model)
    GOLDEN.mkdir(parents=True, exist_ok=True)
    name = f"video_carphone_{len(frames)}f{a.suffix}.bin"
    (GOLDEN / name).write_bytes(data)
    info = {
        "bitstream": name, "recipe": recipe,
        "source": f"{golden.SOURCE.relative_to(REPO)}, frames 0..{golden.FRAMES - 1} (recipe {recipe}), quality "
                  f"{golden.QUALITY}, gop {a.gop}, fps {golden.FPS}",
        "model_id": model.model_id, "encoder": encoder, "bytes": len(data), "modes": stats.modes, "frame_bytes": stats.frame_bytes,
        "bitstream_sha256": hashlib.sha256(data).hexdigest(),
        "latents_sha256": latents_sha,
        "psnr_rgb": round(mean_psnr(frames, decoded), 4),
        "note": "pixels come from g_s in float32 and may differ by one level in a few pixels between thread "
                "counts; the latents are exact, so the test checks them bit for bit and the PSNR to 0.01 dB",
        "source_frames_sha256": frames_sha256(frames),
        "shape": [len(frames), h, w, 3],
    }
    (GOLDEN / f"golden_video{a.suffix}.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
