"""Pack the training photos into a folder small enough to carry to a lent GPU (default 58 MB).

PNG files are re-encoded as JPEG q95 4:4:4 (as the shared README did for the resized photos);
JPEG files are copied byte for byte. Files are taken in a fixed order until the budget is met.
Usage: python scripts/pack_train_subset.py [SRC] [DST] [--mb 58]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import shutil
import sys
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from codec.settings import data_dir  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("src", nargs="?", default=str(data_dir() / "train"))
    p.add_argument("dst", nargs="?", default=".gpu_data/train")
    p.add_argument("--mb", type=float, default=58.0)
    a = p.parse_args()
    src, dst = Path(a.src), Path(a.dst)
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    total, n, skipped = 0, 0, 0
    # a fixed pseudo-random order, so a budget cut drops files evenly across sources
    for f in sorted(src.iterdir(), key=lambda f: hashlib.sha256(f.name.encode()).hexdigest()):
        if f.suffix.lower() == ".png":
            buf = io.BytesIO()
            with Image.open(f) as im:
                im.convert("RGB").save(buf, "JPEG", quality=95, subsampling=0)
            data, name = buf.getvalue(), f.stem + ".png.jpg"
        elif f.suffix.lower() in (".jpg", ".jpeg"):
            data, name = f.read_bytes(), f.name
        else:
            continue
        if total + len(data) > a.mb * 1e6:
            skipped += 1
            continue
        (dst / name).write_bytes(data)
        total += len(data)
        n += 1
    print(f"packed {n} images, {total / 1e6:.1f} MB, skipped {skipped} over budget -> {dst}")


if __name__ == "__main__":
    main()
