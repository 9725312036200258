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


def unflatten(arrays: dict, prefix: str, sep: str = "/") -> dict:
    """The nested parameter tree saved as '<prefix><sep>a<sep>b<sep>leaf' arrays."""
    import jax.numpy as jnp

    tree: dict = {}
    for name, value in arrays.items():
        if not name.startswith(prefix + sep):
            continue
        *path, leaf = name[len(prefix) + len(sep):].split(sep)
        node = tree
        for p in path:
            node = node.setdefault(p, {})
        node[leaf] = jnp.asarray(value)
    return tree


def assert_trees_close(actual, expected, meta: dict, name: str = "") -> None:
    """Same tree structure, and every leaf within the case's tolerance."""
    import jax

    assert jax.tree_util.tree_structure(actual) == jax.tree_util.tree_structure(expected), name
    for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(actual),
                            jax.tree_util.tree_leaves(expected)):
        assert_close(x, y, meta, f"{name}{jax.tree_util.keystr(path)}")


def assert_provenance(method: str, pinned: str, repository: str, expected_cases) -> None:
    """Every case of `method` exists and names the repository, a full commit at the pinned prefix,
    the authors' functions as file:line, a known source and a tolerance no looser than 1e-4."""
    import re

    names = cases(method)
    assert set(expected_cases) <= set(names), sorted(set(expected_cases) - set(names))
    for name in names:
        _, meta = load(method, name)
        assert repository in meta["repository"], (name, meta["repository"])
        assert re.fullmatch(r"[0-9a-f]{40}", meta["commit"]) and meta["commit"].startswith(pinned)
        assert meta["functions"] and all(re.search(r"\.py:\d+", f) for f in meta["functions"]), name
        assert meta["source"].startswith(("imported from the official checkout",
                                          "published formulas in a standalone script")), name
        assert meta["tolerance"]["rtol"] <= 1e-4, name
