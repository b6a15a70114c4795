"""codec batch (codec.batch): the same bytes as codec encode, exactly once across kills and reruns,
failures recorded, on the local engine and on a Ray cluster of two nodes started here."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import make_smooth_image

ROOT = Path(__file__).resolve().parent.parent
ONE_BY_ONE: dict = {}  # source folder -> {image: the bytes `codec encode` wrote for it}


def codec(*args, check: bool = False, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "codec", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          check=check, **kw)


def make_images(folder: Path, n: int, size: int = 64, corrupt: bool = False) -> list[Path]:
    """n photos-like images (smooth plus noise: non-trivial symbols), a third in a subfolder."""
    rng = np.random.default_rng(1)
    paths = []
    for i in range(n):
        img = make_smooth_image(size, size, seed=i).astype(np.float64) + rng.normal(0, 6, (size, size, 3))
        path = folder / ("sub" if i % 3 == 2 else "") / f"img{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
        paths.append(path)
    if corrupt:
        (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    return paths


def rows(table: Path) -> dict[str, tuple]:
    with sqlite3.connect(table) as db:
        return {k: (s, sha, e, o) for k, s, sha, e, o in
                db.execute("SELECT key, status, sha256, exit_class, output FROM files")}


def check_outputs(src: Path, dst: Path, paths: list[Path], extra: tuple = (), compare: int = 4) -> None:
    """The first `compare` outputs are what `codec encode` writes for their images (one process
    each), every output is recorded done with its sha256, no temporary or stray file is left."""
    import hashlib

    table = rows(dst / "codec-batch.sqlite")
    ones = ONE_BY_ONE.setdefault(src, {})
    for i, p in enumerate(paths):
        rel = p.relative_to(src).with_suffix(".bin")
        out = dst / rel
        if i < compare:
            if p not in ones:
                one = dst.parent / "one.bin"
                codec("encode", p, "-q", 50, "-o", one, "--force", check=True)
                ones[p] = one.read_bytes()
            assert out.read_bytes() == ones[p], rel
        status, sha, _, _ = table[str(p)]
        assert status == "done"
        assert sha == hashlib.sha256(out.read_bytes()).hexdigest()
    files = {f.relative_to(dst) for f in dst.rglob("*") if f.is_file() and f.name != "one.bin"}
    expected = {p.relative_to(src).with_suffix(".bin") for p in paths}
    assert files - expected <= {Path("codec-batch.sqlite"), Path("codec-batch.sqlite-wal"),
                                Path("codec-batch.sqlite-shm"), *extra}, files - expected


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    src = tmp_path_factory.mktemp("batch") / "src"
    return src, make_images(src, 7, corrupt=True)


def test_batch_same_bytes_as_encode_failures_recorded_and_rerun_skips(images, engine, tmp_path):
    name, cluster = engine
    src, paths = images
    dst = tmp_path / "out"
    r = codec("batch", src, dst, "-q", 50, "--workers", 2, "--json", *engine_args(name, cluster))
    assert r.returncode == 3, r.stderr  # the corrupt input's class
    rep = json.loads(r.stdout)
    assert (rep["done"], rep["failed"], rep["skipped"]) == (7, 1, 0)
    assert rep["failures"][0]["exit_class"] == 3 and rep["failures"][0]["input"].endswith("broken.png")
    assert rep["mean_bpp"] > 0 and len(rep["per_worker"]) >= 1
    check_outputs(src, dst, paths)
    assert rows(dst / "codec-batch.sqlite")[str(src / "broken.png")][:3:2] == ("failed", 3)
    if name == "ray":
        return  # the rest is the driver's, the same for both engines
    again = json.loads(codec("batch", src, dst, "-q", 50, "--json").stdout)
    assert (again["done"], again["failed"], again["skipped"]) == (0, 0, 8)
    retry = json.loads(codec("batch", src, dst, "-q", 50, "--json", "--retry-failed").stdout)
    assert (retry["done"], retry["failed"], retry["skipped"]) == (0, 1, 7)
    other = codec("batch", src, dst, "-q", 70)  # one table never mixes two rates
    assert other.returncode == 2 and "other settings" in other.stderr


def test_manifest_streams_and_names_outputs(images, tmp_path):
    src, paths = images
    manifest = tmp_path / "list.jsonl"
    manifest.write_text("".join(json.dumps({"path": str(p), "output": f"m/{i}.bin"}) + "\n"
                                for i, p in enumerate(paths[:3])))
    dst = tmp_path / "out"
    rep = json.loads(codec("batch", manifest, dst, "-q", 50, "--workers", 1, "--json", check=True).stdout)
    assert rep["done"] == 3
    one = tmp_path / "one.bin"
    codec("encode", paths[1], "-q", 50, "-o", one, check=True)
    assert (dst / "m/1.bin").read_bytes() == one.read_bytes()
    csv = tmp_path / "list.csv"
    csv.write_text("path\n" + "\n".join(str(p) for p in paths[:2]) + "\n")
    plan = json.loads(codec("batch", csv, tmp_path / "o2", "-q", 50, "--dry-run", "--json", check=True).stdout)
    assert plan["to_do"] == 2 and not (tmp_path / "o2").exists()  # a dry run writes nothing


def test_parquet_manifest(images, tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    src, paths = images
    manifest = tmp_path / "list.parquet"
    pq.write_table(pa.table({"path": [str(p) for p in paths[:2]], "size": [1, 2]}), manifest)
    rep = json.loads(codec("batch", manifest, tmp_path / "out", "-q", 50, "--workers", 1, "--json", check=True).stdout)
    assert rep["done"] == 2
    assert (tmp_path / "out" / str(paths[0]).lstrip("/")).with_suffix(".bin").is_file()  # absolute: its path mirrored


def test_existing_output_not_from_the_batch_is_kept_without_force(images, tmp_path):
    src, paths = images
    dst = tmp_path / "out"
    (dst / "sub").mkdir(parents=True)
    mine = dst / paths[2].relative_to(src).with_suffix(".bin")
    mine.write_bytes(b"user's file")
    rep = json.loads(codec("batch", src, dst, "-q", 50, "--json").stdout)
    assert rep["failed"] == 2 and mine.read_bytes() == b"user's file"
    assert any("not written by this batch" in f["error"] for f in rep["failures"])


def test_two_inputs_named_to_one_output_the_second_fails(tmp_path):
    src = tmp_path / "src"
    [png] = make_images(src, 1)
    Image.open(png).save(src / "img000.jpg", quality=95)  # img000.png and img000.jpg -> img000.bin
    r = codec("batch", src, tmp_path / "out", "-q", 50, "--workers", 1, "--json")
    rep = json.loads(r.stdout)
    assert r.returncode == 2 and (rep["done"], rep["failed"]) == (1, 1)
    assert "already" in rep["failures"][0]["error"] and rep["failures"][0]["input"].endswith("img000.png")
    table = rows(tmp_path / "out" / "codec-batch.sqlite")
    assert table[str(src / "img000.jpg")][3] == str(tmp_path / "out" / "img000.bin")


def test_batch_decode_gives_the_images_codec_decode_gives(images, tmp_path):
    src, paths = images
    bins = tmp_path / "bins"
    bins.mkdir()
    for p in paths[:2]:
        codec("encode", p, "-q", 50, "-o", bins / (p.stem + ".bin"), check=True)
    rep = json.loads(codec("batch", bins, tmp_path / "png", "--decode", "--json", check=True).stdout)
    assert rep["done"] == 2
    codec("decode", bins / (paths[0].stem + ".bin"), "-o", tmp_path / "one.png", check=True)
    assert (tmp_path / "png" / (paths[0].stem + ".png")).read_bytes() == (tmp_path / "one.png").read_bytes()


# ----------------------------------------------------------------------------------------------
# Kills: a worker (SIGKILL) mid-run loses nothing; a killed driver's rerun completes only the rest
# ----------------------------------------------------------------------------------------------

KILL_IMAGES = 16


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    src = tmp_path_factory.mktemp("kill") / "src"
    return src, make_images(src, KILL_IMAGES, size=384)


def done_count(table: Path) -> int:
    try:
        with sqlite3.connect(f"file:{table}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM files WHERE status='done'").fetchone()[0]
    except sqlite3.Error:
        return 0


def wait_for(cond, timeout: float = 240.0) -> None:
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, "timed out"
        time.sleep(0.05)


def descendants(pid: int) -> list[int]:
    out = []
    for child in Path(f"/proc/{pid}/task").glob("*/children"):
        for c in child.read_text().split():
            out += [int(c), *descendants(int(c))]
    return out


def worker_pids(driver: int, engine: str) -> list[int]:
    """The processes doing the work: the local pool's children of the driver, or Ray's actors."""
    if engine == "local":
        pids = descendants(driver)
        return [p for p in pids if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "cmdline").read_bytes().startswith(b"ray::BatchActor"):
                    found.append(int(proc.name))
            except OSError:
                pass
    return found


def engine_args(engine: str, cluster) -> list:
    return ["--engine", "ray", "--address", cluster] if engine == "ray" else ["--engine", "local"]


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A Ray cluster of a head and a second node on this machine, one CPU each, stopped after."""
    pytest.importorskip("ray")
    # token authentication off for this loopback-only test cluster (a real cluster keeps Ray's
    # default, docs/CLUSTER.md); the drivers the tests start inherit it
    saved = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    ray_bin = Path(sys.executable).parent / "ray"
    port = 6390 + os.getpid() % 500
    common = ["--num-cpus", "1", "--object-store-memory", str(80 << 20), "--disable-usage-stats", "--block"]
    head = subprocess.Popen([ray_bin, "start", "--head", "--port", str(port), "--include-dashboard", "false",
                             *common], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(4)
    node = subprocess.Popen([ray_bin, "start", "--address", f"127.0.0.1:{port}", *common], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    address = f"127.0.0.1:{port}"
    probe = [sys.executable, "-c", "import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR'); "
             "print(int(ray.cluster_resources().get('CPU', 0)))", address]
    t0 = time.monotonic()
    while True:
        r = subprocess.run(probe, capture_output=True, text=True)
        if r.stdout.strip() == "2":
            break
        if time.monotonic() - t0 > 120:
            stop_cluster(node, head)
            pytest.fail(f"the Ray cluster did not come up: {r.stderr[-500:]}")
        time.sleep(2)
    try:
        yield address
    finally:
        stop_cluster(node, head)
        if saved is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = saved


def stop_cluster(*procs) -> None:
    """SIGTERM to each `ray start --block` (which stops its node's processes), SIGKILL after 30 s."""
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(params=["local", "ray"])
def engine(request):
    if request.param == "ray":
        return "ray", request.getfixturevalue("ray_cluster")
    return "local", None


def test_killing_a_worker_mid_run_loses_nothing(many, engine, tmp_path):
    name, cluster = engine
    src, paths = many
    dst = tmp_path / "out"
    args = [sys.executable, "-m", "codec", "batch", src, dst, "-q", 50, "--workers", 2, "--json",
            *engine_args(name, cluster)]
    proc = subprocess.Popen(list(map(str, args)), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    wait_for(lambda: done_count(dst / "codec-batch.sqlite") >= 2)
    victims = worker_pids(proc.pid, name)
    assert victims, "no worker process found"
    os.kill(victims[0], signal.SIGKILL)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0 and out.startswith("{"), (out[:1000], err)
    rep = json.loads(out)
    assert rep["done"] + rep["skipped"] == KILL_IMAGES and rep["failed"] == 0
    assert rep["worker_restarts"] >= 1  # the kill landed while work was in flight
    check_outputs(src, dst, paths)


def test_a_killed_driver_reruns_only_the_rest(many, engine, tmp_path):
    name, cluster = engine
    src, paths = many
    dst = tmp_path / "out"
    args = [sys.executable, "-m", "codec", "batch", src, dst, "-q", 50, "--workers", 2, "--json",
            *engine_args(name, cluster)]
    args = list(map(str, args))
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    wait_for(lambda: done_count(dst / "codec-batch.sqlite") >= 3)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its local workers (Ray's actors outlive it)
    proc.wait()
    finished = done_count(dst / "codec-batch.sqlite")
    assert 3 <= finished < KILL_IMAGES
    rep = json.loads(subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=True).stdout)
    assert rep["skipped"] == finished and rep["done"] == KILL_IMAGES - finished and rep["failed"] == 0
    check_outputs(src, dst, paths)


def test_object_store_destination_writes_whole_and_keeps_what_it_did_not_write():
    """The remote branch of codec.batch.storage (fsspec), on fsspec's in-memory file system: one PUT a
    file, an existing object kept unless it holds the same bytes or the job may overwrite it."""
    pytest.importorskip("fsspec")
    from codec.batch.storage import Storage
    from codec.errors import InputError

    store = Storage("memory://bucket/coded")
    assert store.remote and store.url("a/b.bin") == "memory://bucket/coded/a/b.bin"
    store.write("a/b.bin", b"first", overwrite=False)
    assert store.exists("a/b.bin") and store.fs.cat_file(store.base + "/a/b.bin") == b"first"
    store.write("a/b.bin", b"first", overwrite=False)  # a retried job writing the same bytes
    with pytest.raises(InputError, match="not written by this batch"):
        store.write("a/b.bin", b"other", overwrite=False)
    store.write("a/b.bin", b"other", overwrite=True)
    assert store.fs.cat_file(store.base + "/a/b.bin") == b"other"
