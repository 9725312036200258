"""The claims table: each claim of the paper that the CPU-scale grids (experiments/grids/cpu3.py,
cpu4.py, cpu_mimicgen.py) can test, the effect measured in results/, and a verdict decided by a
procedure with known error rates.

A claim (`Claim`) names where the paper makes it (section, figure), its words (the paper's own in
quotation marks, or else marked as the suite's reading), the tasks and budget the paper makes it
on and the results folder whose runs test it here. It compares one or more pairs (`Versus`, one
table row each): an arm the claim says is better against another arm, or, for a claim about the
switch to online, one score of the same runs against another (paired).

Per claim, one *score* of a finished run is fixed in advance, with its reason (`Claim.reason`):

* ``final``: the success at the run's last evaluation (the paper's "final performance");
* ``online_mean``: the mean success over the evaluations after online step 0 (area under the
  learning curve);
* ``step0`` / ``first_online``: the success at env_step 0 (after pretraining, before any online
  step) / at the first evaluation after it;
* ``steps_to_target``: the env steps the run needs to reach and keep the other arm's final success
  (the mean over its runs): the first env_step from which the run's curve, smoothed over the
  task's window as the figures draw it, stays at or above that target to its end; a run that never
  does counts as its last step plus one evaluation interval (not within its budget). Lower is
  better. This is the run-level reading of the paper's sample-efficiency ratio, which each such
  row also reports (`stats.sample_efficiency`'s definition, on the mean curves) with a percentile
  interval over bootstrap resamples of the seeds, or the reason it is undefined.

Only finished runs count (status.json ``finished``; a run still going would be read at the wrong
step).

Decision, per row, in the paper's direction:

* the statistic is the difference of the two arms' mean scores (the mean over tasks of the per-task
  differences where a folder pools tasks), signed so that positive favours the claim; a claim that
  something does *not drop* adds its margin (`NO_DROP_MARGIN`) to the arm's scores (a
  non-inferiority test);
* its exact one-sided permutation p-value: every reassignment of the pooled runs of each task to
  the two arms (stratified by task), or for a paired row every sign flip of the per-run
  differences, enumerated (a seeded Monte Carlo draw only beyond `EXACT_LIMIT` assignments); the
  same for the opposite direction;
* Holm's correction over the claim's rows, for each direction;
* **holds**: Holm-adjusted p <= `ALPHA` in the paper's direction; **does not hold**: Holm-adjusted
  p <= `ALPHA` in the opposite direction; **not resolvable at this scale**: neither;
  **not measured yet**: an arm has fewer than `MIN_SEEDS` finished runs on a task; the effect,
  the p-values and the smallest resolvable effect are shown all the same.

Each row also gives its *smallest resolvable effect*: the smallest difference in the paper's
direction (in score units) that the row's test, at these seed counts and the observed spread of
each arm (the arms' scores shifted apart, each keeping its spread), would call significant at
`ALPHA` divided by the row's Holm divisor (the number of the claim's rows that Holm has not
rejected, all of them when none is; a rejected row's own step's); "none" when no shift can reach
it (3 runs against 3 give at best p = 1/20 = 0.05; a paired row of 5 runs at best 1/32).

No bootstrap or other randomness enters a verdict: the tests are exact, so the verdicts are the
same for every seed of the bootstrap (which only draws the ratio's interval).
`simulate_error_rates` measures the procedure's error rates on data with the committed runs'
spreads: with no effect (every arm from one distribution) each wrong verdict comes out at most
`ALPHA`, as an exact test guarantees; with equal means but each arm's own spread (where a
permutation test is not exact) at most about twice that on the committed spreads
(tests/test_claims.py checks both).
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import re
from typing import Optional, Union

import numpy as np
import pandas as pd

from analysis import stats
from analysis.curves import aligned_seed_table, task_window

MIN_SEEDS = 5
ALPHA = 0.05
# A claim that success does not drop at the switch to online: a drop smaller than this counts as
# no drop (2 of the 20 evaluation episodes at mini scale).
NO_DROP_MARGIN = 0.10
EXACT_LIMIT = 1_000_000          # assignments enumerated exactly; beyond, MONTE_CARLO_DRAWS draws
MONTE_CARLO_DRAWS = 100_000
TOLERANCE = 1e-9                 # ties in the statistic (sums of the same scores in another order)

SCORES = {
    "final": "final",
    "online_mean": "online mean",
    "step0": "step 0",
    "first_online": "first online",
    "steps_to_target": "steps to target",
}
LOWER_IS_BETTER = frozenset({"steps_to_target"})
HOLDS, DOES_NOT_HOLD, NOT_RESOLVABLE, NOT_MEASURED = (
    "holds", "does not hold", "not resolvable at this scale", "not measured yet")


@dataclasses.dataclass(frozen=True)
class Versus:
    """One row of a claim: `arm` is better than `other` on the claim's score (or on `arm_score`
    against `other_score`). The same label on both sides compares two scores of the same runs."""
    arm: str
    other: str
    arm_score: str = ""          # "": the claim's score
    other_score: str = ""

    @property
    def paired(self) -> bool:
        return self.arm == self.other


@dataclasses.dataclass(frozen=True)
class Claim:
    source: str                  # where the paper makes it: section and figure
    words: str                   # the paper's words in quotation marks, or the suite's reading
    paper: str                   # the tasks and online budget the paper makes it on
    folder: str                  # results/<folder>: the grid whose runs test it
    arm: str                     # the run label the claim says is better (first of its panel)
    against: tuple[Union[str, Versus], ...]   # one table row each: a label or a Versus
    score: str                   # a key of SCORES, fixed in advance
    reason: str                  # why that score
    shown: tuple[str, ...] = ()  # drawn in the claim's panel for reference, not compared
    task: str = ""               # only this task's runs ("": every task of the folder)
    margin: float = 0.0          # > 0: the claim is that the arm is not worse by this much

    @property
    def rows(self) -> list[Versus]:
        out = []
        for x in self.against:
            v = x if isinstance(x, Versus) else Versus(self.arm, x)
            out.append(dataclasses.replace(v, arm_score=v.arm_score or self.score,
                                           other_score=v.other_score or self.score))
        return out

    @property
    def labels(self) -> list[str]:
        out = [self.arm]
        for v in self.rows:
            out += [x for x in (v.arm, v.other) if x not in out]
        return out + [x for x in self.shown if x not in out]

    @property
    def quoted(self) -> bool:
        """The words are the paper's own (else the suite's reading of a figure)."""
        return self.words.startswith("\"")

    @property
    def panel(self) -> str:
        """The figure panel that draws it: its paper figure ("Fig. 4")."""
        return next(part.strip() for part in reversed(self.source.split(";"))
                    if part.strip().startswith("Fig."))


SUITE = " (suite's reading)"       # words that are not the paper's (the README leaves it out)
_SE_QUOTE = "\"up to 2-3x improvement in sample efficiency [...] "


def _millions(n: int) -> str:
    return f"{n / 1e6:g}"


def paper_budget(tasks: tuple[str, ...] = (), demos: str = "") -> str:
    """The tasks and online budget a paper figure runs, from the protocol table (expo/protocol.py
    train_steps): "12 tasks, 0.3-1M steps" for every paper task, else the tasks by name."""
    from expo import protocol

    names = tasks or protocol.PAPER_TASKS
    steps = sorted({protocol.TASKS[t].train_steps for t in names})
    budget = (f"{_millions(steps[0])}-{_millions(steps[-1])}M" if len(steps) > 1
              else f"{_millions(steps[0])}M")
    if not tasks:
        where = f"{len(names)} tasks"
    else:
        where = ", ".join(t.split("-v")[0] if protocol.TASKS[t].domain in ("antmaze", "adroit")
                          else t.capitalize() for t in names)
    return f"{where}, {demos + ', ' if demos else ''}{budget} steps"


def _fig7_demos() -> str:
    from experiments.grids import fig7

    return f"{min(fig7.DEMOS)}-{max(fig7.DEMOS)} demos"


def _mimicgen_demos(task: str) -> str:
    from expo import protocol

    return f"{protocol.TASKS[task].num_demos} MimicGen demos"


_FIG4_PAPER = paper_budget()
_STEPS = "the paper's measure: environment steps to reach the prior method's final success"
_FINAL = "fine-tuning is judged where it ends, against the policy it starts from"
_FIG7 = "Fig. 7 plots the success at the end of online RL"
_ABLATION = ("the ablation figures compare whole learning curves; one noisy last evaluation would "
             "decide alone")
_SWEEP = "the sweep figures compare whole learning curves"
_SWITCH = "the switch lies between step 0 and the first online evaluation"

CLAIMS: list[Claim] = [
    Claim("Abstract; Fig. 4", _SE_QUOTE + "fine-tuning a pretrained policy\"", _FIG4_PAPER, "cpu4",
          "expo", ("idql", "calql", "dac", "rlpd"), "steps_to_target", _STEPS),
    Claim("Fig. 4", "online fine-tuning improves on the imitation policy" + SUITE, _FIG4_PAPER,
          "cpu4", "expo", ("bc",), "final", _FINAL),
    Claim("Abstract; Fig. 3", _SE_QUOTE + "leveraging offline data to train online\"",
          _FIG4_PAPER, "cpu3", "expo", ("rlpd", "idql", "dipo", "qsm"), "steps_to_target", _STEPS),
    Claim("Fig. 5", "the OTF action in the TD backup, not only in sampling, helps" + SUITE,
          paper_budget(("can", "square")), "cpu4", "expo", ("expo_no_otf_backup",), "online_mean",
          _ABLATION),
    Claim("Fig. 6", "without action edits performance is lower" + SUITE,
          paper_budget(("pen-binary-v0", "square")), "cpu4", "expo", ("expo_no_edit",), "online_mean",
          _ABLATION),
    Claim("Fig. 7", "on subsampled data EXPO ends above imitation on the same data" + SUITE,
          paper_budget(("square",), _fig7_demos()), "cpu4", "expo-demos3", ("bc-demos3",), "final", _FIG7),
    Claim("Fig. 7; Sec. 4.3", "on small datasets the entropy backup helps" + SUITE,
          paper_budget(("square",), _fig7_demos()), "cpu4", "expo_entropy_backup-demos3",
          ("expo-demos3",), "final", _FIG7, shown=("expo", "expo_entropy_backup", "bc")),
    Claim("Fig. 9", "the number of base-policy samples N affects performance; tested: larger N "
          "does better" + SUITE, paper_budget(("lift", "square")), "cpu4", "expo-N8", ("expo", "expo-N2"),
          "online_mean", _SWEEP),
    Claim("Fig. 10", "the edit scale beta needs tuning; tested: the tuned beta beats 0.05, 0.3"
          + SUITE, paper_budget(("lift", "square")), "cpu4", "expo", ("expo-beta0.05", "expo-beta0.3"),
          "online_mean", _SWEEP),
    *(Claim("Fig. 4", "online fine-tuning improves on the imitation policy" + SUITE,
            paper_budget((task,), _mimicgen_demos(task)), "cpu_mimicgen", "expo", ("bc",),
            "final", _FINAL, task=task)
      for task in ("threading", "stack")),
    Claim("Fig. 4", "EXPO's success does not drop at the switch from pretraining to fine-tuning"
          + SUITE,
          _FIG4_PAPER, "cpu4", "expo",
          (Versus("expo", "bc", "step0", "step0"), Versus("expo", "expo", "first_online", "step0")),
          "step0", f"{_SWITCH}; a drop under {NO_DROP_MARGIN:.2f} counts as none",
          margin=NO_DROP_MARGIN),
    Claim("Fig. 4", "pretrained prior methods drop at the switch to online" + SUITE,
          _FIG4_PAPER, "cpu4", "idql",
          tuple(Versus(m, m, "step0", "first_online") for m in ("idql", "calql", "dac")),
          "step0", f"{_SWITCH} (of the same runs)"),
]


def panels(folder: str, claims: Optional[list[Claim]] = None) -> list[tuple[str, list[str]]]:
    """[(panel, run labels)] of a results folder's claims, in the order of CLAIMS: one learning-
    curve panel per paper figure, with every arm its claims compare."""
    out: dict[str, list[str]] = {}
    for claim in CLAIMS if claims is None else claims:
        if claim.folder == folder:
            labels = out.setdefault(claim.panel, [])
            labels += [x for x in claim.labels if x not in labels]
    return list(out.items())


# ----------------------------------------------------------------------------- scores

def run_scores(data: pd.DataFrame) -> pd.DataFrame:
    """One row per finished run: ``figure, task, method, seed, final, online_mean, step0,
    first_online``."""
    cols = ["figure", "task", "method", "seed", "final", "online_mean", "step0", "first_online"]
    if data.empty:
        return pd.DataFrame(columns=cols)
    done = data[data["finished"].astype(bool)] if "finished" in data else data.iloc[:0]
    rows = []
    for key, g in done.groupby(["figure", "task", "method", "seed"], sort=True):
        g = g.sort_values("env_step")
        online = g.loc[g["env_step"] > 0, "value"]
        at0 = g.loc[g["env_step"] == 0, "value"]
        rows.append((*key, float(g["value"].iloc[-1]),
                     float(online.mean()) if len(online) else np.nan,
                     float(at0.iloc[0]) if len(at0) else np.nan,
                     float(online.iloc[0]) if len(online) else np.nan))
    return pd.DataFrame(rows, columns=cols)


def _curves(runs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(env steps, values [seeds, steps]) of one arm's finished runs on one task, on the steps
    every seed has."""
    wide = aligned_seed_table(runs)
    return wide.index.to_numpy(dtype=np.int64), wide.to_numpy(dtype=float).T


def smooth_rows(values: np.ndarray, window: int) -> np.ndarray:
    """`curves.running_average` of every row of [..., steps] (the window shrinks at the ends)."""
    x = np.asarray(values, dtype=float)
    n = x.shape[-1]
    h = np.minimum((max(int(window), 1) - 1) // 2, np.minimum(np.arange(n), n - 1 - np.arange(n)))
    padded = np.concatenate([np.zeros(x.shape[:-1] + (1,)), np.cumsum(x, axis=-1)], axis=-1)
    i = np.arange(n)
    return (padded[..., i + h + 1] - padded[..., i - h]) / (2 * h + 1)


def reach_index(smoothed: np.ndarray, target) -> np.ndarray:
    """Per row of [..., steps]: the first index from which the row stays >= target (up to
    stats.REACH_TOLERANCE) to its end; -1 when its last value is below (never reached)."""
    below = smoothed < np.asarray(target, dtype=float)[..., None] - stats.REACH_TOLERANCE
    n = smoothed.shape[-1]
    last_below = np.where(below.any(axis=-1), n - 1 - np.argmax(below[..., ::-1], axis=-1), -1)
    return np.where(last_below == n - 1, -1, last_below + 1)


def steps_to_target(steps: np.ndarray, values: np.ndarray, target: float,
                    window: int) -> np.ndarray:
    """Per run (row of `values`): the first env step from which its smoothed curve stays at or
    above `target`; a run that never does counts as its last step plus one evaluation interval."""
    idx = reach_index(smooth_rows(values, window), np.full(values.shape[0], target))
    never = steps[-1] + (steps[-1] - steps[-2] if len(steps) > 1 else 1)
    return np.where(idx < 0, never, steps[np.maximum(idx, 0)]).astype(float)


# Why a sample-efficiency ratio is undefined (stats.sample_efficiency's statuses, in words; short
# for the README).
RATIO_REASONS = {
    "reached_at_step_0": ("EXPO is at or above the target from step 0, before any online step",
                          "at target at step 0"),
    "baseline_final_zero": ("the baseline's final success is 0, which any curve reaches",
                            "baseline final 0"),
    "baseline_no_online_steps": ("the baseline has no online steps", "baseline: no online steps"),
    "expo_no_online_steps": ("EXPO has no online steps", "EXPO: no online steps"),
}


def _ratios(arm_curves: np.ndarray, other_finals: np.ndarray, steps: np.ndarray,
            budget: float, window: int) -> tuple[np.ndarray, np.ndarray]:
    """The paper's ratio for [..., seeds, steps] arm curves and [..., seeds] other finals:
    (ratio, status) arrays; ratio = budget / the first step from which the arm's smoothed mean
    curve stays at or above the other's mean final; a curve that never does gives its bound
    budget / last step (`stats.sample_efficiency`'s ratio_or_bound)."""
    target = other_finals.mean(axis=-1)
    idx = reach_index(smooth_rows(arm_curves.mean(axis=-2), window), target)
    reached = steps[np.maximum(idx, 0)].astype(float)
    with np.errstate(divide="ignore"):
        ratio = np.where(idx < 0, budget / steps[-1], budget / reached)
    status = np.where(idx < 0, "expo_never_reaches",
                      np.where(reached == 0, "reached_at_step_0", "ok")).astype(object)
    status = np.where(target <= 0, "baseline_final_zero", status)
    if budget <= 0:
        status[...] = "baseline_no_online_steps"
    if steps[-1] <= 0:
        status[...] = "expo_no_online_steps"
    ratio = np.where(np.isin(status, list(RATIO_REASONS)), np.nan, ratio)
    return ratio, status


# ----------------------------------------------------------------------------- permutation test

def _two_sample(a, b) -> tuple[np.ndarray, np.ndarray]:
    """Mean difference a - b for every reassignment of the pooled runs to groups of len(a) and
    len(b): (statistic [..., K], coefficient [K]). The identity is assignment 0. The coefficient
    c says how a shift D of a's scores moves that assignment's statistic relative to the observed
    one: by -D * c (c = k (1/n_a + 1/n_b) for k runs swapped; 0 only for the identity)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    na, nb = a.shape[-1], b.shape[-1]
    pooled = np.concatenate([a, b], axis=-1)
    idx = np.array(list(itertools.combinations(range(na + nb), na)), dtype=np.int64)
    mask = np.zeros((len(idx), na + nb))
    np.put_along_axis(mask, idx, 1.0, axis=1)
    weights = mask / na - (1.0 - mask) / nb
    swapped = na - mask[:, :na].sum(axis=1)
    return pooled @ weights.T, swapped * (1.0 / na + 1.0 / nb)


def _paired(d) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the per-run differences d for every sign flip: (statistic [..., 2^n], coefficient
    [2^n]), the identity first (see `_two_sample`)."""
    d = np.asarray(d, dtype=float)
    n = d.shape[-1]
    signs = 1.0 - 2.0 * np.array(list(itertools.product((0, 1), repeat=n)), dtype=float)
    return d @ signs.T / n, (1.0 - signs).sum(axis=1) / n


def _sampled(values: list, paired: bool, rng: np.random.Generator, draws: int):
    """A Monte Carlo stand-in for `_two_sample` / `_paired` of one task: draws random
    assignments (the identity first)."""
    if paired:
        d = np.asarray(values[0], dtype=float)
        signs = rng.choice([-1.0, 1.0], size=(draws, len(d)))
        signs[0] = 1.0
        return signs @ d / len(d), (1.0 - signs).sum(axis=1) / len(d)
    a, b = (np.asarray(v, dtype=float) for v in values)
    na, nb = len(a), len(b)
    pooled = np.concatenate([a, b])
    perm = np.argsort(rng.random((draws, na + nb)), axis=1)
    perm[0] = np.arange(na + nb)
    in_a = perm[:, :na]
    stat = pooled[in_a].mean(axis=1) - (pooled.sum() - pooled[in_a].sum(axis=1)) / nb
    swapped = (in_a >= na).sum(axis=1)
    return stat, swapped * (1.0 / na + 1.0 / nb)


def permutation_distribution(per_task: list, paired: bool, rng: np.random.Generator):
    """(statistic [K], coefficient [K], exact) of the stratified test: the statistic is the mean
    over tasks of each task's statistic, over every combination of the tasks' assignments (exact),
    or over MONTE_CARLO_DRAWS random ones when there are more than EXACT_LIMIT. per_task: a list
    of (a, b) per task, or of (d,) for a paired test. The observed statistic is entry 0."""
    sizes = [2 ** len(v[0]) if paired else math.comb(len(v[0]) + len(v[1]), len(v[0]))
             for v in per_task]
    exact = math.prod(sizes) <= EXACT_LIMIT
    if exact:
        stat, coef = np.zeros(1), np.zeros(1)
        for v in per_task:
            s, c = _paired(v[0]) if paired else _two_sample(*v)
            stat = (stat[:, None] + s[None, :]).ravel()
            coef = (coef[:, None] + c[None, :]).ravel()
    else:
        stat, coef = np.zeros(MONTE_CARLO_DRAWS), np.zeros(MONTE_CARLO_DRAWS)
        for v in per_task:
            s, c = _sampled(v, paired, rng, MONTE_CARLO_DRAWS)
            stat, coef = stat + s, coef + c
    return stat / len(per_task), coef / len(per_task), exact


def p_values(stat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One-sided p-values of the observed statistic (entry 0 of the last axis): (p for a larger
    statistic, p for a smaller one): the share of the assignments at least as extreme, the
    observed one included (for Monte Carlo draws, whose entry 0 is the observed assignment, this
    is the usual (1 + count) / (1 + draws))."""
    obs = stat[..., :1]
    k = stat.shape[-1]
    return ((stat >= obs - TOLERANCE).sum(axis=-1) / k,
            (stat <= obs + TOLERANCE).sum(axis=-1) / k)


def smallest_significant(stat: np.ndarray, coef: np.ndarray, level: float) -> float:
    """The smallest observed statistic the test would call significant at `level` (one-sided,
    larger is significant) if the arm's scores were shifted, each arm keeping its spread: any
    larger one is; nan when no shift can reach `level` (too few assignments). Shifting the arm by
    D moves every other assignment's statistic relative to the observed one by -D * coef, so an
    assignment stops counting once D exceeds (stat - stat_obs) / coef (`_two_sample`)."""
    allowed = math.floor(level * len(stat) + 1e-9) - 1   # assignments besides the identity
    moving = coef > TOLERANCE
    allowed -= int((~moving).sum()) - 1                  # any that no shift moves
    if allowed < 0:
        return float("nan")
    thresholds = np.sort((stat[moving] - stat[0]) / coef[moving])[::-1]
    if allowed >= len(thresholds):
        return float("-inf")
    return float(stat[0] + thresholds[allowed])


def holm(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Holm's step-down adjustment over the last axis: (adjusted p, divisor of each entry), the
    divisor being m - rank + 1 for the entry of rank `rank` (1 = smallest p). NaN counts as 1."""
    p = np.where(np.isnan(p), 1.0, np.asarray(p, dtype=float))
    m = p.shape[-1]
    order = np.argsort(p, axis=-1, kind="stable")
    ranked = np.take_along_axis(p, order, axis=-1)
    factors = m - np.arange(m)
    adjusted_ranked = np.minimum(1.0, np.maximum.accumulate(ranked * factors, axis=-1))
    adjusted = np.empty_like(p)
    divisors = np.empty(p.shape, dtype=np.int64)
    np.put_along_axis(adjusted, order, adjusted_ranked, axis=-1)
    np.put_along_axis(divisors, order, np.broadcast_to(factors, p.shape), axis=-1)
    return adjusted, divisors


def decide(p_holds_holm, p_against_holm, measured) -> np.ndarray:
    """The verdicts for Holm-adjusted p-values (module docstring)."""
    out = np.where(np.asarray(p_holds_holm) <= ALPHA + 1e-12, HOLDS,
                   np.where(np.asarray(p_against_holm) <= ALPHA + 1e-12, DOES_NOT_HOLD,
                            NOT_RESOLVABLE)).astype(object)
    return np.where(measured, out, NOT_MEASURED)


# ----------------------------------------------------------------------------- the table

COLUMNS = ["claim", "source", "words", "quoted", "paper", "here", "folder", "score", "reason",
           "arm", "other", "arm_score", "other_score", "paired", "margin", "tasks", "arm_seeds",
           "other_seeds", "arm_mean", "other_mean", "arm_sd", "other_sd", "effect",
           "resolvable", "p", "p_holm", "p_against", "p_against_holm", "holm_divisor",
           "assignments", "exact", "ratio", "ratio_low", "ratio_high", "ratio_note", "ratio_status",
           "verdict"]


def _here(folder_runs: pd.DataFrame, labels: list[str], tasks: list[str]) -> dict:
    """This run's tasks with their data and demos, scale and online steps, read from its runs (the
    scale from its grid): {"tasks": "Lift, 10 scripted demos", "scale": "mini scale",
    "steps": "10k online steps"}."""
    from analysis.style import TASK_NAMES
    from expo.protocol import TASKS

    runs = folder_runs[folder_runs["method"].isin(labels)]
    if runs.empty:
        return {}
    folder = str(runs["figure"].iloc[0])
    try:
        from experiments import grids
        scale = f"{grids.load(folder).get('scale', '?')} scale"
    except Exception:                     # noqa: BLE001 - a folder without a grid: say nothing
        scale = ""
    parts = []
    demos = sorted({label.partition("-demos")[2] for label in labels if "-demos" in label})
    for task in tasks:
        spec = TASKS.get(task)
        n = "/".join(demos) if demos else (str(spec.num_demos) if spec and spec.num_demos
                                           else "all")
        data = (", ".join(sorted(set(runs.loc[runs["task"] == task, "dataset"].dropna().astype(str))
                                 - {""})) if "dataset" in runs else "")
        name = TASK_NAMES.get(task, task).split(" ", 1)[-1]
        parts.append(f"{name}, {n} demos" + (f" ({data})" if data else ""))
    steps = int(runs["env_step"].max())
    steps_text = f"{steps / 1000:g}k" if steps >= 1000 else str(steps)
    return {"tasks": "; ".join(parts), "scale": scale, "steps": f"{steps_text} online steps"}


def _per_task(scores: pd.DataFrame, label: str, score: str, tasks) -> list[np.ndarray]:
    g = scores[scores["method"] == label]
    return [g.loc[g["task"] == t].sort_values("seed")[score].dropna().to_numpy(float)
            for t in tasks]


def _paired_per_task(scores: pd.DataFrame, v: Versus, tasks) -> list[np.ndarray]:
    g = scores[scores["method"] == v.arm]
    out = []
    for t in tasks:
        x = g[g["task"] == t].sort_values("seed")
        x = x[x[v.arm_score].notna() & x[v.other_score].notna()]
        out.append(x[v.arm_score].to_numpy(float) - x[v.other_score].to_numpy(float))
    return out


def _pooled_sd(per_task: list) -> float:
    """Within-task standard deviation of the scores (ddof 1), pooled over tasks."""
    num = sum(((v - v.mean()) ** 2).sum() for v in per_task if len(v) > 1)
    dof = sum(len(v) - 1 for v in per_task if len(v) > 1)
    return float(np.sqrt(num / dof)) if dof else float("nan")


def _steps_rows(folder_runs: pd.DataFrame, v: Versus, tasks, reps: int,
                rng: np.random.Generator):
    """Per task, the two arms' steps to the other's final success, and the paper's ratio with its
    bootstrap interval (the arms' seeds resampled, each arm on its own)."""
    a_scores, b_scores, ratios, boots, statuses = [], [], [], [], []
    for t in tasks:
        g = folder_runs[folder_runs["task"] == t]
        sa, ca = _curves(g[g["method"] == v.arm])
        sb, cb = _curves(g[g["method"] == v.other])
        window = task_window(t)
        target = float(cb[:, -1].mean())
        a_scores.append(steps_to_target(sa, ca, target, window))
        b_scores.append(steps_to_target(sb, cb, target, window))
        ratio, status = _ratios(ca, cb[:, -1], sa, float(sb[-1]), window)
        ia = rng.integers(0, ca.shape[0], size=(reps, ca.shape[0]))
        ib = rng.integers(0, cb.shape[0], size=(reps, cb.shape[0]))
        boot, boot_status = _ratios(ca[ia], cb[:, -1][ib], sa, float(sb[-1]), window)
        boot = np.where(boot_status == "reached_at_step_0", np.inf, boot)
        ratios.append(float(ratio))
        statuses.append(str(status))
        boots.append(boot)
    return a_scores, b_scores, ratios, statuses, boots


def _ratio_summary(ratios, statuses, boots) -> tuple[float, float, float, str, str]:
    """(ratio, low, high, note, statuses) over a claim's tasks: the median over tasks (each
    resample's median for the interval; a resample in which EXPO is at the target from step 0
    counts as infinite); the note says why the ratio is undefined, or that it is a bound."""
    defined = [r for r in ratios if not np.isnan(r)]
    if not defined:
        undefined = sorted({s for s in statuses if s in RATIO_REASONS})
        return (np.nan, np.nan, np.nan,
                "undefined: " + "; ".join(RATIO_REASONS[s][0] for s in undefined),
                ";".join(undefined))
    point = float(np.median(defined))
    with np.errstate(all="ignore"):
        per_rep = np.stack(boots, axis=-1)
        finite_or_inf = ~np.isnan(per_rep)
        med = np.array([np.median(r[m]) if m.any() else np.nan
                        for r, m in zip(per_rep, finite_or_inf)])
    med = med[~np.isnan(med)]
    low, high = (np.quantile(med, [0.025, 0.975], method="inverted_cdf") if len(med)
                 else (np.nan, np.nan))
    note = ""
    if "expo_never_reaches" in statuses:
        note = "EXPO's mean curve ends below the target: the ratio is its upper bound"
    return point, float(low), float(high), note, ";".join(sorted(set(statuses)))


def evaluate_claims(data: pd.DataFrame, claims: Optional[list[Claim]] = None,
                    reps: int = stats.DEFAULT_BOOTSTRAP_REPS,
                    seed: int = stats.DEFAULT_BOOTSTRAP_SEED) -> pd.DataFrame:
    """One row per (claim, compared pair): both arms' mean scores, the effect in the paper's
    direction, the one-sided exact permutation p-values (raw and Holm-adjusted over the claim's
    rows) in the paper's direction and against it, the smallest resolvable effect, for a
    steps-to-target row the paper's sample-efficiency ratio with its bootstrap interval, and the
    verdict (module docstring). `seed` and `reps` only draw the ratio's interval (and a Monte
    Carlo test beyond EXACT_LIMIT assignments): the verdicts do not depend on them."""
    claims = CLAIMS if claims is None else claims
    scores = run_scores(data)
    heres: list = []
    done = (data[data["finished"].astype(bool)] if "finished" in data and not data.empty
            else data.iloc[:0])
    rows = []
    for number, claim in enumerate(claims, start=1):
        rng = np.random.default_rng(seed)
        in_folder = scores[scores["figure"] == claim.folder]
        runs = done[done["figure"] == claim.folder] if not done.empty else done
        if claim.task:
            in_folder = in_folder[in_folder["task"] == claim.task]
            runs = runs[runs["task"] == claim.task] if not runs.empty else runs
        sign = -1.0 if claim.score in LOWER_IS_BETTER else 1.0
        family = []
        for v in claim.rows:
            labels = {v.arm, v.other}
            tasks = sorted(set.intersection(*(set(in_folder.loc[in_folder["method"] == x, "task"])
                                              for x in labels)))
            here = _here(runs, claim.labels, tasks or sorted(set(in_folder["task"])))
            heres.append((claim.folder, here, number))
            row = dict(claim=number, source=claim.source, words=claim.words, quoted=claim.quoted,
                       paper=claim.paper, here=", ".join(x for x in here.values() if x),
                       folder=claim.folder, score=claim.score, reason=claim.reason, arm=v.arm,
                       other=v.other, arm_score=v.arm_score, other_score=v.other_score,
                       paired=v.paired, margin=claim.margin, tasks=len(tasks))
            if v.paired:
                d = _paired_per_task(in_folder, v, tasks)
                n = min((len(x) for x in d), default=0)
                row.update(arm_seeds=n, other_seeds=n)
                if not tasks or n == 0:
                    family.append((row, None))
                    continue
                a = _per_task(in_folder, v.arm, v.arm_score, tasks)
                b = _per_task(in_folder, v.other, v.other_score, tasks)
                parts = [(sign * x + claim.margin,) for x in d]
                row.update(arm_sd=_pooled_sd(d), other_sd=np.nan)
            else:
                if v.arm_score == "steps_to_target":
                    a, b, ratios, statuses, boots = (
                        _steps_rows(runs, v, tasks, reps, rng) if tasks else ([], [], [], [], []))
                    if tasks:
                        r, lo, hi, note, status = _ratio_summary(ratios, statuses, boots)
                        row.update(ratio=r, ratio_low=lo, ratio_high=hi, ratio_note=note,
                                   ratio_status=status)
                else:
                    a = _per_task(in_folder, v.arm, v.arm_score, tasks)
                    b = _per_task(in_folder, v.other, v.other_score, tasks)
                row.update(arm_seeds=min((len(x) for x in a), default=0),
                           other_seeds=min((len(x) for x in b), default=0))
                if not tasks or min(row["arm_seeds"], row["other_seeds"]) == 0:
                    family.append((row, None))
                    continue
                parts = [(sign * x + claim.margin, sign * y) for x, y in zip(a, b)]
                row.update(arm_sd=_pooled_sd(a), other_sd=_pooled_sd(b))
            stat, coef, exact = permutation_distribution(parts, v.paired, rng)
            p_up, p_down = p_values(stat)
            row.update(arm_mean=float(np.mean([x.mean() for x in a])),
                       other_mean=float(np.mean([y.mean() for y in b])),
                       effect=float(stat[0] - claim.margin), p=float(p_up),
                       p_against=float(p_down), assignments=len(stat), exact=exact)
            family.append((row, (stat, coef)))
        p = np.array([r.get("p", np.nan) for r, _ in family])
        q = np.array([r.get("p_against", np.nan) for r, _ in family])
        p_holm, divisors = holm(p)
        q_holm, _ = holm(q)
        # the divisor a row would meet at Holm's next step: its own for a rejected row, the
        # number of rows not rejected for the others (all of them when none is)
        rejected = p_holm <= ALPHA + 1e-12
        divisors = np.where(rejected, divisors, len(p) - int(rejected.sum()))
        for (row, dist), ph, qh, k in zip(family, p_holm, q_holm, divisors):
            measured = (dist is not None and row["tasks"] > 0
                        and min(row["arm_seeds"], row["other_seeds"]) >= MIN_SEEDS)
            if dist is not None:
                best = smallest_significant(dist[0], dist[1], ALPHA / k)
                row.update(p_holm=float(ph), p_against_holm=float(qh), holm_divisor=int(k),
                           resolvable=best - claim.margin if np.isfinite(best) else best)
                row["verdict"] = str(decide(ph, qh, measured))
            else:
                row["verdict"] = NOT_MEASURED
            rows.append(row)
    table = pd.DataFrame(rows, columns=COLUMNS)
    table.attrs["here"] = heres
    return table


# ----------------------------------------------------------------------------- error rates

SIMULATED = ("no effect", "no effect, unequal spreads", "effect")


def simulate_error_rates(table: pd.DataFrame, seeds: int = MIN_SEEDS, sims: int = 2000,
                         seed: int = 0) -> pd.DataFrame:
    """The procedure's error rates per claim on simulated per-seed scores with the spreads of
    `table`'s runs (normal noise, `seeds` runs per arm), decided as `evaluate_claims` decides
    (the same exact tests, Holm over the claim's rows, ALPHA). One row per claim and scenario:

    * ``no effect``: every arm of the claim drawn from one distribution (the claim's arms' root-
      mean-square spread; for a no-drop claim the arm lower by the margin, the boundary the test
      moves to 0), the null hypothesis of the permutation tests, under which each direction's
      wrong verdict comes out at most ALPHA (sampling error aside);
    * ``no effect, unequal spreads``: equal means but each arm with its own spread, as in the
      committed runs (a permutation test is exact only for the first case; this measures by how
      much unequal spreads move it);
    * ``effect``: each arm with its own spread, the arm better in the paper's direction by twice
      the row's pooled spread (0.1 where that is 0).

    Columns: ``holds`` / ``does_not_hold`` = the share of simulations in which any row of the
    claim says so (a wrong verdict, except "holds" under an effect) and ``all_hold`` = the share
    in which every row holds (the power under an effect). Rows sharing an arm and its score share
    its simulated runs, as in the committed grid. A paired row draws its per-run differences with
    the spread of the observed ones."""
    rng = np.random.default_rng(seed)
    out = []
    for number, g in table.groupby("claim", sort=True):
        g = g[g["effect"].notna()]
        if g.empty:
            continue
        sd_a = g["arm_sd"].fillna(0.0).to_numpy(float)
        sd_b = g["other_sd"].fillna(0.0).to_numpy(float)
        paired = g["paired"].to_numpy(bool)
        spreads = np.concatenate([sd_a, sd_b[~paired]])
        common = float(np.sqrt(np.mean(spreads ** 2))) if spreads.size else 0.0
        pooled = np.where(paired, sd_a, np.sqrt((sd_a ** 2 + sd_b ** 2) / 2.0))
        effect = np.where(pooled > 0, 2.0 * pooled, 0.1)
        for scenario in SIMULATED:
            same = scenario == "no effect"
            shift = effect if scenario == "effect" else np.zeros(len(g))
            shared, p_up, p_down = {}, [], []
            for i, r in enumerate(g.itertuples(index=False)):
                if r.paired:
                    d = (common if same else sd_a[i]) * rng.standard_normal((sims, seeds))
                    stat, _ = _paired(d + shift[i])
                else:
                    key = (r.arm, r.arm_score)
                    if key not in shared:
                        shared[key] = rng.standard_normal((sims, seeds))
                    a = (common if same else sd_a[i]) * shared[key] + shift[i]
                    b = (common if same else sd_b[i]) * rng.standard_normal((sims, seeds))
                    stat, _ = _two_sample(a, b)
                up, down = p_values(stat)
                p_up.append(up)
                p_down.append(down)
            verdicts = decide(holm(np.stack(p_up, axis=-1))[0],
                              holm(np.stack(p_down, axis=-1))[0], True)
            out.append(dict(claim=number, scenario=scenario, rows=len(g), seeds=seeds, sims=sims,
                            holds=float((verdicts == HOLDS).any(axis=1).mean()),
                            does_not_hold=float((verdicts == DOES_NOT_HOLD).any(axis=1).mean()),
                            all_hold=float((verdicts == HOLDS).all(axis=1).mean())))
    return pd.DataFrame(out)


# ----------------------------------------------------------------------------- markdown

def _num(x, digits=2, signed=False) -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "–"
    if np.isinf(x):
        return ("+" if signed and x > 0 else "") + ("∞" if x > 0 else "-∞")
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def _steps(x, signed=False) -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "–"
    return (f"{x / 1000:+.1f}k" if signed else f"{x / 1000:.1f}k")


def effect_text(r, short: bool = False) -> str:
    """The effect in the paper's direction: success difference, or env steps fewer for a
    steps-to-target row."""
    if r.score == "steps_to_target":
        return _steps(r.effect, True) + ("" if short else " steps")
    return _num(r.effect, signed=True)


def resolvable_text(r) -> str:
    if r.resolvable is None or pd.isna(r.resolvable):
        return "none" if not pd.isna(r.effect) else "–"
    return _steps(r.resolvable, True) if r.score == "steps_to_target" else _num(r.resolvable,
                                                                                 signed=True)


def ratio_text(r, short: bool = False) -> str:
    """The paper's sample-efficiency ratio of a steps-to-target row with its interval, or why it
    is undefined."""
    if r.score != "steps_to_target" or pd.isna(r.effect):
        return ""
    if pd.isna(r.ratio):
        if not short:
            return f"ratio {r.ratio_note}"
        return "ratio undefined: " + "; ".join(RATIO_REASONS[s][1]
                                               for s in str(r.ratio_status).split(";"))
    text = f"ratio {_num(r.ratio)} [{_num(r.ratio_low)}, {_num(r.ratio_high)}]"
    return text + (f" ({r.ratio_note})" if r.ratio_note and not short else
                   " (bound)" if r.ratio_note else "")


def p_text(r) -> str:
    """The Holm-adjusted p that supports the verdict's direction: the paper's, or against it."""
    if pd.isna(r.p_holm):
        return "–"
    if r.verdict == DOES_NOT_HOLD:
        return f"against: {r.p_against_holm:.2g}"
    return f"{r.p_holm:.2g}"


def _versus(r) -> str:
    if r.paired:
        return f"{r.arm}: {SCORES[r.arm_score]} vs {SCORES[r.other_score]}"
    if r.arm_score != r.score or r.other_score != r.score:
        return f"{r.arm} vs {r.other} ({SCORES[r.arm_score]})"
    return f"{r.arm} vs {r.other}"


def markdown(table: pd.DataFrame) -> list[str]:
    """The full claims table (figures/REPORT.md): one row per comparison; the claim's words,
    source, the paper's tasks and budget, this run's, the score and its reason on its first row."""
    lines = ["| # | claim | paper | here | score (why) | arm vs other | arm mean | other mean | "
             "effect | p (Holm) | p against (Holm) | smallest resolvable | runs | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    previous = None
    for r in table.itertuples(index=False):
        first = r.claim != previous
        previous = r.claim
        effect = effect_text(r) + (f"; {ratio_text(r)}" if ratio_text(r) else "")
        digits = 0 if r.score == "steps_to_target" else 2
        lines.append(
            f"| {r.claim if first else ''} | {f'{r.words} ({r.source})' if first else ''} | "
            f"{r.paper if first else ''} | {r.here if first else ''} | "
            f"{f'{SCORES[r.score]}: {r.reason}' if first else ''} | {_versus(r)} | "
            f"{_num(r.arm_mean, digits)} | {_num(r.other_mean, digits)} | {effect} | "
            f"{_num(r.p_holm, 3)} | {_num(r.p_against_holm, 3)} | {resolvable_text(r)} | "
            f"{r.arm_seeds}/{r.other_seeds} | {r.verdict} |")
    return lines


def compact_markdown(table: pd.DataFrame) -> list[str]:
    """The README's claims table: the claim's number and words with its source, the paper's tasks
    and budget and the score on its first row; per comparison the effect, the Holm-adjusted p, the
    smallest resolvable effect and the verdict (figures/REPORT.md adds the arms' means and runs,
    claims.csv every column)."""
    lines = ["| claim (source; paper's tasks; score) | arm vs other | effect | p | resolvable | "
             "verdict |", "|---|---|---|---|---|---|"]
    previous = None
    for r in table.itertuples(index=False):
        first = r.claim != previous
        previous = r.claim
        words = r.words.removesuffix(SUITE)
        claim = (f"{r.claim}. {words} ({r.source}; {r.paper}; {SCORES[r.score]})" if first
                 else "")
        ratio = ratio_text(r, short=True)
        effect = effect_text(r, short=True) + (f"; {ratio}" if ratio else "")
        lines.append(f"| {claim} | {_versus(r)} | {effect} | {p_text(r)} | "
                     f"{resolvable_text(r)} | {r.verdict} |".replace("|  |", "| |"))
    return lines


def here_lines(table: pd.DataFrame) -> list[str]:
    """One line: what this repository's runs are (task and demos per results folder, with the
    claims that read them; scale, online steps and the embedded scripted data said once when
    every folder shares them)."""
    groups: dict[tuple, list] = {}
    for folder, here, number in table.attrs.get("here", []):
        if here:
            numbers = groups.setdefault((folder, here["tasks"], here["scale"], here["steps"]), [])
            numbers += [number] if number not in numbers else []
    if not groups:
        return []
    common = {k[2:] for k in groups}
    scripted = all(re.search(r"\((\w+_scripted)\)", part) for k in groups
                   for part in k[1].split("; "))
    parts = []
    for (folder, tasks, scale, steps), n in groups.items():
        if scripted:
            tasks = re.sub(r" \(\w+_scripted\)", "", tasks)
        parts.append(f"`{folder}` {tasks}" + ("" if len(common) == 1 else f", {scale}, {steps}")
                     + f" (claim{'s' if len(n) > 1 else ''} {', '.join(map(str, n))})")
    shared = [x for x in (next(iter(common)) if len(common) == 1 else ()) if x]
    shared += ["scripted demos"] if scripted else []
    head = "Here" + (f" ({', '.join(shared)})" if shared else "")
    return [f"{head}: " + "; ".join(parts) + "."]


DEFINITION = (
    "Each claim: the paper's words in quotation marks, or else the suite's reading of a figure "
    "(so marked); the paper's tasks and online budget beside this run's (task, demos and data, "
    "scale, online steps). Score of a finished run, one per claim, fixed in advance (its reason in "
    "the table): *final* = success at its last evaluation; *online mean* = mean success over the "
    "evaluations after step 0; *step 0* / *first online* = success before any online step / at the "
    "first evaluation after it; *steps to target* = the env step from which the run's smoothed "
    "curve stays at or above the other arm's final success (mean over its runs; never: last step + "
    "one evaluation interval), lower is better. A steps-to-target row also gives the paper's "
    "sample-efficiency ratio (the other arm's env steps over the steps from which EXPO's smoothed "
    "mean curve stays at or above that target; `analysis.stats.sample_efficiency`) with a 95% "
    "percentile interval over bootstrap resamples of each arm's seeds (descriptive; it decides "
    "nothing), or why it is undefined. Effect: difference of the arms' mean scores (mean over "
    "tasks of the per-task differences) in the paper's direction (steps: how many fewer). p: exact "
    "one-sided permutation test of the per-seed scores in the paper's direction (every "
    "reassignment of each task's runs to the two arms; a paired row, two scores of the same runs: "
    "every sign flip of the per-run differences), Holm-adjusted over the claim's rows; p against: "
    f"the same in the opposite direction. A no-drop claim adds a margin of {NO_DROP_MARGIN:.2f} to "
    "the arm's scores (a drop smaller than that counts as none). Verdict: "
    f"**holds** / **does not hold** at a Holm-adjusted p <= {ALPHA:g} in / against the paper's "
    "direction, **not resolvable at this scale** otherwise, **not measured yet** below "
    f"{MIN_SEEDS} finished runs per arm (3 runs against 3 give at best p = 1/20 = 0.05 before "
    "Holm; a paired row with 5 runs at best 1/32). Smallest resolvable: the smallest effect the "
    "row's test would call significant at these seed counts and the observed spread of each arm "
    f"(the arms' scores shifted apart), at {ALPHA:g} divided by the row's Holm divisor (the "
    "number of the claim's rows Holm has not rejected); none: no effect can reach it with these "
    "seeds. Runs: finished runs of arm/other. No verdict depends on a random draw: the tests "
    "enumerate every assignment.")


def error_rate_lines(table: pd.DataFrame, sims: int = 2000, seed: int = 0) -> list[str]:
    """figures/REPORT.md's table of `simulate_error_rates` for the claims table's spreads."""
    rates = simulate_error_rates(table, sims=sims, seed=seed)
    if rates.empty:
        return []
    lines = [f"Error rates of this procedure, simulated ({sims} simulations per claim and case, "
             f"{MIN_SEEDS} runs per arm, normal scores with the spreads of these runs; "
             "`analysis.claims.simulate_error_rates`): the share of simulations in which any row "
             "of the claim says *holds* / *does not hold*, and in which every row holds. No "
             "effect: every arm of the claim from one distribution, where an exact test keeps "
             f"each wrong verdict at or below {ALPHA:g}; unequal spreads: equal means, each arm "
             "with its own spread (the permutation test is not exact there); effect: the arm "
             "better by twice the row's pooled spread.", "",
             "| claim | rows | no effect: holds | no effect: does not hold | unequal spreads: "
             "holds | unequal spreads: does not hold | effect: does not hold | effect: all hold |",
             "|---|---|---|---|---|---|---|---|"]
    for claim, g in rates.groupby("claim", sort=True):
        by = g.set_index("scenario")
        lines.append(
            f"| {claim} | {int(g['rows'].iloc[0])} | {by.loc['no effect', 'holds']:.3f} | "
            f"{by.loc['no effect', 'does_not_hold']:.3f} | "
            f"{by.loc['no effect, unequal spreads', 'holds']:.3f} | "
            f"{by.loc['no effect, unequal spreads', 'does_not_hold']:.3f} | "
            f"{by.loc['effect', 'does_not_hold']:.3f} | {by.loc['effect', 'all_hold']:.3f} |")
    return lines + [""]


LEGEND = (
    "Quoted: the paper's words; unquoted: the suite's reading. Effect: mean difference in the "
    "paper's direction (steps: env steps fewer; ratio: the paper's, 95% bootstrap interval). p: "
    "exact one-sided permutation test, Holm-adjusted. Resolvable: the smallest effect that test "
    "could call significant (definitions: figures/REPORT.md).")
