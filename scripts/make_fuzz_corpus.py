"""Write the seed bitstreams of the fuzzer (scripts/fuzz_target.py, tests/test_fuzz.py) to tests/fuzz_corpus/.

    python scripts/make_fuzz_corpus.py

Small, valid files of every kind the decoder reads, so mutations start from deep inside the format:
images of each shipped image family (hyperprior single-rate and variable-rate, M2T) at sizes that
are and are not multiples of the stride, one with a ``meta`` and an unknown ancillary chunk, and
videos of both container versions (vct-l0067: version 2 with inter frames of mode 1; vct-zt-l0067:
version 3 with mode-2 frames). The content is crops of assets/, so the files are the same on every
run with the same weights; about 6 KB in all.
"""

from __future__ import annotations

import io
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from codec.container import frame_chunk, read_container, write_container  # noqa: E402
from codec.eval.video import load_clip  # noqa: E402
from codec.io import read_image  # noqa: E402
from codec.pipeline.image import compress, load_model  # noqa: E402
from codec.pipeline.video import compress_video, load_video_model  # noqa: E402

CORPUS = REPO / "tests" / "fuzz_corpus"

IMAGES = [  # (model id, height, width)
    ("hyperprior-mse-l0067", 16, 16),
    ("hyperprior-mse-l0067", 24, 40),
    ("hyperprior-mse-l0067", 64, 64),
    ("hyperprior-vr", 16, 16),
    ("m2t-vr", 24, 40),
]
VIDEOS = [  # (model id, frames, height, width, gop, mode decision)
    ("vct-zt-l0067", 3, 32, 48, 2, True),  # version 3: intra, mode 2, intra
    ("vct-zt-l0067", 4, 64, 64, 4, False),  # version 3: one GOP of inter frames (z given two previous z)
    ("vct-l0067", 3, 32, 48, 2, False),  # version 2: intra, mode 1, intra
    ("vct-l0067", 4, 32, 48, 4, True),  # version 2: intra frames that are not keyframes (mode decision)
]


def image_seeds() -> dict[str, bytes]:
    pixels = read_image(REPO / "assets" / "coffee.png").pixels
    seeds = {}
    for model_id, h, w in IMAGES:
        crop = np.ascontiguousarray(pixels[200 : 200 + h, 300 : 300 + w])
        seeds[f"image-{model_id}-{w}x{h}.bin"] = compress(load_model(model_id), crop).data
    plain = read_container(seeds["image-hyperprior-mse-l0067-16x16.bin"])
    with_meta = write_container(plain.header, plain.streams, {"encoder": "codec", "note": "fuzz seed"})
    pre, end = with_meta[:-12], with_meta[-12:]  # insert an unknown ancillary chunk before END
    seeds["image-hyperprior-mse-l0067-16x16-meta.bin"] = pre + frame_chunk(b"tEXt", b"seed") + end
    return seeds


def video_seeds() -> dict[str, bytes]:
    clip = load_clip(REPO / "assets" / "carphone.mp4", 0, 4).frames
    seeds = {}
    for model_id, n, h, w, gop, decide in VIDEOS:
        frames = [np.ascontiguousarray(f[40 : 40 + h, 60 : 60 + w]) for f in clip[:n]]
        buf = io.BytesIO()
        stats = compress_video(load_video_model(model_id), frames, buf, width=w, height=h, fps=Fraction(30),
                               gop=gop, mode_decision=decide, meta={"encoder": "codec"} if decide else None)
        modes = "".join(map(str, stats.modes))
        seeds[f"video-{model_id}-{w}x{h}-gop{gop}-modes{modes}.bin"] = buf.getvalue()
    return seeds


def main() -> None:
    CORPUS.mkdir(parents=True, exist_ok=True)
    for old in CORPUS.glob("*.bin"):
        old.unlink()
    seeds = {**image_seeds(), **video_seeds()}
    for name, data in seeds.items():
        (CORPUS / name).write_bytes(data)
        print(f"{name}: {len(data)} bytes")
    print(f"{len(seeds)} seeds, {sum(map(len, seeds.values()))} bytes in {CORPUS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
