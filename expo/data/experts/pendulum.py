"""The canary's scripted controller: swings Pendulum-v1 up by pumping energy, and never balances it.

Deliberately not an expert. Its data show the upright region with many actions (the pendulum passes
over the top again and again) but no episode that stays there, so imitating it reaches only its own
return (the registry's dataset, noise 1.0: mean -862, best episode -671; uniform random actions: -1239,
measured for experiments/grids/canary.py): a method must learn from the rewards to balance the pendulum,
which is what the canary checks (tests/test_canary.py asserts that no data episode reaches its threshold).

Control (theta from upright, theta_dot its rate; gymnasium's dynamics theta'' = 15 sin theta + 3 u
for torque u): the energy above the upright rest state is E = theta_dot^2 / 2 + 15 (cos theta - 1);
the controller pushes along theta_dot with torque proportional to -E, so E climbs to 0 (enough to
reach the top) and stays there. Action = clip(-E theta_dot / (15 * MAX_TORQUE), -1, 1) + N(0, noise^2),
clipped to [-1, 1].

Determinism: episode i is reset with a seed drawn from SeedSequence([seed, i]) and the noise stream
comes from SeedSequence([seed, 10**6]), so (num_demos, noise, seed, expert version) fix the file.
"""
from __future__ import annotations

import time
from typing import Optional

import numpy as np
from gymnasium.envs.classic_control.pendulum import angle_normalize
from tqdm import tqdm

from expo.data.d4rl_hdf5 import write_d4rl_hdf5
from expo.data.registry import EXPERT_VERSIONS
from expo.envs import make_env
from expo.envs.classic import MAX_TORQUE
from expo.protocol import get_task

EXPERT_VERSION = EXPERT_VERSIONS["pendulum"]
TASK = "pendulum"
GRAVITY_TERM = 15.0  # 3 g / (2 l) with gymnasium's g = 10, l = 1


def pump_action(obs: np.ndarray) -> float:
    """The noise-free energy-pumping action for an observation (cos theta, sin theta, theta_dot)."""
    cos_theta, theta_dot = float(obs[0]), float(obs[2])
    energy = 0.5 * theta_dot**2 + GRAVITY_TERM * (cos_theta - 1.0)
    return float(np.clip(-energy * theta_dot / (GRAVITY_TERM * MAX_TORQUE), -1.0, 1.0))


def generate_pendulum_dataset(path, num_demos: int, noise: float, seed: int, max_attempts: Optional[int] = None,
                              progress: bool = False) -> dict:
    """`num_demos` full episodes (the horizon: none ends early) of the noisy pump, in D4RL's layout."""
    del max_attempts  # every episode is kept: there is no success to wait for
    if num_demos < 1:
        raise ValueError(f"num_demos must be >= 1, got {num_demos}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    start = time.perf_counter()
    spec = get_task(TASK)
    env = make_env(spec, seed=seed)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 10**6]))
    columns = {k: [] for k in ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations")}
    returns = []
    for episode in tqdm(range(num_demos), desc=f"pendulum episodes (noise {noise:g})", unit="episode",
                        disable=not progress):
        obs, _ = env.reset(seed=int(np.random.SeedSequence([seed, episode]).generate_state(1)[0]))
        total, done = 0.0, False
        while not done:
            action = np.clip(pump_action(obs) + noise * rng.standard_normal(), -1.0, 1.0)
            next_obs, reward, terminated, truncated, _ = env.step(np.array([action], np.float32))
            done = terminated or truncated
            for key, value in (("observations", obs), ("actions", [action]), ("rewards", reward),
                               ("terminals", terminated), ("timeouts", truncated), ("next_observations", next_obs)):
                columns[key].append(value)
            total += reward
            obs = next_obs
        returns.append(total)
    env.close()
    arrays = {k: np.asarray(v, dtype=np.float32 if k not in ("terminals", "timeouts") else bool)
              for k, v in columns.items()}
    summary = {"path": str(path), "num_demos": num_demos, "attempts": num_demos, "success_rate": 1.0,
               "mean_length": float(spec.horizon), "mean_return": float(np.mean(returns))}
    write_d4rl_hdf5(path, arrays, attrs={"expo_generator": {
        "expert": TASK, "expert_version": EXPERT_VERSION, "noise": noise, "seed": seed, "num_demos": num_demos,
        "mean_return": summary["mean_return"]}})
    summary["seconds"] = time.perf_counter() - start
    return summary
