"""Published RD curves (CompressAI's JSON shape) from ../shared/anchors/kodak: reference only,
never presented as measured here."""

from __future__ import annotations

import json
from pathlib import Path

from codec.errors import UsageError
from codec.settings import data_dir


def anchors_dir() -> Path:
    return data_dir().parent / "anchors" / "kodak"


def available(folder: Path | None = None) -> list[str]:
    folder = folder or anchors_dir()
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def load(names: list[str], folder: Path | None = None) -> dict[str, dict]:
    """name -> {"label", "source", "results": {"bpp", "psnr-rgb", "ms-ssim-rgb"?}, "published": True}."""
    folder = folder or anchors_dir()
    out = {}
    for name in names:
        path = folder / f"{name}.json"
        if not path.exists():
            raise UsageError(f"no published curve {name!r} in {folder}; available: {', '.join(available(folder)) or 'none'}")
        d = json.loads(path.read_text())
        res = d.get("results", {})
        out[f"published:{name}"] = {
            "label": f"{d.get('name', name)} (published)", "source": d.get("source", str(path)), "published": True,
            "results": {k: res[k] for k in ("bpp", "psnr-rgb", "ms-ssim-rgb") if k in res},
        }
    return out
