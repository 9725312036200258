"""Environment construction: `make_env(spec, seed)` dispatches on the task's domain."""
from __future__ import annotations

import gymnasium as gym

from expo.protocol import TaskSpec


def make_env(spec: TaskSpec, seed: int, **kwargs) -> gym.Env:
    """A gymnasium env for `spec` with the suite's conventions (clipped actions, horizon = truncation,
    info["success"]). Extra keyword arguments go to the domain's constructor."""
    if spec.domain == "robomimic":
        from expo.envs.robomimic import make_robomimic_env  # lazy: robosuite import takes ~1 s

        return make_robomimic_env(spec, seed, **kwargs)
    raise NotImplementedError(f"environment domain {spec.domain!r} (task {spec.name!r}) is not implemented yet")
