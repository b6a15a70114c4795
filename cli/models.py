"""codec models: the shipped models, their size, hash and measured Kodak figures (no torch)."""

from __future__ import annotations

import typer
from rich.table import Table

from cli.output import Output


def models(json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout.")) -> None:
    """List the shipped models."""
    from codec.zoo import list_models, read_manifest

    out = Output(json_out)
    manifest = read_manifest()
    rows = []
    for e in list_models():
        kodak = e.info.get("metrics", {}).get("kodak", {})
        rows.append({
            "model_id": e.model_id, "default": e.model_id == manifest.get("default"),
            "default_video": e.model_id == manifest.get("default_video"), "family": e.family,
            "bytes": e.size, "sha256": e.sha256, "config": e.config,
            "kodak": {k: kodak.get(k) for k in ("bpp", "psnr_rgb", "ms_ssim_rgb", "jpeg_psnr_same_size", "encode_s", "decode_s")},
        })
    from codec.registry import BUILTIN

    for model_id, family in BUILTIN.items():  # no weights file: fitted to each image at encode time
        rows.append({"model_id": model_id, "default": False, "default_video": False, "family": family, "bytes": 0,
                     "sha256": "", "config": {"built_in": True}, "kodak": {k: None for k in (
                         "bpp", "psnr_rgb", "ms_ssim_rgb", "jpeg_psnr_same_size", "encode_s", "decode_s")}})
    if json_out:
        out.emit({"default": manifest.get("default"), "default_video": manifest.get("default_video"), "models": rows})
        return
    table = Table("model", "size", "sha256", "Kodak bpp", "PSNR", "MS-SSIM", "JPEG same size", "enc s", "dec s", box=None)

    def f(v, fmt):
        return format(v, fmt) if isinstance(v, (int, float)) else "-"

    for r in rows:
        k = r["kodak"]
        table.add_row(
            r["model_id"] + (" (default)" if r["default"] else " (video default)" if r["default_video"] else
                             " (built in: fitted to each image)" if r["config"].get("built_in") else ""),
            f"{r['bytes'] / 1e6:.1f} MB", r["sha256"][:12] or "-",
            f(k["bpp"], ".3f"), f(k["psnr_rgb"], ".2f"), f(k["ms_ssim_rgb"], ".4f"), f(k["jpeg_psnr_same_size"], ".2f"),
            f(k["encode_s"], ".2f"), f(k["decode_s"], ".2f"),
        )
    if not rows:
        out.say("no models shipped")
    out.table(table)
