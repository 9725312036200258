"""REPORT.md: every figure with the runs behind each curve, missing runs, and the statistics.

Written by `analysis.figures.make_figures` into the output folder, next to the files it links
(images, ``*_data.csv``, ``*_summary.csv``, ``aggregate_iqm.*``, ``sample_efficiency*.csv``, and
``table*`` files written by ``python -m analysis.tables --out <out>``). Every paper figure has a
section: drawn, or the reason it is not (no runs under results/, a renderer that failed).
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Optional

import pandas as pd

from analysis.completeness import FolderStatus, describe
from analysis.paper_figures import FIG1_TITLE, FIG11_TITLE, PAPER_FIGURES
from analysis.style import label_sort_key, task_sort_key
from expo.logger import atomic_write_text

REPORT_FILE = "REPORT.md"


@dataclasses.dataclass
class ReportInputs:
    results_dir: Path
    out_dir: Path
    options: object                     # analysis.figures.Options
    figures: list                       # analysis.figures.FigureResult, in drawing order
    statuses: dict[str, FolderStatus]   # results folder -> completeness
    absent: dict[str, Optional[int]]    # paper figure without a folder -> runs its grid expects
    warnings: list[str]
    final_best: pd.DataFrame
    iqm: pd.DataFrame
    iqm_excluded: dict
    iqm_files: list[Path]
    sample_efficiency: pd.DataFrame
    sample_efficiency_summary: pd.DataFrame
    se_files: list[Path]
    env_pictures: dict
    diverged: list[str] = dataclasses.field(default_factory=list)  # "run: reason"
    claims: Optional[pd.DataFrame] = None  # analysis.claims.evaluate_claims
    claims_files: list[Path] = dataclasses.field(default_factory=list)


# ----------------------------------------------------------------------------- formatting

def num(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    if isinstance(v, float) and not v.is_integer():
        return f"{v:.{digits}f}"
    return f"{int(v)}" if float(v).is_integer() else str(v)


def table(header: list[str], rows: list[list]) -> list[str]:
    def cell(x):
        return str(x).replace("|", "\\|").replace("\n", " ")
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell(x) for x in r) + " |" for r in rows]
    return out + [""]


def links(files: list[Path]) -> str:
    return " · ".join(f"[{Path(f).name}]({Path(f).name})" for f in files)


# ----------------------------------------------------------------------------- sections

def _count_cell(r) -> str:
    if not r.expected:
        return f"{r.extra} (not expected)"
    return (f"{r.drawn}/{r.expected}" + (f" +{r.extra}" if r.extra else "")
            + (" (!)" if r.drawn < r.expected else ""))


def run_counts(status: FolderStatus) -> list[str]:
    """Task x method table of "drawn/expected" runs, with a mark where runs are missing."""
    counts = status.counts()
    if counts.empty:
        return ["No runs expected or found.", ""]
    methods = sorted(set(counts["method"]), key=label_sort_key)
    rows = []
    for task in sorted(set(counts["task"]), key=task_sort_key):
        g = counts[counts["task"] == task]
        cells = {r.method: _count_cell(r) for r in g.itertuples(index=False)}
        rows.append([task] + [cells.get(m, "-") for m in methods])
    lines = ["Runs behind each curve (drawn / expected, +runs drawn that are not expected, (!) "
             f"where runs are missing; expected from {status.expected_source}"
             + (f"; {status.grid_error}" if status.grid_error else "") + "):", ""]
    lines += table(["task"] + methods, rows)
    if status.missing:
        lines += [f"Missing runs ({len(status.missing)}, no directory under "
                  f"results/{status.figure}/):", ""]
        lines += [f"- {status.figure}/{x}" for x in describe(status.missing)] + [""]
    if status.unusable:
        lines += [f"Runs found but not drawn ({len(status.unusable)}; the loader warnings "
                  f"below say why):", ""]
        lines += [f"- {status.figure}/{x}" for x in describe(status.unusable)] + [""]
    if status.not_in_grid and status.grid_error is None:
        lines += ["Runs drawn that the grid does not launch (a launch with more seeds or "
                  "tasks than the grid's):", ""]
        lines += [f"- {status.figure}/{x}" for x in describe(status.not_in_grid)] + [""]
    return lines


def _by_task_and_label(df: pd.DataFrame, label_col: str = "method") -> pd.DataFrame:
    keys = [(task_sort_key(t), label_sort_key(m)) for t, m in zip(df["task"], df[label_col])]
    order = sorted(range(len(df)), key=lambda i: keys[i])
    return df.iloc[order]


def final_best_table(fb: pd.DataFrame) -> list[str]:
    rows = []
    for r in _by_task_and_label(fb).itertuples(index=False):
        steps = (num(r.final_step_max) if r.final_step_min == r.final_step_max
                 else f"{num(r.final_step_min)}-{num(r.final_step_max)}")
        rows.append([r.task, r.method, num(r.n_seeds), num(r.final_mean),
                     f"{num(r.final_min)}-{num(r.final_max)}", steps, num(r.best_mean),
                     num(r.best_step)])
    return table(["task", "method", "seeds", "final mean", "final min-max", "at env_step",
                  "best mean", "best at env_step"], rows)


def iqm_table(iqm: pd.DataFrame) -> list[str]:
    iqm = iqm.assign(_order=iqm["method"].map(label_sort_key)).sort_values(["figure", "_order"])
    rows = [[r.figure, r.method, num(r.n_tasks), num(r.n_runs), r.runs_per_task, num(r.iqm),
             f"[{num(r.iqm_low)}, {num(r.iqm_high)}]", num(r.mean),
             f"[{num(r.mean_low)}, {num(r.mean_high)}]"] for r in iqm.itertuples(index=False)]
    return table(["folder", "method", "tasks", "runs", "runs per task", "IQM", "95% CI",
                  "mean of task means", "95% CI"], rows)


def se_headlines(summary: pd.DataFrame) -> list[str]:
    """The summary's headline per baseline: ratios never quoted without the tasks EXPO lost."""
    names = {"all": "all prior methods", "ablations": "its own ablations and sweeps (apart)"}
    lines = [f"- EXPO vs {names.get(r.baseline, r.baseline)}: {r.headline}"
             + (f". Lost: {r.lost_tasks}" if r.lost_tasks else "")
             for r in summary.itertuples(index=False)]
    return lines + ([""] if lines else [])


def se_tables(per_task: pd.DataFrame, summary: pd.DataFrame) -> list[str]:
    lines = se_headlines(summary)
    rows = [[r.task, r.baseline, num(r.baseline_final), num(r.baseline_steps),
             num(r.expo_steps_to_reach), num(r.window), num(r.ratio, 2),
             num(r.ratio_or_bound, 2), "yes" if r.lost else "no", r.status]
            for r in _by_task_and_label(per_task, "baseline").itertuples(index=False)]
    lines += table(["task", "baseline", "baseline final", "baseline env steps",
                    "EXPO env steps to stay at or above it", "window", "ratio",
                    "ratio or bound", "lost by EXPO", "status"], rows)
    rows = [[r.baseline, num(r.n_tasks), num(r.n_decided), num(r.n_lost), num(r.n_at_step_0),
             num(r.n_undefined), num(r.median_ratio, 2), num(r.mean_ratio, 2),
             "yes" if r.upper_bounds else "no", r.undefined_tasks or "-"]
            for r in summary.itertuples(index=False)]
    lines += table(["baseline", "tasks", "decided", "lost by EXPO", "at env_step 0", "undefined",
                    "median ratio", "mean ratio", "upper bounds", "undefined tasks (status)"],
                   rows)
    return lines


SE_DEFINITION = (
    "Sample-efficiency ratio (`analysis.stats.sample_efficiency`), a check of the paper's "
    "\"up to 2-3x better sample efficiency\" (abstract): for a task and a baseline, the target is "
    "the baseline's final performance (mean over its seeds of each seed's last evaluation, the "
    "final-score tables' number) and *baseline env steps* the env_step of those evaluations; "
    "*EXPO env steps* is the first env_step from which EXPO's smoothed mean-over-seeds curve (the "
    "drawn line: seeds aligned on common steps, {smoothing}, end points not moved) stays at or "
    "above the target until its last evaluation, so a single lucky evaluation cannot count as "
    "reaching it. ratio = baseline env steps / EXPO env steps: EXPO reaches the baseline's final "
    "performance ratio times sooner. Status `ok`: ratio >= 1; lost by EXPO: `expo_slower` (ratio "
    "< 1) and `expo_never_reaches` (the smoothed curve ends below the target; it enters the "
    "aggregates at its bound baseline env steps / EXPO's last env step, 1 when both ran as long, "
    "the largest ratio it could have); `reached_at_step_0`: at or above the target from env_step "
    "0 (after pretraining), ratio infinite; no information, left out and named: "
    "`baseline_final_zero` (a target of 0 is reached by any curve), `baseline_no_online_steps`, "
    "`expo_no_online_steps`. Over tasks (`summarize_sample_efficiency`): median of ratio-or-bound "
    "over every task with information, losses included (infinite ratios rank above every finite "
    "one), mean of the finite ones; when a task was never reached both are upper bounds. Each "
    "headline says how many tasks EXPO lost. The headline over all baselines pools the prior "
    "methods only; EXPO's own ablations and sweeps (`expo*` labels) are pooled apart.")

IQM_DEFINITION = (
    "Aggregate scores (`analysis.stats.aggregate_scores`): the final score of a run is its last "
    "evaluation; per results folder and method, rliable's estimators on the runs x tasks score "
    "matrix: the IQM (`aggregate_iqm`: 25%-trimmed mean of all runs of all tasks, "
    "scipy.stats.trim_mean) and the mean (`aggregate_mean`: the mean over tasks of each task's "
    "mean over runs), with 95% percentile confidence intervals from {reps} stratified bootstrap "
    "resamples (each task's runs resampled with replacement within that task; seed {seed}). "
    "rliable needs the same number of runs on every task; where a task has fewer (a missing "
    "seed, \"runs per task\" shows a range), each of its runs counts as many times as makes every "
    "task weigh the same (the matrix with each task's runs repeated to the least common multiple "
    "of the run counts), so a task with more seeds does not weigh more. "
    "A method without runs on every task of the folder is not aggregated.")


def smoothing_text(window) -> str:
    """How the curves are smoothed, for the report."""
    from analysis.curves import PAPER_WINDOW_BY_DOMAIN

    if window is None:
        return ("the paper's window for the task (" + ", ".join(
            f"{d} {w}" for d, w in PAPER_WINDOW_BY_DOMAIN.items()) + " evaluations; 3 elsewhere)")
    return "1 evaluation (unsmoothed)" if window <= 1 else f"{window} evaluations on every task"


def figure_section(fig, inputs: ReportInputs, heading: str) -> list[str]:
    lines = [f"{heading} {fig.title}", ""]
    for png in (f for f in fig.files if Path(f).suffix == ".png"):
        lines += [f"![{fig.title}: {Path(png).stem}]({Path(png).name})", ""]
    lines += [f"Files: {links(fig.files)}", ""]
    lines += [f"Note: {n}" for n in fig.notes] + ([""] if fig.notes else [])
    for folder in fig.folders:
        status = inputs.statuses.get(folder)
        if fig.name == "fig1":
            continue
        if status is not None:
            lines += run_counts(status)
        fb = inputs.final_best[inputs.final_best["figure"] == folder]
        if not fb.empty:
            lines += ["Final and best scores (final: each seed's last evaluation, mean and "
                      "min-max over seeds; best: maximum of the unsmoothed mean curve):", ""]
            lines += final_best_table(fb)
        iqm = inputs.iqm[inputs.iqm["figure"] == folder]
        if not iqm.empty and iqm["n_tasks"].max() > 1:
            lines += ["Aggregate over tasks (IQM and mean of final scores, 95% CI):", ""]
            lines += iqm_table(iqm)
        excluded = {m: t for (f, m), t in inputs.iqm_excluded.items() if f == folder}
        lines += [f"Not aggregated: {m} has no run on {', '.join(t)}."
                  for m, t in sorted(excluded.items())] + ([""] if excluded else [])
        se = inputs.sample_efficiency[inputs.sample_efficiency["figure"] == folder]
        if not se.empty:
            summary = inputs.sample_efficiency_summary
            lines += ["Sample efficiency of EXPO against each baseline (definition below):", ""]
            lines += se_tables(se, summary[summary["figure"] == folder])
    if fig.name == "fig1" and fig.data is not None and not fig.data.empty:
        rows = [[panel, series, num(int(g["n_seeds"].min()))]
                for (panel, series), g in fig.data.groupby(["panel", "series"], sort=False)]
        lines += [f"Averaged from the runs of results/{', results/'.join(fig.folders)} "
                  "(their sections list every run and every missing one).", ""]
        lines += table(["panel", "method", "seeds per task (fewest)"], rows)
    return lines


def fig11_section(inputs: ReportInputs) -> list[str]:
    p = inputs.env_pictures
    lines = [f"## {FIG11_TITLE}", ""]
    if p.get("rendered"):
        how = "from a previous run (delete fig11.png to re-render)" if p.get("reused") else \
            f"offscreen with MUJOCO_GL={p.get('gl', '?')}"
        lines += [f"Rendered {how} from the suite's own env makers after reset(seed=0).", "",
                  "![Fig. 11](fig11.png)", "",
                  "Files: " + links([Path("fig11.png"), Path("fig11.pdf")] +
                                    [Path(v["file"]) for v in p["rendered"].values()]), ""]
    else:
        lines += [f"Not rendered: {p.get('error', 'no picture rendered')}", ""]
    if p.get("failed"):
        lines += ["Environments not rendered:", ""]
        lines += [f"- {why}" for why in p["failed"].values()] + [""]
    return lines


def tables_section(out_dir: Path) -> list[str]:
    files = sorted(f for f in out_dir.iterdir()
                   if f.is_file() and f.name.lower().startswith("table")
                   and not f.name.startswith("."))
    lines = ["## Tables 1-2", ""]
    if not files:
        return lines + ["Not in this folder: Tables 1-2 come from the code's configs, not from "
                        f"results/, and are written by `python -m analysis.tables --out {out_dir}` "
                        "(`make figures` and `make demo` run it before this report).", ""]
    for f in files:
        if f.suffix == ".md":
            # the table's own headings go two levels down, under this section
            text = "\n".join("##" + ln if ln.startswith("#") else ln
                             for ln in f.read_text().strip().splitlines())
            lines += [f"From [{f.name}]({f.name}):", "", text, ""]
    lines += [f"Files: {links(files)}", ""]
    return lines


def dynamics_section(root: Optional[Path] = None) -> list[str]:
    """The dynamics table of every dataset checked under the data root (`python -m expo.data verify
    <dataset> --dynamics` writes <data root>/dynamics/<dataset>.json), so the report says how well the
    offline data match the envs the agents trained in."""
    import json

    from expo.data.paths import data_root

    folder = (data_root() if root is None else Path(root)) / "dynamics"
    lines = ["## Offline data vs the online env (dynamics)", ""]
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not files:
        return lines + [f"No dataset checked under {folder}: run `python -m expo.data verify <dataset> "
                        "--dynamics` first.", ""]
    for f in files:
        try:
            r = json.loads(f.read_text())
            lines += [f"### {r['dataset']} ({r['format']})", "",
                      f"{r['transitions']} transitions (seed {r['seed']}) in {r['env']}, state {r['state']}, "
                      f"tolerance {r['tolerance']:g}.", ""]
            if r["groups"]:
                lines += table(["group", "dims", "median abs error", "p95 abs error", "max abs error", "within tolerance"],
                               [[g["name"], g["dims"], f"{g['median']:.3g}", f"{g['p95']:.3g}", f"{g['max']:.3g}",
                                 f"{g['within']:.1%}"] for g in r["groups"]])
            if r.get("reward_agree") is not None:
                lines += [f"Reward/success agree on {r['reward_agree']:.1%} of {r['reward_compared']} transitions.", ""]
            lines += [f"- not mapped: {u}" for u in r.get("unmapped", [])]
            lines += [f"- note: {n}" for n in r.get("notes", [])] + [""]
        except (ValueError, KeyError, TypeError) as e:
            lines += [f"### {f.stem}", "", f"Unreadable {f.name} ({type(e).__name__}: {e}); rerun the check.", ""]
    return lines


def devices_section(results_dir: Path) -> list[str]:
    """Per results folder, the devices its runs ran on (status.json's device record, expo/device.py),
    most runs first; runs that did not record one (those finished before runs recorded it) are
    counted as not recorded."""
    from analysis.runs import NOT_RECORDED, devices_by_folder

    rows = []
    for folder, counts in sorted(devices_by_folder(results_dir).items()):
        order = sorted(counts, key=lambda d: (d == NOT_RECORDED, -counts[d], d))
        rows.append([folder, "; ".join(f"{d} ({counts[d]} run{'s' if counts[d] != 1 else ''})"
                                       for d in order)])
    if not rows:
        return []
    return (["## Devices", "", "Where the runs of each results folder ran (`status.json`: JAX's "
             "backend and device kind, on a CPU its model):", ""]
            + table(["folder", "devices (runs)"], rows))


def claims_section(inputs: ReportInputs) -> list[str]:
    """The paper's claims that the CPU-scale grids test, with measured effects and verdicts."""
    from analysis import claims

    if inputs.claims is None or inputs.claims.empty:
        return []
    if inputs.claims["effect"].isna().all():     # no claim has runs of both its arms yet
        return []
    return (["## Claims tested at CPU scale", "", claims.DEFINITION, ""]
            + claims.markdown(inputs.claims) + [""] + claims.error_rate_lines(inputs.claims)
            + [f"Files: {links(inputs.claims_files)}", ""])


def write_report(inputs: ReportInputs) -> Path:
    o = inputs.options
    by_name = {f.name: f for f in inputs.figures}
    lines = ["# EXPO reproduction: figures, statistics and tables", "",
             f"Generated from `{inputs.results_dir}/` only, by `python -m analysis.figures "
             f"--results {inputs.results_dir} --out {inputs.out_dir}`. Curves: mean over seeds "
             f"smoothed by a centred running average over {smoothing_text(o.smooth)}, shrinking "
             "symmetrically at the ends so that the first and last points (the final score) are "
             "not moved; shaded band: min-max over seeds, unsmoothed. Layout and CSV schema of "
             "`results/` and of these files: `analysis/SCHEMA.md`.", ""]
    # Overview
    rows = []
    paper = [("fig1", FIG1_TITLE)] + [(f.name, f.title) for f in PAPER_FIGURES]
    for name, title in paper:
        if name in by_name:
            st = inputs.statuses.get(name)
            runs = (st.totals() if st else
                    "from " + ", ".join(by_name[name].folders))
            rows.append([title, "drawn", runs, f"[{name}.png]({name}.png)"])
        else:
            expected = inputs.absent.get(name)
            why = f"no runs under results/{name}/" + (
                f" (its grid launches {expected} runs)" if expected else "")
            if name == "fig1":
                why = "no runs under results/fig1, fig3 or fig4"
            rows.append([title, "not drawn", why, "-"])
    pics = inputs.env_pictures
    rows.append([FIG11_TITLE, "rendered" if pics.get("rendered") else
                 "not rendered", f"{len(pics.get('rendered', {}))} environments"
                 + (f", {len(pics['failed'])} not rendered" if pics.get("failed") else ""),
                 "[fig11.png](fig11.png)" if pics.get("rendered") else "-"])
    others = [f for f in inputs.figures if f.name != "fig1" and f.name not in
              {p.name for p in PAPER_FIGURES}]
    for f in others:
        st = inputs.statuses[f.name]
        rows.append([f.title, "drawn", st.totals(),
                     f"[{f.name}.png]({f.name}.png)"])
    lines += ["## Contents", ""] + table(["figure", "status", "runs drawn / expected", "image"],
                                          rows)
    lines += claims_section(inputs)
    lines += devices_section(inputs.results_dir)
    if inputs.diverged:
        lines += [f"## Diverged runs ({len(inputs.diverged)}): not drawn", "",
                  "These runs stopped because a loss, a parameter or an action stopped being finite "
                  "(`expo/divergence.py`); they are left out of every curve, table and aggregate, "
                  "not counted as failures of their method. Each with the reason it recorded:", ""]
        lines += [f"- {line}" for line in inputs.diverged] + [""]
    if inputs.warnings:
        lines += [f"## Loader warnings ({len(inputs.warnings)})", ""]
        lines += [f"- {w}" for w in inputs.warnings] + [""]
    for name, title in paper:
        if name in by_name:
            lines += figure_section(by_name[name], inputs, "##")
        else:
            lines += [f"## {title}", "", "Not drawn: " + next(r[2] for r in rows if r[0] == title)
                      + ".", ""]
    lines += fig11_section(inputs)
    lines += tables_section(inputs.out_dir)
    lines += dynamics_section()
    if others:
        lines += ["## Other results folders", ""]
        for f in others:
            lines += figure_section(f, inputs, "###")
    lines += ["## Definitions", "",
              IQM_DEFINITION.format(reps=o.bootstrap_reps, seed=o.bootstrap_seed), ""]
    if any(Path(f).name == "aggregate_iqm.png" for f in inputs.iqm_files):
        lines += ["![Aggregate IQM over the tasks of each folder with more than one task]"
                  "(aggregate_iqm.png)", ""]
    lines += [f"Files: {links(inputs.iqm_files)}", ""]
    lines += [SE_DEFINITION.format(smoothing="running average over " + smoothing_text(o.smooth)),
              "", f"Files: {links(inputs.se_files)}", ""]
    path = inputs.out_dir / REPORT_FILE
    atomic_write_text(path, "\n".join(lines).rstrip() + "\n")
    return path
