"""Turning sweep rows into curves, BD tables, results.json (CompressAI's shape), markdown, a plot,
and the regression check against a baseline results.json.

The curve, the BD cells, the plot and `write` serve the video evaluation too (`video_report`).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from collections import defaultdict
from pathlib import Path
from typing import Callable

import numpy as np

from codec.atomic import atomic_write
from codec.eval.bd import Delta, delta

METRICS = ("bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time")


def bd_quality_cell(d: dict, flag: str = "") -> str:
    """The BD-quality cell of a table: "-" where the curves share no rate range."""
    return "-" if d["bd_quality"] is None else f"{d['bd_quality']:+.2f} dB{flag}"


def bd_cells(d: dict | None, anchor: bool = False) -> list[str]:
    """The BD-rate and BD-quality cells of a table row against one anchor (`d`: an entry of a BD
    table, None where there is none); " *" marks an overlap warning."""
    if anchor:
        return ["anchor", "anchor"]
    if d is None or d["bd_rate"] is None:
        return ["-", "-"]
    flag = " *" if d["warning"] else ""
    return [f"{d['bd_rate']:+.1f}%{flag}", bd_quality_cell(d, flag)]


def fmt_cell(v, fmt: str, empty: str = "-") -> str:
    """`v` formatted with `fmt`, or `empty` for a missing or non-finite value."""
    return empty if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, fmt)


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, else what the platform module tells."""
    try:
        return next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine() or "unknown"


def machine() -> dict:
    import torch

    return {"platform": platform.platform(), "cpu": cpu_name(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads()}


def curve(codec, rows: list[dict], metrics: tuple[str, ...] = METRICS, count: str | None = None) -> dict:
    """CompressAI-shaped curve of `codec`: per quality point, the mean over `rows` (its rows) of each
    metric, points sorted by bpp. With `count`, `results[count]` says how many rows each point averages."""
    by_q = defaultdict(list)
    for r in rows:
        by_q[json.dumps(r["quality"])].append(r)
    points = []
    for rs in by_q.values():
        p = {"quality": rs[0]["quality"], "rows": len(rs)}
        for m in metrics:
            vals = [r[m] for r in rs if r[m] is not None and np.isfinite(r[m])]
            p[m] = float(np.mean(vals)) if vals else None
        points.append(p)
    points.sort(key=lambda p: p["bpp"])
    results = {m: [p[m] for p in points] for m in (*metrics, "quality")}
    if count:
        results[count] = [p["rows"] for p in points]
    return {"name": codec.name, "label": codec.label, "description": codec.label, "version": codec.version,
            "settings": codec.settings, "published": False, "results": results}


def curves(rows: list[dict], codecs: list) -> dict[str, dict]:
    """Per codec: mean over images of each metric at each quality, sorted by bpp."""
    return {codec.name: curve(codec, [r for r in rows if r["codec"] == codec.name]) for codec in codecs}


def bd_table(all_curves: dict[str, dict], anchor: str, metric: str = "psnr-rgb") -> dict[str, dict]:
    """BD-rate/BD-quality of every curve against `anchor` on `metric`."""
    a = all_curves[anchor]["results"]
    table = {}
    for name, c in all_curves.items():
        res = c["results"]
        if name == anchor or metric not in res or metric not in a:
            continue
        d: Delta = delta(a["bpp"], a[metric], res["bpp"], res[metric])
        table[name] = {"bd_rate": d.bd_rate, "bd_quality": d.bd_quality, "overlap": d.overlap,
                       "points_in_overlap": list(d.points_in_overlap), "warning": d.warning}
    return table


def build_results(rows, codecs, published: dict, anchors: list[str], images: list[str], command: str) -> dict:
    measured = curves(rows, codecs)
    all_curves = {**measured, **published}
    bd = {}
    for anchor in anchors:
        if anchor in all_curves:
            bd[anchor] = {m: bd_table(all_curves, anchor, m) for m in ("psnr-rgb", "ms-ssim-rgb")}
    jpeg = measured.get("jpeg")
    return {
        "name": "codec eval",
        "description": "Means over images of per-image values at each quality point; bpp from whole files. "
                       "Published curves are reference data measured elsewhere.",
        "date": _dt.date.today().isoformat(), "command": command, "machine": machine(), "images": images,
        "codecs": measured, "published": published, "anchors": anchors, "bd": bd,
        "time_reference": "jpeg" if jpeg else None,
        "per_image": rows,
    }


def _mean_time(c: dict, key: str) -> float | None:
    vals = [v for v in c["results"].get(key, []) if v is not None]
    return float(np.mean(vals)) if vals else None


def markdown(results: dict) -> str:
    measured, published = results["codecs"], results["published"]
    anchors = results["anchors"]
    jpeg = measured.get("jpeg")
    jpeg_enc = _mean_time(jpeg, "encoding_time") if jpeg else None
    jpeg_dec = _mean_time(jpeg, "decoding_time") if jpeg else None
    head = ["codec", "points", "bpp range", "PSNR range"]
    for a in anchors:
        label = a.replace("published:", "") + (" (published)" if a.startswith("published:") else "")
        head += [f"BD-rate vs {label}", f"BD-PSNR vs {label}"]
    head += ["enc s/img", "dec s/img", "enc / dec time vs JPEG"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, c in list(measured.items()) + list(published.items()):
        r = c["results"]
        row = [c["label"], str(len(r["bpp"])), f"{min(r['bpp']):.3f}-{max(r['bpp']):.3f}",
               f"{min(r['psnr-rgb']):.2f}-{max(r['psnr-rgb']):.2f}"]
        for a in anchors:
            row += bd_cells(results["bd"].get(a, {}).get("psnr-rgb", {}).get(name), anchor=name == a)
        if c.get("published"):
            row += ["(published)", "", ""]
        else:
            enc, dec = _mean_time(c, "encoding_time"), _mean_time(c, "decoding_time")
            ratio = f"{enc / jpeg_enc:.0f}x / {dec / jpeg_dec:.0f}x" if jpeg_enc and jpeg_dec and enc and dec else "-"
            row += [fmt_cell(enc, ".3f"), fmt_cell(dec, ".3f"), ratio]
        lines.append("| " + " | ".join(row) + " |")
    notes = [f"* {name}: {d['warning']}" for a in anchors for name, d in results["bd"].get(a, {}).get("psnr-rgb", {}).items() if d["warning"]]
    m = results["machine"]
    out = [f"Images: {len(results['images'])}. Machine: {m['cpu']}, {m['cpu_count']} cores, torch threads {m['torch_threads']}. "
           f"Command: `{results['command']}`", "", *lines]
    if notes:
        out += ["", "Overlap warnings (marked *):", *sorted(set(notes))]
    out += ["", "Per quality point (means over images):", "",
            "| codec | quality | bpp | PSNR-RGB dB | MS-SSIM-RGB | enc s | dec s |", "|---|---:|---:|---:|---:|---:|---:|"]
    for c in measured.values():
        r = c["results"]
        for i in range(len(r["bpp"])):
            out.append(f"| {c['label']} | {r['quality'][i]} | {r['bpp'][i]:.4f} | {r['psnr-rgb'][i]:.2f} | "
                       f"{fmt_cell(r['ms-ssim-rgb'][i], '.4f')} | {fmt_cell(r['encoding_time'][i], '.3f')} | {fmt_cell(r['decoding_time'][i], '.3f')} |")
    return "\n".join(out) + "\n"


def new_plot():
    """(fig, ax) of an RD plot (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(8, 6), dpi=110)


def draw_curves(ax, codecs: dict) -> None:
    """One line per codec through the monotone envelope of its (bpp, PSNR) points (ours thicker);
    points off the envelope drawn hollow."""
    from codec.eval.bd import clean_curve

    for c in codecs.values():
        r = c["results"]
        lw = 2.4 if c["name"].startswith("ours") else 1.4
        x, y, dropped = clean_curve(r["bpp"], r["psnr-rgb"])
        (line,) = ax.plot(x, y, marker="o", ms=3, lw=lw, label=c["label"])
        if dropped:
            ax.plot(r["bpp"], r["psnr-rgb"], ls="none", marker="o", ms=3, mfc="none", color=line.get_color())


def save_plot(fig, ax, path: Path, xlabel: str, ylabel: str, title: str) -> None:
    import matplotlib.pyplot as plt

    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot(results: dict, path: Path, metric: str = "psnr-rgb") -> None:
    """RD curves of every codec, measured (solid, ours thicker) and published (dashed), on axes
    that hold every point of every curve. `metric`: psnr-rgb (dB), or ms-ssim-rgb drawn in dB as
    -10 log10(1 - MS-SSIM), as CompressAI plots it."""
    import math

    def value(v):
        if v is None or not np.isfinite(v):
            return None
        return v if metric == "psnr-rgb" else (-10 * math.log10(1 - v) if v < 1 else None)

    fig, ax = new_plot()
    shown: dict[str, dict] = {}
    published: set[str] = set()
    for source, curves_ in (("measured", results["codecs"]), ("published", results.get("published", {}))):
        for name, c in curves_.items():
            r = c["results"]
            if metric not in r:
                continue
            pts = [(b, value(v)) for b, v in zip(r["bpp"], r[metric]) if value(v) is not None]
            if pts:
                shown[name] = dict(c, name=c.get("name", name), label=c.get("label", name),
                                   results={"bpp": [b for b, _ in pts], "psnr-rgb": [v for _, v in pts]})
                if source == "published":
                    published.add(name)
    draw_curves(ax, {n: c for n, c in shown.items() if n not in published})
    for n in published:
        c = shown[n]
        ax.plot(c["results"]["bpp"], c["results"]["psnr-rgb"], ls="--", lw=1.1, label=c["label"])
    xs = [b for c in shown.values() for b in c["results"]["bpp"]]
    ys = [v for c in shown.values() for v in c["results"]["psnr-rgb"]]
    if xs:
        ax.set_xlim(0, max(xs) * 1.03)
        ax.set_ylim(min(ys) - 0.5, max(ys) + 0.5)
    label = "PSNR-RGB (dB)" if metric == "psnr-rgb" else "MS-SSIM-RGB (dB: -10 log10(1 - MS-SSIM))"
    save_plot(fig, ax, path, "bits per pixel (whole file)", label,
              f"Rate-distortion, {len(results.get('images', []))} images (dashed: published, not measured here)")


def plot_ms_ssim(results: dict, path: Path) -> None:
    plot(results, path, "ms-ssim-rgb")


def compressai_json(name: str, curve: dict) -> dict:
    """One codec's curve in the shape CompressAI's plotting tool reads (`name`, `description`,
    `results` with `bpp`, `psnr-rgb`, `ms-ssim`; `ms-ssim-rgb` too for newer readers)."""
    r = curve["results"]
    results = {"bpp": r["bpp"], "psnr-rgb": r.get("psnr-rgb", [])}
    if "ms-ssim-rgb" in r:
        results["ms-ssim"] = results["ms-ssim-rgb"] = r["ms-ssim-rgb"]
    return {"name": curve.get("label", name), "description": curve.get("description", ""), "results": results}


def check(results: dict, baseline: dict, tolerance: float) -> list[str]:
    """Failures: our codecs whose BD-rate against the same codec in `baseline` exceeds `tolerance` %
    (finite and at least 0: ValueError otherwise, since no BD-rate exceeds NaN)."""
    if not np.isfinite(tolerance) or tolerance < 0:
        raise ValueError(f"tolerance must be a finite percentage of at least 0, got {tolerance}")
    failures = []
    base = {**baseline.get("codecs", {})}
    for name, c in results["codecs"].items():
        if c.get("published") or not name.startswith("ours") or name not in base:
            continue
        for metric in ("psnr-rgb", "ms-ssim-rgb"):
            b, r = base[name]["results"], c["results"]
            if metric not in b or metric not in r:
                continue
            finite = [sum(1 for v in x[metric] if v is not None and np.isfinite(v)) for x in (b, r)]
            if min(finite) < 2:  # e.g. MS-SSIM is undefined for images under 161 px
                continue
            d = delta(b["bpp"], b[metric], r["bpp"], r[metric])
            if d.bd_rate is None:
                failures.append(f"{name} {metric}: no BD-rate against the baseline ({d.warning})")
            elif d.bd_rate > tolerance:
                failures.append(f"{name} {metric}: BD-rate {d.bd_rate:+.2f}% against the baseline, over the tolerance of {tolerance}%")
    compared = [n for n in results["codecs"] if n.startswith("ours") and n in base]
    if not compared:
        failures.append("the baseline has none of the evaluated ours:* codecs to compare with")
    return failures


def write(results: dict, folder: Path, table: Callable[[dict], str] = markdown,
          draw: Callable[[dict, Path], None] = plot) -> dict[str, Path]:
    """results.json, table.md (`table(results)`) and rd.png (`draw(results, path)`) in `folder`
    (created), the JSON written atomically; returns their paths. The defaults are the image
    evaluation's, which also writes rd-ms-ssim.png and compressai/<codec>.json (one file per codec,
    measured and published, for CompressAI's plotting tool); the video one passes
    `video_report.video_markdown` and `video_report.video_plot`."""
    import re

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / "results.json", "table": folder / "table.md", "plot": folder / "rd.png"}
    atomic_write(paths["json"], (json.dumps(results, indent=1, default=float) + "\n").encode(), force=True)
    paths["table"].write_text(table(results))
    draw(results, paths["plot"])
    if draw is plot:  # an image evaluation
        paths["plot_ms_ssim"] = folder / "rd-ms-ssim.png"
        plot_ms_ssim(results, paths["plot_ms_ssim"])
        (folder / "compressai").mkdir(exist_ok=True)
        for name, c in {**results["codecs"], **results.get("published", {})}.items():
            safe = re.sub(r"[^A-Za-z0-9._+-]+", "_", name).strip("_") or "codec"
            paths[f"compressai:{name}"] = folder / "compressai" / f"{safe}.json"
            atomic_write(paths[f"compressai:{name}"], (json.dumps(compressai_json(name, c), indent=1, default=float) + "\n").encode(),
                         force=True)
    return paths
