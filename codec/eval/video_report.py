"""Video evaluation results: mean and per-clip curves, BD-rates, the table and the plot (the files
themselves are written by `report.write`, as for images).

Results: curves per codec are means over clips of bpp and of PSNR at each quality point (the same
CRF on every clip); BD-rates are computed per clip and then averaged over clips (the usual practice
in video coding tests), with the BD-rate of the mean curves kept alongside for reference.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Sequence

import numpy as np

from codec.errors import UsageError
from codec.eval.report import bd_cells, bd_table, curve, draw_curves, fmt_cell, machine, new_plot, save_plot

__all__ = ["CURVE_METRICS", "video_markdown", "video_plot", "video_results"]

CURVE_METRICS = ("bpp", "psnr-rgb", "encode_fps", "decode_fps")


def _curve(codec, rows: list[dict]) -> dict:
    """CompressAI-shaped curve: per quality, the mean over the given rows of each metric (and how many
    clips each point averages), sorted by bpp."""
    return curve(codec, rows, CURVE_METRICS, count="clips")


def _mean_delta(per_clip: dict[str, dict]) -> dict:
    usable = {c: d for c, d in per_clip.items() if d["bd_rate"] is not None}
    warnings = sorted({f"{c}: {d['warning']}" for c, d in per_clip.items() if d["warning"]})
    quality = [d["bd_quality"] for d in usable.values() if d["bd_quality"] is not None]
    return {"bd_rate": float(np.mean([d["bd_rate"] for d in usable.values()])) if usable else None,
            "bd_quality": float(np.mean(quality)) if quality else None,  # over the clips that have one
            "clips": len(usable), "of": len(per_clip), "warning": "; ".join(warnings) or None}


def video_results(rows: list[dict], codecs: Sequence, anchors: list[str], clips: Sequence,
                  command: str) -> dict:
    """results.json content: mean curves (CompressAI shape), per-clip curves, BD-rates, machine, rows.

    `codecs[*].name` must cover the rows' codecs; `clips` are Clip objects (or names). BD-rate (PSNR)
    of every codec against each anchor is computed per clip, then averaged over the clips where it is
    defined ("bd_rate"); "mean_curve" holds the BD-rate of the mean curves for reference.
    """
    import av

    clip_info = [c.describe() if hasattr(c, "describe") else {"name": str(c)} for c in clips]
    clip_names = [c["name"] for c in clip_info]
    mean_curves = {c.name: _curve(c, [r for r in rows if r["codec"] == c.name]) for c in codecs}
    per_clip = {clip: {c.name: _curve(c, [r for r in rows if r["codec"] == c.name and r["clip"] == clip])
                       for c in codecs} for clip in clip_names}
    names = [c.name for c in codecs]
    bd = {}
    for anchor in anchors:
        if anchor not in names:
            raise UsageError(f"anchor {anchor!r} is not an evaluated codec ({', '.join(names)})")
        clip_tables = {clip: bd_table(per_clip[clip], anchor) for clip in clip_names}
        mean_table = bd_table(mean_curves, anchor)
        bd[anchor] = {"psnr-rgb": {}}
        for name in names:
            if name == anchor:
                continue
            entry = _mean_delta({clip: clip_tables[clip][name] for clip in clip_names})
            entry["per_clip"] = {clip: clip_tables[clip][name] for clip in clip_names}
            entry["mean_curve"] = mean_table[name]
            bd[anchor]["psnr-rgb"][name] = entry
    gops = sorted({r["gop"] for r in rows if "gop" in r})
    return {
        "name": "codec eval video",
        "description": "Curves: per quality point, the mean over clips of bpp and of the mean per-frame RGB PSNR. "
                       "bpp = 8 * bytes / (frames * W * H). BD-rate (PSNR-RGB) per clip, averaged over clips.",
        "date": _dt.date.today().isoformat(), "command": command,
        "machine": {**machine(), "pyav": av.__version__, "ffmpeg": getattr(av, "ffmpeg_version_info", None)},
        "gop": gops[0] if len(gops) == 1 else gops, "clips": clip_info,
        "codecs": mean_curves, "per_clip": per_clip, "anchors": list(anchors), "bd": bd,
        "rows": rows,
    }


def _throughput(rows: list[dict], codec: str, key: str) -> float | None:
    rs = [r for r in rows if r["codec"] == codec and r.get(key)]
    return sum(r["frames"] for r in rs) / sum(r[key] for r in rs) if rs else None


def video_markdown(results: dict) -> str:
    """The table: per codec bpp and PSNR ranges, BD-rate/BD-PSNR vs each anchor, encode/decode fps."""
    anchors, rows = results["anchors"], results["rows"]
    head = ["codec", "points", "bpp range", "PSNR range"]
    for a in anchors:
        head += [f"BD-rate vs {a}", f"BD-PSNR vs {a}"]
    head += ["enc fps", "dec fps"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, c in results["codecs"].items():
        r = c["results"]
        row = [c["label"], str(len(r["bpp"])), f"{min(r['bpp']):.4f}-{max(r['bpp']):.4f}",
               f"{min(r['psnr-rgb']):.2f}-{max(r['psnr-rgb']):.2f}"]
        for a in anchors:
            row += bd_cells(results["bd"][a]["psnr-rgb"].get(name), anchor=name == a)
        row += [fmt_cell(_throughput(rows, name, key), ".1f") for key in ("encode_seconds", "decode_seconds")]
        lines.append("| " + " | ".join(row) + " |")
    m = results["machine"]
    clips = ", ".join(f"{c['name']} ({c.get('width')}x{c.get('height')}, {c.get('frames')} frames)" for c in results["clips"])
    out = [f"Clips: {clips}. GOP {results['gop']}. Machine: {m['cpu']}, {m['cpu_count']} cores. "
           f"Command: `{results['command']}`", "",
           "BD-rates: per clip, then the mean over clips; fps: all frames over all coding time of the codec.", "", *lines]
    notes = sorted({f"* {name} vs {a}: {d['warning']}" for a in anchors
                    for name, d in results["bd"][a]["psnr-rgb"].items() if d["warning"]})
    if notes:
        out += ["", "Overlap warnings (marked *):", *notes]
    if len(results["clips"]) > 1 and anchors:
        out += ["", "Per clip:", "", "| clip | codec | " + " | ".join(f"BD-rate vs {a} | BD-PSNR vs {a}" for a in anchors) + " |",
                "|---|---|" + "---|---|" * len(anchors)]
        for clip in (c["name"] for c in results["clips"]):
            for name, c in results["codecs"].items():
                cells = []
                for a in anchors:
                    d = None if name == a else results["bd"][a]["psnr-rgb"][name]["per_clip"][clip]
                    cells += bd_cells(d, anchor=name == a)
                out.append(f"| {clip} | {c['label']} | " + " | ".join(cells) + " |")
    out += ["", "Per quality point (means over clips):", "",
            "| codec | quality | bpp | PSNR-RGB dB | enc fps | dec fps |", "|---|---:|---:|---:|---:|---:|"]
    for c in results["codecs"].values():
        r = c["results"]
        for i in range(len(r["bpp"])):
            out.append(f"| {c['label']} | {r['quality'][i]} | {r['bpp'][i]:.4f} | {r['psnr-rgb'][i]:.2f} | "
                       f"{fmt_cell(r['encode_fps'][i], '.1f')} | {fmt_cell(r['decode_fps'][i], '.1f')} |")
    return "\n".join(out) + "\n"


def video_plot(results: dict, path: Path) -> None:
    """Mean PSNR-RGB against mean bpp, one line per codec (matplotlib, Agg)."""
    fig, ax = new_plot()
    draw_curves(ax, results["codecs"])
    save_plot(fig, ax, path, "bits per pixel (mean over clips)", "PSNR-RGB, mean over frames and clips (dB)",
              f"Rate-distortion, {len(results['clips'])} clip(s), GOP {results['gop']}")
