"""The claims table: each claim of the paper that the CPU-scale grids (experiments/grids/cpu3.py,
cpu4.py) can test, the effect measured in results/, and a verdict.

A claim compares one arm (the one the paper says is better) against one or more others on the runs
of one results folder. Per run, a *score*:

* ``final``: the success at the run's last evaluation (the paper's "final performance");
* ``online_mean``: the mean success over the evaluations after online step 0, i.e. the normalised
  area under the learning curve: the sample-efficiency reading of "learns faster".

Only finished runs count (status.json ``finished``; a run still going would be read at the wrong
step). Per arm, the IQM of its runs' scores (rliable's estimator, `analysis.stats.rliable_estimates`,
pooled over the folder's tasks as rliable's runs x tasks matrix); the *effect* is IQM(arm) -
IQM(other). Its 95% interval is the percentile interval of that difference over stratified
bootstrap resamples (`analysis.stats.stratified_bootstrap`: each task's runs are redrawn, for each
arm on its own), so that the interval says how far the seeds' spread leaves the difference open.

Verdict, in the claim's direction:

* **holds**: the difference's interval lies above 0;
* **does not hold**: it lies below 0 (the other arm is measurably better);
* **not resolvable at this scale**: the interval contains 0, the seeds' spread is larger than the
  difference (more seeds, more evaluation episodes or longer runs would be needed);
* **not measured yet**: an arm has fewer than `MIN_SEEDS` finished runs on a task.

The claims are data (`CLAIMS`); each names where in the paper it is made. The headline claim is
quoted from the abstract; a figure's claim is what that figure compares, stated as a hypothesis
with the direction the paper reports (quotation marks mark the paper's own words).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
import pandas as pd

from analysis import stats

MIN_SEEDS = 3
SCORES = {
    "final": "final",
    "online_mean": "online mean",
}
HOLDS, DOES_NOT_HOLD, NOT_RESOLVABLE, NOT_MEASURED = (
    "holds", "does not hold", "not resolvable at this scale", "not measured yet")


@dataclasses.dataclass(frozen=True)
class Claim:
    source: str                  # where the paper makes it: figure and section
    words: str                   # the claim: quoted where in quotation marks, else what the figure shows
    folder: str                  # results/<folder>: the grid whose runs test it
    arm: str                     # the run label the claim says is better
    against: tuple[str, ...]     # the labels it is compared with, one table row each
    score: str                   # a key of SCORES
    shown: tuple[str, ...] = ()  # drawn in the claim's panel for reference, not compared
    task: str = ""               # only this task's runs ("": every task of the folder)

    @property
    def panel(self) -> str:
        """The figure panel that draws it: its paper figure ("Fig. 4")."""
        return next(part.strip() for part in reversed(self.source.split(";"))
                    if part.strip().startswith("Fig."))


CLAIMS: list[Claim] = [
    Claim("Abstract; Fig. 4",
          "\"up to 2-3x improvement in sample efficiency on average over prior methods [...] in "
          "the setting of fine-tuning a pretrained policy given offline data\"",
          "cpu4", "expo", ("idql", "calql", "dac", "rlpd"), "online_mean"),
    Claim("Fig. 4",
          "online fine-tuning improves on the imitation-trained base policy",
          "cpu4", "expo", ("bc",), "final"),
    Claim("Abstract; Fig. 3",
          "\"up to 2-3x improvement in sample efficiency on average over prior methods [...] in "
          "leveraging offline data to train online\"",
          "cpu3", "expo", ("rlpd", "idql", "dipo", "qsm"), "online_mean"),
    Claim("Fig. 5",
          "using the on-the-fly action in the TD backup, not only for sampling, improves "
          "performance",
          "cpu4", "expo", ("expo_no_otf_backup",), "online_mean"),
    Claim("Fig. 6",
          "the edit policy matters: without action edits performance drops",
          "cpu4", "expo", ("expo_no_edit",), "online_mean"),
    Claim("Fig. 7",
          "with a subsampled dataset, EXPO still improves well beyond the imitation policy "
          "trained on the same data",
          "cpu4", "expo-demos3", ("bc-demos3",), "final"),
    Claim("Fig. 7; Sec. 4.3",
          "on small datasets the entropy backup helps",
          "cpu4", "expo_entropy_backup-demos3", ("expo-demos3",), "final",
          shown=("expo", "expo_entropy_backup", "bc")),
    Claim("Fig. 9",
          "more base-policy samples N improve performance",
          "cpu4", "expo-N8", ("expo", "expo-N2"), "online_mean"),
    Claim("Fig. 10",
          "the edit scale beta matters: the tuned value beats smaller and larger edits",
          "cpu4", "expo", ("expo-beta0.05", "expo-beta0.3"), "online_mean"),
    *(Claim("Fig. 4", f"online fine-tuning improves on the imitation-trained base policy "
                      f"(MimicGen {name}, the suite's own env)",
            "cpu_mimicgen", "expo", ("bc",), "final", task=task)
      for task, name in (("threading", "Threading"), ("stack", "Stack"))),
]


def panels(folder: str, claims: Optional[list[Claim]] = None) -> list[tuple[str, list[str]]]:
    """[(panel, run labels)] of a results folder's claims, in the order of CLAIMS: one learning-
    curve panel per paper figure, with every arm its claims compare."""
    out: dict[str, list[str]] = {}
    for claim in CLAIMS if claims is None else claims:
        if claim.folder == folder:
            labels = out.setdefault(claim.panel, [])
            labels += [x for x in (claim.arm, *claim.against, *claim.shown) if x not in labels]
    return list(out.items())


def run_scores(data: pd.DataFrame) -> pd.DataFrame:
    """One row per finished run: ``figure, task, method, seed, final, online_mean``."""
    cols = ["figure", "task", "method", "seed", "final", "online_mean"]
    if data.empty:
        return pd.DataFrame(columns=cols)
    done = data[data["finished"].astype(bool)] if "finished" in data else data.iloc[:0]
    rows = []
    for key, g in done.groupby(["figure", "task", "method", "seed"], sort=True):
        g = g.sort_values("env_step")
        online = g.loc[g["env_step"] > 0, "value"]
        rows.append((*key, float(g["value"].iloc[-1]),
                     float(online.mean()) if len(online) else np.nan))
    return pd.DataFrame(rows, columns=cols)


def _per_task(scores: pd.DataFrame, folder: str, label: str, score: str, tasks) -> list:
    g = scores[(scores["figure"] == folder) & (scores["method"] == label)]
    return [g.loc[g["task"] == t].sort_values("seed")[score].dropna().to_numpy(float)
            for t in tasks]


def _iqm(per_task: list) -> float:
    return float(stats.rliable_estimates(np.concatenate(per_task), [len(v) for v in per_task])[0])


def _boot_iqm(per_task: list, rng: np.random.Generator, reps: int) -> np.ndarray:
    draws = stats.stratified_bootstrap(per_task, rng, reps)
    return stats.rliable_estimates(draws, [len(v) for v in per_task])[:, 0]


def verdict(low: float, high: float) -> str:
    if low > 0:
        return HOLDS
    if high < 0:
        return DOES_NOT_HOLD
    return NOT_RESOLVABLE


COLUMNS = ["claim", "source", "words", "folder", "score", "arm", "other", "tasks", "arm_seeds",
           "other_seeds", "arm_iqm", "arm_low", "arm_high", "other_iqm", "other_low", "other_high",
           "effect", "effect_low", "effect_high", "verdict"]


def evaluate_claims(data: pd.DataFrame, claims: Optional[list[Claim]] = None,
                    reps: int = stats.DEFAULT_BOOTSTRAP_REPS,
                    seed: int = stats.DEFAULT_BOOTSTRAP_SEED) -> pd.DataFrame:
    """One row per (claim, compared arm): both arms' IQM with their intervals, the effect with its
    interval and the verdict (module docstring). Deterministic: every comparison draws from
    generators seeded with `seed` (arm) and `seed + 1` (other)."""
    claims = CLAIMS if claims is None else claims
    scores = run_scores(data)
    alpha = (1.0 - stats.CONFIDENCE) / 2.0
    rows = []
    for number, claim in enumerate(claims, start=1):
        in_folder = scores[scores["figure"] == claim.folder]
        if claim.task:
            in_folder = in_folder[in_folder["task"] == claim.task]
        for other in claim.against:
            tasks = sorted(set(in_folder.loc[in_folder["method"] == claim.arm, "task"])
                           & set(in_folder.loc[in_folder["method"] == other, "task"]))
            a = _per_task(in_folder, claim.folder, claim.arm, claim.score, tasks)
            b = _per_task(in_folder, claim.folder, other, claim.score, tasks)
            seeds_a, seeds_b = (min((len(v) for v in x), default=0) if tasks else
                                int((in_folder["method"] == label).sum())
                                for x, label in ((a, claim.arm), (b, other)))
            row = dict(claim=number, source=claim.source, words=claim.words, folder=claim.folder,
                       score=claim.score, arm=claim.arm, other=other, tasks=len(tasks),
                       arm_seeds=seeds_a, other_seeds=seeds_b)
            if not tasks or min(seeds_a, seeds_b) < MIN_SEEDS:
                rows.append({**row, "verdict": NOT_MEASURED})
                continue
            boot_a = _boot_iqm(a, np.random.default_rng(seed), reps)
            boot_b = _boot_iqm(b, np.random.default_rng(seed + 1), reps)
            diff = boot_a - boot_b
            (al, ah), (bl, bh), (dl, dh) = (np.quantile(x, [alpha, 1 - alpha])
                                            for x in (boot_a, boot_b, diff))
            ia, ib = _iqm(a), _iqm(b)
            rows.append({**row, "arm_iqm": ia, "arm_low": al, "arm_high": ah, "other_iqm": ib,
                         "other_low": bl, "other_high": bh, "effect": ia - ib, "effect_low": dl,
                         "effect_high": dh, "verdict": verdict(dl, dh)})
    return pd.DataFrame(rows, columns=COLUMNS)


def _interval(point, low, high) -> str:
    if pd.isna(point):
        return "–"
    return f"{point:.2f} [{low:.2f}, {high:.2f}]"


def _signed_interval(point, low, high) -> str:
    if pd.isna(point):
        return "–"
    return f"{point:+.2f} [{low:+.2f}, {high:+.2f}]"


def markdown(table: pd.DataFrame) -> list[str]:
    """The claims table as markdown lines: one row per comparison; the claim's words, score and
    arm IQM (one arm per claim) on its first row only."""
    lines = ["| # | claim (paper) | score | arm vs other | arm IQM [95% CI] | other IQM [95% CI] | "
             "effect [95% CI] | runs | verdict |",
             "|---|---|---|---|---|---|---|---|---|"]
    previous = None
    for r in table.itertuples(index=False):
        first = r.claim != previous
        previous = r.claim
        words = f"{r.words} ({r.source}; {r.folder})" if first else ""
        lines.append(
            f"| {r.claim if first else ''} | {words} | {SCORES[r.score] if first else ''} | "
            f"{r.arm} vs {r.other} | "
            f"{_interval(r.arm_iqm, r.arm_low, r.arm_high) if first else ''} | "
            f"{_interval(r.other_iqm, r.other_low, r.other_high)} | "
            f"{_signed_interval(r.effect, r.effect_low, r.effect_high)} | "
            f"{r.arm_seeds}/{r.other_seeds} | {r.verdict} |")
    return lines


DEFINITION = (
    "Score of a finished run: *final* = success at its last evaluation; *online mean* = its mean "
    "success over the evaluations after step 0 (area under the learning curve). IQM over runs "
    "(rliable's estimator); effect = IQM(arm) - IQM(other), with the 95% interval over stratified "
    "bootstrap resamples of each arm's seeds. Verdict: **holds** / **does not hold** when the "
    "interval lies above / below 0, **not resolvable at this scale** when it contains 0, **not "
    f"measured yet** below {MIN_SEEDS} finished runs per arm. Runs: finished runs of arm/other; "
    "folder: results/<folder>.")
