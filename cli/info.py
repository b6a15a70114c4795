"""codec info: the container's header and chunk table, every CRC checked; no model is loaded."""

from __future__ import annotations

import typer
from rich.table import Table

from cli.output import Output, read_stdin_bytes


def info(
    path: str = typer.Argument(..., help="A bitstream; '-' reads stdin."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    max_pixels: int = typer.Option(268_435_456, "--max-pixels", min=1),
    max_dimension: int = typer.Option(1 << 16, "--max-dimension", min=1),
    max_chunk_bytes: int = typer.Option(1 << 30, "--max-chunk-bytes", min=1),
    max_frames: int = typer.Option(1 << 24, "--max-frames", min=1, help="Video: refuse bitstreams of more frames."),
) -> None:
    """Show a bitstream's header and chunks (checks every CRC; loads no model)."""
    from codec.container import Limits

    from cli.video import is_video_bitstream

    out = Output(json_out)
    if is_video_bitstream(path):
        limits = Limits(max_pixels=max_pixels, max_dimension=max_dimension, max_chunk_bytes=max_chunk_bytes,
                        max_frames=max_frames)
        _video_info(path, limits, out, json_out)
    else:
        _image_info(path, Limits(max_pixels=max_pixels, max_dimension=max_dimension, max_chunk_bytes=max_chunk_bytes),
                    out, json_out)


def _video_info(path: str, limits, out: Output, json_out: bool) -> None:
    """A video bitstream: header, VHDR, GOPs and one table row per frame."""
    from cli.video import video_info

    d = video_info(path, limits)
    d["file"] = path
    d["crc_ok"] = True
    if json_out:
        out.emit(d)
        return
    h = d["header"]
    out.say(f"{path}: codec container (video), writer v{d['writer_version']} (readers >= v{d['min_reader_version']}), "
            f"{d['size']} bytes, {d['bpp']:.4f} bpp")
    out.say(f"  video {h['width']}x{h['height']}, {d['frames']} frames @ {d['fps']} fps, gop {d['gop']}, "
            f"{len(d['gops'])} GOPs")
    out.say(f"  model {h['model_id']} (weights {h['weights_sha256_prefix']}), coder {h['coder']} {h['coder_version']}, "
            f"quality {h['quality']}")
    table = Table("frame", "mode", "bytes", "offset", box=None, pad_edge=False)
    for f in d["frame_table"]:
        table.add_row(str(f["frame"]), f["mode"], str(f["bytes"]), str(f["offset"]))
    out.table(table)
    out.say("  all CRCs ok")


def _image_info(path: str, limits, out: Output, json_out: bool) -> None:
    """An image bitstream (or stdin): header and one table row per chunk."""
    from codec.container import describe, read_container
    from codec.io import read_bytes

    max_bytes = limits.max_chunk_bytes
    data = read_stdin_bytes(max_bytes) if path == "-" else read_bytes(path, max_bytes=max_bytes)
    d = describe(read_container(data, limits))
    h = d["header"]
    d["file"] = path
    d["bytes"] = len(data)
    d["bpp"] = len(data) * 8 / (h["width"] * h["height"])
    d["crc_ok"] = True
    if json_out:
        out.emit(d)
        return
    out.say(f"{path}: codec container, writer v{d['writer_version']} (readers >= v{d['min_reader_version']}), {d['size']} bytes, {d['bpp']:.4f} bpp")
    out.say(f"  {h['kind']} {h['width']}x{h['height']} (+{h['pad_right']} right, +{h['pad_bottom']} bottom padding), "
            f"{h['channels']}x{h['bit_depth']}-bit")
    out.say(f"  model {h['model_id']} (weights {h['weights_sha256_prefix']}), coder {h['coder']} {h['coder_version']}, quality {h['quality']}")
    if "overfitted" in d:
        o = d["overfitted"]
        out.say(f"  overfitted: networks {o['network_bytes']} bytes ({o['network_bpp']:.4f} bpp), latents "
                f"{o['latent_bytes']} bytes ({o['latent_bpp']:.4f} bpp); {o['grids']} grids, ARM {o['arm_context']} "
                f"neighbours x {o['arm_hidden']} layers{', tiles ' + str(o['tile']) if o['tile'] else ''}, "
                f"synthesis {o['synthesis_widths']} + {o['convs']} 3x3 layers")
    table = Table("type", "offset", "length", "crc32", "kind", box=None, pad_edge=False)
    for c in d["chunks"]:
        kind = ("critical" if c["critical"] else "ancillary") + ("" if c["known"] else ", unknown (skipped)")
        table.add_row(c["type"], str(c["offset"]), str(c["length"]), c["crc"], kind)
    out.table(table)
    out.say("  all CRCs ok")
