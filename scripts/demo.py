"""`make demo`: encode and decode the bundled samples with the shipped default models through the
`codec` executable: the photo (compared with JPEG at the same file size) and the video clip
(compared with x264 medium at about the same size).

Writes out/demo/coffee.bin, coffee.png (and the JPEGs), carphone.bin, carphone.mkv and prints tables.
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
    video(console, out)


def video(console: Console, out: Path) -> None:
    from codec.eval.video import load_clip
    from codec.eval.video_codecs import decode_stream, encode_stream, measure

    src = REPO / "assets" / "carphone.mp4"
    console.print(f"\n$ codec encode {src.relative_to(REPO)} -o out/demo/carphone.bin")
    enc = codec("encode", str(src), "-o", str(out / "carphone.bin"))
    console.print("$ codec decode out/demo/carphone.bin -o out/demo/carphone.mkv")
    dec = codec("decode", str(out / "carphone.bin"), "-o", str(out / "carphone.mkv"))
    frames = load_clip(src).frames
    ours = measure(frames, load_clip(out / "carphone.mkv").frames, enc["bytes"], enc["encode_seconds"],
                   dec["decode_seconds"])
    best = None
    for crf in range(14, 52, 2):  # x264 medium, same GOP, the largest file not above ours
        stream = encode_stream(frames, "libx264", crf, enc["gop"])
        if stream.nbytes <= enc["bytes"]:
            best = (crf, stream)
            break
    table = Table(title=f"{src.name}, {enc['width']}x{enc['height']}, {enc['frames']} frames, gop {enc['gop']}: "
                        "whole streams, PSNR-RGB averaged over frames")
    for col in ("codec", "bytes", "bpp", "PSNR dB"):
        table.add_column(col, justify="left" if col == "codec" else "right")
    table.add_row(f"codec ({enc['model_id']}, {enc['intra_frames']} intra)", str(ours.bytes), f"{ours.bpp:.4f}",
                  f"{ours.psnr_rgb:.2f}")
    if best is not None:
        x = measure(frames, decode_stream(best[1]), best[1].nbytes, 0.0, 0.0)
        table.add_row(f"x264 medium CRF {best[0]} (same size or smaller)", str(x.bytes), f"{x.bpp:.4f}", f"{x.psnr_rgb:.2f}")
    console.print(table)
    console.print(f"encode {enc['encode_fps']:.2f} frames/s, decode {dec['decode_fps']:.2f} frames/s")


if __name__ == "__main__":
    main()
