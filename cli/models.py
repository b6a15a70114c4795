"""codec models: the models this copy of codec knows, whether each is installed, its size, hash and
measured Kodak figures; `codec models install DIR` adds models that do not ship in the package
(no torch)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from .output import Output

KODAK_KEYS = ("bpp", "psnr_rgb", "ms_ssim_rgb", "jpeg_psnr_same_size", "encode_s", "decode_s")


def list_models(json_out: bool) -> None:
    from codec.registry import BUILTIN
    from codec.settings import user_weights_dir, weights_dir
    from codec.zoo import list_models as entries, read_manifest

    out = Output(json_out)
    manifest = read_manifest()
    rows = []
    for e in entries():
        kodak = e.info.get("metrics", {}).get("kodak", {})
        rows.append({
            "model_id": e.model_id, "default": e.model_id == manifest.get("default"),
            "default_video": e.model_id == manifest.get("default_video"), "family": e.family,
            "installed": e.installed, "bytes": e.size, "sha256": e.sha256, "config": e.config,
            "kodak": {k: kodak.get(k) for k in KODAK_KEYS},
        })
    for model_id, family in BUILTIN.items():  # no weights file: fitted to each image at encode time
        rows.append({"model_id": model_id, "default": False, "default_video": False, "family": family,
                     "installed": True, "bytes": 0, "sha256": "", "config": {"built_in": True},
                     "kodak": {k: None for k in KODAK_KEYS}})
    if json_out:
        out.emit({"default": manifest.get("default"), "default_video": manifest.get("default_video"),
                  "weights": str(weights_dir()), "user_weights": str(user_weights_dir()), "models": rows})
        return
    table = Table("model", "size", "sha256", "Kodak bpp", "PSNR", "MS-SSIM", "JPEG same size", "enc s", "dec s", box=None)

    def f(v, fmt):
        return format(v, fmt) if isinstance(v, (int, float)) else "-"

    for r in rows:
        k = r["kodak"]
        table.add_row(
            r["model_id"] + (" (default)" if r["default"] else " (video default)" if r["default_video"] else
                             " (built in: fitted to each image)" if r["config"].get("built_in") else ""),
            f"{r['bytes'] / 1e6:.1f} MB" if r["installed"] else "not installed", r["sha256"][:12] or "-",
            f(k["bpp"], ".3f"), f(k["psnr_rgb"], ".2f"), f(k["ms_ssim_rgb"], ".4f"), f(k["jpeg_psnr_same_size"], ".2f"),
            f(k["encode_s"], ".2f"), f(k["decode_s"], ".2f"),
        )
    if not rows:
        out.say("no models shipped")
    out.table(table)
    if not all(r["installed"] for r in rows):
        out.say("not installed: `codec models install DIR` copies them from a folder of their .safetensors files")


def models_app(guarded) -> typer.Typer:
    app = typer.Typer(help="List the models, or install ones that do not ship in the package.",
                      invoke_without_command=True, no_args_is_help=False)

    @app.callback(invoke_without_command=True)
    @guarded
    def models(ctx: typer.Context,
               json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout.")) -> None:
        """List the models: shipped, installed, built in."""
        if ctx.invoked_subcommand is None:
            list_models(json_out)

    @app.command("install")
    @guarded
    def install(
        folder: Path = typer.Argument(..., help="A folder of .safetensors model files (with or without manifest.json)."),
        json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    ) -> None:
        """Copy models from FOLDER into your weights folder, each checked against its sha256."""
        from codec.install import install_models
        from codec.settings import user_weights_dir

        out = Output(json_out)
        rows = install_models(folder)
        if json_out:
            out.emit({"folder": str(user_weights_dir()), "models": rows})
            return
        for r in rows:
            out.say(f"{r['status']}: {r['id']} ({r['bytes'] / 1e6:.1f} MB)")
        out.say(f"into {user_weights_dir()}")

    return app
