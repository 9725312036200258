"""The canary's verdicts (experiments/grids/canary.py): did each method learn Pendulum-v1?

A method passes when the mean over its seeds of the final evaluation's return reaches the grid's
THRESHOLD (tests/test_canary.py asserts the same on fresh runs). `table` reads the committed runs under
results/canary; the README's canary block (analysis/readme.py) and figures/REPORT.md print it beside
the claims, so that a reader sees whether a baseline that scores near zero on the embedded tasks
learns where every method is known to learn.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import pandas as pd

from experiments.grids import canary as canary_grid

FOLDER = "canary"


@dataclasses.dataclass(frozen=True)
class Verdict:
    mean: float
    n: int
    passed: bool


def verdict(finals: Sequence[float], threshold: float = canary_grid.THRESHOLD) -> Verdict:
    finals = np.asarray(finals, dtype=float)
    mean = float(finals.mean()) if finals.size else float("nan")
    return Verdict(mean, int(finals.size), bool(finals.size and mean >= threshold))


def table(data: pd.DataFrame) -> pd.DataFrame:
    """One row per method of results/canary: seeds, online steps, mean / min / max final return,
    the return at step 0, and whether the mean reaches the threshold."""
    d = data[data["figure"] == FOLDER] if not data.empty else data
    rows = []
    for method, runs in (d.groupby("method", sort=False) if not d.empty else []):
        last = runs.sort_values("env_step").groupby("seed").tail(1)
        first = runs.sort_values("env_step").groupby("seed").head(1)
        v = verdict(last["value"].to_numpy())
        rows.append({"method": method, "seeds": v.n, "online_steps": int(last["env_step"].max()),
                     "start_return": float(first["value"].mean()), "final_return": v.mean,
                     "final_min": float(last["value"].min()), "final_max": float(last["value"].max()),
                     "passed": v.passed})
    order = {m: i for i, m in enumerate(canary_grid.STEPS)}
    frame = pd.DataFrame(rows, columns=["method", "seeds", "online_steps", "start_return", "final_return",
                                        "final_min", "final_max", "passed"])
    return frame.sort_values("method", key=lambda s: s.map(lambda m: order.get(m, len(order)))).reset_index(drop=True)


NEAR_ZERO = 0.05                               # final success at or below this counts as near zero
CLAIM_FOLDERS = ("cpu3", "cpu4", "cpu_mimicgen")   # the CPU-scale grids of the claims table


def near_zero(data: pd.DataFrame) -> dict[str, list[str]]:
    """Baselines (methods of baselines/) whose mean final score is <= NEAR_ZERO on a task of a claims
    folder: method -> ["cpu4 lift 0.02", ...]."""
    from expo.config import METHODS

    out: dict[str, list[str]] = {}
    if data.empty:
        return out
    baselines = {m for m, entry in METHODS.items() if entry["agent"].startswith("baselines.")}
    d = data[data["figure"].isin(CLAIM_FOLDERS) & (data["variant"] == "") & data["method"].isin(baselines)]
    for (folder, task, method), runs in d.groupby(["figure", "task", "method"]):
        final = runs.sort_values("env_step").groupby("seed").tail(1)["value"].mean()
        if final <= NEAR_ZERO:
            out.setdefault(method, []).append(f"{folder} {task} {final:.2f}")
    return out


def markdown(frame: pd.DataFrame, zero: dict[str, list[str]] | None = None) -> list[str]:
    """The README's canary block: one row per method, then the near-zero baselines' canary scores."""
    if frame.empty:
        return ["No canary runs under results/canary yet (`python experiments/launch.py figure=canary`)."]
    lines = [f"| method | online steps | final return, mean (min, max) | reaches {canary_grid.THRESHOLD:g} |",
             "|---|---|---|---|"]
    for r in frame.itertuples(index=False):
        lines.append(f"| {r.method} | {r.online_steps} | {r.final_return:.0f} ({r.final_min:.0f}, {r.final_max:.0f}) "
                     f"| {'yes' if r.passed else '**no**'} |")
    by_method = {r.method: r for r in frame.itertuples(index=False)}
    notes = []
    for method, where in sorted((zero or {}).items()):
        r = by_method.get(method)
        verdict = "no run" if r is None else f"{r.final_return:.0f}, {'passes' if r.passed else 'fails'}"
        notes.append(f"{method} ({', '.join(where)}): {verdict}")
    if notes:
        lines += ["", f"Baselines near zero on the embedded tasks (final success <= {NEAR_ZERO:g}), on the canary: "
                  + "; ".join(notes) + "."]
    return lines
