"""The work of one batch job, the same in a local worker process and in a Ray actor: read the input,
code it through codec.pipeline.files (the bytes `codec encode` / `codec decode` would write), write
the output atomically, and return the row for the results table. A worker loads its model once
and serves many jobs; a job's failure is a row (its error and exit class), never an exception.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from dataclasses import asdict, dataclass, field

from codec.errors import CodecError, is_out_of_memory

MAX_INPUT_BYTES = 1 << 30


@dataclass(frozen=True)
class Settings:
    """What every job of a batch shares (sent to each worker; recorded in the results table)."""

    destination: str
    decode: bool = False
    model: str | None = None
    quality: float | None = None
    step: float | None = None
    effort: int = 0
    target_bpp: float | None = None
    max_bytes: int | None = None
    metadata: tuple[str, ...] = ("exif", "icc", "xmp")
    max_pixels: int = 268_435_456
    image_format: str = "PNG"
    psnr: bool = False
    threads: int = 1
    device: str = "cpu"
    limits: dict = field(default_factory=dict)  # codec.container.Limits fields for decoding

    def identity(self) -> dict:
        """The settings that decide the outputs' bytes (a table refuses a rerun that changes them)."""
        d = asdict(self)
        for k in ("psnr", "threads", "device", "destination"):
            d.pop(k)
        return d

    def rate(self):
        from codec.pipeline.files import ImageRate

        return ImageRate(quality=self.quality, step=self.step, effort=self.effort, target_bpp=self.target_bpp,
                         max_bytes=self.max_bytes)


class Worker:
    """Serves jobs (dicts: key, src, out, overwrite) for one process."""

    def __init__(self, settings: Settings):
        import torch

        from codec.batch.storage import Storage

        torch.set_num_threads(max(1, settings.threads))
        self.settings = settings
        self.storage = Storage(settings.destination)
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self._models: dict = {}
        self.encoder = None if settings.decode else self._load(settings.rate().model_for(settings.model))

    def _load(self, model_id: str | None):
        if model_id not in self._models:
            from codec.pipeline import load_model

            self._models[model_id] = load_model(model_id)
        return self._models[model_id]

    def process(self, job: dict) -> dict:
        t0 = time.perf_counter()
        row = {"key": job["key"], "output": self.storage.url(job["out"]), "worker": self.name,
               "attempts": job.get("attempt", 0) + 1}
        try:
            row.update(self._decode(job) if self.settings.decode else self._encode(job))
            row["status"] = "done"
        except CodecError as exc:
            row.update(status="failed", error=str(exc), exit_class=exc.exit_code)
        except Exception as exc:  # one file's failure never stops the batch
            oom = is_out_of_memory(exc)
            row.update(status="failed", exit_class=4 if oom else 1,
                       error=("out of memory: " if oom else f"internal error: {type(exc).__name__}: ") + str(exc)[:500])
        row["seconds"] = round(time.perf_counter() - t0, 4)
        return row

    def _encode(self, job: dict) -> dict:
        from codec.batch.storage import read_input
        from codec.pipeline.files import encode_file

        s = self.settings
        data = read_input(job["src"], MAX_INPUT_BYTES)
        enc = encode_file(self.encoder, data, s.rate(), max_pixels=s.max_pixels, keep=frozenset(s.metadata),
                          device=s.device, name=job["src"])
        self.storage.write(job["out"], enc.data, overwrite=job.get("overwrite", False))
        row = {"bytes_in": len(data), "bytes_out": len(enc.data), "width": enc.width, "height": enc.height,
               "bpp": len(enc.data) * 8 / (enc.width * enc.height), "sha256": hashlib.sha256(enc.data).hexdigest()}
        if s.psnr:
            from codec.metrics import psnr
            from codec.pipeline.files import decode_file

            dec = decode_file(enc.data, self._load, self._limits())
            row["psnr"] = float(psnr(enc.pixels, dec.pixels))
        return row

    def _decode(self, job: dict) -> dict:
        from codec.batch.storage import read_input
        from codec.io import encode_image_bytes
        from codec.pipeline.files import decode_file

        s = self.settings
        limits = self._limits()
        data = read_input(job["src"], limits.max_chunk_bytes)
        dec = decode_file(data, self._load, limits, keep=frozenset(s.metadata), image_format=s.image_format)
        image = encode_image_bytes(dec.pixels, s.image_format, dec.metadata)
        self.storage.write(job["out"], image, overwrite=job.get("overwrite", False))
        h, w = dec.pixels.shape[:2]
        return {"bytes_in": len(data), "bytes_out": len(image), "width": w, "height": h,
                "bpp": len(data) * 8 / (h * w), "sha256": hashlib.sha256(image).hexdigest()}

    def _limits(self):
        from codec.container import Limits

        return Limits(**self.settings.limits)
