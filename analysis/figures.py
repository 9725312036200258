"""Learning-curve figures and final-performance tables from the results tree (`make figures`).

    python -m analysis.figures [--results results] [--out figures] [--smooth 3]
                               [--smooth-mode centered|trailing]

For every figure folder under results/ this writes

* ``<out>/<figure>.png`` and ``<out>/<figure>.pdf``: one panel per task (title = task), one line
  per method = mean over seeds, smoothed with a running average (`analysis.curves`), and an
  unsmoothed min..max band over seeds; x = environment steps, y = the task's metric
  (``protocol.metric`` in config.json: success rate, or Adroit's normalized return). Methods with
  a single evaluation point (imitation-only "bc") are a dashed horizontal line at their mean with
  a faint min..max band. The legend sits below the panels (never on a curve) and gives each
  method's number of seeds. Colours come from a fixed per-method map, identical in every figure,
  with EXPO in red and drawn on top.
* ``<out>/<figure>_summary.csv``: per task and method, n_seeds and the mean/min/max over seeds of
  each seed's LAST evaluation row, plus the env_step of those rows.

It prints the loader's warnings (missing, empty, corrupt, partial runs) and a text table of the
final numbers. An empty or missing results directory prints "no runs found under <dir>/" and
exits 0.
"""
from __future__ import annotations

import argparse
import math
import sys
import zlib
from pathlib import Path
from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

from analysis.curves import (SMOOTH_MODES, aggregate, final_summary,  # noqa: E402
                             is_single_point)
from analysis.runs import load_runs  # noqa: E402

EXPO_COLOR = "#d62728"

# Fixed colours, so a method looks the same in every figure. Keys are normalised method names
# (lower case, "-" and " " -> "_"); unknown methods get a stable colour from FALLBACK_COLORS.
METHOD_COLORS: dict[str, str] = {
    "expo": EXPO_COLOR,
    "expo_no_edit": "#ff7f0e",
    "expo_no_otf_backup": "#9467bd",
    "expo_entropy": "#8c1b13",
    "expo_entropy_backup": "#8c1b13",
    "rlpd": "#1f77b4",
    "idql": "#2ca02c",
    "dipo": "#8c564b",
    "qsm": "#e377c2",
    "calql": "#17becf",
    "cal_ql": "#17becf",
    "calql_sac": "#0b6e7a",
    "dac": "#bcbd22",
    "pa_rl": "#393b79",
    "parl": "#393b79",
    "sac": "#637939",
    "bc": "#4d4d4d",
}
FALLBACK_COLORS = ["#7b4173", "#ad494a", "#3182bd", "#31a354", "#756bb1", "#e6550d",
                   "#636363", "#843c39", "#5254a3", "#8ca252", "#bd9e39", "#a55194"]
# Legend / drawing order of the known methods; unknown ones follow alphabetically.
METHOD_ORDER = ["expo", "expo_entropy", "expo_entropy_backup", "expo_no_otf_backup",
                "expo_no_edit", "rlpd", "idql", "dipo", "qsm", "calql", "cal_ql", "calql_sac",
                "dac", "pa_rl", "parl", "sac", "bc"]

METRIC_LABELS = {
    "success_rate": "Success rate",
    "success": "Success rate",
    "percent_solved_steps": "Normalized return",
}


def _norm(method: str) -> str:
    return method.strip().lower().replace("-", "_").replace(" ", "_")


def method_color(method: str) -> str:
    """The fixed colour of a method (stable across figures and runs of this script)."""
    key = _norm(method)
    if key in METHOD_COLORS:
        return METHOD_COLORS[key]
    return FALLBACK_COLORS[zlib.crc32(key.encode()) % len(FALLBACK_COLORS)]


def method_sort_key(method: str):
    key = _norm(method)
    if key in METHOD_ORDER:
        return (0, METHOD_ORDER.index(key), key)
    return (1, 0, key)


def is_expo(method: str) -> bool:
    return _norm(method) == "expo"


def metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric.replace("_", " ").capitalize())


def format_steps(x: float, _pos=None) -> str:
    """Tick label for an env-step count: 0, 250k, 1M, 1.5M."""
    if x == 0:
        return "0"
    ax = abs(x)
    if ax >= 1e6:
        return f"{x / 1e6:g}M"
    if ax >= 1e3:
        return f"{x / 1e3:g}k"
    return f"{x:g}"


def seeds_label(method: str, counts: Sequence[int]) -> str:
    """Legend text, e.g. "expo (3 seeds)"; "expo (2-3 seeds)" when panels differ."""
    lo, hi = min(counts), max(counts)
    n = f"{lo}" if lo == hi else f"{lo}-{hi}"
    return f"{method} ({n} seed{'' if hi == 1 else 's'})"


def plot_figure(figure: str, data: pd.DataFrame, out_dir, smooth: int = 3,
                mode: str = "centered") -> list[Path]:
    """Draw one figure (all tasks of `figure` in `data`); return the PNG and PDF paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = data[data["figure"] == figure]
    agg = aggregate(data, "value", window=smooth, mode=mode)
    tasks = sorted(data["task"].unique())
    methods = sorted(data["method"].unique(), key=method_sort_key)

    n = len(tasks)
    nrows = math.ceil(n / min(n, 4))
    ncols = math.ceil(n / nrows)          # balanced grid: 5 tasks -> 2 x 3, 12 -> 3 x 4
    one_metric = data["metric"].nunique() == 1
    # at least 6.4 in wide, so a one-panel figure still has room for a two-column legend
    fig, axes = plt.subplots(nrows, ncols, figsize=(max(3.9 * ncols, 6.4), 3.0 * nrows + 0.5),
                             squeeze=False, layout="constrained")
    seed_counts: dict[str, list[int]] = {m: [] for m in methods}
    drawn_style: dict[str, str] = {}

    with plt.rc_context({"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10}):
        for i, task in enumerate(tasks):
            ax = axes[i // ncols][i % ncols]
            tdata = data[data["task"] == task]
            metric = sorted(set(tdata["metric"]))[0]
            x_max = float(tdata["env_step"].max())
            bounded = tdata["value"].between(0.0, 1.0).all()
            for method in methods:
                curve = agg[(agg["task"] == task) & (agg["method"] == method)]
                if curve.empty:
                    continue
                color = method_color(method)
                z = 3 if is_expo(method) else 2
                seed_counts[method].append(int(curve["n_seeds"].iloc[0]))
                if is_single_point(curve):
                    y = float(curve["mean"].iloc[0])
                    ax.axhline(y, color=color, ls="--", lw=1.6, zorder=z)
                    ax.axhspan(float(curve["min"].iloc[0]), float(curve["max"].iloc[0]),
                               color=color, alpha=0.08, lw=0, zorder=1)
                    drawn_style.setdefault(method, "--")
                else:
                    x = curve["env_step"].to_numpy()
                    ax.fill_between(x, curve["min"].to_numpy(), curve["max"].to_numpy(),
                                    color=color, alpha=0.2, lw=0, zorder=z - 1)
                    ax.plot(x, curve["smoothed"].to_numpy(), color=color,
                            lw=2.4 if is_expo(method) else 1.7, zorder=z + 1)
                    drawn_style[method] = "-"
            ax.set_title(task)
            ax.set_xlabel("Environment steps")
            if i % ncols == 0 or not one_metric:
                ax.set_ylabel(metric_label(metric))
            ax.xaxis.set_major_formatter(FuncFormatter(format_steps))
            ax.xaxis.set_major_locator(MaxNLocator(nbins=5, min_n_ticks=3))
            if x_max > 0:
                ax.set_xlim(0, x_max)
            else:                      # only env_step-0 evaluations (imitation-only methods)
                ax.set_xlim(-0.5, 0.5)
                ax.set_xticks([0])
            if bounded:
                ax.set_ylim(-0.03, 1.03)
            ax.grid(True, alpha=0.3, lw=0.6)
            ax.spines["top"].set_visible(False)
            ax.spines["right"].set_visible(False)
            ax.margins(x=0)
        for j in range(n, nrows * ncols):
            axes[j // ncols][j % ncols].set_visible(False)

        handles, labels = [], []
        for method in methods:
            if not seed_counts[method]:
                continue
            style = drawn_style.get(method, "-")
            handles.append(Line2D([], [], color=method_color(method), ls=style,
                                  lw=2.4 if is_expo(method) else 1.7))
            labels.append(seeds_label(method, seed_counts[method]))
        if handles:
            # "outside": constrained layout reserves a strip below the panels for the legend,
            # so it never covers a curve.
            fig.legend(handles, labels, loc="outside lower center",
                       ncol=min(len(handles), 2 * ncols, 6), frameon=False,
                       handlelength=2.2, columnspacing=1.6, fontsize=10)
        paths = [out_dir / f"{figure}.png", out_dir / f"{figure}.pdf"]
        fig.savefig(paths[0], dpi=150)
        fig.savefig(paths[1])
    plt.close(fig)
    return paths


def format_table(summary: pd.DataFrame) -> str:
    """A short fixed-width text table of a figure's summary."""
    header = f"{'task':<24} {'method':<24} {'seeds':>5} {'final mean':>10} {'min':>7} " \
             f"{'max':>7} {'at env_step':>15}"
    lines = [header, "-" * len(header)]
    for r in summary.itertuples(index=False):
        steps = (f"{int(r.final_step_min)}" if r.final_step_min == r.final_step_max
                 else f"{int(r.final_step_min)}-{int(r.final_step_max)}")
        lines.append(f"{r.task:<24} {r.method:<24} {int(r.n_seeds):>5} {r.final_mean:>10.3f} "
                     f"{r.final_min:>7.3f} {r.final_max:>7.3f} {steps:>15}")
    return "\n".join(lines)


def make_figures(results_dir="results", out_dir="figures", smooth: int = 3,
                 mode: str = "centered", stream=None) -> dict[str, list[Path]]:
    """Load every run under `results_dir`, write the figures and summaries of each figure folder.

    Returns {figure: [png, pdf, summary_csv]}; {} when no run could be loaded. Warnings and tables
    go to `stream` (stdout by default).
    """
    stream = stream if stream is not None else sys.stdout
    loaded = load_runs(results_dir)
    for w in loaded.warnings:
        print(f"WARNING: {w}", file=stream)
    if loaded.empty:
        print(f"no runs found under {str(results_dir).rstrip('/')}/", file=stream)
        return {}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[Path]] = {}
    summary_all = final_summary(loaded.data, "value")
    metrics = (loaded.data.groupby(["figure", "task"])["metric"].first().rename("metric")
               .reset_index())
    summary_all = summary_all.merge(metrics, on=["figure", "task"], how="left")
    for figure in sorted(loaded.data["figure"].unique()):
        paths = plot_figure(figure, loaded.data, out_dir, smooth=smooth, mode=mode)
        summary = summary_all[summary_all["figure"] == figure].copy()
        summary["_order"] = summary["method"].map(method_sort_key)
        summary = summary.sort_values(["task", "_order"]).drop(columns=["_order", "figure"])
        csv_path = out_dir / f"{figure}_summary.csv"
        summary.to_csv(csv_path, index=False)
        written[figure] = paths + [csv_path]
        print(f"\n== {figure}: final performance (mean over seeds of each seed's last "
              f"evaluation) ==", file=stream)
        print(format_table(summary), file=stream)
        print(f"wrote {', '.join(str(p) for p in written[figure])}", file=stream)
    return written


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis.figures", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default="results", help="results tree (default: results)")
    p.add_argument("--out", default="figures", help="output folder (default: figures)")
    p.add_argument("--smooth", type=int, default=3,
                   help="running-average window over evaluations for the mean line; "
                        "1 = none (default: 3)")
    p.add_argument("--smooth-mode", choices=SMOOTH_MODES, default="centered",
                   help="centered (default) or trailing running average")
    args = p.parse_args(argv)
    if args.smooth < 1:
        p.error("--smooth must be >= 1")
    make_figures(args.results, args.out, smooth=args.smooth, mode=args.smooth_mode)
    return 0


if __name__ == "__main__":
    sys.exit(main())
