"""Domain-independent gymnasium wrappers shared by every task family.

The suite's time-limit convention (see expo/protocol.py): reaching the horizon is *truncation*, never
termination, and an episode that terminates on its last allowed step is reported as terminated only.
gymnasium's own TimeLimit sets truncated=True even when terminated is also True, and its ClipAction
widens the action space to (-inf, inf); both differ from what the suite wants, hence these wrappers.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np


class ClipAction(gym.ActionWrapper):
    """Clip incoming actions to the (Box) action space; the advertised space is left unchanged."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        if not isinstance(env.action_space, gym.spaces.Box):
            raise TypeError(f"ClipAction needs a Box action space, got {env.action_space}")
        self._low = env.action_space.low
        self._high = env.action_space.high

    def action(self, action):
        action = np.asarray(action, dtype=self.action_space.dtype)
        if action.shape != self.action_space.shape:
            raise ValueError(f"action shape {action.shape} != action space shape {self.action_space.shape}")
        return np.clip(action, self._low, self._high)


class TimeLimit(gym.Wrapper):
    """Truncate after `horizon` steps: truncated = (t >= horizon) and not terminated.

    Also refuses to step an episode that already ended (a training-loop bug otherwise silent).
    """

    def __init__(self, env: gym.Env, horizon: int):
        super().__init__(env)
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        self.horizon = int(horizon)
        self.elapsed_steps = 0
        self._ended = True  # no step before the first reset

    def reset(self, *, seed=None, options=None):
        self.elapsed_steps = 0
        self._ended = False
        return self.env.reset(seed=seed, options=options)

    def step(self, action):
        if self._ended:
            raise RuntimeError("step() called on an episode that has ended (or was never reset); call reset()")
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.elapsed_steps += 1
        terminated = bool(terminated)
        truncated = (bool(truncated) or self.elapsed_steps >= self.horizon) and not terminated
        self._ended = terminated or truncated
        return obs, reward, terminated, truncated, info
