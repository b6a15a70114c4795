"""`python -m codec.train` is gone: training runs from the command line, `codec train ...`.

Where the `codec` executable is not installed (the GPU recipes in scripts/), `python -m codec train
...` from the repository root is the same command. codec never imports the CLI (docs/ARCHITECTURE.md),
so this module only says where to go.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    args = " ".join(sys.argv[1:])
    print(f"Error: use `codec train {args}` (or `python -m codec train {args}` where codec is not installed)",
          file=sys.stderr)
    sys.exit(2)
