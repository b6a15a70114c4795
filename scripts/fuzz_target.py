#!/usr/bin/env python3
"""Coverage-guided fuzz target (atheris, libFuzzer) over the container parser and the whole decode path.

    python scripts/fuzz_target.py [libFuzzer flags] CORPUS_DIR      # a campaign; see scripts/fuzz.sh
    python scripts/fuzz_target.py CRASH_FILE                         # replays one input

Each input is decoded by codec.testing.fuzz_target.fuzz_one, the way `codec info` and `codec decode`
would under its FUZZ_LIMITS: pixels of the header's size or a CodecError of exit code 3, 4 or 5; any
other exception propagates, so libFuzzer records a crash; a hang or a memory blow-up is caught by its
`-timeout` and `-rss_limit_mb`.

Mutations (`custom_mutator`, codec.testing.mutations.mutate_input): libFuzzer's own byte mutations, or
a chunk-level one (duplicate, move or drop a chunk, a huge length field); then, half of the time, every
CRC is recomputed so that the mutation gets past the CRC checks into the payload parsers, the entropy
decoders and the synthesis; otherwise nearly every mutation dies there.

Needs atheris (`pip install -e '.[fuzz]'`), imported only in this file. The harness imports the decoder's
modules lazily, so that `main` loads them under instrumentation for coverage; tests/test_fuzz.py runs the
same harness without atheris in the normal suite.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# the harness only: no module of the decode path before `main` instruments them
from codec.testing.fuzz_target import fuzz_one, load_models  # noqa: E402
from codec.testing.mutations import mutate_input  # noqa: E402


def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
    """libFuzzer's mutation or a chunk-level one, then, for half of the seeds, the CRCs repaired."""
    import atheris

    return mutate_input(data, max_size, seed, atheris.Mutate)


def main() -> None:
    import atheris

    with atheris.instrument_imports(include=["codec"]):
        load_models()
    atheris.Setup(sys.argv, fuzz_one, custom_mutator=custom_mutator)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
