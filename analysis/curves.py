"""Seed aggregation and smoothing: pure functions on the tidy DataFrame of `analysis.runs`.

Conventions (the paper's evaluation protocol: learning curves are the mean over 3 seeds smoothed
with a running average of 3 or 5 evaluations depending on the task; the shaded band is min..max over
seeds and is not smoothed):

* Alignment: the seeds of one (figure, task, method) are aligned on env_step using only the
  steps that EVERY seed of that method has evaluated (the intersection). A partial seed therefore
  shortens its method's curve to where it stopped instead of letting the mean silently change the
  set of seeds it averages part-way along the x axis. `analysis.runs` reports such seeds.
* Mean, min and max are taken over seeds at each aligned step. Only the mean is smoothed; the
  min..max band is left raw.
* Window per task (`paper_window`): 5 evaluations on the tasks the paper evaluates every 5k env
  steps (AntMaze, Adroit), 3 on those it evaluates every 10k (Robomimic, MimicGen), so that every
  window spans the same 20k env steps; 3 for a task outside the protocol table. The paper says "3 or
  5" without naming the task of each: this assignment by evaluation interval is the suite's reading.
  An explicit window (``--smooth k``) replaces it on every task.
* Smoothing: a CENTRED running average whose window shrinks symmetrically at the ends: point i
  averages i-h .. i+h with h = min((w-1)//2, i, n-1-i). The first and the last point are therefore
  never moved (the plotted final value is the final score of the tables), a straight line stays
  straight, and the line stays in phase with the unsmoothed band. The window must be odd (an even
  one has no centre); ``window <= 1`` means no smoothing.
* Final performance: each seed's LAST evaluation row (its largest env_step, even for a partial
  seed), then mean / min / max over seeds.
"""
from __future__ import annotations

import dataclasses
from functools import reduce
from typing import Iterable, Optional

import numpy as np
import pandas as pd

GROUP_COLUMNS = ["figure", "task", "method"]

# Running-average window by domain (see the module docstring): 5 evaluations 5k env steps apart and
# 3 evaluations 10k apart both span 20k env steps.
PAPER_WINDOW_BY_DOMAIN = {"antmaze": 5, "adroit": 5, "robomimic": 3, "mimicgen": 3}
DEFAULT_WINDOW = 3


def paper_window(task: str) -> int:
    """The running-average window of `task`'s curves: by its domain in expo/protocol.py
    (`PAPER_WINDOW_BY_DOMAIN`), DEFAULT_WINDOW for a task outside the protocol table."""
    from expo.protocol import TASKS

    spec = TASKS.get(task)
    return PAPER_WINDOW_BY_DOMAIN.get(spec.domain, DEFAULT_WINDOW) if spec else DEFAULT_WINDOW


def task_window(task: str, window: Optional[int] = None) -> int:
    """`window` when given (one window for every task), else the task's `paper_window`."""
    return paper_window(task) if window is None else int(window)


def check_window(window: int) -> int:
    """`window` when it is a usable running-average window; a one-line ValueError otherwise."""
    window = int(window)
    if window > 1 and window % 2 == 0:
        raise ValueError(f"a centred running average needs an odd window (1, 3, 5, ...): an even "
                         f"one has no centre; got {window}")
    return window


def running_average(values, window: int = 3) -> np.ndarray:
    """Centred running average of a 1-D sequence whose window shrinks symmetrically at the ends.

    out[i] = mean(values[i - h : i + h + 1]) with h = min((window - 1) // 2, i, n - 1 - i), so the
    first and last values are returned unchanged and a linear sequence stays linear.

    >>> running_average([0, 3, 6, 9, 12], 3).tolist()
    [0.0, 3.0, 6.0, 9.0, 12.0]
    >>> running_average([0, 6, 0, 6, 0], 3).tolist()
    [0.0, 2.0, 4.0, 2.0, 0.0]
    """
    x = np.asarray(values, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"expected a 1-D sequence, got shape {x.shape}")
    window = check_window(window)
    n = len(x)
    if window <= 1 or n == 0:
        return x.copy()
    idx = np.arange(n)
    half = np.minimum.reduce([np.full(n, (window - 1) // 2), idx, n - 1 - idx])
    # Summed pair by pair around each point rather than by differences of a cumulative sum, so that
    # a point whose window is itself alone (the ends) is returned bit for bit.
    total = x.copy()
    for d in range(1, int(half.max()) + 1):
        m = half >= d
        total[m] += x[idx[m] - d] + x[idx[m] + d]
    return total / (2 * half + 1)


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


def aggregate_seeds(df: pd.DataFrame, value_col: str = "value", window: int = 3) -> pd.DataFrame:
    """Aggregate the seeds of ONE method on one task.

    `df` has columns ``seed``, ``env_step`` and `value_col` (one row per seed and evaluation).
    Returns one row per aligned env_step (see module docstring) with columns
    ``env_step, mean, smoothed, min, max, n_seeds``; only ``smoothed`` is smoothed, by a centred
    running average over `window` evaluations.
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
    out["smoothed"] = running_average(out["mean"].to_numpy(), window)
    return out[cols]


def aggregate(data: pd.DataFrame, value_col: str = "value",
              window: Optional[int] = None) -> pd.DataFrame:
    """`aggregate_seeds` for every (figure, task, method) of the tidy run table, each task smoothed
    with its `paper_window` (or `window` on every task when given).

    Returns the columns ``figure, task, method, env_step, mean, smoothed, min, max, n_seeds,
    window``. A method whose seeds share no env_step at all contributes no rows.
    """
    parts = []
    for key, g in data.groupby(GROUP_COLUMNS, sort=True):
        w = task_window(key[1], window)
        agg = aggregate_seeds(g, value_col, w)
        if agg.empty:
            continue
        parts.append(agg.assign(**dict(zip(GROUP_COLUMNS, key)), window=w))
    cols = GROUP_COLUMNS + ["env_step", "mean", "smoothed", "min", "max", "n_seeds", "window"]
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

    # method, x, mean, smoothed, min, max, n_tasks, n_seeds, n_band_seeds, window
    curves: pd.DataFrame
    x_unit: str                   # "env_step" or "fraction" (of each task's env-step budget)
    budgets: dict[str, int]       # task -> largest env_step any run of the task reached
    excluded: dict[str, list[str]]  # method -> tasks it has no curve on (not averaged)
    grid_step: dict[str, float] = dataclasses.field(default_factory=dict)  # method -> grid spacing


def _spacing(x: np.ndarray) -> float:
    """The usual distance between a task's evaluations (median of the gaps; inf for one point)."""
    return float(np.median(np.diff(x))) if len(x) > 1 else np.inf


def average_window(spacings: dict[str, float], windows: dict[str, int], grid_step: float) -> int:
    """Odd running-average window, in points of a grid `grid_step` apart, whose x-span matches the
    narrowest span any task's own window covers on its own evaluations ((w_t - 1) * spacing_t):
    5 evaluations 5k apart and 3 evaluations 10k apart (both 20k env steps) give 5 points on a 5k
    grid. Tasks with a single evaluation carry no span."""
    spans = [(windows[t] - 1) * spacings[t] for t in spacings if np.isfinite(spacings[t])]
    if not spans or not np.isfinite(grid_step) or grid_step <= 0:
        return 1
    return 2 * int(round(min(spans) / grid_step / 2.0)) + 1


def average_over_tasks(data: pd.DataFrame, value_col: str = "value",
                       window: Optional[int] = None) -> TaskAverage:
    """Each method's learning curve averaged over the tasks of `data` (Fig. 1 right).

    * Per task, a method's curve is its mean over seeds at the aligned steps (`aggregate_seeds`,
      unsmoothed).
    * x axis: env steps when every task has the same budget (the largest env_step any run of the
      task reached), otherwise the fraction of each task's budget, so that a 300k-step Antmaze task
      and a 1M-step Robomimic task are averaged at the same point of their training.
    * Grid: EVENLY spaced, from the latest start to the earliest end of the method's curves over
      tasks, as finely as the most finely evaluated task (the smallest median gap between its
      evaluations). Each task's unsmoothed mean is linearly interpolated onto it, then averaged;
      nothing is extrapolated, so every point averages every task. Smoothing happens only after
      that, on the even grid, so tasks evaluated at different steps do not kink the line (a running
      average over uneven points would: a straight line would not stay straight).
    * Smoothing: the centred running average of `running_average` over `average_window` grid
      points: the x-span of the tasks' own windows (`task_window`: the paper's per task, or
      `window` on every task), the narrowest when they differ. The end points are not moved.
    * Only methods with a curve on every task are averaged (`excluded` names the others).
    * mean: average over tasks of the interpolated per-task means; min/max: over seed ids present
      on every task, of the task average of that seed's interpolated curve (unsmoothed; NaN when
      no seed id is common to all tasks); n_seeds: the fewest seeds any task's mean has;
      n_band_seeds: the seed ids behind the band; window: the running-average window in grid points.
    """
    cols = ["method", "x", "mean", "smoothed", "min", "max", "n_tasks", "n_seeds",
            "n_band_seeds", "window"]
    tasks = sorted(data["task"].unique())
    budgets = {t: int(data.loc[data["task"] == t, "env_step"].max()) for t in tasks}
    same_budget = len(set(budgets.values())) <= 1
    x_unit = "env_step" if same_budget else "fraction"
    parts, excluded, grid_steps = [], {}, {}
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
        start = max(x.min() for x in xs.values())
        end = min(x.max() for x in xs.values())
        if start > end:
            excluded[method] = [f"{', '.join(tables)} (their curves share no x range)"]
            continue
        spacings = {t: _spacing(x) for t, x in xs.items()}
        step = min(spacings.values())
        n_points = int(round((end - start) / step)) + 1 if np.isfinite(step) and end > start else 1
        grid = np.linspace(start, end, n_points)
        w_avg = average_window(spacings, {t: task_window(t, window) for t in tables}, step)
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
        grid_steps[method] = float(grid[1] - grid[0]) if len(grid) > 1 else np.nan
        parts.append(pd.DataFrame({
            "method": method, "x": grid, "mean": mean,
            "smoothed": running_average(mean, w_avg), "min": lo, "max": hi,
            "n_tasks": len(tables), "n_seeds": min(w.shape[1] for w in tables.values()),
            "n_band_seeds": len(band_seeds), "window": w_avg}))
    curves = pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)
    return TaskAverage(curves, x_unit, budgets, excluded, grid_steps)
