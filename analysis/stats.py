"""Numbers beyond the curves: final and best scores, aggregate IQM with bootstrap confidence
intervals (rliable's estimators), and EXPO's sample-efficiency ratio against each baseline.

All functions take the tidy run table of `analysis.runs` (columns figure, task, method, seed,
env_step, value) and reuse the seed alignment of `analysis.curves`.

* `final_and_best`: per (figure, task, method), the final score (each seed's last evaluation,
  mean/min/max over seeds, as `curves.final_summary`) and the best score (the maximum over
  evaluation steps of the unsmoothed mean-over-seeds curve, and the step where it is reached).
* `aggregate_scores`: per figure folder and method, the interquartile mean (IQM, the 25%-trimmed
  mean over all runs of all tasks, as rliable's aggregate_iqm) and the plain mean of the
  final scores, each with a stratified-bootstrap confidence interval
  (runs are resampled with replacement within each task, percentile interval, as rliable).
  Scores are the metric as logged (success rate, or Adroit's fraction of solved steps), both in
  [0, 1], so no normalisation is needed to pool tasks.
* `sample_efficiency` / `summarize_sample_efficiency`: see `sample_efficiency`.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd
import scipy.stats

from analysis.curves import aggregate_seeds, final_summary, last_rows, running_average

DEFAULT_BOOTSTRAP_REPS = 5000
DEFAULT_BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95


# ----------------------------------------------------------------------------- final and best

def final_and_best(data: pd.DataFrame, value_col: str = "value") -> pd.DataFrame:
    """Per (figure, task, method): ``n_seeds, final_mean, final_min, final_max, final_step_min,
    final_step_max`` (`curves.final_summary`) plus ``best_mean`` (the maximum over aligned steps
    of the unsmoothed mean-over-seeds curve) and ``best_step`` (its first env_step)."""
    final = final_summary(data, value_col)
    best = []
    for (fig, task, method), g in data.groupby(["figure", "task", "method"], sort=True):
        curve = aggregate_seeds(g, value_col, window=1)
        if curve.empty:
            best.append((fig, task, method, np.nan, np.nan))
            continue
        i = int(np.argmax(curve["mean"].to_numpy()))
        best.append((fig, task, method, float(curve["mean"].iloc[i]),
                     int(curve["env_step"].iloc[i])))
    best = pd.DataFrame(best, columns=["figure", "task", "method", "best_mean", "best_step"])
    return final.merge(best, on=["figure", "task", "method"], how="left")


# ----------------------------------------------------------------------------- IQM

# rliable (Agarwal et al., 2021) defines these estimators; its 1.2.0 release cannot be imported with
# the pinned pandas 3.1 (its dependency arch < 8 calls a pandas-2-only private decorator, and arch 8
# dropped an argument rliable passes), so the two estimators are written here with rliable's
# definitions: IQM = scipy.stats.trim_mean(all runs of all tasks, 0.25); stratified bootstrap =
# resample runs with replacement within each task, percentile interval.

def final_score_matrix(data: pd.DataFrame, value_col: str = "value"):
    """{method: [per-task arrays of final scores, one value per seed]} for the tasks of `data` (one
    figure folder). Only methods with runs on every task are included; returns (scores, tasks,
    excluded) where excluded maps a method to the tasks it lacks."""
    last = last_rows(data)
    tasks = sorted(data["task"].unique())
    scores, excluded = {}, {}
    for method, g in last.groupby("method", sort=True):
        per_task = [g.loc[g["task"] == t].sort_values("seed")[value_col].to_numpy(dtype=float)
                    for t in tasks]
        missing = [t for t, v in zip(tasks, per_task) if len(v) == 0]
        if missing:
            excluded[method] = missing
            continue
        scores[method] = per_task
    return scores, tasks, excluded


def iqm_and_mean(pooled: np.ndarray) -> np.ndarray:
    """[IQM, mean] over the last axis: the 25%-trimmed mean (rliable's aggregate_iqm) and the mean."""
    pooled = np.asarray(pooled, dtype=float)
    return np.stack([scipy.stats.trim_mean(pooled, 0.25, axis=-1), pooled.mean(axis=-1)], axis=-1)


def stratified_bootstrap(per_task: list, rng: np.random.Generator, reps: int) -> np.ndarray:
    """reps resamples of the pooled runs [reps, total runs]: each task's runs are drawn with
    replacement from that task's own runs, so every resample keeps the run count of every task."""
    draws = []
    for values in per_task:
        values = np.asarray(values, dtype=float)
        draws.append(values[rng.integers(0, len(values), size=(reps, len(values)))])
    return np.concatenate(draws, axis=1)


def interval_estimates(scores: dict, reps: int = DEFAULT_BOOTSTRAP_REPS,
                       seed: int = DEFAULT_BOOTSTRAP_SEED, confidence: float = CONFIDENCE):
    """Point estimates and stratified-bootstrap percentile intervals of [IQM, mean].

    Returns {method: (point[2], low[2], high[2])}. Each method draws from its own generator seeded
    with `seed`, so a method's interval does not depend on which other methods exist, and the same
    inputs give the same intervals."""
    out = {}
    alpha = (1.0 - confidence) / 2.0
    for method in sorted(scores):
        per_task = scores[method]
        point = iqm_and_mean(np.concatenate([np.asarray(v, dtype=float) for v in per_task]))
        boot = iqm_and_mean(stratified_bootstrap(per_task, np.random.default_rng(seed), reps))
        low, high = np.quantile(boot, [alpha, 1.0 - alpha], axis=0)
        out[method] = (point, low, high)
    return out


def aggregate_scores(data: pd.DataFrame, value_col: str = "value",
                     reps: int = DEFAULT_BOOTSTRAP_REPS,
                     seed: int = DEFAULT_BOOTSTRAP_SEED) -> tuple[pd.DataFrame, dict]:
    """Aggregate final scores over the tasks of each figure folder.

    Returns (table, excluded): table columns ``figure, method, n_tasks, n_runs, iqm, iqm_low,
    iqm_high, mean, mean_low, mean_high``; excluded maps (figure, method) to the tasks the method
    has no run on (such a method is not aggregated: a partial task set is not comparable)."""
    cols = ["figure", "method", "n_tasks", "n_runs", "iqm", "iqm_low", "iqm_high", "mean",
            "mean_low", "mean_high"]
    rows, excluded = [], {}
    for figure, g in data.groupby("figure", sort=True):
        scores, tasks, missing = final_score_matrix(g, value_col)
        excluded.update({(figure, m): t for m, t in missing.items()})
        for method, (point, low, high) in interval_estimates(scores, reps, seed).items():
            s = scores[method]
            n_runs = sum(len(x) for x in s)
            rows.append((figure, method, len(tasks), n_runs, point[0], low[0], high[0],
                         point[1], low[1], high[1]))
    return pd.DataFrame(rows, columns=cols), excluded


# ----------------------------------------------------------------------------- sample efficiency

REACH_TOLERANCE = 1e-9


def steps_to_reach(steps, values, target: float) -> Optional[int]:
    """The first env_step at which `values` (aligned with sorted `steps`) is >= target; None when
    it never is. Equal up to REACH_TOLERANCE counts as reached: two means of the same success
    rates summed in another order differ in the last bit, and that must not decide."""
    steps = np.asarray(steps)
    hit = np.flatnonzero(np.asarray(values, dtype=float) >= target - REACH_TOLERANCE)
    return int(steps[hit[0]]) if hit.size else None


SE_COLUMNS = ["figure", "task", "baseline", "baseline_final", "baseline_steps", "expo_final",
              "expo_steps_to_reach", "ratio", "status"]


def sample_efficiency(data: pd.DataFrame, expo: str = "expo", value_col: str = "value",
                      window: int = 1) -> pd.DataFrame:
    """EXPO's sample-efficiency ratio against every other method, per task.

    Definition (for one figure folder, task t and baseline b):

    * target = b's final performance: the mean over b's seeds of each seed's LAST evaluation
      (`curves.final_summary` final_mean);
    * baseline_steps = the env_step of those last evaluations (the largest, when a seed is
      partial): the steps b used to get there;
    * expo_steps_to_reach = the first env_step at which EXPO's mean-over-seeds curve (seeds aligned
      on common steps as in the figures; unsmoothed by default, a TRAILING running average over
      `window` evaluations otherwise, so that no later evaluation leaks in) is >= target (up to
      REACH_TOLERANCE);
    * ratio = baseline_steps / expo_steps_to_reach: "EXPO reaches b's final performance ratio
      times faster". A ratio of 2-3 is the paper's "2-3x better sample efficiency".

    Ill-defined cases, stated in ``status`` (ratio NaN unless said otherwise):

    * ``expo_never_reaches``: EXPO's curve stays below the target (EXPO is not faster; no ratio);
    * ``reached_at_step_0``: EXPO is already >= target at env_step 0 (after pretraining, before
      any online step): ratio = inf;
    * ``baseline_final_zero``: b's final performance is 0, which any curve "reaches" at step 0:
      ratio NaN (no information);
    * ``baseline_no_online_steps``: b's last evaluation is at env_step 0 (e.g. imitation only);
    * ``ok``: a finite ratio.
    """
    rows = []
    final = final_summary(data, value_col)
    for (figure, task), g in data.groupby(["figure", "task"], sort=True):
        if expo not in set(g["method"]):
            continue
        curve = aggregate_seeds(g[g["method"] == expo], value_col, window=1)
        if curve.empty:
            continue
        expo_values = running_average(curve["mean"].to_numpy(), window, "trailing")
        expo_final = float(final.loc[(final["figure"] == figure) & (final["task"] == task)
                                     & (final["method"] == expo), "final_mean"].iloc[0])
        fs = final[(final["figure"] == figure) & (final["task"] == task)
                   & (final["method"] != expo)]
        for r in fs.itertuples(index=False):
            target, b_steps = float(r.final_mean), int(r.final_step_max)
            reached = steps_to_reach(curve["env_step"], expo_values, target)
            if b_steps <= 0:
                status, ratio = "baseline_no_online_steps", np.nan
            elif target <= 0:
                status, ratio = "baseline_final_zero", np.nan
            elif reached is None:
                status, ratio = "expo_never_reaches", np.nan
            elif reached == 0:
                status, ratio = "reached_at_step_0", np.inf
            else:
                status, ratio = "ok", b_steps / reached
            rows.append((figure, task, r.method, target, b_steps, expo_final,
                         reached if reached is not None else np.nan, ratio, status))
    return pd.DataFrame(rows, columns=SE_COLUMNS)


SE_SUMMARY_COLUMNS = ["figure", "baseline", "n_tasks", "n_finite", "n_infinite", "n_undefined",
                      "median_ratio", "mean_ratio", "undefined_tasks"]


def summarize_sample_efficiency(per_task: pd.DataFrame) -> pd.DataFrame:
    """Aggregate `sample_efficiency` over tasks, per (figure, baseline) and per figure over all
    baselines (baseline "all").

    median_ratio: median over tasks with a defined ratio (finite or inf; inf counts as larger than
    any finite ratio); mean_ratio: mean over the finite ratios only; n_undefined tasks (NaN ratio)
    are left out of both and named in undefined_tasks with their status."""
    rows = []
    for figure, g in per_task.groupby("figure", sort=True):
        groups = [(b, gb) for b, gb in g.groupby("baseline", sort=True)] + [("all", g)]
        for baseline, gb in groups:
            r = gb["ratio"].to_numpy(dtype=float)
            defined = r[~np.isnan(r)]
            finite = defined[np.isfinite(defined)]
            undefined = gb[np.isnan(r)]
            names = [f"{t} ({s})" if baseline != "all" else f"{t}/{b} ({s})"
                     for t, b, s in zip(undefined["task"], undefined["baseline"],
                                        undefined["status"])]
            rows.append((figure, baseline, len(gb), len(finite), int(np.isinf(defined).sum()),
                         len(undefined), float(np.median(defined)) if defined.size else np.nan,
                         float(finite.mean()) if finite.size else np.nan, "; ".join(names)))
    return pd.DataFrame(rows, columns=SE_SUMMARY_COLUMNS)
