"""Per-run output: eval.csv, train.csv and config.json, each written atomically.

Every write replaces the whole file through a temporary file and os.replace, so a crash (or a
pre-empted job) never leaves a half-written row: a reader sees the previous complete file or the
new complete file. The files are small (one row per evaluation / log interval), so rewriting them
costs microseconds next to a training step.

A resumed run (expo/checkpoint.py) continues the same files: `position()` is saved with each
checkpoint, and `RunLogger(..., position=...)` truncates each CSV to the rows it had then (later rows
came from lost work, which the resumed run redoes identically) before appending again.
"""
from __future__ import annotations

import csv
import io
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

EVAL_COLUMNS = ("env_step", "success", "return", "episodes", "episode_length", "wall_time_s")
PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy", "mujoco", "robosuite", "gymnasium", "h5py")


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def format_value(v: Any) -> str:
    """Floats with 6 significant digits: stable text, so equal runs give equal bytes."""
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


class CsvTable:
    """Rows kept in memory and flushed whole. Given columns are fixed; otherwise they grow."""

    def __init__(self, path: Path, columns: tuple[str, ...] | None = None):
        self.path, self.rows = Path(path), []
        self.fixed = columns is not None
        self.columns: tuple[str, ...] = tuple(columns or ())

    def append(self, row: dict[str, Any]) -> None:
        if self.fixed and set(row) - set(self.columns):
            raise KeyError(f"{self.path.name}: columns {sorted(set(row) - set(self.columns))} "
                           f"not in {self.columns}")
        # Free tables (train.csv) grow their header when a phase logs new quantities; the whole
        # file is rewritten each time, so earlier rows simply get empty cells in new columns.
        self.columns = tuple(self.columns) + tuple(k for k in row if k not in self.columns)
        self.rows.append(row)
        self._write()

    def position(self) -> dict[str, Any]:
        """How far the table is: its row count and column order (JSON-ready)."""
        return {"rows": len(self.rows), "columns": list(self.columns)}

    def restore(self, position: dict[str, Any]) -> None:
        """Reload the file's first position["rows"] rows under position["columns"] and rewrite it.

        Cells come back as the text they were written as, so the rewritten rows are byte-identical.
        """
        n, columns = int(position["rows"]), tuple(position["columns"])
        if not self.fixed:
            self.columns = columns
        if n == 0:  # the table had no row yet: it had no file either
            self.rows = []
            self.path.unlink(missing_ok=True)
            return
        rows: list[dict[str, str]] = []
        header: tuple[str, ...] = ()
        if self.path.is_file():
            with open(self.path, newline="") as f:
                reader = csv.reader(f)
                header = tuple(next(reader, ()))
                rows = [dict(zip(header, r)) for r in reader]
        # Rows logged after the checkpoint may have added columns (at the end), never reordered them.
        if len(rows) < n or header[:len(columns)] != columns:
            raise ValueError(f"{self.path} has {len(rows)} rows and columns {list(header)}; the "
                             f"checkpoint expects at least {n} rows and columns {list(columns)}")
        self.rows = [{c: r.get(c, "") for c in columns} for r in rows[:n]]
        self._write()

    def _write(self) -> None:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.columns)
        for r in self.rows:
            writer.writerow([format_value(r.get(c, "")) for c in self.columns])
        atomic_write_text(self.path, buf.getvalue())


def environment_info() -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).resolve().parent, timeout=10).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, timeout=10,
                                    cwd=Path(__file__).resolve().parent).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    return {"packages": versions, "python": sys.version.split()[0], "platform": platform.platform(),
            "git_commit": commit, "git_dirty": dirty}


class RunLogger:
    """eval.csv, train.csv and config.json of one run.

    position=None starts the tables empty and deletes CSV files left by an earlier attempt that
    never reached a checkpoint; a position from `position()` continues them from that point.
    """

    def __init__(self, run_dir: Path, config: dict, position: dict[str, Any] | None = None):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.run_dir / "config.json",
                          json.dumps({**config, "environment": environment_info()}, indent=2,
                                     default=list) + "\n")
        self.eval = CsvTable(self.run_dir / "eval.csv", EVAL_COLUMNS)
        self.train = CsvTable(self.run_dir / "train.csv")
        for table in (self.eval, self.train):
            if position is None:
                table.path.unlink(missing_ok=True)
            else:
                table.restore(position[table.path.name])

    def position(self) -> dict[str, Any]:
        return {table.path.name: table.position() for table in (self.eval, self.train)}

    def log_eval(self, row: dict[str, Any]) -> None:
        self.eval.append(row)

    def log_train(self, row: dict[str, Any]) -> None:
        self.train.append(row)


PROGRESS_FILE = "progress.json"


def write_progress(run_dir: Path, phase: str, done: int = 0, total: int = 0, **detail: Any) -> None:
    """What the run is doing now, for the launcher's progress display: phase "data" (loading, or
    generating on first use, the dataset), "pretrain" / "online" (done of total steps), "evaluating"
    (at env step `env_step`). Deleted when the run finishes; it never changes what a run computes."""
    atomic_write_text(Path(run_dir) / PROGRESS_FILE,
                      json.dumps({"phase": phase, "done": int(done), "total": int(total), **detail}) + "\n")


def run_label(config: dict) -> str:
    """The run directory's method component: the method, or <method>-<variant> inside a sweep
    (method names never contain "-", so the split is unambiguous)."""
    variant = config.get("variant") or ""
    return f"{config['method']}-{variant}" if variant else config["method"]


# The checkout's root (the folder above the expo package): the default results_dir is its results/.
REPO_ROOT = Path(__file__).resolve().parents[1]


def resolve_results_dir(overrides: dict[str, Any]) -> Any:
    """The results folder the entry points (expo.train, the launcher) give every run, absolute: the
    checkout's results/ when the user gave no results_dir (whatever the working directory), else the
    user's path, a relative one taken against the current working directory once. The key is
    operational (expo/checkpoint.py), so the absolute value never makes a finished run look
    different from a relaunched one."""
    value = overrides.get("results_dir")
    if value is None:
        return str(REPO_ROOT / "results")
    if not isinstance(value, (str, Path)):
        return value  # not a path: build_config names the type it wants
    return os.path.abspath(os.path.expanduser(str(value)))


def run_dir_for(config: dict) -> Path:
    return (Path(config["results_dir"]) / str(config["figure"]) / config["task"] / run_label(config)
            / f"seed_{config['seed']}")
