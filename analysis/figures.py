"""The paper's figures, generic learning-curve figures, statistics and the report (`make figures`).

    python -m analysis.figures [--results results] [--out figures] [--smooth paper|<odd k>]
                               [--bootstrap-reps 5000] [--bootstrap-seed 0]
                               [--env-pictures auto|always|never]

From results/ only, it writes into <out>:

* one figure per paper figure whose runs exist (PNG + PDF + ``<name>_data.csv``, the numbers drawn):
  Fig. 1 right (average over the tasks of fig1/fig3/fig4), Fig. 3-6 and 8 (learning curves, one
  panel per task), Fig. 7 (success after online RL against the success of the imitation policy
  trained on the same subsample, as the paper draws it; and, as ``fig7_demos``, final success
  against the number of demonstrations), Fig. 9 and 10
  (learning curves per N / beta), Fig. 11 (rendered pictures of the environments,
  `analysis.env_pictures`); any other folder of results/ (quickstart, demo, baselines, ...) as a
  generic learning-curve figure;
* ``<folder>_summary.csv`` per results folder: final and best scores (`analysis.stats`);
* ``aggregate_iqm.{csv,png,pdf}``: IQM and mean of final scores over tasks with 95% stratified
  bootstrap confidence intervals (rliable's estimators, `analysis.stats.rliable_estimates`);
* ``sample_efficiency.csv`` and ``sample_efficiency_summary.csv``: EXPO's sample-efficiency ratio
  against each baseline, losses counted (definitions: `analysis.stats.sample_efficiency` and
  `summarize_sample_efficiency`);
* ``claims.csv``: each claim of the paper the CPU-scale grids test, its measured effect, its exact
  permutation p-values (Holm-adjusted), the smallest effect its seeds could resolve and a verdict
  (`analysis.claims`);
* ``REPORT.md`` (`analysis.report`): every figure with the runs behind each curve, missing runs,
  the tables above, Tables 1-2 when `python -m analysis.tables --out <out>` wrote them.

Curves: mean over seeds smoothed with a centred running average over the paper's window for the
task (`analysis.curves.paper_window`; ``--smooth k`` uses k on every task), whose first and last
points are not moved; unsmoothed min..max band over seeds; x = environment steps. Loader warnings
(missing, empty, corrupt, partial runs) are printed and listed in the report. An empty or missing
results directory prints "no runs found under <dir>/" and exits 0.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis import claims, completeness, stats  # noqa: E402
from analysis.curves import (PAPER_WINDOW_BY_DOMAIN, aggregate, average_over_tasks,  # noqa: E402
                             check_window)
from analysis.draw import (Panel, Series, atomic_savefig, draw_panels,  # noqa: E402
                           panels_frame, write_csv)
from analysis.paper_figures import FIG1_TITLE, PAPER_BY_NAME, PAPER_FIGURES  # noqa: E402
from analysis.runs import load_runs  # noqa: E402
from analysis.style import (folder_title, is_expo, label_sort_key,  # noqa: E402,F401
                            variant_style,
                            method_color, method_name, method_sort_key, metric_label,
                            natural_sort_key, parse_variant, sweep_colors, task_name,
                            task_sort_key, variant_label)


@dataclasses.dataclass
class Options:
    smooth: Optional[int] = None        # None: the paper's window per task; k: k on every task
    bootstrap_reps: int = stats.DEFAULT_BOOTSTRAP_REPS
    bootstrap_seed: int = stats.DEFAULT_BOOTSTRAP_SEED
    env_pictures: str = "auto"          # auto: render Fig. 11 when <out>/fig11.png is absent

    def __post_init__(self):
        if self.smooth is not None:
            self.smooth = check_window(self.smooth)


@dataclasses.dataclass
class FigureResult:
    name: str                           # output stem (fig3, quickstart, ...)
    title: str
    folders: list[str]                  # results/ folders the figure is drawn from
    files: list[Path] = dataclasses.field(default_factory=list)
    data: Optional[pd.DataFrame] = None  # the drawn numbers (also <name>_data.csv)
    notes: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class PaperDrawer:
    """How a paper figure (analysis/paper_figures.py: name, title, caption) is drawn."""
    draw: Callable                      # (name, data, out_dir, options) -> (panels, notes)
    # A second view of the same runs, written as <name>_<extra_name>.{png,pdf} + _data.csv
    extra_name: Optional[str] = None
    extra_draw: Optional[Callable] = None


# ----------------------------------------------------------------------------- series styles


def curve_series(key: str, c, x_col: str, style) -> "Series":
    """One method's aggregated curve (mean, smoothed line, min-max band over seeds) as a Series; a
    single evaluation point (imitation only) is drawn as a horizontal line."""
    name, color, emphasis = style(key)
    return Series(key=key, label=name, color=color, x=c[x_col], mean=c["mean"], line=c["smoothed"],
                  band_min=c["min"], band_max=c["max"], n_seeds=int(c["n_seeds"].iloc[0]),
                  kind="hline" if len(c) == 1 else "curve", emphasis=emphasis)

def method_series_style(label: str) -> tuple[str, str, bool]:
    """(legend name, colour, emphasis) of a directory label: the paper's method name and fixed
    colour; a sweep label (method-variant) gets "<name>, <variant>"."""
    base, _, variant = label.partition("-")
    name = method_name(base) + (f", {variant_label(variant)}" if variant else "")
    return name, method_color(label if not variant else base), is_expo(label)


def _panel_metric(tdata: pd.DataFrame) -> tuple[str, bool]:
    return metric_label(sorted(set(tdata["metric"]))[0]), bool(tdata["value"].between(0, 1).all())


# ----------------------------------------------------------------------------- panel builders

def embedded_datasets(tdata: pd.DataFrame) -> list:
    """The datasets generated on this machine by a scripted expert (expo/data/registry.py
    GeneratedDataset) that the runs of one task used, from their config.json."""
    from expo.data.registry import DATASETS, GeneratedDataset

    names = sorted(set(tdata["dataset"])) if "dataset" in tdata else []
    return [DATASETS[n] for n in names if isinstance(DATASETS.get(n), GeneratedDataset)]


def panel_title(task: str, tdata: pd.DataFrame) -> str:
    """The task's readable name, and a second line when its runs used an embedded scripted
    dataset instead of the paper's data (a reader must not take those curves for the paper's)."""
    embedded = embedded_datasets(tdata)
    if not embedded:
        return task_name(task)
    return (f"{task_name(task)}\nembedded scripted dataset "
            f"({', '.join(d.key for d in embedded)})")


def dataset_notes(data: pd.DataFrame) -> list[str]:
    """One note per task whose runs used an embedded scripted dataset, with its description."""
    notes = []
    for task in sorted(data["task"].unique(), key=task_sort_key):
        for d in embedded_datasets(data[data["task"] == task]):
            notes.append(f"{task_name(task)} ({task}): the runs use the embedded scripted dataset "
                         f"`{d.key}` ({d.description}), not the paper's data (Table 2).")
    return notes


def learning_curve_panels(data: pd.DataFrame, options: Options,
                          style: Callable[[str], tuple[str, str, bool]] = method_series_style,
                          order: Callable[[str], object] = label_sort_key) -> list[Panel]:
    """One panel per task: per method label, the smoothed mean over seeds and the min..max band;
    a method with a single evaluation (imitation only) is a horizontal line at its mean."""
    agg = aggregate(data, "value", window=options.smooth)
    panels = []
    for task in sorted(data["task"].unique(), key=task_sort_key):
        tdata = data[data["task"] == task]
        ylabel, bounded = _panel_metric(tdata)
        series = []
        for label in sorted(tdata["method"].unique(), key=order):
            c = agg[(agg["task"] == task) & (agg["method"] == label)]
            if c.empty:
                continue
            series.append(curve_series(label, c, "env_step", style))
        panels.append(Panel(panel_title(task, tdata), "Environment steps", ylabel, series,
                            bounded=bounded, key=task))
    return panels


def draw_learning_curves(name, data, out_dir, options):
    """Fig. 3, 4, 5, 6, 8 and every folder without a figure of its own."""
    return learning_curve_panels(data, options), []


def draw_canary(name, data, out_dir, options):
    """The canary (results/canary): every method's learning curve and the threshold it must reach."""
    from analysis import canary

    panels = learning_curve_panels(data, options)
    level = canary.canary_grid.THRESHOLD
    for panel in panels:
        panel.series.append(Series(key="threshold", label=f"threshold {level:g}", color="black", x=[0.0],
                                   mean=[level], line=[level], band_min=[level], band_max=[level], n_seeds=1,
                                   kind="hline", count_unit=""))
    return panels, [f"a method passes when its mean final return over seeds reaches {level:g} "
                    "(experiments/grids/canary.py; analysis/canary.py)"]


def draw_sweep(name, data, out_dir, options):
    """Fig. 9 (N) and Fig. 10 (beta): learning curves, one line per swept value, coloured along a
    sequential map in the order of the value."""
    labels = sorted(data["method"].unique())
    values = {m: parse_variant(m.partition("-")[2]) for m in labels}
    colors = sweep_colors([v[1] for v in values.values() if v is not None])
    notes = [f"{m}: not a <method>-<name><number> label; drawn in its method's colour"
             for m, v in values.items() if v is None]

    def style(label):
        v = values[label]
        if v is None:
            return method_series_style(label)
        base = label.partition("-")[0]
        prefix = "" if is_expo(base) else f"{method_name(base)}, "
        return prefix + variant_label(label.partition("-")[2]), colors[v[1]], False

    def order(label):
        v = values[label]
        return (0, v[1], label) if v is not None else (1, 0.0, label)

    return learning_curve_panels(data, options, style, order), notes


def draw_claim_panels(name, data, out_dir, options):
    """A folder of CPU-scale claims (analysis.claims): per task, one learning-curve panel per paper
    figure, with the arms its claims compare (e.g. "Fig. 5": EXPO and EXPO without OTF backup)."""
    panels, notes = [], []
    for panel, labels in claims.panels(name):
        subset = data[data["method"].isin(labels)]
        missing = [x for x in labels if x not in set(subset["method"])]
        if missing:
            notes.append(f"{panel}: no runs yet of {', '.join(missing)}")
        for p in learning_curve_panels(subset, options) if not subset.empty else []:
            p.title = f"{panel}: {p.title}"
            p.key = f"{p.key} {panel}"
            panels.append(p)
    variants = variant_ranks(data["method"].unique())
    for s in (s for p in panels for s in p.series if s.key in variants):
        s.color, s.linestyle = variant_style(s.color, s.kind, variants[s.key])
    return panels, notes


def variant_ranks(labels) -> dict[str, int]:
    """{<method>-<variant> label: its rank among the variants of its method in `labels`} (N2 -> 0,
    N8 -> 1, beta0.05 -> 2, ...): one style per label in every panel, none shared with another
    variant of the same method."""
    ranks: dict[str, int] = {}
    for label in sorted((x for x in labels if "-" in x), key=label_sort_key):
        base = label.partition("-")[0]
        ranks[label] = sum(1 for x in ranks if x.partition("-")[0] == base)
    return ranks


def _demos_finals(final: pd.DataFrame, task: str) -> tuple[pd.DataFrame, list[str]]:
    """The final scores of one task's <method>-demos<k> labels, with columns ``demos`` (k) and
    ``base`` (the method); notes for labels that are not <method>-demos<k> (not drawn)."""
    f = final[final["task"] == task].copy()
    parsed = f["method"].map(lambda m: parse_variant(m.partition("-")[2]))
    bad = f.loc[parsed.map(lambda p: p is None or p[0] != "demos"), "method"].tolist()
    notes = [f"{task}/{m}: not a <method>-demos<k> label, not drawn" for m in bad]
    f = f[parsed.map(lambda p: p is not None and p[0] == "demos")].copy()
    f["demos"] = f["method"].map(lambda m: parse_variant(m.partition("-")[2])[1])
    f["base"] = f["method"].map(lambda m: m.partition("-")[0])
    return f, notes


FIG7_IMITATION = "bc"
FIG7_MARKERS = {"expo": "o", "expo_entropy_backup": "s"}


def draw_fig7(name, data, out_dir, options):
    """Fig. 7 as the paper draws it: per task, one point per subsample size k, at x = the success
    of the imitation policy trained on that subsample (bc-demos<k>: mean over its seeds of each
    seed's last evaluation) and y = the success after online RL of EXPO / EXPO + entropy backup on
    the same subsample (<method>-demos<k>: the same mean; error bar min..max over seeds). Points
    above the dotted diagonal are improvements over imitation. A k without bc-demos<k> runs has no
    x and is left out, with a note."""
    final = stats.final_and_best(data)
    panels, notes = [], []
    for task in sorted(final["task"].unique(), key=task_sort_key):
        f, bad = _demos_finals(final, task)
        notes += bad
        imitation = f[f["base"] == FIG7_IMITATION].set_index("demos")
        if imitation.empty:
            notes.append(f"{task}: no {FIG7_IMITATION}-demos<k> runs, so no x axis: the paper's "
                         f"Fig. 7 is not drawn for this task (fig7_demos still is)")
            continue
        series = []
        for base in sorted(set(f["base"]) - {FIG7_IMITATION}, key=method_sort_key):
            g = f[f["base"] == base]
            lacking = sorted(set(g["demos"]) - set(imitation.index))
            notes += [f"{task}/{base}-demos{k:g}: no {FIG7_IMITATION}-demos{k:g} runs give its x, "
                      f"not drawn" for k in lacking]
            g = g[g["demos"].isin(imitation.index)].copy()
            g["x"] = imitation.loc[g["demos"], "final_mean"].to_numpy()
            g = g.sort_values(["x", "demos"])
            label, color, emphasis = method_series_style(base)
            series.append(Series(
                key=base, label=label, color=color, x=g["x"], mean=g["final_mean"],
                line=g["final_mean"], band_min=g["final_min"], band_max=g["final_max"],
                n_seeds=g["n_seeds"], kind="scatter", emphasis=emphasis,
                marker=FIG7_MARKERS.get(base, "D"),
                point_labels=[f"{k:g} demos" for k in g["demos"]]))
        tdata = data[data["task"] == task]
        ylabel, bounded = _panel_metric(tdata)
        panels.append(Panel(panel_title(task, tdata),
                            f"Imitation policy's {ylabel.lower()} on the subsample",
                            f"{ylabel} after online RL", series, x_format="plain",
                            bounded=bounded, key=task, diagonal="y = x (no gain over imitation)"))
    return panels, notes


def draw_fig7_demos(name, data, out_dir, options):
    """Fig. 7, second view (not the paper's): per task, final score (each seed's last evaluation,
    mean and min..max over seeds) against the number of demonstrations of the subsample, one line
    per method (EXPO, EXPO + entropy backup, imitation on the same subsample)."""
    final = stats.final_and_best(data)
    panels = []
    for task in sorted(final["task"].unique(), key=task_sort_key):
        f, _ = _demos_finals(final, task)                 # draw_fig7 already notes bad labels
        series = []
        for base in sorted(f["base"].unique(), key=method_sort_key):
            g = f[f["base"] == base].sort_values("demos")
            label, color, emphasis = method_series_style(base)
            series.append(Series(
                key=base, label=label, color=color, x=g["demos"], mean=g["final_mean"],
                line=g["final_mean"], band_min=g["final_min"], band_max=g["final_max"],
                n_seeds=g["n_seeds"], kind="points", emphasis=emphasis,
                marker=FIG7_MARKERS.get(base, "D")))
        tdata = data[data["task"] == task]
        ylabel, bounded = _panel_metric(tdata)
        ticks = sorted(f["demos"].unique())
        panels.append(Panel(panel_title(task, tdata), "Number of demonstrations",
                            f"Final {ylabel.lower()}", series, x_format="plain", bounded=bounded,
                            xlog=len(ticks) > 1, xticks=ticks, key=task))
    return panels, []


FIG1_SOURCES = {"fig1": "Fig. 1 runs", "fig3": "Online RL with offline data (Fig. 3)",
                "fig4": "Offline-to-online (Fig. 4)"}


def fig1_panels(data: pd.DataFrame, options: Options) -> tuple[list[Panel], list[str]]:
    """Fig. 1 (right): per source folder (fig1 split by setting, fig3, fig4), each method's curve
    averaged over the folder's tasks (`curves.average_over_tasks`)."""
    panels, notes = [], []
    sources = []
    for folder in FIG1_SOURCES:
        d = data[data["figure"] == folder]
        if d.empty:
            continue
        if folder == "fig1":
            sources += [(f"Fig. 1 runs, {s or 'no setting'}", d[d["setting"] == s])
                        for s in sorted(d["setting"].unique())]
        else:
            sources.append((FIG1_SOURCES[folder], d))
    for title, d in sources:
        avg = average_over_tasks(d, "value", window=options.smooth)
        n_tasks = d["task"].nunique()
        notes += [f"{title}: {m} not averaged, it has no curve on {', '.join(t)}"
                  for m, t in sorted(avg.excluded.items())]
        if avg.x_unit == "fraction":
            notes.append(f"{title}: the tasks' env-step budgets differ ("
                         + ", ".join(f"{t} {b}" for t, b in sorted(avg.budgets.items()))
                         + "); x is the fraction of each task's budget")
        grids: dict[tuple, list[str]] = {}
        for method, step in sorted(avg.grid_step.items()):
            if np.isfinite(step):
                w = int(avg.curves.loc[avg.curves["method"] == method, "window"].iloc[0])
                grids.setdefault((step, w), []).append(method)
        for (step, w), methods in grids.items():
            where = (f"{step:g} env steps" if avg.x_unit == "env_step"
                     else f"{100 * step:.3g}% of training")
            who = "every method" if len(grids) == 1 else ", ".join(methods)
            notes.append(f"{title}: {who} averaged on an even grid every {where}, then smoothed "
                         f"over {w} grid point{'s' if w > 1 else ''}")
        series = []
        for method in sorted(avg.curves["method"].unique(), key=label_sort_key):
            c = avg.curves[avg.curves["method"] == method]
            series.append(curve_series(method, c, "x", method_series_style))
        panels.append(Panel(
            f"{title}, average of {n_tasks} task{'s' if n_tasks > 1 else ''}",
            "Environment steps" if avg.x_unit == "env_step" else "Fraction of training",
            "Average over tasks", series,
            x_format="steps" if avg.x_unit == "env_step" else "fraction"))
    return panels, notes


# Keyed by analysis.paper_figures.PAPER_FIGURES' names (a test checks they are the same).
PAPER_DRAWERS = {
    "fig3": PaperDrawer(draw_learning_curves),
    "fig4": PaperDrawer(draw_learning_curves),
    "fig5": PaperDrawer(draw_learning_curves),
    "fig6": PaperDrawer(draw_learning_curves),
    "fig7": PaperDrawer(draw_fig7, "demos", draw_fig7_demos),
    "fig8": PaperDrawer(draw_learning_curves),
    "fig9": PaperDrawer(draw_sweep),
    "fig10": PaperDrawer(draw_sweep),
}


# ----------------------------------------------------------------------------- writing figures

def _save(name: str, title: str, folders: list[str], panels: list[Panel], notes: list[str],
          out_dir: Path) -> FigureResult:
    frame = panels_frame(name, panels)
    files = draw_panels(panels, out_dir / name)
    files.append(write_csv(frame, out_dir / f"{name}_data.csv"))
    return FigureResult(name, title, folders, files, frame, notes)


def draw_folder(folder: str, data: pd.DataFrame, out_dir: Path, options: Options) -> FigureResult:
    """A results folder: its paper figure's drawer (fig3-fig10) or generic learning curves; a
    paper figure with a second view also writes <folder>_<extra_name>.*"""
    spec = PAPER_BY_NAME.get(folder)
    drawer = PAPER_DRAWERS[folder] if spec else None
    d = data[data["figure"] == folder]
    draw = drawer.draw if drawer else draw_learning_curves
    title = spec.title if spec else f"results/{folder}: learning curves"
    if folder == "canary":
        draw, title = draw_canary, "results/canary: the canary, every method on Pendulum-v1 (not a paper task)"
    if spec is None and claims.panels(folder):
        draw = draw_claim_panels
        title = (f"results/{folder}: CPU-scale claims ("
                 f"{', '.join(p for p, _ in claims.panels(folder))})")
    panels, notes = draw(folder, d, out_dir, options)
    result = _save(folder, title, [folder], panels, notes + dataset_notes(d), out_dir)
    if drawer is not None and drawer.extra_draw is not None:
        extra = f"{folder}_{drawer.extra_name}"
        extra_panels, extra_notes = drawer.extra_draw(extra, d, out_dir, options)
        result.files += draw_panels(extra_panels, out_dir / extra)
        result.files.append(write_csv(panels_frame(extra, extra_panels),
                                      out_dir / f"{extra}_data.csv"))
        result.notes += extra_notes
    return result


def draw_fig1(data: pd.DataFrame, out_dir: Path, options: Options) -> Optional[FigureResult]:
    folders = [f for f in FIG1_SOURCES if f in set(data["figure"])]
    if not folders:
        return None
    panels, notes = fig1_panels(data, options)
    return _save("fig1", FIG1_TITLE, folders, panels, notes, out_dir)


IQM_PANELS_PER_ROW = 3


def iqm_panel_layout(folders) -> tuple[list[str], int, int]:
    """(folders in numeric order, rows, columns): Fig. 3 before Fig. 10 (as text, "fig10" sorts
    first), at most IQM_PANELS_PER_ROW panels to a row."""
    ordered = sorted(folders, key=natural_sort_key)
    ncols = max(1, min(len(ordered), IQM_PANELS_PER_ROW))
    return ordered, -(-len(ordered) // ncols), ncols


def draw_iqm(table: pd.DataFrame, out_dir: Path) -> list[Path]:
    """One panel per results folder of `table` (`iqm_panel_layout`): IQM (dot) and 95% CI (bar)
    of final scores per method."""
    figures, nrows, ncols = iqm_panel_layout(table["figure"].unique())
    n = len(figures)
    row_height = max(1.6, 0.45 * table.groupby("figure").size().max() + 1.0)
    fig, axes = plt.subplots(nrows, ncols, figsize=(max(4.2 * ncols, 5.0), row_height * nrows),
                             squeeze=False, layout="constrained")
    for i, figure in enumerate(figures):
        ax = axes[i // ncols][i % ncols]
        t = table[table["figure"] == figure].copy()
        t["_order"] = t["method"].map(label_sort_key)
        t = t.sort_values("_order", ascending=False)
        y = np.arange(len(t))
        colors = [method_series_style(m)[1] for m in t["method"]]
        ax.hlines(y, t["iqm_low"], t["iqm_high"], colors=colors, lw=6, alpha=0.45)
        ax.scatter(t["iqm"], y, color=colors, zorder=3, s=22)
        ax.set_yticks(y)
        ax.set_yticklabels([method_series_style(m)[0] for m in t["method"]])
        ax.set_xlim(-0.02, 1.02)
        ax.set_xlabel("IQM of final score (95% CI)")
        ax.set_title(f"{folder_title(figure)} ({int(t['n_tasks'].iloc[0])} tasks)")
        ax.grid(True, axis="x", alpha=0.3, lw=0.6)
        ax.spines["top"].set_visible(False)
        ax.spines["right"].set_visible(False)
    for j in range(n, nrows * ncols):
        axes[j // ncols][j % ncols].set_visible(False)
    paths = [atomic_savefig(fig, out_dir / "aggregate_iqm.png", dpi=150),
             atomic_savefig(fig, out_dir / "aggregate_iqm.pdf")]
    plt.close(fig)
    return paths


def env_pictures(out_dir: Path, mode: str) -> dict:
    """Fig. 11 status: rendered now ("always", or "auto" without a fig11.png yet), the previous
    rendering ("auto" with fig11.png present), or skipped ("never")."""
    from analysis import env_pictures as pictures

    status_path = out_dir / pictures.STATUS_FILE
    if mode == "never":
        return {"rendered": {}, "failed": {}, "error": "--env-pictures never"}
    if mode == "auto" and (out_dir / "fig11.png").is_file() and status_path.is_file():
        import json

        return {**json.loads(status_path.read_text()), "reused": True}
    return pictures.render_in_subprocess(out_dir)


# ----------------------------------------------------------------------------- entry point

@dataclasses.dataclass
class Outputs:
    figures: dict[str, list[Path]]
    report: Optional[Path]


def _summary(final_best: pd.DataFrame, folder: str, out_dir: Path) -> Path:
    s = final_best[final_best["figure"] == folder].copy()
    s["_order"] = s["method"].map(label_sort_key)
    s = s.sort_values(["task", "_order"]).drop(columns=["_order", "figure"])
    return write_csv(s, out_dir / f"{folder}_summary.csv")


def format_table(summary: pd.DataFrame) -> str:
    """A short fixed-width text table of a folder's final scores."""
    header = f"{'task':<24} {'method':<24} {'seeds':>5} {'final mean':>10} {'min':>7} " \
             f"{'max':>7} {'at env_step':>15}"
    lines = [header, "-" * len(header)]
    for r in summary.itertuples(index=False):
        steps = (f"{int(r.final_step_min)}" if r.final_step_min == r.final_step_max
                 else f"{int(r.final_step_min)}-{int(r.final_step_max)}")
        lines.append(f"{r.task:<24} {r.method:<24} {int(r.n_seeds):>5} {r.final_mean:>10.3f} "
                     f"{r.final_min:>7.3f} {r.final_max:>7.3f} {steps:>15}")
    return "\n".join(lines)


def make_figures(results_dir="results", out_dir="figures", smooth: Optional[int] = None,
                 stream=None, options: Optional[Options] = None,
                 expected_runs=completeness.grid_runs) -> Outputs:
    """Load every run under `results_dir`; write figures, tables and the report into `out_dir`.

    Returns the files written per figure and the report's path; nothing is written when no run
    could be loaded. Warnings and final-score tables go to `stream` (stdout by default)."""
    from analysis import report

    stream = stream if stream is not None else sys.stdout
    options = options or Options(smooth=smooth)
    loaded = load_runs(results_dir)
    for w in loaded.warnings:
        print(f"WARNING: {w}", file=stream)
    if loaded.empty:
        print(f"no runs found under {str(results_dir).rstrip('/')}/", file=stream)
        return Outputs({}, None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = loaded.data
    folders = sorted(data["figure"].unique())

    final_best = stats.final_and_best(data)
    results: list[FigureResult] = []
    fig1 = draw_fig1(data, out_dir, options)
    if fig1 is not None:
        results.append(fig1)
    for folder in folders:
        result = draw_folder(folder, data, out_dir, options)
        result.files.append(_summary(final_best, folder, out_dir))
        results.append(result)
        print(f"\n== {folder}: final performance (mean over seeds of each seed's last "
              f"evaluation) ==", file=stream)
        print(format_table(final_best[final_best["figure"] == folder]), file=stream)
        print(f"wrote {', '.join(str(p) for p in result.files)}", file=stream)

    # IQM and sample efficiency compare success-like scores in [0, 1]; the canary's return is not one.
    scored = data[data["metric"] != "return"]
    iqm, iqm_excluded = stats.aggregate_scores(scored, reps=options.bootstrap_reps,
                                               seed=options.bootstrap_seed)
    iqm_files = [write_csv(iqm, out_dir / "aggregate_iqm.csv")]
    if (iqm["n_tasks"] > 1).any():
        iqm_files += draw_iqm(iqm[iqm["n_tasks"] > 1], out_dir)
    se = stats.sample_efficiency(scored, window=options.smooth)
    se_summary = stats.summarize_sample_efficiency(se)
    se_files = [write_csv(se, out_dir / "sample_efficiency.csv"),
                write_csv(se_summary, out_dir / "sample_efficiency_summary.csv")]
    claims_table = claims.evaluate_claims(data, reps=options.bootstrap_reps,
                                          seed=options.bootstrap_seed)
    claims_files = [write_csv(claims_table, out_dir / "claims.csv")]
    pictures = env_pictures(out_dir, options.env_pictures)

    statuses = {f: completeness.folder_status(f, loaded, expected_runs) for f in folders}
    absent = {f.name: completeness.expected_for_absent(f.name, expected_runs)
              for f in PAPER_FIGURES if f.name not in folders}
    report_path = report.write_report(report.ReportInputs(
        results_dir=Path(results_dir), out_dir=out_dir, options=options, figures=results,
        statuses=statuses, absent=absent, warnings=loaded.warnings, final_best=final_best,
        iqm=iqm, iqm_excluded=iqm_excluded, iqm_files=iqm_files, sample_efficiency=se,
        sample_efficiency_summary=se_summary, se_files=se_files, env_pictures=pictures,
        diverged=loaded.diverged, claims=claims_table, claims_files=claims_files))
    print(f"\nwrote {report_path}", file=stream)
    written = {r.name: r.files for r in results}
    if pictures.get("rendered"):
        written["fig11"] = [out_dir / "fig11.png", out_dir / "fig11.pdf"]
    return Outputs(written, report_path)


def smooth_argument(text: str) -> Optional[int]:
    """--smooth: "paper" -> None (the paper's window per task), else an odd window >= 1."""
    if text == "paper":
        return None
    try:
        window = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'paper' or an odd number, got {text!r}")
    if window < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {window}")
    try:
        return check_window(window)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e))


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis.figures", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default="results", help="results tree (default: results)")
    p.add_argument("--out", default="figures", help="output folder (default: figures)")
    p.add_argument("--smooth", default="paper", type=smooth_argument,
                   help="running-average window over evaluations for the mean line and the "
                        "sample-efficiency ratio: 'paper' (default) = the paper's per task ("
                        + ", ".join(f"{d} {w}" for d, w in PAPER_WINDOW_BY_DOMAIN.items())
                        + "), or an odd number for every task; 1 = none")
    p.add_argument("--bootstrap-reps", type=int, default=stats.DEFAULT_BOOTSTRAP_REPS,
                   help=f"bootstrap resamples for the IQM intervals "
                        f"(default: {stats.DEFAULT_BOOTSTRAP_REPS})")
    p.add_argument("--bootstrap-seed", type=int, default=stats.DEFAULT_BOOTSTRAP_SEED,
                   help="seed of the bootstrap resampling (default: 0)")
    p.add_argument("--env-pictures", choices=("auto", "always", "never"), default="auto",
                   help="Fig. 11: render when <out>/fig11.png is absent (auto, default), "
                        "always, or never")
    args = p.parse_args(argv)
    if args.bootstrap_reps < 1:
        p.error(f"--bootstrap-reps must be >= 1, got {args.bootstrap_reps}")
    options = Options(args.smooth, args.bootstrap_reps, args.bootstrap_seed, args.env_pictures)
    make_figures(args.results, args.out, options=options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
