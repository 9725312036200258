"""`python -m expo.data generate lift [--noise X] [--num-demos K] [--seed S] [--out PATH] [--force]`"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from expo.data import ensure_generated
from expo.data.registry import DATASETS, DEFAULT_FOR_EXPERT, EXPERTS


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m expo.data", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="generate an embedded dataset with its scripted expert")
    gen.add_argument("expert", choices=sorted(EXPERTS))
    gen.add_argument("--noise", type=float, help="std of the expert's action noise (default: registry)")
    gen.add_argument("--num-demos", type=int, help="successful demos to write (default: registry)")
    gen.add_argument("--seed", type=int, help="generation seed (default: registry)")
    gen.add_argument("--max-attempts", type=int, help="episodes to try at most (default: 4 * demos + 20)")
    gen.add_argument("--out", type=Path, help="output file (default: the data-root path runs load)")
    gen.add_argument("--force", action="store_true", help="regenerate even if the file exists")
    args = parser.parse_args(argv)

    entry = DATASETS[DEFAULT_FOR_EXPERT[args.expert]]
    overrides = {k: v for k, v in (("noise", args.noise), ("num_demos", args.num_demos), ("seed", args.seed))
                 if v is not None}
    entry = dataclasses.replace(entry, **overrides)
    path = args.out if args.out is not None else entry.path()
    summary = ensure_generated(entry, path=path, force=args.force, max_attempts=args.max_attempts, progress=True)
    if summary is None:
        print(f"{path} exists; pass --force to regenerate it")
        return 0
    print(
        f"wrote {summary['num_demos']} demos to {path}\n"
        f"expert success rate {summary['success_rate']:.1%} ({summary['num_demos']}/{summary['attempts']} "
        f"episodes, noise {entry.noise:g}), mean demo length {summary['mean_length']:.1f} steps, "
        f"{summary['seconds']:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
