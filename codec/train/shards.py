"""Model weights as safetensors shards of bounded size: a run's weights brought back from a machine
whose transfers are size-capped (`--shard-dir`), read back by `codec train export --shards`."""

from __future__ import annotations

from pathlib import Path


def save_shards(state: dict, folder: Path, prefix: str, max_bytes: int = 12 << 20) -> list[Path]:
    """Writes <folder>/<prefix>_<i>.safetensors (float32, at most max_bytes each, atomically)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    shards, current, size = [], {}, 0
    for name, t in state.items():
        nbytes = t.numel() * t.element_size()
        if current and size + nbytes > max_bytes:
            shards.append(current)
            current, size = {}, 0
        current[name] = t.detach().float().cpu().contiguous()
        size += nbytes
    shards.append(current)
    paths = []
    for i, shard in enumerate(shards):
        path = folder / f"{prefix}_{i}.safetensors"
        save_file(shard, str(path.with_suffix(".tmp")))
        path.with_suffix(".tmp").replace(path)
        paths.append(path)
    return paths


def load_shards(folder: Path, prefix: str) -> dict:
    """The state dict that `save_shards` wrote under `prefix`."""
    from safetensors.torch import load_file

    state = {}
    for path in sorted(Path(folder).glob(f"{prefix}_*.safetensors")):
        state.update(load_file(str(path)))
    return state
