"""Harnesses shared by tests/ and scripts/: they check the codec, they are not part of it.

    mutations.py     chunk-level mutations and CRC repair of container files (the fuzzer's mutator)
    fuzz_target.py   decode any bytes as `codec info` and `codec decode` would: pixels or a clean refusal
    digests.py       sha256 of decoded frames and latents, to compare decodes bit for bit
    golden_video.py  the recipe of the golden video bitstreams (source, frames, GOP, quality, encoder)
    determinism.py   decode in a fresh process under chosen threads and CPU kernels; hash what it computed
    kills.py         SIGKILL `codec encode` / `codec decode` processes and judge what is left at the output

Nothing here is imported by the codec itself, and importing this package imports none of its modules:
scripts/fuzz_target.py imports the harness before atheris instruments the decode path, so the harness
imports the decoder's modules lazily. atheris itself is never imported here (an optional extra).
"""
