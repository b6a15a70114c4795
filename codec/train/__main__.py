"""python -m codec.train --data DIR --run-dir DIR [--minutes M] ...: train the hyperprior (resumable)."""

from __future__ import annotations

import argparse
import dataclasses
import json

from codec.train.loop import TrainConfig, train


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m codec.train", description=__doc__)
    for f in dataclasses.fields(TrainConfig):
        if f.name == "extra":
            continue
        name = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            p.add_argument(name, action="store_true")
        elif f.default is dataclasses.MISSING:
            p.add_argument(name, required=True)
        else:
            p.add_argument(name, type=type(f.default), default=f.default)
    p.add_argument("--no-resume", action="store_true")
    args = vars(p.parse_args(argv))
    fresh = args.pop("no_resume")
    cfg = TrainConfig(**args)
    print(json.dumps(dataclasses.asdict(cfg)), flush=True)
    train(cfg, resume=not fresh, log=lambda s: print(s, flush=True))


if __name__ == "__main__":
    main()
