"""The final report of a batch run, computed from the results table (so it covers every file of the
run without holding them in memory): files done / failed / skipped, bytes in and out, mean bpp,
throughput per worker, the slowest files."""

from __future__ import annotations

import time

SLOWEST = 5


def build(table, progress, engine) -> dict:
    wall = time.perf_counter() - progress.started
    run = table.run
    (done, b_in, b_out, pixels), = table.query(
        "SELECT COUNT(*), COALESCE(SUM(bytes_in), 0), COALESCE(SUM(bytes_out), 0), "
        "COALESCE(SUM(width * height), 0) FROM files WHERE run=? AND status='done'", (run,))
    failed = table.query("SELECT key, exit_class, error FROM files WHERE run=? AND status='failed' "
                         "ORDER BY finished LIMIT 20", (run,))
    (n_failed,), = table.query("SELECT COUNT(*) FROM files WHERE run=? AND status='failed'", (run,))
    workers = table.query("SELECT worker, COUNT(*), SUM(seconds) FROM files WHERE run=? AND status='done' "
                          "GROUP BY worker ORDER BY worker", (run,))
    slowest = table.query("SELECT key, seconds FROM files WHERE run=? AND status='done' "
                          "ORDER BY seconds DESC LIMIT ?", (run, SLOWEST))
    psnr = table.query("SELECT AVG(psnr) FROM files WHERE run=? AND status='done' AND psnr IS NOT NULL", (run,))
    return {
        "schema": 1, "ok": n_failed == 0, "engine": engine.name, "workers": engine.workers, "run": run,
        "done": done, "failed": n_failed, "skipped": progress.skipped, "worker_restarts": engine.restarts,
        "bytes_in": b_in, "bytes_out": b_out, "mean_bpp": b_out * 8 / pixels if pixels else None,
        "mean_psnr": psnr[0][0], "wall_seconds": round(wall, 3),
        "files_per_second": round(done / wall, 3) if wall > 0 else None,
        "per_worker": [{"worker": w, "files": n, "busy_seconds": round(s or 0, 3),
                        "files_per_busy_second": round(n / s, 3) if s else None} for w, n, s in workers],
        "slowest": [{"input": k, "seconds": s} for k, s in slowest],
        "failures": [{"input": k, "exit_class": c, "error": e} for k, c, e in failed],
        "table": str(table.path),
    }


def lines(rep: dict, decode: bool = False) -> list[str]:
    """The report as a few lines of text."""
    what = "decoded" if decode else "encoded"
    out = [f"{rep['done']} files {what}, {rep['failed']} failed, {rep['skipped']} skipped "
           f"({rep['engine']}, {rep['workers']} workers) in {rep['wall_seconds']:.1f} s"
           + (f", {rep['files_per_second']:.2f} files/s" if rep["files_per_second"] else "")]
    if rep["done"]:
        bpp = "" if rep["mean_bpp"] is None or decode else f", mean {rep['mean_bpp']:.4f} bpp"
        psnr = f", mean PSNR {rep['mean_psnr']:.2f} dB" if rep["mean_psnr"] is not None else ""
        out.append(f"{rep['bytes_in']:,} bytes in, {rep['bytes_out']:,} out{bpp}{psnr}")
    for w in rep["per_worker"]:
        rate = f"{w['files_per_busy_second']:.2f} files per busy second" if w["files_per_busy_second"] else ""
        out.append(f"  worker {w['worker']}: {w['files']} files, busy {w['busy_seconds']:.1f} s, {rate}")
    if rep["slowest"]:
        out.append("slowest: " + ", ".join(f"{s['input']} {s['seconds']:.2f} s" for s in rep["slowest"]))
    if rep["worker_restarts"]:
        out.append(f"workers restarted {rep['worker_restarts']} times (their files were redone)")
    for f in rep["failures"]:
        out.append(f"failed: {f['input']} (exit class {f['exit_class']}): {f['error']}")
    out.append(f"results table: {rep['table']}")
    return out
