"""Scripted experts that generate the embedded datasets.

GENERATORS: expert name (a GeneratedDataset's `expert`) -> generate(path, num_demos, noise, seed,
max_attempts=None, progress=False) -> summary; expo.data.ensure_generated calls it. Each expert's version
(part of the file name) is the registry's (expo/data/registry.py EXPERT_VERSIONS): the experts import the
registry and the envs, never the other way round.
"""
from __future__ import annotations

from typing import Callable

from expo.data.experts import lift, pendulum, stack, threading

GENERATORS: dict[str, Callable[..., dict]] = {
    "lift": lift.generate_lift_dataset,
    "pendulum": pendulum.generate_pendulum_dataset,
    "stack": stack.generate_stack_dataset,
    "threading": threading.generate_threading_dataset,
}
