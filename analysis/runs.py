"""Discover and load runs from the results tree into one tidy DataFrame.

Layout (written by the training loop):

    results/<figure>/<task>/<label>/seed_<k>/{eval.csv, train.csv, config.json, status.json}

where <label> is the method, or ``<method>-<variant>`` for one setting of a swept key (e.g.
``expo-N16``, ``expo-demos50``; method names never contain "-"). The full schema is in
analysis/SCHEMA.md.

`load_runs(results_dir)` returns a `LoadedRuns` with

* `data`: one row per (figure, task, method, seed, evaluation), columns
  ``figure, task, method, seed, setting, metric, dataset, value, base_method, variant, env_step,
  success, return, episodes, wall_time_s`` plus any further column eval.csv has. ``dataset`` is
  config.json's ``dataset.name`` ("" when absent): the figures say when it is an embedded one.
  ``method`` is the directory label; ``base_method`` and ``variant`` are its two parts
  (`split_label`). ``finished`` is True when status.json says the run finished (`is_finished`).
  ``device`` is where it ran, "<backend>: <device kind>" from status.json (`device_label`; "" for
  runs that did not record it).
  ``metric`` is ``protocol.metric`` from the run's config.json (``success_rate`` when absent)
  and ``value`` is the column that metric names (see `metric_column`), so plotting code reads
  ``value`` whatever the metric is.
* `warnings`: human-readable lines about everything that was not loaded cleanly: missing,
  empty (header-only), unreadable or incomplete eval.csv; missing or unreadable config.json;
  config entries that disagree with the directory names; rows dropped for bad values; duplicate
  evaluation steps; partial runs (fewer evaluations than sibling seeds). Nothing is dropped without
  a line here.
* `diverged`: "figure/task/method/seed_k: reason" for each run whose status.json records a
  divergence (expo/divergence.py). Such a run is left out of `data`, so out of every curve, table
  and aggregate: its evaluations after the divergence do not exist, and those before it would draw
  a run that stopped as one that failed.

The directory names are the source of truth for figure/task/method/variant/seed; config.json is
read for ``setting``, ``protocol.metric`` and ``dataset.name`` and is cross-checked against the path.
"""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

EVAL_FILE = "eval.csv"
CONFIG_FILE = "config.json"
STATUS_FILE = "status.json"
REQUIRED_EVAL_COLUMNS = ("env_step", "success")
EXPECTED_EVAL_COLUMNS = ("env_step", "success", "return", "episodes", "wall_time_s")
DEFAULT_METRIC = "success_rate"
KEY_COLUMNS = ("figure", "task", "method", "seed")
ID_COLUMNS = KEY_COLUMNS + ("setting", "metric", "dataset")
LABEL_COLUMNS = ("base_method", "variant", "finished", "device")
NOT_RECORDED = "not recorded"

_SEED_DIR = re.compile(r"^seed_(-?\d+)$")


@dataclasses.dataclass
class RunInfo:
    """One seed directory found under the results tree."""

    figure: str
    task: str
    method: str
    seed: int
    path: Path

    @property
    def key(self) -> tuple:
        return (self.figure, self.task, self.method, self.seed)


@dataclasses.dataclass
class LoadedRuns:
    data: pd.DataFrame
    warnings: list[str]
    runs: list[RunInfo]          # every seed directory found, loaded or not
    diverged: list[str] = dataclasses.field(default_factory=list)  # "run: reason", not in data

    @property
    def empty(self) -> bool:
        return self.data.empty


def split_label(label: str) -> tuple[str, str]:
    """A run directory's label -> (method, variant): "expo-N16" -> ("expo", "N16"),
    "expo_no_edit" -> ("expo_no_edit", "")."""
    method, _, variant = label.partition("-")
    return method, variant


def metric_column(metric: str, columns) -> str:
    """The eval.csv column that holds `metric`.

    ``success_rate`` (and ``success``) -> ``success``. Any other metric name (e.g. Adroit's
    ``percent_solved_steps``) -> the column of that name when eval.csv has one, otherwise
    ``success`` (the training loop writes the task's metric into ``success``).
    """
    if metric in ("success_rate", "success"):
        return "success"
    if metric in set(columns):
        return metric
    return "success"


def _rel(path: Path, root: Path) -> str:
    """`path` relative to the results root (figure/task/method/seed_k), as warnings name runs."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def discover_runs(results_dir) -> tuple[list[RunInfo], list[str]]:
    """Walk ``results/<figure>/<task>/<method>/seed_<k>/``; return (runs, warnings).

    Directories at the seed level that are not named ``seed_<int>`` and method directories without
    any seed directory are reported. Hidden and ``_``-prefixed directories are ignored.
    """
    root = Path(results_dir)
    runs: list[RunInfo] = []
    warnings: list[str] = []
    if not root.is_dir():
        return runs, warnings
    for fig_dir in _subdirs(root):
        for task_dir in _subdirs(fig_dir):
            for method_dir in _subdirs(task_dir):
                n_seeds = 0
                for seed_dir in _subdirs(method_dir):
                    m = _SEED_DIR.match(seed_dir.name)
                    if m is None:
                        warnings.append(
                            f"{_rel(seed_dir, root)}: not a seed_<k> directory, ignored")
                        continue
                    n_seeds += 1
                    runs.append(RunInfo(fig_dir.name, task_dir.name, method_dir.name,
                                        int(m.group(1)), seed_dir))
                if n_seeds == 0:
                    warnings.append(f"{_rel(method_dir, root)}: no seed_<k> directories")
    return runs, warnings


def _read_config(run: RunInfo, root: Path, warnings: list[str]) -> dict:
    path = run.path / CONFIG_FILE
    if not path.is_file():
        warnings.append(f"{_rel(run.path, root)}: missing config.json (metric assumed "
                        f"{DEFAULT_METRIC})")
        return {}
    try:
        cfg = json.loads(path.read_text())
        if not isinstance(cfg, dict):
            raise ValueError("top level is not an object")
    except (OSError, ValueError) as e:
        warnings.append(f"{_rel(run.path, root)}: unreadable config.json ({e}); metric assumed "
                        f"{DEFAULT_METRIC}")
        return {}
    method, variant = split_label(run.method)
    expected = {"figure": run.figure, "task": run.task, "method": method, "variant": variant,
                "seed": run.seed}
    for k, v in expected.items():
        # config.json of runs written before sweeps existed has no "variant" key: "" is implied
        found = cfg.get(k, "" if k == "variant" else v)
        if str(found) != str(v):
            warnings.append(f"{_rel(run.path, root)}: config.json {k}={found!r} but directory says "
                            f"{v!r} (directory used)")
    return cfg


def read_eval_csv(path: Path, label: str, warnings: list[str]) -> Optional[pd.DataFrame]:
    """Read one eval.csv; None (with a warning) when it is missing, empty or corrupt.

    Rows whose env_step or success is not a number are dropped and reported; repeated env_steps
    keep the last row (a resumed run) and are reported. The result is sorted by env_step.
    """
    if not path.is_file():
        warnings.append(f"{label}: missing eval.csv")
        return None
    if path.stat().st_size == 0:
        warnings.append(f"{label}: empty eval.csv (0 bytes)")
        return None
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        warnings.append(f"{label}: empty eval.csv (no header, no rows)")
        return None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as e:
        warnings.append(f"{label}: corrupt eval.csv ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''})")
        return None
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in REQUIRED_EVAL_COLUMNS if c not in df.columns]
    if missing:
        warnings.append(f"{label}: corrupt eval.csv (missing column(s) {', '.join(missing)}; "
                        f"has {', '.join(df.columns) or 'none'})")
        return None
    if len(df) == 0:
        warnings.append(f"{label}: empty eval.csv (header only, no evaluation rows)")
        return None
    for c in EXPECTED_EVAL_COLUMNS:          # extra columns keep the dtype pandas gave them
        if c in df.columns:
            df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    bad = ~np.isfinite(df["env_step"]) | ~np.isfinite(df["success"])
    if bad.any():
        warnings.append(f"{label}: dropped {int(bad.sum())} row(s) with a non-numeric "
                        f"env_step or success")
        df = df.loc[~bad]
    if len(df) == 0:
        warnings.append(f"{label}: no usable evaluation rows")
        return None
    df = df.copy()
    df["env_step"] = df["env_step"].astype(np.int64)
    dup = df["env_step"].duplicated(keep="last")
    if dup.any():
        steps = sorted(set(df.loc[dup, "env_step"].tolist()))
        warnings.append(f"{label}: repeated env_step(s) {steps[:5]}{'...' if len(steps) > 5 else ''}"
                        f"; kept the last row of each")
        df = df.loc[~dup]
    return df.sort_values("env_step", kind="stable").reset_index(drop=True)


def _partial_run_warnings(data: pd.DataFrame) -> list[str]:
    """Seeds whose evaluations stop earlier than (or lack steps of) their siblings."""
    out = []
    for (fig, task, method), g in data.groupby(["figure", "task", "method"], sort=True):
        per_seed = {s: set(gs["env_step"].tolist()) for s, gs in g.groupby("seed")}
        if len(per_seed) < 2:
            continue
        union = set().union(*per_seed.values())
        for seed, steps in sorted(per_seed.items()):
            lacking = union - steps
            if lacking:
                out.append(
                    f"{fig}/{task}/{method}/seed_{seed}: partial run, {len(steps)} evaluation(s) "
                    f"up to env_step {max(steps)} while sibling seeds have {len(union)} step(s) "
                    f"up to {max(union)}; the {method} curve uses only the steps all seeds have")
    return out


def divergence_reason(run_dir: Path) -> Optional[str]:
    """Why the run diverged, when its status.json records a divergence; else None."""
    try:
        status = json.loads((Path(run_dir) / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
    if isinstance(status, dict) and status.get("diverged"):
        return str(status.get("reason") or "diverged")
    return None


def is_finished(run_dir: Path) -> bool:
    """True when the run's status.json says it finished (a run still going, or one that stopped
    early, has no such status)."""
    try:
        status = json.loads((Path(run_dir) / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(status, dict) and status.get("finished") is True


def device_label(run_dir: Path) -> str:
    """Where the run ran, from the device record of its status.json (expo/device.py):
    "<backend>: <device kind>", e.g. "gpu: NVIDIA H100 80GB HBM3" ("<n> x <kind>" for several
    devices; on a CPU, whose kind is just "cpu", its model). "" when there is none: runs finished
    before runs recorded their device, runs still going."""
    try:
        record = json.loads((Path(run_dir) / STATUS_FILE).read_text()).get("device")
    except (OSError, ValueError, AttributeError):
        return ""
    if not isinstance(record, dict) or not record.get("backend"):
        return ""
    kind = str(record.get("device_kind") or "?")
    if record["backend"] == "cpu" and kind == "cpu" and record.get("cpu"):
        kind = str(record["cpu"])
    count = record.get("device_count")
    return f"{record['backend']}: " + (f"{count} x {kind}" if isinstance(count, int) and count > 1 else kind)


def devices_by_folder(results_dir) -> dict[str, dict[str, int]]:
    """Results folder -> {device_label, or NOT_RECORDED: number of its runs}, over every run found
    (finished, diverged or not), in folder order."""
    out: dict[str, dict[str, int]] = {}
    for run in discover_runs(results_dir)[0]:
        counts = out.setdefault(run.figure, {})
        label = device_label(run.path) or NOT_RECORDED
        counts[label] = counts.get(label, 0) + 1
    return out


def load_runs(results_dir) -> LoadedRuns:
    """Load every run under `results_dir` (see the module docstring)."""
    root = Path(results_dir)
    runs, warnings = discover_runs(root)
    frames, diverged = [], []
    for run in runs:
        label = _rel(run.path, root)
        reason = divergence_reason(run.path)
        if reason is not None:
            diverged.append(f"{label}: {reason}")
            warnings.append(f"{label}: {reason}; left out of every curve, table and aggregate")
            continue
        df = read_eval_csv(run.path / EVAL_FILE, label, warnings)
        cfg = _read_config(run, root, warnings)
        if df is None:
            continue
        protocol = cfg.get("protocol") if isinstance(cfg.get("protocol"), dict) else {}
        metric = str(protocol.get("metric") or DEFAULT_METRIC)
        col = metric_column(metric, df.columns)
        base_method, variant = split_label(run.method)
        dataset = cfg.get("dataset") if isinstance(cfg.get("dataset"), dict) else {}
        ids = {"figure": run.figure, "task": run.task, "method": run.method, "seed": run.seed,
               "setting": str(cfg.get("setting", "")), "metric": metric,
               "dataset": str(dataset.get("name") or ""),
               "base_method": base_method, "variant": variant,
               "finished": is_finished(run.path), "device": device_label(run.path)}
        df = df.assign(**ids, value=pd.to_numeric(df[col], errors="coerce").astype(float))
        bad = ~np.isfinite(df["value"])
        if bad.any():
            warnings.append(f"{label}: dropped {int(bad.sum())} row(s) with no number in "
                            f"column {col!r} (metric {metric})")
            df = df.loc[~bad]
            if len(df) == 0:
                continue
        frames.append(df)
    if frames:
        data = pd.concat(frames, ignore_index=True, sort=False)
        first = (list(ID_COLUMNS) + ["value"] + list(LABEL_COLUMNS)
                 + [c for c in EXPECTED_EVAL_COLUMNS if c in data])
        data = data[first + [c for c in data.columns if c not in first]]
        data = data.sort_values(list(KEY_COLUMNS) + ["env_step"], kind="stable")
        data = data.reset_index(drop=True)
        # Two seeds of one panel with different metrics cannot share an axis: report it.
        for (fig, task), g in data.groupby(["figure", "task"], sort=True):
            metrics = sorted(set(g["metric"]))
            if len(metrics) > 1:
                warnings.append(f"{fig}/{task}: runs disagree on protocol.metric {metrics}; "
                                f"the panel is labelled with {metrics[0]}")
        warnings.extend(_partial_run_warnings(data))
    else:
        data = pd.DataFrame(columns=list(ID_COLUMNS) + ["value"] + list(LABEL_COLUMNS)
                            + list(EXPECTED_EVAL_COLUMNS))
    return LoadedRuns(data=data, warnings=warnings, runs=runs, diverged=diverged)
