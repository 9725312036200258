"""Which runs each figure folder should have, and which of them are missing or unusable.

Expected runs of results/<figure>/ come from the figure's grid when experiments/grids/<figure>.py
exists and expands (`experiments.grids.expand`, the launcher's own expansion, so sweep labels
such as ``expo-N16`` match the directories it writes). Otherwise every (task, label) found in the
folder is expected to have as many seeds as the best-covered one ("max seeds present"), with seed
ids taken from the ids found in the folder.

A run is *drawn* when its eval.csv gave at least one usable evaluation; *unusable* when its
directory exists but nothing could be loaded (the loader's warning says why); *missing* when the
directory does not exist. Nothing here changes what is drawn: it is what the report lists.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import pandas as pd

from analysis.runs import LoadedRuns

RunKey = tuple[str, str, int]          # (task, label, seed)


@dataclasses.dataclass
class FolderStatus:
    figure: str
    expected_source: str               # "grid <name>: ..." or "max seeds present (k)"
    expected: set[RunKey]
    found: set[RunKey]                 # seed directories present
    drawn: set[RunKey]                 # runs with usable evaluations
    grid_error: Optional[str] = None   # why no grid gave the expected runs

    @property
    def missing(self) -> list[RunKey]:
        return sorted(self.expected - self.found)

    @property
    def unusable(self) -> list[RunKey]:
        return sorted(self.found - self.drawn)

    @property
    def not_in_grid(self) -> list[RunKey]:
        return sorted(self.found - self.expected)

    def counts(self) -> pd.DataFrame:
        """One row per (task, label) drawn or expected: ``task, method, drawn`` (expected runs
        drawn), ``expected``, ``extra`` (runs drawn that are not expected)."""
        keys = sorted({(t, m) for t, m, _ in self.expected | self.found})
        rows = []
        for t, m in keys:
            exp = {k for k in self.expected if k[:2] == (t, m)}
            drawn = {k for k in self.drawn if k[:2] == (t, m)}
            rows.append((t, m, len(drawn & exp), len(exp), len(drawn - exp)))
        return pd.DataFrame(rows, columns=["task", "method", "drawn", "expected", "extra"])

    def totals(self) -> str:
        """"drawn/expected" over the folder, plus the runs drawn beyond the expected ones."""
        extra = len(self.drawn - self.expected)
        return (f"{len(self.drawn & self.expected)}/{len(self.expected)}"
                + (f" (+{extra} not expected)" if extra else ""))


class NoGrid(LookupError):
    """No experiments/grids/<figure>.py: the folder was written by an ad-hoc launch."""


def grid_runs(figure: str) -> set[RunKey]:
    """(task, label, seed) of every run the grid experiments/grids/<figure>.py launches.

    Raises NoGrid when there is no such grid, or whatever the launcher's expansion raises."""
    from experiments import grids
    from expo.logger import run_label

    if figure not in grids.available():
        raise NoGrid(f"no grid named {figure}")
    spec = grids.load(figure)
    return {(cfg["task"], run_label(cfg), int(cfg["seed"]))
            for cfg in grids.expand(spec, {"figure": figure}, {})}


def _fallback(found: set[RunKey]) -> set[RunKey]:
    """Every (task, label) of the folder with the seed count of the best-covered one."""
    per_group: dict[tuple[str, str], set[int]] = {}
    for t, m, s in found:
        per_group.setdefault((t, m), set()).add(s)
    if not per_group:
        return set()
    n = max(len(s) for s in per_group.values())
    ids = sorted(set().union(*per_group.values()))[:n]
    return {(t, m, s) for (t, m) in per_group for s in ids}


def folder_status(figure: str, loaded: LoadedRuns,
                  expected_runs: Callable[[str], set[RunKey]] = grid_runs) -> FolderStatus:
    """Compare the runs of results/<figure>/ with the expected ones (see the module docstring)."""
    found = {(r.task, r.method, r.seed) for r in loaded.runs if r.figure == figure}
    d = loaded.data
    drawn = set()
    if not d.empty:
        sub = d.loc[d["figure"] == figure, ["task", "method", "seed"]].drop_duplicates()
        drawn = {(t, m, int(s)) for t, m, s in sub.itertuples(index=False)}
    try:
        expected = expected_runs(figure)
        seeds = sorted({s for _, _, s in expected})
        source = (f"grid {figure} (experiments/grids/{figure}.py): {len(expected)} runs, "
                  f"seeds {_ranges(seeds)}")
        error = None
    except Exception as e:  # noqa: BLE001 - any failure falls back, and the reason is reported
        expected = _fallback(found)
        n = len({s for _, _, s in expected})
        source = f"max seeds present ({n} per task and method)"
        error = str(e) if isinstance(e, NoGrid) else \
            f"the grid does not expand ({type(e).__name__}: {e})"
    return FolderStatus(figure, source, expected, found, drawn, error)


def expected_for_absent(figure: str,
                        expected_runs: Callable[[str], set[RunKey]] = grid_runs) -> Optional[int]:
    """How many runs the grid of a figure with no results folder would launch (None: no grid)."""
    try:
        return len(expected_runs(figure))
    except Exception:  # noqa: BLE001 - no grid or a broken one: the report says "no grid"
        return None


def _ranges(ids) -> str:
    """[0, 1, 2, 5] -> "0-2, 5"."""
    ids = sorted(ids)
    if not ids:
        return "none"
    parts, start, prev = [], ids[0], ids[0]
    for i in ids[1:] + [None]:
        if i is not None and i == prev + 1:
            prev = i
            continue
        parts.append(f"{start}" if start == prev else f"{start}-{prev}")
        if i is not None:
            start = prev = i
    return ", ".join(parts)


def describe(keys: list[RunKey]) -> list[str]:
    """Group (task, label, seed) keys into lines "task/label: seeds 0-2"."""
    groups: dict[tuple[str, str], list[int]] = {}
    for t, m, s in keys:
        groups.setdefault((t, m), []).append(s)
    return [f"{t}/{m}: seed{'s' if len(v) > 1 else ''} {_ranges(v)}"
            for (t, m), v in sorted(groups.items())]
