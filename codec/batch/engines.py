"""The engines that run batch jobs: `local` (a pool of worker processes on this machine, the default)
and `ray` (actors on a Ray cluster). Both take jobs one at a time (`submit`), hold at most `slots`
in flight (two per worker: each worker has its next job queued, and no more, so memory stays
bounded however long the source), and give back finished ones (`wait`) as (job, row). A worker
that dies under a job (killed, or out of memory) loses nothing: the local engine gives row None
and the driver sends the job again; on Ray the actor restarts (loading its model again) and Ray
re-runs the calls it held, MAX_ATTEMPTS in all, after which the row is a failure.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from codec.batch.worker import Settings, Worker

PER_WORKER = 2
"""Jobs in flight per worker."""
MAX_ATTEMPTS = 3
"""Times a job is given to a worker when workers die under it."""

_WORKER: Worker | None = None


def _process(settings: Settings, job: dict) -> dict:
    """One job in a local worker process (the model loads on the process's first job)."""
    global _WORKER
    if _WORKER is None:
        _WORKER = Worker(settings)
    return _WORKER.process(job)


class LocalEngine:
    name = "local"

    def __init__(self, settings: Settings, workers: int):
        self.settings, self.workers = settings, workers
        self.slots = PER_WORKER * workers
        self.futures: dict = {}
        self.restarts = 0
        self.pool = self._pool()

    def _pool(self) -> ProcessPoolExecutor:
        # spawn, not fork: a fork of a process whose torch thread pool has run can hang in the child
        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))

    @property
    def in_flight(self) -> int:
        return len(self.futures)

    def submit(self, job: dict) -> None:
        self.futures[self.pool.submit(_process, self.settings, job)] = job

    def wait(self) -> list[tuple[dict, dict | None]]:
        done, _ = wait(list(self.futures), return_when=FIRST_COMPLETED)
        out, broken = [], False
        for fut in done:
            job = self.futures.pop(fut)
            try:
                out.append((job, fut.result()))
            except BrokenProcessPool:  # a worker died: the pool fails every job it held
                out.append((job, None))
                broken = True
        if broken:
            out += [(job, None) for job in self.futures.values()]
            self.futures.clear()
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = self._pool()
            self.restarts += 1
        return out

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class BatchActor:
    """A Ray actor: one Worker (the model loaded once) serving jobs; its rows say whether Ray
    restarted it after a death."""

    def __init__(self, settings: Settings):
        import ray

        self.worker = Worker(settings)
        self.restarted = ray.get_runtime_context().was_current_actor_reconstructed

    def process(self, job: dict) -> dict:
        return {**self.worker.process(job), "restarted": self.restarted}


class RayEngine:
    name = "ray"

    def __init__(self, settings: Settings, workers: int | None, address: str | None):
        try:
            import ray
        except ImportError:
            from codec.errors import UsageError

            raise UsageError("--engine ray needs Ray: pip install 'codec[cluster]'") from None
        self.ray = ray
        # Ray prints its cluster's messages (a worker died, ...) on the driver's stdout, which is the
        # --json report's: they go to stderr while the engine runs
        self._stdout, sys.stdout = sys.stdout, sys.stderr
        try:
            if not ray.is_initialized():
                ray.init(address=address or "local", num_cpus=None if address else (workers or os.cpu_count()),
                         include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        except Exception as exc:
            sys.stdout = self._stdout
            from codec.errors import UsageError

            raise UsageError(f"cannot reach the Ray cluster{' at ' + address if address else ''}: "
                             f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.workers = min(workers or cpus, cpus)
        self.max_attempts = MAX_ATTEMPTS
        actor = ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=MAX_ATTEMPTS - 1)(BatchActor)
        self.actors = [actor.remote(settings) for _ in range(self.workers)]
        self.load = [0] * self.workers
        self.refs: dict = {}
        self.slots = PER_WORKER * self.workers
        self.restarted: set[str] = set()

    @property
    def restarts(self) -> int:
        return len(self.restarted)

    @property
    def in_flight(self) -> int:
        return len(self.refs)

    def submit(self, job: dict) -> None:
        i = min(range(self.workers), key=self.load.__getitem__)
        self.refs[self.actors[i].process.remote(job)] = (job, i)
        self.load[i] += 1

    def wait(self) -> list[tuple[dict, dict | None]]:
        ready, _ = self.ray.wait(list(self.refs), num_returns=1)
        out = []
        for ref in ready:
            job, i = self.refs.pop(ref)
            self.load[i] -= 1
            try:
                row = self.ray.get(ref)
            except self.ray.exceptions.RayError as exc:  # its actor died every time Ray ran it
                row = {"key": job["key"], "status": "failed", "exit_class": 1, "attempts": self.max_attempts,
                       "error": f"the worker died under this file {self.max_attempts} times ({type(exc).__name__})"}
            if row.pop("restarted", False):
                self.restarted.add(row["worker"])
            out.append((job, row))
        return out

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.ray.shutdown()
        sys.stdout = self._stdout


def make_engine(name: str, settings: Settings, workers: int | None, address: str | None):
    if name == "ray":
        return RayEngine(settings, workers, address)
    return LocalEngine(settings, workers or os.cpu_count() or 1)
