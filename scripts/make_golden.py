"""Regenerate a golden bitstream (run after a deliberate model or format change).

    python scripts/make_golden.py                      # the default model -> golden.json
    python scripts/make_golden.py --model ID --name m2t  # another model -> m2t_golden.json
    python scripts/make_golden.py --model overfit --name overfit --decode-only
                                                       # a fitted file: its encoder is not bit-stable
                                                       # across CPUs (bfloat16), so only decoding is checked
writes tests/golden/[NAME_]coffee_128x96.bin and [NAME_]golden.json (model id, sizes, sha256 of the
bitstream and of the decoded pixels). tests/test_shipped_model.py checks that every committed
bitstream still decodes to exactly those pixels and that its source re-encodes to the same symbols.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from codec.io import read_image  # noqa: E402
from codec.pipeline.image import compress, decompress, load_model  # noqa: E402

GOLDEN = REPO / "tests" / "golden"


def main() -> None:
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("--model", default=None, help="model id (default: the manifest's default)")
    p.add_argument("--name", default="", help="file name prefix for a second golden file")
    p.add_argument("--decode-only", action="store_true", help="record that re-encoding is not compared")
    a = p.parse_args()
    prefix = f"{a.name}_" if a.name else ""
    pixels = read_image(REPO / "assets" / "coffee.png").pixels[150:246, 200:328]  # 128x96 crop
    model = load_model(a.model)
    enc = compress(model, pixels)
    dec = decompress(enc.data, model)
    GOLDEN.mkdir(parents=True, exist_ok=True)
    (GOLDEN / f"{prefix}coffee_128x96.bin").write_bytes(enc.data)
    info = {
        "bitstream": f"{prefix}coffee_128x96.bin",
        "source": "assets/coffee.png, rows 150:246, columns 200:328",
        "model_id": model.model_id,
        "bytes": len(enc.data),
        "bitstream_sha256": hashlib.sha256(enc.data).hexdigest(),
        "pixels_sha256": hashlib.sha256(dec.pixels.tobytes()).hexdigest(),
        "source_pixels_sha256": hashlib.sha256(pixels.tobytes()).hexdigest(),
        "shape": list(dec.pixels.shape),
    }
    if a.decode_only:
        info["reencode"] = False
    (GOLDEN / f"{prefix}golden.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
