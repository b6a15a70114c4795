"""codec info: the container's header and chunk table, every CRC checked; no model is loaded."""

from __future__ import annotations

import typer
from rich.table import Table

from .output import Output


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
    from codec.container.chunks import KIND_VIDEO

    from .source import probe

    out = Output(json_out)
    source = probe(path, max_chunk_bytes)  # read once: stdin, a FIFO or <(...) cannot be reopened
    if source.kind == KIND_VIDEO:
        limits = Limits(max_pixels=max_pixels, max_dimension=max_dimension, max_chunk_bytes=max_chunk_bytes,
                        max_frames=max_frames)
        _video_info(source, limits, out, json_out)
    else:
        _image_info(source, Limits(max_pixels=max_pixels, max_dimension=max_dimension, max_chunk_bytes=max_chunk_bytes),
                    out, json_out)


def _video_info(source, limits, out: Output, json_out: bool) -> None:
    """A video bitstream: header, VHDR, GOPs and one table row per frame."""
    from .video import video_info

    path = source.name
    d = video_info(source, limits)
    d["file"] = path
    d["crc_ok"] = True
    if json_out:
        out.emit(d)
        return
    h = d["header"]
    out.say(f"{path}: codec container (video), writer v{d['writer_version']} (readers >= v{d['min_reader_version']}), "
            f"{d['size']} bytes, {d['bpp']:.4f} bpp")
    memory = f", a memory of {d['memory']} slots" if d["memory"] else ""
    out.say(f"  video {h['width']}x{h['height']}, {d['frames']} frames @ {d['fps']} fps, gop {d['gop']}, "
            f"{len(d['gops'])} GOPs{memory}")
    out.say(f"  model {h['model_id']} (weights {h['weights_sha256_prefix']}), coder {h['coder']} {h['coder_version']}, "
            f"quality {h['quality']}")
    table = Table("frame", "mode", "bytes", "offset", box=None, pad_edge=False)
    for f in d["frame_table"]:
        table.add_row(str(f["frame"]), f["mode"], str(f["bytes"]), str(f["offset"]))
    out.table(table)
    out.say("  all CRCs ok")


def user_quality(model_id: str, field: int) -> float | None:
    """The -q quality a header field stands for, from the model's manifest entry (no torch); None
    for a model this copy does not know."""
    from codec.pipeline.rate import quality_of_field
    from codec.registry import BUILTIN
    from codec.zoo import list_models

    if model_id in BUILTIN:
        return quality_of_field(field, True)
    configs = {e.model_id: e.config for e in list_models()}

    def variable(mid: str, depth: int = 0) -> bool | None:
        config = configs.get(mid)
        if config is None or depth > 4:
            return None
        if config.get("levels"):
            return True
        return variable(config["ae"], depth + 1) if isinstance(config.get("ae"), str) else False

    from codec.zoo import quality_reference

    kind = variable(model_id)
    return None if kind is None else quality_of_field(field, kind, quality_reference(model_id))


def _image_info(source, limits, out: Output, json_out: bool) -> None:
    """An image bitstream (or stdin): header and one table row per chunk."""
    from codec.container import describe, read_container

    path = source.name
    data = source.read(limits.max_chunk_bytes)
    d = describe(read_container(data, limits))
    h = d["header"]
    h["quality_field"] = h["quality"]  # the raw header field; "quality" is on the scale of -q
    h["quality"] = user_quality(h["model_id"], h["quality_field"])
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
    out.say(f"  model {h['model_id']} (weights {h['weights_sha256_prefix']}), coder {h['coder']} {h['coder_version']}, quality {h['quality']} "
            f"(header field {h['quality_field']})")
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
