"""Where a run's wall time went: the "wall_seconds" of its status.json (expo/walltime.py), as a table.

    python -m expo.profile <run_dir> [<run_dir> ...]      # finished runs
    python -m expo.profile [key=value ...]                # train one run first, then print its table

With key=value (run keys, as for `python -m expo.train`), the run defaults to a mini-scale EXPO run on
the embedded Lift task (task=lift method=expo scale=mini) written under a temporary results folder
unless results_dir= is given. The table gives each part's seconds, its share of the process's wall
time and, for the per-step parts, milliseconds per online environment step.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

from expo.walltime import PARTS

PER_STEP_PARTS = ("acting", "simulator", "updates")
PROFILE_DEFAULTS = {"task": "lift", "method": "expo", "scale": "mini"}


def breakdown_lines(run_dir: Path) -> list[str]:
    """The table of one finished run; one line saying why when it has none."""
    status_path = Path(run_dir) / "status.json"
    try:
        status = json.loads(status_path.read_text())
    except (OSError, ValueError) as e:
        return [f"{run_dir}: no readable status.json ({type(e).__name__}); is the run finished?"]
    seconds = status.get("wall_seconds")
    if not seconds:
        return [f"{run_dir}: status.json has no wall_seconds (a run finished before the suite recorded them)"]
    total = sum(seconds.values())
    steps = status.get("env_steps") or 0
    lines = [f"{run_dir}: {total:.1f} s wall in this process, {steps} online env steps"
             + (f", resumed {status['resumes']} time(s): the breakdown covers the last process only"
                if status.get("resumes") else ""),
             f"{'part':<12} {'seconds':>9} {'share':>7} {'ms/env step':>12}"]
    for part in PARTS:
        s = float(seconds.get(part, 0.0))
        per_step = f"{1000 * s / steps:12.2f}" if steps and part in PER_STEP_PARTS else f"{'':>12}"
        lines.append(f"{part:<12} {s:9.2f} {100 * s / total if total else 0:6.1f}% {per_step}")
    return lines


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help", "help"):
        print(__doc__)
        return 0
    run_dirs = [a for a in args if "=" not in a]
    overrides = [a for a in args if "=" in a]
    if run_dirs and overrides:
        print("error: give run directories or key=value run keys, not both", file=sys.stderr)
        return 2
    if not run_dirs:
        run_dirs = [_train_one(overrides)]
    for i, run_dir in enumerate(run_dirs):
        if i:
            print()
        print("\n".join(breakdown_lines(Path(run_dir))))
    return 0


def _train_one(overrides: list[str]) -> Path:
    from expo.config import ConfigError, build_config, parse_overrides
    from expo.train import train

    try:
        given = parse_overrides(overrides)
        if "results_dir" not in given:
            given["results_dir"] = tempfile.mkdtemp(prefix="expo-profile-")
        cfg = build_config({**PROFILE_DEFAULTS, **given})
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    return train(cfg)


if __name__ == "__main__":
    sys.exit(main())
