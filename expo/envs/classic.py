"""The canary task: gymnasium's classic-control Pendulum-v1 under the suite's conventions.

Not one of the paper's tasks. It is cheap (thousands of steps a second on one core) and every method of
the suite is known to learn it, so a method that does not learn it has a fault in its loop, not a hard
task (tests/test_canary.py).

What this module changes relative to gymnasium's PendulumEnv, and why:
  - The class is constructed directly, not through gym.make: the registered id adds a 200-step
    TimeLimit, OrderEnforcing and the passive env checker. The suite's TimeLimit(spec.horizon) is the
    only time limit (200, gymnasium's own).
  - Actions are in [-1, 1] like every task of the suite; torque = 2 * action (gymnasium's range is
    [-2, 2]). The reward is gymnasium's, -(theta^2 + 0.1 theta_dot^2 + 0.001 torque^2), computed on
    the torque.
  - Observations (cos theta, sin theta, theta_dot) are float32; terminated is always False.
  - info["success"] (every step and after reset): the pendulum is balanced, |theta| < 0.2 rad and
    |theta_dot| < 1 rad/s. The canary's metric is the return; success is reported for the columns
    that every task has.
Seeding: reset(seed=s) draws theta and theta_dot uniformly in [-pi, pi] x [-1, 1] from the env's
np_random, so the seed fixes the episode.
"""
from __future__ import annotations

from typing import Optional

import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control.pendulum import PendulumEnv, angle_normalize

from expo.envs.wrappers import ClipAction, TimeLimit
from expo.protocol import TaskSpec

MAX_TORQUE = 2.0        # gymnasium's PendulumEnv.max_torque: action 1 is this torque
BALANCED_ANGLE = 0.2    # rad from upright
BALANCED_SPEED = 1.0    # rad/s


def balanced(theta: float, theta_dot: float) -> bool:
    return abs(float(angle_normalize(theta))) < BALANCED_ANGLE and abs(float(theta_dot)) < BALANCED_SPEED


class UnitPendulum(gym.Env):
    """PendulumEnv with actions in [-1, 1], float32 observations and info['success']."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(self, render_mode: Optional[str] = None):
        self.pendulum = PendulumEnv(render_mode=render_mode)
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(self.pendulum.observation_space.low,
                                                self.pendulum.observation_space.high, dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)

    def _info(self) -> dict:
        theta, theta_dot = self.pendulum.state
        return {"success": balanced(theta, theta_dot)}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        obs, _ = self.pendulum.reset(seed=seed, options=options)
        return obs.astype(np.float32), self._info()

    def step(self, action):
        torque = MAX_TORQUE * np.asarray(action, dtype=np.float32).reshape(1)
        obs, reward, _, _, _ = self.pendulum.step(torque)
        return obs.astype(np.float32), float(reward), False, False, self._info()

    def render(self):
        return self.pendulum.render()

    def close(self):
        self.pendulum.close()


def make_classic_env(spec: TaskSpec, seed: int, render_mode: Optional[str] = None) -> gym.Env:
    if spec.env_name != "Pendulum-v1":
        raise ValueError(f"task {spec.name!r}: unknown classic-control env {spec.env_name!r}; known: Pendulum-v1")
    env = TimeLimit(ClipAction(UnitPendulum(render_mode=render_mode)), spec.horizon)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    return env
