"""Dataset commands (data root: $EXPO_DATA_ROOT, else ~/.cache/expo-suite):

  python -m expo.data fetch <task|dataset|all> [--force] [--no-progress] [--retries N]
  python -m expo.data verify [task|dataset|all] [--no-hash]
  python -m expo.data verify <task|dataset|all> --dynamics [--transitions K] [--seed S] [--tolerance X]
  python -m expo.data generate lift|stack|threading|pendulum [--noise X] [--num-demos K] [--seed S] [--out PATH] [--force]
  python -m expo.data experts lift|stack|threading [--episodes N] [--seed S] [--noise X ...] [--out-dir DIR]

The logic lives in expo/data/fetch.py, expo/data/verify.py, expo/data/__init__.py and
expo/data/experts/measure.py (`experts`: each scripted expert's success rate, noise-free and at its
data's noise, written to <out-dir>/<task>.csv, default results/experts/); this file only
parses arguments. Exit status 0 means everything asked for is present and ok.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from expo.data import ensure_generated
from expo.data.registry import DATASETS, DEFAULT_FOR_EXPERT, EXPERT_VERSIONS


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m expo.data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    fetch = sub.add_parser("fetch", help="download datasets from their official locations (resumable)")
    fetch.add_argument("name", help="a task (its dataset), a dataset key, or 'all' (the paper tasks' downloads)")
    fetch.add_argument("--force", action="store_true", help="download again even if the file is present")
    fetch.add_argument("--no-progress", action="store_true", help="no progress bars")
    fetch.add_argument("--retries", type=int, default=2, help="resume an interrupted download this often (default 2)")

    verify = sub.add_parser("verify", help="check the datasets on disk against the registry and the protocol")
    verify.add_argument("name", nargs="?", default=None, help="a task or dataset key (default: every task's dataset)")
    verify.add_argument("--no-hash", action="store_true", help="skip the sha256 checks (faster)")
    verify.add_argument("--dynamics", action="store_true",
                        help="set the suite's env to stored states, apply the stored actions and compare the next "
                             "observations with the stored ones (expo/data/dynamics.py); JSON under <data root>/dynamics/")
    verify.add_argument("--transitions", type=int, default=None, help="transitions drawn for --dynamics (default 200)")
    verify.add_argument("--seed", type=int, default=None, help="seed of the --dynamics draw (default 0)")
    verify.add_argument("--tolerance", type=float, default=None,
                        help="absolute error counted as agreement by --dynamics (default 1e-4)")

    gen = sub.add_parser("generate", help="generate an embedded dataset with its scripted expert")
    gen.add_argument("expert", choices=sorted(EXPERT_VERSIONS))
    gen.add_argument("--noise", type=float, help="std of the expert's action noise (default: registry)")
    gen.add_argument("--num-demos", type=int, help="successful demos to write (default: registry)")
    gen.add_argument("--seed", type=int, help="generation seed (default: registry)")
    gen.add_argument("--max-attempts", type=int, help="episodes to try at most (default: 4 * demos + 20)")
    gen.add_argument("--out", type=Path, help="output file (default: the data-root path runs load)")
    gen.add_argument("--force", action="store_true", help="regenerate even if the file exists")

    experts = sub.add_parser("experts", help="measure a scripted expert's success rate (noise-free and at its "
                                             "data's noise) and write it to <out-dir>/<task>.csv")
    # The canary's controller has no success to count (its data's returns: experiments/grids/canary.py).
    experts.add_argument("expert", choices=sorted(set(EXPERT_VERSIONS) - {"pendulum"}))
    experts.add_argument("--episodes", type=int, default=50, help="seeded episodes per noise level (default 50)")
    experts.add_argument("--seed", type=int, default=0, help="seed of the env and episodes (default 0)")
    experts.add_argument("--noise", type=float, action="append", default=[],
                         help="an extra noise level to measure (repeatable)")
    experts.add_argument("--out-dir", type=Path, default=Path("results/experts"), help="default results/experts")
    args = parser.parse_args(argv)

    if args.command == "experts":
        return _experts(args)
    if args.command == "fetch":
        return _fetch(args)
    if args.command == "verify":
        return _verify(args)
    return _generate(args)


def _fetch(args) -> int:
    from expo.data.fetch import fetch

    try:
        failed = fetch(args.name, force=args.force, progress=not args.no_progress, retries=args.retries)
    except KeyError as e:
        print(f"error: {e.args[0]}", file=sys.stderr)
        return 2
    if failed:
        print(f"not fetched: {', '.join(failed)} (see the messages above)")
        return 1
    print("done; check with `python -m expo.data verify" + ("" if args.name == "all" else f" {args.name}") + "`")
    return 0


def _verify(args) -> int:
    if args.dynamics:
        return _dynamics(args)
    if (args.transitions, args.seed, args.tolerance) != (None, None, None):
        print("error: --transitions, --seed and --tolerance go with --dynamics", file=sys.stderr)
        return 2
    from expo.data.verify import format_table, verify

    try:
        rows = verify(args.name, check_hash=not args.no_hash)
    except KeyError as e:
        print(f"error: {e.args[0]}", file=sys.stderr)
        return 2
    print(format_table(rows))
    return 0 if all(r.ok for r in rows) else 1


def _dynamics(args) -> int:
    """One report per dataset `name` stands for; a dataset that cannot be checked is one line on stderr."""
    from expo.data.dynamics import (DEFAULT_SEED, DEFAULT_TOLERANCE, DEFAULT_TRANSITIONS, check_dynamics,
                                    format_report, write_report_json)
    from expo.data.errors import DatasetError
    from expo.data.fetch import datasets_for

    k = DEFAULT_TRANSITIONS if args.transitions is None else args.transitions
    if k < 1:
        print(f"error: --transitions must be >= 1, got {k}", file=sys.stderr)
        return 2
    try:
        keys = list(datasets_for(args.name, everything="tasks"))
    except KeyError as e:
        print(f"error: {e.args[0]}", file=sys.stderr)
        return 2
    failed = 0
    for key in keys:
        try:
            report = check_dynamics(key, k, DEFAULT_SEED if args.seed is None else args.seed,
                                    DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance)
        except (DatasetError, ImportError, KeyError) as e:
            msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
            print(f"{key}: {' '.join(str(msg).split())}", file=sys.stderr)
            failed += 1
            continue
        path = write_report_json(report)
        print(format_report(report) + f"\n({report.seconds:.1f} s; written to {path})\n")
    return 1 if failed else 0


def _experts(args) -> int:
    from expo.data.experts.measure import measure_expert

    if args.episodes < 1:
        print(f"error: --episodes must be >= 1, got {args.episodes}", file=sys.stderr)
        return 2
    data_noise = DATASETS[DEFAULT_FOR_EXPERT[args.expert]].noise
    path = measure_expert(args.expert, data_noise, args.episodes, args.seed, args.out_dir, args.noise)
    print(f"wrote {path}")
    return 0


def _generate(args) -> int:
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
