"""Evaluation: E episodes of the agent's evaluation policy from a fixed, seeded set of initial states,
run W at a time in W environments (expo/env_pool.py: in this process or in worker processes) with
one batched policy call per step.

Episode i always starts from the state seeded by (run_seed, i) and its t-th action uses the key
fold_in(fold_in(key, i), t), whichever environment it runs in and whatever runs beside it: the
result does not depend on W (W = 1 is the step-at-a-time evaluation). Environments take the next
episode as soon as theirs ends. The policy is always called with W rows (rows of environments with
no episode left repeat a live row and are ignored), so it compiles once.

`python -m expo.evaluate <run_dir> [episodes=N] [seed=S] [video=true]` re-evaluates a finished run
from the policy it saved (expo/reevaluate.py).
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from expo.divergence import check_actions
from expo.seeding import episode_seed

# policy(agent, observations [W, obs_dim], keys [W]) -> actions [W, act_dim]
BatchPolicy = Callable[..., jax.Array]


def per_row_policy(policy: Callable) -> BatchPolicy:
    """Make `policy(agent, observations [B, obs_dim], key)` (one key for the batch) into a jitted
    policy with one key per row: row r is exactly policy(agent, observations[r:r+1], keys[r])."""
    def one(agent, observation, key):
        return policy(agent, observation[None], key)[0]

    return jax.jit(jax.vmap(one, in_axes=(None, 0, 0)))


@jax.jit
def episode_step_keys(key, episodes, steps):
    """fold_in(fold_in(key, episode), step) for each row."""
    return jax.vmap(lambda i, t: jax.random.fold_in(jax.random.fold_in(key, i), t))(episodes, steps)


def evaluate(envs, act: Callable[[np.ndarray, np.ndarray], np.ndarray], key, num_episodes: int,
             run_seed: int, metric: str = "success_rate") -> dict[str, float]:
    """envs: W environments as expo/env_pool.py has them (LocalEnvs or ProcessEnvs);
    act(observations [W, obs_dim], keys [W]) -> actions [W, act_dim]."""
    width = len(envs)
    successes = np.zeros(num_episodes)
    returns = np.zeros(num_episodes)
    lengths = np.zeros(num_episodes, np.int64)
    episode = np.full(width, -1)          # the episode each environment runs (-1: none left)
    step = np.zeros(width, np.int64)
    solved = np.zeros(width, np.int64)    # steps at which the task was solved
    succeeded = np.zeros(width, bool)
    obs: list[np.ndarray | None] = [None] * width
    next_episode = 0

    def start(slot: int) -> None:
        nonlocal next_episode
        if next_episode >= num_episodes:
            episode[slot] = -1
            return
        episode[slot] = next_episode
        obs[slot] = envs.reset(slot, episode_seed(run_seed, "eval", next_episode))
        step[slot], solved[slot], succeeded[slot] = 0, 0, False
        next_episode += 1

    for slot in range(width):
        start(slot)
    while np.any(episode >= 0):
        live = np.flatnonzero(episode >= 0)
        rows = [obs[s] if episode[s] >= 0 else obs[live[0]] for s in range(width)]
        keys = episode_step_keys(key, np.maximum(episode, 0), step)
        actions = act(np.stack(rows), keys)
        outcomes = envs.step(live, [actions[s] for s in live])
        for s, (next_obs, reward, terminated, truncated, hit) in zip(live, outcomes):
            i = episode[s]
            obs[s] = next_obs
            returns[i] += reward
            step[s] += 1
            solved[s] += hit
            succeeded[s] |= hit
            if terminated or truncated:
                lengths[i] = step[s]
                # Adroit's metric (RLPD / EXPO): percentage of timesteps at which the task is solved.
                successes[i] = (solved[s] / step[s] if metric == "percent_solved_steps"
                                else float(succeeded[s]))
                start(s)
    return {"success": float(np.mean(successes)), "return": float(np.mean(returns)),
            "episodes": num_episodes, "episode_length": float(np.mean(lengths))}


def as_numpy_policy(batch_policy: BatchPolicy, agent) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """act(observations, keys) for evaluate(), from a per_row_policy and the agent to evaluate.
    Raises NonFiniteAction (expo/divergence.py) rather than return an action that is not finite."""
    def act(observations: np.ndarray, keys) -> np.ndarray:
        return check_actions(np.asarray(batch_policy(agent, jnp.asarray(observations, jnp.float32),
                                                     keys)), "evaluation action")

    return act


def main(argv: list[str] | None = None) -> None:
    """python -m expo.evaluate: expo/reevaluate.py (imported here only, on use)."""
    from expo.reevaluate import main as reevaluate_main

    reevaluate_main(argv)


if __name__ == "__main__":
    main()
