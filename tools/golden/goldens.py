"""Writing golden files: outputs of the authors' own functions on fixed small inputs.

Each generator (tools/golden/<method>.py) is run by hand against a user's checkout of the
official repository at the pinned commit, e.g.

    python tools/golden/expo.py --repo ~/src/EXPO

It imports the authors' functions from that checkout (nothing of theirs is copied here), runs them on
fixed inputs, parameters and noise, and writes with `write_case`:

    tests/golden/<method>/<case>.npz    inputs and outputs (small float arrays)
    tests/golden/<method>/<case>.json   provenance: repository, commit, functions (file:line),
                                        tolerance, how the values were produced

Where an official repository cannot run on this machine (dependency conflicts, GPU only), the
generator computes the case from the authors' published formulas in standalone code and says so in
"source". The tests (tests/test_golden_<method>.py) run the suite's functions on the same inputs
and compare within the stated tolerance.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping

import numpy as np

GOLDEN_ROOT = Path(__file__).resolve().parents[2] / "tests" / "golden"

# How a case was produced: one of these prefixes starts "source".
FROM_CHECKOUT = "imported from the official checkout"
FROM_FORMULAS = "published formulas in a standalone script"


def checkout_commit(repo: str | os.PathLike) -> str:
    """The commit of a git checkout (the generator refuses a checkout at another commit)."""
    return subprocess.check_output(["git", "-C", str(repo), "rev-parse", "HEAD"], text=True).strip()


def require_commit(repo: str | os.PathLike, pinned: str) -> str:
    """Exit with one line unless `repo` is checked out at the pinned commit (a prefix suffices)."""
    commit = checkout_commit(repo)
    if not commit.startswith(pinned):
        sys.exit(f"{repo} is at {commit[:12]}, the golden files are pinned to {pinned}: "
                 f"run `git -C {repo} checkout {pinned}` first")
    return commit


def write_case(method: str, case: str, arrays: Mapping[str, Any], *, repository: str, commit: str,
               functions: list[str], source: str, rtol: float, atol: float,
               notes: str = "") -> Path:
    """Write tests/golden/<method>/<case>.npz and its provenance JSON; returns the npz path."""
    if not (source.startswith(FROM_CHECKOUT) or source.startswith(FROM_FORMULAS)):
        raise ValueError(f"source must start with {FROM_CHECKOUT!r} or {FROM_FORMULAS!r}")
    out = GOLDEN_ROOT / method
    out.mkdir(parents=True, exist_ok=True)
    data = {k: np.asarray(v) for k, v in arrays.items()}
    np.savez(out / f"{case}.npz", **data)
    meta = {"method": method, "case": case, "repository": repository, "commit": commit,
            "functions": functions, "source": source, "tolerance": {"rtol": rtol, "atol": atol},
            "generator": f"tools/golden/{method}.py", "arrays": sorted(data)}
    if notes:
        meta["notes"] = notes
    (out / f"{case}.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out / f"{case}.npz"


def flatten(tree, prefix: str, sep: str = "/") -> dict[str, np.ndarray]:
    """A nested parameter dict (or FrozenDict) as {'<prefix><sep>a<sep>b<sep>leaf': array}, the npz
    keys that tests/golden_files.unflatten turns back into a tree."""
    out: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        name = f"{prefix}{sep}{key}"
        if hasattr(value, "items"):
            out.update(flatten(value, name, sep))
        else:
            out[name] = np.asarray(value)
    return out
