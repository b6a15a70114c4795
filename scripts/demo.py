"""`make demo`: encode and decode the bundled sample with the shipped default model through the
`codec` executable, then compare with JPEG at the same file size.

Writes out/demo/coffee.bin and out/demo/coffee.png (and the JPEGs) and prints a table.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from codec.baselines import decode_jpeg, jpeg_at_size  # noqa: E402
from codec.io import read_image  # noqa: E402
from codec.metrics import bpp, ms_ssim, psnr  # noqa: E402


def codec(*args: str) -> dict:
    exe = Path(sys.executable).parent / "codec"
    out = subprocess.run([str(exe), *args, "--json", "--force"], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"codec {' '.join(args)} failed ({out.returncode}): {out.stderr.strip()}")
    return json.loads(out.stdout)


def main() -> None:
    src = REPO / "assets" / "coffee.png"
    out = REPO / "out" / "demo"
    out.mkdir(parents=True, exist_ok=True)
    console = Console()
    console.print(f"$ codec encode {src.relative_to(REPO)} -o out/demo/coffee.bin")
    enc = codec("encode", str(src), "-o", str(out / "coffee.bin"))
    console.print("$ codec decode out/demo/coffee.bin -o out/demo/coffee.png")
    dec = codec("decode", str(out / "coffee.bin"), "-o", str(out / "coffee.png"))

    original = read_image(src).pixels
    decoded = read_image(out / "coffee.png").pixels
    h, w = original.shape[:2]
    n_bytes = (out / "coffee.bin").stat().st_size
    rows = [(f"codec ({enc['model_id']})", n_bytes, decoded)]
    for sub in ("4:2:0", "4:4:4"):
        data, quality = jpeg_at_size(original, n_bytes, subsampling=sub)
        name = f"coffee.jpeg{sub.replace(':', '')}.jpg"
        (out / name).write_bytes(data)
        rows.append((f"JPEG {sub} q{quality} (same size or smaller)", len(data), decode_jpeg(data)))

    table = Table(title=f"{src.name}, {w}x{h}: whole files, PSNR-RGB and MS-SSIM-RGB")
    for col in ("codec", "bytes", "bpp", "PSNR dB", "MS-SSIM"):
        table.add_column(col, justify="left" if col == "codec" else "right")
    for name, size, pixels in rows:
        table.add_row(name, str(size), f"{bpp(size, h, w):.3f}", f"{psnr(original, pixels):.2f}", f"{ms_ssim(original, pixels):.4f}")
    console.print(table)
    console.print(
        f"encode {enc['files'][0]['encode_seconds']:.2f} s, decode {dec['files'][0]['decode_seconds']:.2f} s "
        f"(model load {enc['load_seconds']:.2f} s); files in {out.relative_to(REPO)}/"
    )


if __name__ == "__main__":
    main()
