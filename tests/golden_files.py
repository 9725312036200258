"""Reading the golden files written by tools/golden/ (see tools/golden/goldens.py)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

GOLDEN_ROOT = Path(__file__).resolve().parent / "golden"
REQUIRED_META = ("repository", "commit", "functions", "source", "tolerance", "generator")


def cases(method: str) -> list[str]:
    return sorted(p.stem for p in (GOLDEN_ROOT / method).glob("*.json"))


def load(method: str, case: str) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays, provenance) of one golden case; fails with one line if it is missing or incomplete."""
    base = GOLDEN_ROOT / method / case
    if not base.with_suffix(".json").exists():
        raise FileNotFoundError(f"golden case {method}/{case} missing: run tools/golden/{method}.py")
    meta = json.loads(base.with_suffix(".json").read_text())
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise ValueError(f"golden {method}/{case}.json lacks {missing}")
    with np.load(base.with_suffix(".npz")) as f:
        arrays = {k: f[k] for k in f.files}
    return arrays, meta


def assert_close(actual, expected, meta: dict, name: str = "") -> None:
    tol = meta["tolerance"]
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=tol["rtol"],
                               atol=tol["atol"], err_msg=f"{meta['method']}/{meta['case']} {name}")
