"""Seed aggregation and smoothing: pure functions on the tidy DataFrame of `analysis.runs`.

Conventions (PAPER.md, evaluation protocol: "curves are smoothed with a running average (window 3
or 5); the shaded band is min..max over seeds and is NOT smoothed"):

* Alignment: the seeds of one (figure, task, method) are aligned on env_step using only the
  steps that EVERY seed of that method has evaluated (the intersection). A partial seed therefore
  shortens its method's curve to where it stopped instead of letting the mean silently change the
  set of seeds it averages part-way along the x axis. `analysis.runs` reports such seeds.
* Mean, min and max are taken over seeds at each aligned step. Only the mean is smoothed; the
  min..max band is left raw.
* Smoothing: running average over `window` consecutive evaluations, CENTERED by default (point i
  averages i-(w-1)//2 .. i+w//2), shrinking at the ends to the points that exist (the first point
  of a window-3 average is the mean of points 0 and 1). Centered keeps the smoothed line in phase
  with the unsmoothed band (a trailing average lags it by (w-1)/2 evaluations). ``mode="trailing"``
  (point i averages i-w+1 .. i) is available. ``window <= 1`` means no smoothing.
* Final performance: each seed's LAST evaluation row (its largest env_step, even for a partial
  seed), then mean / min / max over seeds.
"""
from __future__ import annotations

import dataclasses
from functools import reduce
from typing import Iterable

import numpy as np
import pandas as pd

GROUP_COLUMNS = ["figure", "task", "method"]
SMOOTH_MODES = ("centered", "trailing")


def running_average(values, window: int = 3, mode: str = "centered") -> np.ndarray:
    """Running average of a 1-D sequence with edge windows shrunk to the points that exist.

    centered: out[i] = mean(values[max(0, i - (w-1)//2) : min(n, i + w//2 + 1)])
    trailing: out[i] = mean(values[max(0, i - w + 1) : i + 1])

    >>> running_average([0, 3, 6, 9], 3).tolist()
    [1.5, 3.0, 6.0, 7.5]
    >>> running_average([0, 3, 6, 9], 3, mode="trailing").tolist()
    [0.0, 1.5, 3.0, 6.0]
    """
    if mode not in SMOOTH_MODES:
        raise ValueError(f"mode must be one of {SMOOTH_MODES}, got {mode!r}")
    x = np.asarray(values, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"expected a 1-D sequence, got shape {x.shape}")
    window = int(window)
    n = len(x)
    if window <= 1 or n == 0:
        return x.copy()
    if mode == "centered":
        before, after = (window - 1) // 2, window // 2
    else:
        before, after = window - 1, 0
    csum = np.concatenate([[0.0], np.cumsum(x)])
    idx = np.arange(n)
    lo = np.maximum(idx - before, 0)
    hi = np.minimum(idx + after + 1, n)
    return (csum[hi] - csum[lo]) / (hi - lo)


def common_steps(steps_per_seed: Iterable[Iterable[int]]) -> np.ndarray:
    """Sorted env_steps present in every one of the given per-seed step collections."""
    sets = [set(int(s) for s in steps) for steps in steps_per_seed]
    if not sets:
        return np.array([], dtype=np.int64)
    return np.array(sorted(reduce(set.intersection, sets)), dtype=np.int64)


def aligned_seed_table(df: pd.DataFrame, value_col: str = "value") -> pd.DataFrame:
    """The seeds of ONE method on one task as a table: index env_step (the steps every seed has,
    sorted), one column per seed. A repeated step inside a seed is averaged (runs.py keeps one)."""
    if df.empty:
        return pd.DataFrame(index=pd.Index([], dtype=np.int64, name="env_step"))
    per_seed = df.groupby("seed")["env_step"].apply(list)
    steps = common_steps(per_seed.tolist())
    sub = df[df["env_step"].isin(steps)]
    wide = sub.pivot_table(index="env_step", columns="seed", values=value_col, aggfunc="mean")
    return wide.reindex(columns=sorted(per_seed.index)).sort_index()


def aggregate_seeds(df: pd.DataFrame, value_col: str = "value", window: int = 3,
                    mode: str = "centered") -> pd.DataFrame:
    """Aggregate the seeds of ONE method on one task.

    `df` has columns ``seed``, ``env_step`` and `value_col` (one row per seed and evaluation).
    Returns one row per aligned env_step (see module docstring) with columns
    ``env_step, mean, smoothed, min, max, n_seeds``; only ``smoothed`` is smoothed.
    """
    cols = ["env_step", "mean", "smoothed", "min", "max", "n_seeds"]
    wide = aligned_seed_table(df, value_col)
    if wide.empty:
        return pd.DataFrame(columns=cols)
    out = pd.DataFrame({
        "env_step": wide.index.to_numpy(dtype=np.int64),
        "mean": wide.mean(axis=1).to_numpy(dtype=float),
        "min": wide.min(axis=1).to_numpy(dtype=float),
        "max": wide.max(axis=1).to_numpy(dtype=float),
        "n_seeds": np.full(len(wide), wide.shape[1], dtype=np.int64),
    })
    out["smoothed"] = running_average(out["mean"].to_numpy(), window, mode)
    return out[cols]


def aggregate(data: pd.DataFrame, value_col: str = "value", window: int = 3,
              mode: str = "centered") -> pd.DataFrame:
    """`aggregate_seeds` for every (figure, task, method) of the tidy run table.

    Returns the columns ``figure, task, method, env_step, mean, smoothed, min, max, n_seeds``.
    A method whose seeds share no env_step at all contributes no rows.
    """
    parts = []
    for key, g in data.groupby(GROUP_COLUMNS, sort=True):
        agg = aggregate_seeds(g, value_col, window, mode)
        if agg.empty:
            continue
        parts.append(agg.assign(**dict(zip(GROUP_COLUMNS, key))))
    cols = GROUP_COLUMNS + ["env_step", "mean", "smoothed", "min", "max", "n_seeds"]
    if not parts:
        return pd.DataFrame(columns=cols)
    return pd.concat(parts, ignore_index=True)[cols]


def last_rows(data: pd.DataFrame) -> pd.DataFrame:
    """Each seed's last evaluation row (largest env_step) per (figure, task, method, seed)."""
    keys = GROUP_COLUMNS + ["seed"]
    if data.empty:
        return data.copy()
    idx = data.groupby(keys, sort=True)["env_step"].idxmax()
    return data.loc[idx.to_numpy()].reset_index(drop=True)


def final_summary(data: pd.DataFrame, value_col: str = "value") -> pd.DataFrame:
    """Per (figure, task, method): n_seeds and mean/min/max over seeds of each seed's last row.

    Columns: ``figure, task, method, n_seeds, final_mean, final_min, final_max,
    final_step_min, final_step_max`` (the smallest and largest env_step among those last rows:
    they differ when a seed is partial).
    """
    cols = GROUP_COLUMNS + ["n_seeds", "final_mean", "final_min", "final_max",
                            "final_step_min", "final_step_max"]
    last = last_rows(data)
    if last.empty:
        return pd.DataFrame(columns=cols)
    g = last.groupby(GROUP_COLUMNS, sort=True)
    out = pd.DataFrame({
        "n_seeds": g["seed"].nunique(),
        "final_mean": g[value_col].mean(),
        "final_min": g[value_col].min(),
        "final_max": g[value_col].max(),
        "final_step_min": g["env_step"].min(),
        "final_step_max": g["env_step"].max(),
    }).reset_index()
    return out[cols]


def is_single_point(agg: pd.DataFrame) -> bool:
    """True when an aggregated curve has a single aligned env_step (e.g. an imitation-only run
    evaluated once at env_step 0): such a method is drawn as a horizontal reference line."""
    return len(agg) == 1


@dataclasses.dataclass
class TaskAverage:
    """Learning curves averaged over tasks (`average_over_tasks`)."""

    curves: pd.DataFrame          # method, x, mean, smoothed, min, max, n_tasks, n_seeds, n_band_seeds
    x_unit: str                   # "env_step" or "fraction" (of each task's env-step budget)
    budgets: dict[str, int]       # task -> largest env_step any run of the task reached
    excluded: dict[str, list[str]]  # method -> tasks it has no curve on (not averaged)


def average_over_tasks(data: pd.DataFrame, value_col: str = "value", window: int = 3,
                       mode: str = "centered") -> TaskAverage:
    """Each method's learning curve averaged over the tasks of `data` (Fig. 1 right).

    * Per task, a method's curve is its mean over seeds at the aligned steps (`aggregate_seeds`,
      unsmoothed).
    * x axis: env steps when every task has the same budget (the largest env_step any run of the
      task reached), otherwise the fraction of each task's budget, so that a 300k-step Antmaze task
      and a 1M-step Robomimic task are averaged at the same point of their training.
    * Grid: the union of the tasks' (normalised) evaluation positions, up to the smallest end of
      the method's curves over tasks; each task's curve is linearly interpolated onto it. Nothing is
      extrapolated, so every point averages every task.
    * Only methods with a curve on every task are averaged (`excluded` names the others).
    * mean: average over tasks of the per-task means; smoothed: its running average (only the line
      is smoothed); min/max: over seed ids present on every task, of the task average of that
      seed's curve (unsmoothed; NaN when no seed id is common to all tasks); n_seeds: the fewest
      seeds any task's mean has; n_band_seeds: the seed ids behind the band.
    """
    cols = ["method", "x", "mean", "smoothed", "min", "max", "n_tasks", "n_seeds",
            "n_band_seeds"]
    tasks = sorted(data["task"].unique())
    budgets = {t: int(data.loc[data["task"] == t, "env_step"].max()) for t in tasks}
    same_budget = len(set(budgets.values())) <= 1
    x_unit = "env_step" if same_budget else "fraction"
    parts, excluded = [], {}
    for method in sorted(data["method"].unique()):
        tables = {}
        for task in tasks:
            g = data[(data["task"] == task) & (data["method"] == method)]
            wide = aligned_seed_table(g, value_col)
            if not wide.empty:
                tables[task] = wide
        missing = [t for t in tasks if t not in tables]
        if missing:
            excluded[method] = missing
            continue
        xs = {t: w.index.to_numpy(dtype=float) / (1.0 if same_budget else max(budgets[t], 1))
              for t, w in tables.items()}
        end = min(x.max() for x in xs.values())
        grid = np.unique(np.concatenate([x[x <= end] for x in xs.values()]))
        task_means = np.array([np.interp(grid, xs[t], w.mean(axis=1).to_numpy(dtype=float))
                               for t, w in tables.items()])
        mean = task_means.mean(axis=0)
        band_seeds = sorted(reduce(set.intersection, (set(w.columns) for w in tables.values())))
        if band_seeds:
            per_seed = np.array([
                np.mean([np.interp(grid, xs[t], w[s].to_numpy(dtype=float))
                         for t, w in tables.items()], axis=0)
                for s in band_seeds])
            lo, hi = per_seed.min(axis=0), per_seed.max(axis=0)
        else:
            lo = hi = np.full(len(grid), np.nan)
        parts.append(pd.DataFrame({
            "method": method, "x": grid, "mean": mean,
            "smoothed": running_average(mean, window, mode), "min": lo, "max": hi,
            "n_tasks": len(tables), "n_seeds": min(w.shape[1] for w in tables.values()),
            "n_band_seeds": len(band_seeds)}))
    curves = pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)
    return TaskAverage(curves, x_unit, budgets, excluded)
