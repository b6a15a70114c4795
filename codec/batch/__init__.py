"""Batch coding of many files, on this machine or a Ray cluster, resumable and exactly once
(`codec batch`; docs/CLUSTER.md).

    sources.py  the inputs, streamed (folder, glob, CSV / JSON lines / Parquet manifest) -> Job
    table.py    the results table (SQLite): one row per input, the ledger of every run
    worker.py   one job: read, code (codec.pipeline.files), write atomically (storage.py), row
    engines.py  local process pool or Ray actors, bounded jobs in flight
    driver.py   the loop: skip what is done, mark pending, dispatch, retry dead workers, record
    report.py   the final report from the table
"""

from codec.batch.driver import run
from codec.batch.worker import Settings

__all__ = ["run", "Settings"]
