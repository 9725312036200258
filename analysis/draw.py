"""Drawing panels of series, and the exact numbers drawn as a table.

A figure is a list of `Panel`s, each holding `Series`. `draw_panels` renders them (PNG + PDF) and
`panels_frame` returns the very arrays that were drawn, one row per (panel, series, x), which
`analysis.figures` writes next to each figure as ``<figure>_data.csv`` so that every plotted
number can be checked against the CSVs it came from.

Style (the paper's evaluation protocol): the line is the (smoothed) mean over seeds, the shaded band
is min..max over seeds and is NOT smoothed; one panel per task; the legend sits below the panels
(never on a curve) and gives each series' number of seeds.
"""
from __future__ import annotations

import dataclasses
import math
import os
import textwrap
from pathlib import Path
from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter  # noqa: E402

from analysis.style import format_steps, seeds_label  # noqa: E402
from expo.logger import atomic_write_text  # noqa: E402

KINDS = ("curve", "hline", "points", "scatter")
DATA_COLUMNS = ["figure", "panel", "series", "label", "x", "mean", "line", "band_min",
                "band_max", "n_seeds", "point"]


@dataclasses.dataclass
class Series:
    key: str                       # what the series is in results/ (a directory label)
    label: str                     # legend name, without the seed count
    color: str
    x: np.ndarray
    mean: np.ndarray               # unsmoothed mean over seeds
    line: np.ndarray               # what is drawn as the line (the smoothed mean for curves)
    band_min: np.ndarray
    band_max: np.ndarray
    n_seeds: object                # int, or one count per x (seeds behind each point)
    # curve | hline (a single evaluation) | points (x = a setting, joined by a line) | scatter
    # (markers with min..max error bars, not joined: x is itself a measured score)
    kind: str = "curve"
    emphasis: bool = False         # EXPO: thicker and on top
    count_unit: str = "seed"
    marker: str = "o"              # points / scatter marker
    point_labels: Optional[Sequence[str]] = None  # text next to each point (and the `point` column)
    linestyle: Optional[str] = None  # None: the kind's own ("--" for hline, "-" otherwise)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Series kind must be one of {KINDS}, got {self.kind!r}")
        for f in ("x", "mean", "line", "band_min", "band_max"):
            setattr(self, f, np.asarray(getattr(self, f), dtype=float))
        self.n_seeds = np.broadcast_to(np.asarray(self.n_seeds, dtype=np.int64),
                                       self.x.shape).copy()
        if self.point_labels is not None and len(self.point_labels) != len(self.x):
            raise ValueError(f"{len(self.point_labels)} point labels for {len(self.x)} points")


@dataclasses.dataclass
class Panel:
    title: str
    xlabel: str
    ylabel: str
    series: list[Series]
    x_format: str = "steps"        # steps (0, 250k, 1M) | fraction (0-100 %) | plain
    bounded: bool = True           # values in [0, 1]: fixed y range
    xlog: bool = False
    xticks: Optional[Sequence[float]] = None
    key: Optional[str] = None      # what the panel is in results/ (a task id); None: the title
    diagonal: Optional[str] = None  # draw y = x with this legend text (x and y share a scale)


def atomic_savefig(fig, path: Path, **kwargs) -> Path:
    """savefig through a temporary file and os.replace (a reader never sees half a file)."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    fig.savefig(tmp, format=path.suffix.lstrip("."), **kwargs)
    os.replace(tmp, path)
    return path


def write_csv(df: pd.DataFrame, path: Path) -> Path:
    atomic_write_text(Path(path), df.to_csv(index=False))
    return Path(path)


def line_style(s: Series) -> str:
    """The series' line style: its own, else its kind's (an imitation level is dashed)."""
    if s.kind == "scatter":
        return "none"
    return s.linestyle or ("--" if s.kind == "hline" else "-")


def _draw_series(ax, s: Series, labelled: set) -> None:
    """Draw one series; `labelled` holds the point labels already written on this panel (two
    series at the same x share one label instead of printing it twice on top of each other)."""
    z = 3 if s.emphasis else 2
    lw = 2.4 if s.emphasis else 1.7
    if s.kind == "hline":
        ax.axhline(float(s.line[0]), color=s.color, ls=line_style(s),
                   lw=lw - 0.8 if s.emphasis else 1.6,
                   zorder=z)
        ax.axhspan(float(s.band_min[0]), float(s.band_max[0]), color=s.color, alpha=0.08, lw=0,
                   zorder=1)
        return
    if s.kind == "scatter":
        below, above = s.line - s.band_min, s.band_max - s.line
        ax.errorbar(s.x, s.line, yerr=np.vstack([below, above]), fmt=s.marker, color=s.color,
                    ms=7 if s.emphasis else 6, capsize=3, lw=1.2, zorder=z + 1,
                    markeredgecolor="white", markeredgewidth=0.6)
        for x, y, text in zip(s.x, s.line, s.point_labels or ()):
            if (x, text) in labelled:
                continue
            labelled.add((x, text))
            ax.annotate(text, (x, y), textcoords="offset points", xytext=(7, -12), fontsize=8,
                        color="0.3")
        return
    if np.isfinite(s.band_min).any():
        ax.fill_between(s.x, s.band_min, s.band_max, color=s.color, alpha=0.2, lw=0,
                        zorder=z - 1)
    marker = s.marker if s.kind == "points" or len(s.x) == 1 else None
    ax.plot(s.x, s.line, color=s.color, lw=lw, ls=line_style(s), zorder=z + 1, marker=marker,
            ms=5)


def _format_axes(ax, panel: Panel, show_ylabel: bool) -> None:
    # long titles wrap, never overlap; an explicit line break (a second line of notes) is kept
    ax.set_title("\n".join(textwrap.fill(line, 42) for line in panel.title.split("\n")))
    ax.set_xlabel(panel.xlabel)
    if show_ylabel:
        ax.set_ylabel(panel.ylabel)
    xs = np.concatenate([s.x for s in panel.series]) if panel.series else np.array([0.0])
    x_max = float(np.nanmax(xs)) if xs.size else 0.0
    if panel.xlog:
        ax.set_xscale("log")
    if panel.x_format == "steps":
        ax.xaxis.set_major_formatter(FuncFormatter(format_steps))
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5, min_n_ticks=3))
    elif panel.x_format == "fraction":
        ax.xaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
    if panel.xticks is not None:
        ax.set_xticks(list(panel.xticks))
        ax.set_xticklabels([f"{t:g}" for t in panel.xticks])
        ax.minorticks_off()
    if panel.x_format in ("steps", "fraction") and not panel.xlog:
        if x_max > 0:
            ax.set_xlim(0, x_max)
        else:                       # only env_step-0 evaluations (imitation-only methods)
            ax.set_xlim(-0.5, 0.5)
            ax.set_xticks([0])
        ax.margins(x=0)
    if panel.bounded:
        ax.set_ylim(-0.03, 1.03)
    if panel.diagonal is not None:
        ax.axline((0, 0), slope=1, color="0.55", ls=":", lw=1.2, zorder=1)
        if panel.bounded:
            ax.set_xlim(-0.03, 1.03)
    ax.grid(True, alpha=0.3, lw=0.6)
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)


def draw_panels(panels: Sequence[Panel], stem: Path, suptitle: Optional[str] = None,
                max_cols: int = 4) -> list[Path]:
    """Render `panels` into ``<stem>.png`` and ``<stem>.pdf``; return both paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    n = max(len(panels), 1)
    nrows = math.ceil(n / min(n, max_cols))
    ncols = math.ceil(n / nrows)          # balanced grid: 5 tasks -> 2 x 3, 12 -> 3 x 4
    same_ylabel = len({p.ylabel for p in panels}) <= 1
    with plt.rc_context({"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10}):
        # at least 6.4 in wide, so a one-panel figure still has room for a two-column legend
        fig, axes = plt.subplots(nrows, ncols, figsize=(max(3.9 * ncols, 6.4), 3.0 * nrows + 0.6),
                                 squeeze=False, layout="constrained")
        legend: dict[str, tuple[Series, list[int]]] = {}
        diagonal = None
        for i, panel in enumerate(panels):
            ax = axes[i // ncols][i % ncols]
            labelled: set = set()
            for s in panel.series:
                _draw_series(ax, s, labelled)
                legend.setdefault(s.key, (s, []))[1].extend(s.n_seeds.tolist())
            _format_axes(ax, panel, show_ylabel=(i % ncols == 0 or not same_ylabel))
            diagonal = diagonal or panel.diagonal
        for j in range(len(panels), nrows * ncols):
            axes[j // ncols][j % ncols].set_visible(False)
        handles, labels = [], []
        for s, counts in legend.values():
            handles.append(Line2D([], [], color=s.color,
                                  ls=line_style(s),
                                  lw=2.4 if s.emphasis else 1.7,
                                  marker=s.marker if s.kind in ("points", "scatter") else None))
            labels.append(seeds_label(s.label, counts, s.count_unit))
        if diagonal is not None:
            handles.append(Line2D([], [], color="0.55", ls=":", lw=1.2))
            labels.append(diagonal)
        if handles:
            # "outside": constrained layout reserves a strip below the panels for the legend.
            width = max(3.9 * ncols, 6.4)
            longest = max(len(t) for t in labels)
            # columns that fit the figure width (about 0.075 in per legend character + handle)
            fit = max(1, int(width / (0.075 * longest + 0.6)))
            fig.legend(handles, labels, loc="outside lower center",
                       ncol=min(len(handles), fit, 6), frameon=False,
                       handlelength=2.2, columnspacing=1.6, fontsize=10)
        if suptitle:
            fig.suptitle(suptitle)
        paths = [atomic_savefig(fig, stem.with_suffix(".png"), dpi=150),
                 atomic_savefig(fig, stem.with_suffix(".pdf"))]
    plt.close(fig)
    return paths


def panels_frame(figure: str, panels: Sequence[Panel]) -> pd.DataFrame:
    """Every drawn number: one row per (panel, series, x), columns `DATA_COLUMNS`."""
    parts = []
    for panel in panels:
        for s in panel.series:
            parts.append(pd.DataFrame({
                "figure": figure, "panel": panel.key or panel.title, "series": s.key,
                "label": s.label, "x": s.x, "mean": s.mean, "line": s.line,
                "band_min": s.band_min, "band_max": s.band_max, "n_seeds": s.n_seeds,
                "point": list(s.point_labels) if s.point_labels is not None else ""}))
    if not parts:
        return pd.DataFrame(columns=DATA_COLUMNS)
    return pd.concat(parts, ignore_index=True)[DATA_COLUMNS]
