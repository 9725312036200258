"""Where a run's wall time goes: seconds per part of the training loop, kept by GroupRun and written
into status.json ("wall_seconds"); `python -m expo.profile` prints them.

Parts (PARTS): data (loading or generating the dataset, building envs and agents, resuming),
pretraining, acting (the policy's actions in training), simulator (training env steps and episode
bookkeeping), updates (online updates, waited for: the loop blocks on each update's result, so its
compute is not billed to the next acting call), evaluation (policy and simulator), checkpoints,
logging (train.csv rows, progress files, the progress bar), and other (the rest of the process's wall
time: compilation outside these parts, saving the policy, writing status.json).
A resumed run's breakdown covers its last process only (status.json says how often it resumed).
"""
from __future__ import annotations

import contextlib
import time
from typing import Iterator

PARTS = ("data", "pretraining", "acting", "simulator", "updates", "evaluation", "checkpoints", "logging", "other")


class WallClock:
    """Accumulates wall seconds per part; `part(name)` times a block. Parts nest: a block inside
    another is billed to the inner part only (a checkpoint taken during pretraining is a checkpoint)."""

    def __init__(self, clock=time.perf_counter) -> None:
        self._now = clock
        self.start = clock()
        self.seconds = {name: 0.0 for name in PARTS if name != "other"}
        self._open: list[list] = []  # [name, time since which it is billed], innermost last

    @contextlib.contextmanager
    def part(self, name: str) -> Iterator[None]:
        if name not in self.seconds:
            raise KeyError(f"unknown wall-time part {name!r}; known: {', '.join(self.seconds)}")
        self._bill_innermost()
        self._open.append([name, self._now()])
        try:
            yield
        finally:
            self._bill_innermost()
            self._open.pop()
            if self._open:  # the enclosing part is billed again from now
                self._open[-1][1] = self._now()

    def _bill_innermost(self) -> None:
        if self._open:
            now = self._now()
            self.seconds[self._open[-1][0]] += now - self._open[-1][1]
            self._open[-1][1] = now

    def breakdown(self) -> dict[str, float]:
        """Seconds per part since the clock started, rounded to 0.01 s; "other" is the remainder."""
        total = self._now() - self.start
        out = {name: round(s, 2) for name, s in self.seconds.items()}
        out["other"] = round(max(0.0, total - sum(self.seconds.values())), 2)
        return out
