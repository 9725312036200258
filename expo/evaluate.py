"""Evaluation: E episodes of the agent's evaluation policy from a fixed, seeded set of initial states."""
from __future__ import annotations

from typing import Callable

import numpy as np

from expo.seeding import episode_seed


def evaluate(env, act: Callable[[np.ndarray, int], np.ndarray], num_episodes: int, run_seed: int,
             metric: str = "success_rate") -> dict[str, float]:
    """act(observation, call_index) -> action. The i-th episode always starts from the state seeded
    by (run_seed, i), so every evaluation of a run sees the same E initial states."""
    successes, returns, lengths = [], [], []
    calls = 0
    for i in range(num_episodes):
        obs, _ = env.reset(seed=episode_seed(run_seed, "eval", i))
        total, length, success, solved_steps = 0.0, 0, False, 0
        while True:
            obs, reward, terminated, truncated, info = env.step(act(obs, calls))
            calls += 1
            total += float(reward)
            length += 1
            solved_steps += int(bool(info.get("success", False)))
            success = success or bool(info.get("success", False))
            if terminated or truncated:
                break
        # Adroit's metric (RLPD / EXPO): percentage of timesteps at which the task is solved.
        successes.append(solved_steps / length if metric == "percent_solved_steps" else float(success))
        returns.append(total)
        lengths.append(length)
    return {"success": float(np.mean(successes)), "return": float(np.mean(returns)),
            "episodes": num_episodes, "episode_length": float(np.mean(lengths))}
