"""Numbers beyond the curves: final and best scores, aggregate IQM and mean with stratified
bootstrap confidence intervals (rliable's estimators), and EXPO's sample-efficiency ratio against each
baseline.

All functions take the tidy run table of `analysis.runs` (columns figure, task, method, seed,
env_step, value) and reuse the seed alignment and smoothing of `analysis.curves`.

* `final_and_best`: per (figure, task, method), the final score (each seed's last evaluation,
  mean/min/max over seeds, as `curves.final_summary`) and the best score (the maximum over
  evaluation steps of the unsmoothed mean-over-seeds curve, and the step where it is reached).
* `aggregate_scores`: per figure folder and method, rliable's `aggregate_iqm` and `aggregate_mean`
  of the final scores with rliable's stratified-bootstrap percentile intervals; see
  `rliable_estimates` for a task with fewer runs than the others.
  Scores are the metric as logged (success rate, or Adroit's fraction of solved steps), both in
  [0, 1], so no normalisation is needed to pool tasks.
* `sample_efficiency` / `summarize_sample_efficiency`: see `sample_efficiency`; losses of EXPO
  are counted, see `summarize_sample_efficiency`.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import pandas as pd

from analysis.curves import aggregate_seeds, final_summary, last_rows, task_window

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

# rliable (Agarwal et al., 2021) defines these estimators on a runs x tasks score matrix:
# aggregate_iqm(scores) = scipy.stats.trim_mean(scores, 0.25, axis=None), the 25%-trimmed mean of ALL
# entries; aggregate_mean(scores) = the mean over tasks of the per-task mean over runs; and its
# StratifiedBootstrap resamples, for every task separately, that task's runs with replacement, then
# takes percentile intervals. Its 1.2.0 release cannot be imported with the pinned pandas 3.1 (its
# dependency arch < 8 calls a pandas-2-only private decorator, and arch 8 dropped an argument
# rliable passes), so the estimators are written here, to the same definitions.


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


def run_weights(runs_per_task) -> tuple[np.ndarray, int]:
    """Integer weight of each run (tasks in order, runs of a task contiguous) and their total.

    rliable needs a full runs x tasks matrix, in which every task has as many runs as any other and
    so weighs the same. With L = lcm of the run counts, a run of a task with n runs weighs L / n:
    exactly the matrix in which each task's runs are repeated up to L rows. Equal counts give weight
    1 for every run, i.e. rliable's matrix itself."""
    counts = [int(n) for n in runs_per_task]
    if not counts or min(counts) < 1:
        raise ValueError(f"every task needs at least one run, got run counts {counts}")
    rows = math.lcm(*counts)
    weights = np.repeat([rows // n for n in counts], counts).astype(float)
    return weights, rows * len(counts)


def rliable_estimates(samples: np.ndarray, runs_per_task) -> np.ndarray:
    """[IQM, mean] over the last axis of `samples` (..., total runs), whose runs are grouped by task
    in the order and counts of `runs_per_task`.

    IQM = rliable's aggregate_iqm = scipy.stats.trim_mean(matrix, 0.25, axis=None): of the L x T
    entries of the matrix of `run_weights` (each run counted L / n_t times), int(0.25 * L * T) are
    cut from each end and the rest averaged. mean = rliable's aggregate_mean = the mean over tasks of
    each task's mean over its runs. With the same number of runs on every task these are exactly
    rliable's values on the runs x tasks matrix; with a missing seed every task still counts the
    same (pooling the runs instead would let a task with more runs count more)."""
    x = np.asarray(samples, dtype=float)
    weights, total = run_weights(runs_per_task)
    if x.shape[-1] != len(weights):
        raise ValueError(f"{x.shape[-1]} scores for run counts {list(runs_per_task)}")
    cut = int(0.25 * total)                       # what scipy.stats.trim_mean cuts from each end
    order = np.argsort(x, axis=-1, kind="stable")
    ordered = np.take_along_axis(x, order, axis=-1)
    w = weights[order]
    upper = np.cumsum(w, axis=-1)
    lower = upper - w
    kept = np.clip(np.minimum(upper, total - cut) - np.maximum(lower, cut), 0.0, None)
    iqm = (kept * ordered).sum(axis=-1) / (total - 2 * cut)
    mean = (weights * x).sum(axis=-1) / total
    return np.stack([iqm, mean], axis=-1)


def stratified_bootstrap(per_task: list, rng: np.random.Generator, reps: int) -> np.ndarray:
    """reps resamples of the runs [reps, total runs] as rliable's StratifiedBootstrap draws them:
    each task's runs are drawn with replacement from that task's own runs, so every resample keeps
    the run count of every task (and the task order of `rliable_estimates`)."""
    draws = []
    for values in per_task:
        values = np.asarray(values, dtype=float)
        draws.append(values[rng.integers(0, len(values), size=(reps, len(values)))])
    return np.concatenate(draws, axis=1)


def interval_estimates(scores: dict, reps: int = DEFAULT_BOOTSTRAP_REPS,
                       seed: int = DEFAULT_BOOTSTRAP_SEED, confidence: float = CONFIDENCE):
    """Point estimates and stratified-bootstrap percentile intervals of [IQM, mean]
    (`rliable_estimates`).

    Returns {method: (point[2], low[2], high[2])}. Each method draws from its own generator seeded
    with `seed`, so a method's interval does not depend on which other methods exist, and the same
    inputs give the same intervals."""
    out = {}
    alpha = (1.0 - confidence) / 2.0
    for method in sorted(scores):
        per_task = [np.asarray(v, dtype=float) for v in scores[method]]
        counts = [len(v) for v in per_task]
        point = rliable_estimates(np.concatenate(per_task), counts)
        boot = rliable_estimates(stratified_bootstrap(per_task, np.random.default_rng(seed), reps),
                                 counts)
        low, high = np.quantile(boot, [alpha, 1.0 - alpha], axis=0)
        out[method] = (point, low, high)
    return out


def aggregate_scores(data: pd.DataFrame, value_col: str = "value",
                     reps: int = DEFAULT_BOOTSTRAP_REPS,
                     seed: int = DEFAULT_BOOTSTRAP_SEED) -> tuple[pd.DataFrame, dict]:
    """Aggregate final scores over the tasks of each figure folder (`rliable_estimates`).

    Returns (table, excluded): table columns ``figure, method, n_tasks, n_runs, runs_per_task,
    iqm, iqm_low, iqm_high, mean, mean_low, mean_high``; ``runs_per_task`` is "3" or, when tasks
    have different run counts, "2-3". excluded maps (figure, method) to the tasks the method has no
    run on (such a method is not aggregated: a partial task set is not comparable)."""
    cols = ["figure", "method", "n_tasks", "n_runs", "runs_per_task", "iqm", "iqm_low", "iqm_high",
            "mean", "mean_low", "mean_high"]
    rows, excluded = [], {}
    for figure, g in data.groupby("figure", sort=True):
        scores, tasks, missing = final_score_matrix(g, value_col)
        excluded.update({(figure, m): t for m, t in missing.items()})
        for method, (point, low, high) in interval_estimates(scores, reps, seed).items():
            counts = [len(x) for x in scores[method]]
            spread = (f"{min(counts)}" if min(counts) == max(counts)
                      else f"{min(counts)}-{max(counts)}")
            rows.append((figure, method, len(tasks), sum(counts), spread, point[0], low[0],
                         high[0], point[1], low[1], high[1]))
    return pd.DataFrame(rows, columns=cols), excluded


# ----------------------------------------------------------------------------- sample efficiency

REACH_TOLERANCE = 1e-9


def steps_to_stay_at_or_above(steps, values, target: float) -> Optional[int]:
    """The first env_step from which `values` (aligned with sorted `steps`) stays >= target up to
    and including the last value; None when the last value is below the target.

    A single noisy evaluation above the target therefore does not count as reaching it: the curve
    has to stay there. Equal up to REACH_TOLERANCE counts as at or above: two means of the same
    success rates summed in another order differ in the last bit, and that must not decide."""
    steps = np.asarray(steps)
    below = np.flatnonzero(np.asarray(values, dtype=float) < target - REACH_TOLERANCE)
    if len(steps) == 0 or (below.size and below[-1] == len(steps) - 1):
        return None
    return int(steps[below[-1] + 1]) if below.size else int(steps[0])


SE_COLUMNS = ["figure", "task", "baseline", "baseline_final", "baseline_steps", "expo_final",
              "expo_last_step", "window", "expo_steps_to_reach", "ratio", "ratio_or_bound", "lost",
              "status"]
# Cases with no information about who is faster: left out of every aggregate, named in the summary.
UNDEFINED_STATUSES = ("baseline_final_zero", "baseline_no_online_steps", "expo_no_online_steps")
LOST_STATUSES = ("expo_never_reaches", "expo_slower")


def sample_efficiency(data: pd.DataFrame, expo: str = "expo", value_col: str = "value",
                      window: Optional[int] = None) -> pd.DataFrame:
    """EXPO's sample-efficiency ratio against every other method, per task.

    Definition (for one figure folder, task t and baseline b):

    * target = b's final performance: the mean over b's seeds of each seed's LAST evaluation
      (`curves.final_summary` final_mean, the number of the final-score tables);
    * baseline_steps = the env_step of those last evaluations (the largest, when a seed is
      partial): the online steps b used to get there;
    * expo_steps_to_reach = the first env_step from which EXPO's SMOOTHED mean-over-seeds curve
      stays at or above the target until its end (`steps_to_stay_at_or_above`). The curve is the
      one the figures draw: seeds aligned on common steps, centred running average over the task's
      window (`curves.task_window`: the paper's, or `window` on every task), whose end points are
      not moved. The first touch of an unsmoothed curve would let one lucky evaluation decide in
      EXPO's favour; the running average treats a lucky and an unlucky evaluation alike (each is
      averaged with its neighbours), and the curve must STAY at or above the target, so a
      crossing that noise undoes later does not count;
    * ratio = baseline_steps / expo_steps_to_reach: "EXPO reaches b's final performance ratio
      times sooner". A ratio of 2-3 is the paper's "2-3x better sample efficiency" (abstract).

    Cases, stated in ``status``; ``lost`` is True where EXPO does not reach b's final score within
    b's budget; ``ratio_or_bound`` is what the summary aggregates:

    * ``ok``: a finite ratio >= 1 (ratio_or_bound = ratio);
    * ``expo_slower``: EXPO stays above the target only after b's budget (ratio < 1): lost;
    * ``expo_never_reaches``: EXPO's smoothed curve ends below the target: lost, ratio NaN, and
      ratio_or_bound = baseline_steps / expo_last_step, the largest ratio EXPO could have (it needs
      more than its last step), i.e. 1 when both ran the same number of steps: a censored value;
    * ``reached_at_step_0``: EXPO is at or above the target from env_step 0 (after pretraining,
      before any online step): ratio = inf;
    * no information, left out of every aggregate (ratio and ratio_or_bound NaN):
      ``baseline_final_zero`` (b's final performance is 0, which any curve "reaches"),
      ``baseline_no_online_steps`` (b's last evaluation is at env_step 0, e.g. imitation only),
      ``expo_no_online_steps`` (EXPO's curve has no step after 0).
    """
    rows = []
    final = final_summary(data, value_col)
    for (figure, task), g in data.groupby(["figure", "task"], sort=True):
        if expo not in set(g["method"]):
            continue
        w = task_window(task, window)
        curve = aggregate_seeds(g[g["method"] == expo], value_col, window=w)
        if curve.empty:
            continue
        expo_steps = curve["env_step"].to_numpy()
        expo_last = int(expo_steps[-1])
        expo_final = float(final.loc[(final["figure"] == figure) & (final["task"] == task)
                                     & (final["method"] == expo), "final_mean"].iloc[0])
        fs = final[(final["figure"] == figure) & (final["task"] == task)
                   & (final["method"] != expo)]
        for r in fs.itertuples(index=False):
            target, b_steps = float(r.final_mean), int(r.final_step_max)
            reached = steps_to_stay_at_or_above(expo_steps, curve["smoothed"], target)
            ratio = bound = np.nan
            if b_steps <= 0:
                status = "baseline_no_online_steps"
            elif target <= 0:
                status = "baseline_final_zero"
            elif expo_last <= 0:
                status = "expo_no_online_steps"
            elif reached is None:
                status, bound = "expo_never_reaches", b_steps / expo_last
            elif reached == 0:
                status, ratio = "reached_at_step_0", np.inf
            else:
                ratio = b_steps / reached
                status = "ok" if ratio >= 1.0 else "expo_slower"
            if status not in ("expo_never_reaches",) + UNDEFINED_STATUSES:
                bound = ratio
            rows.append((figure, task, r.method, target, b_steps, expo_final, expo_last, w,
                         reached if reached is not None else np.nan, ratio, bound,
                         status in LOST_STATUSES, status))
    return pd.DataFrame(rows, columns=SE_COLUMNS)


SE_SUMMARY_COLUMNS = ["figure", "baseline", "n_tasks", "n_decided", "n_lost", "n_at_step_0",
                      "n_undefined", "median_ratio", "mean_ratio", "upper_bounds", "headline",
                      "lost_tasks", "undefined_tasks"]


def _ratio_text(value: float, bound: bool) -> str:
    if np.isnan(value):
        return "n/a"
    text = "inf" if np.isinf(value) else f"{value:.2f}"
    return f"\N{LESS-THAN OR EQUAL TO} {text}" if bound else text


def se_headline(n_decided: int, n_lost: int, n_at_0: int, n_undefined: int, median: float,
                mean: float, bounds: bool, unit: str) -> str:
    """One line that cannot be quoted without its losses: the median and mean ratio, over how many
    tasks, and how many of them EXPO lost."""
    if n_decided == 0:
        return f"no ratio: all {n_undefined} undefined (see undefined_tasks)"
    text = (f"median {_ratio_text(median, bounds)}, mean {_ratio_text(mean, bounds)} over "
            f"{n_decided} {unit}; EXPO lost {n_lost} of {n_decided}")
    if bounds:
        text += (" (a task EXPO never reached enters at the largest ratio it could have, so median "
                 "and mean are upper bounds)")
    if n_at_0:
        text += f"; {n_at_0} reached at env_step 0 (infinite ratio: in the median, not the mean)"
    if n_undefined:
        text += f"; {n_undefined} undefined, left out"
    return text


PRIOR, ABLATION, IMITATION = "prior method", "ablation or sweep", "imitation"
# The summary's pooled rows: the headline over the prior methods only, EXPO's own variants apart.
POOLED = {"all": PRIOR, "ablations": ABLATION}


def baseline_kind(label: str) -> str:
    """What a compared run label is: one of EXPO's own ablations or sweeps (``expo*``: expo_no_edit,
    expo-N8, ...), the imitation policy (``bc*``) or a prior method (the baselines)."""
    base = label.partition("-")[0]
    if base.startswith("expo"):
        return ABLATION
    return IMITATION if base == "bc" else PRIOR


def summarize_sample_efficiency(per_task: pd.DataFrame) -> pd.DataFrame:
    """Aggregate `sample_efficiency` over tasks, per (figure, baseline) and per figure over the
    prior methods (baseline "all", over task-baseline pairs; `baseline_kind`) and, apart, over
    EXPO's own ablations and sweeps (baseline "ablations"), so that the headline ratio over prior
    methods never pools EXPO against its own variants. The imitation policy has no online steps
    and enters neither.

    Rule: every task with information counts ("decided": all but the UNDEFINED_STATUSES), losses
    included. median_ratio: median of ratio_or_bound over the decided tasks (inf, for a task EXPO
    had reached at env_step 0, ranks above every finite ratio); mean_ratio: mean of the finite
    ones. A lost task that EXPO never reached enters at its bound (at most 1 when both ran the same
    steps): its true ratio is lower, so the median and the mean are then upper bounds
    (``upper_bounds``), which the headline says. ``headline`` states the ratios together with the
    number of tasks EXPO lost; lost_tasks and undefined_tasks name them with their status."""
    rows = []
    for figure, g in per_task.groupby("figure", sort=True):
        kinds = g["baseline"].map(baseline_kind)
        groups = [(b, gb) for b, gb in g.groupby("baseline", sort=True)]
        groups += [(name, g[kinds == kind]) for name, kind in POOLED.items()
                   if (kinds == kind).any()]
        for baseline, gb in groups:
            decided = gb[~gb["status"].isin(UNDEFINED_STATUSES)]
            values = decided["ratio_or_bound"].to_numpy(dtype=float)
            finite = values[np.isfinite(values)]
            median = float(np.median(values)) if values.size else np.nan
            mean = float(finite.mean()) if finite.size else np.nan
            bounds = bool((decided["status"] == "expo_never_reaches").any())
            n_lost = int(decided["lost"].astype(bool).sum())
            n_at_0 = int((decided["status"] == "reached_at_step_0").sum())
            undefined = gb[gb["status"].isin(UNDEFINED_STATUSES)]

            def names(df):
                return "; ".join(f"{t} ({s})" if baseline not in POOLED else f"{t}/{b} ({s})"
                                 for t, b, s in zip(df["task"], df["baseline"], df["status"]))
            unit = "task" if baseline not in POOLED else "task-baseline pair"
            unit += "" if len(decided) == 1 else "s"
            rows.append((figure, baseline, len(gb), len(decided), n_lost, n_at_0, len(undefined),
                         median, mean, bounds,
                         se_headline(len(decided), n_lost, n_at_0, len(undefined), median, mean,
                                     bounds, unit),
                         names(decided[decided["lost"].astype(bool)]), names(undefined)))
    return pd.DataFrame(rows, columns=SE_SUMMARY_COLUMNS)
