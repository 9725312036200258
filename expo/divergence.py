"""Divergence: a run whose numbers stop being finite stops, says so, and is never drawn as a result.

What is checked, and when (nothing is added to an update step: no device-to-host transfer per step):
- the update's info (losses, gradient norms, Q statistics) at every train.csv row: the values the
  row would hold, before it is written;
- the agent's parameters (every floating-point leaf: weights, target and EMA copies, optimizer
  moments, temperatures) at every train.csv row and before every checkpoint, so that a checkpoint
  is always finite;
- every action before it reaches an environment (training, warm start, evaluation); actions come to
  the host anyway.
A parameter that stops being finite stays so (every later update reads it), so a divergence between
two rows is found at the next row: within log_interval steps. The run then stops with one line
naming the run, the phase, the step and the first non-finite quantity; status.json records it
(`diverged`), the last checkpoint stays (a finite one), and a relaunch with the same settings is
refused unless retry_diverged=true, which restarts from that checkpoint.
"""
from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

STATUS = "status.json"


class Diverged(RuntimeError):
    """One or more runs diverged (or diverged before and were not retried): one line each."""

    def __init__(self, lines: Sequence[str]):
        self.lines = list(lines)
        super().__init__("; ".join(self.lines))


class NonFiniteAction(ValueError):
    """A policy returned a non-finite action; it was not sent to the environment."""


def first_non_finite(values: dict[str, float]) -> str | None:
    """"name = value" of the first non-finite entry of a train.csv row's values, else None."""
    for name, value in values.items():
        if isinstance(value, (int, float)) and not math.isfinite(value):
            return f"{name} = {value}"
    return None


def _floating(leaf) -> bool:
    return hasattr(leaf, "dtype") and jnp.issubdtype(leaf.dtype, jnp.floating)


@functools.partial(jax.jit, static_argnums=1)
def _finite_leaves(leaves, stacked: bool):
    """One flag per leaf and per seed: every axis but the leading (seed) axis is reduced."""
    def flags(x):
        x = x if stacked else x[None]
        return jnp.all(jnp.isfinite(x.reshape(x.shape[0], -1)), axis=1)
    return jnp.stack([flags(x) for x in leaves])


def first_non_finite_parameters(agent, seeds: int) -> list[str | None]:
    """Per seed of the agent (a seed group's stacked agent when seeds > 1): the path of its first
    non-finite floating-point leaf, else None. One jitted reduction, one small transfer."""
    flat = [(path, leaf) for path, leaf in jax.tree_util.tree_flatten_with_path(agent)[0]
            if _floating(leaf)]
    if not flat:
        return [None] * seeds
    flags = np.asarray(jax.device_get(_finite_leaves([leaf for _, leaf in flat], seeds > 1)))
    out: list[str | None] = []
    for i in range(seeds):
        bad = np.flatnonzero(~flags[:, i])
        out.append(None if bad.size == 0
                   else f"parameter {jax.tree_util.keystr(flat[bad[0]][0])} is not finite")
    return out


def check_actions(actions: np.ndarray, what: str) -> np.ndarray:
    """actions, or NonFiniteAction naming the first non-finite value (never sent to an env)."""
    if not np.all(np.isfinite(actions)):
        value = np.asarray(actions).ravel()[np.flatnonzero(~np.isfinite(actions))[0]]
        raise NonFiniteAction(f"{what} = {value}")
    return actions


def status_record(reason: str, where: str, comparable_config: dict,
                  last_checkpoint: str | None) -> dict[str, Any]:
    """status.json of a diverged run. `failed` stays true, so tools that only know finished /
    failed still see it did not finish; `config` lets a relaunch tell whether its settings changed."""
    return {"finished": False, "failed": True, "diverged": True, "reason": reason, "error": reason,
            "where": where, "last_checkpoint": last_checkpoint,
            "config": comparable_config}


def previous_divergence(run_dir: Path, comparable_config: dict) -> tuple[str, bool] | None:
    """(reason, same settings) when run_dir's status.json records a divergence, else None."""
    try:
        status = json.loads((Path(run_dir) / STATUS).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(status, dict) or not status.get("diverged"):
        return None
    same = json.loads(json.dumps(status.get("config"))) == comparable_config
    return str(status.get("reason", "diverged")), same
