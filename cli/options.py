"""Options that several commands share, defined once so that their bounds and help agree."""

from __future__ import annotations

DEFAULT_MEMORY = 8
"""Slots of a video's latent memory when --memory is not given: the smallest size that keeps the
measured gains on the returning-scene clips (a pan away and back needs 8; 2 and 4 lose them; 0.1%
on ordinary clips; results/video-memory/sizes.md, docs/RESEARCH.md)."""

MAX_THREADS = 1024
"""Upper bound of --threads: far above any machine's cores, far below where the thread pools fail
(OpenMP aborts at about 20,000 threads, a segmentation fault at 100,000, torch's int at 2^31)."""

THREADS_HELP = f"CPU threads for the transforms, 1..{MAX_THREADS} (default: torch's, one a core)."
