"""A training lane's episodes in its environment: writing transitions into the online buffer as the
learner sees them, the warm-start episodes of keep_offline_data=false (Fig. 8), and replaying the
unfinished episode of a resumed run."""
from __future__ import annotations

import itertools

import jax
import numpy as np

from expo import buffers, divergence
from expo.checkpoint import CheckpointError
from expo.seeding import episode_seed, jax_key


class EpisodeWriter:
    """Writes an episode's transitions into the online buffer as the learner sees them (reward
    transform; mask 0 only on true termination, so time-limit truncation still bootstraps) and,
    when it ends, the method's per-episode extra fields (e.g. Cal-QL's Monte-Carlo returns)."""

    def __init__(self, online: buffers.ReplayBuffer, spec, module, agent_cfg: dict):
        self.online, self.spec, self.module, self.agent_cfg = online, spec, module, agent_cfg
        self.extra_fields = online.fields[len(buffers.FIELDS):]
        self.rewards: list[float] = []  # the learner's (transformed) rewards of the episode
        self.env_return = 0.0

    def add(self, obs, action, reward, next_obs, terminated: bool) -> None:
        learner_reward = self.spec.transform_reward(reward)
        self.online.add(obs, action, learner_reward, next_obs, 0.0 if terminated else 1.0)
        self.rewards.append(float(learner_reward))
        self.env_return += float(reward)

    def end(self, terminated: bool) -> float:
        """Close the episode; returns its environment return."""
        if self.extra_fields:
            for name, values in self.module.episode_extras(np.asarray(self.rewards), bool(terminated),
                                                           self.agent_cfg).items():
                self.online.write_recent(name, values)
        env_return = self.env_return
        self.rewards, self.env_return = [], 0.0
        return env_return


def warm_start_episode_count(cfg: dict, data: dict) -> int:
    """warm_start_episodes, with None resolved: 0 when the offline data are kept, else as many
    episodes as the offline dataset holds (Fig. 8)."""
    if cfg["warm_start_episodes"] is not None:
        return cfg["warm_start_episodes"]
    return 0 if cfg["keep_offline_data"] else int(np.count_nonzero(data["episode_starts"]))


def warm_start(env, writer: EpisodeWriter, act, num_episodes: int, seed: int) -> tuple[int, list[float]]:
    """num_episodes episodes of `act(obs, key)` into the online buffer; episode i starts from
    episode_seed(seed, "warm_start", i) and its action keys derive from the run seed.
    Returns (env steps taken, episode returns)."""
    base_key = jax_key(seed, "warm_start")
    env_steps, returns = 0, []
    for i in range(num_episodes):
        obs, _ = env.reset(seed=episode_seed(seed, "warm_start", i))
        episode_key = jax.random.fold_in(base_key, i)
        for t in itertools.count():
            action = divergence.check_actions(act(obs, jax.random.fold_in(episode_key, t)),
                                              f"warm-start action (episode {i}, step {t})")
            next_obs, reward, terminated, truncated, _ = env.step(action)
            writer.add(obs, action, reward, next_obs, terminated)
            env_steps += 1
            if terminated or truncated:
                returns.append(writer.end(terminated))
                break
            obs = next_obs
    return env_steps, returns


def replay_unfinished_episode(env, writer: EpisodeWriter, online: buffers.ReplayBuffer,
                              reset_seed: int, steps: int) -> np.ndarray:
    """Bring a fresh env back to where a checkpointed run left its training episode: reset with the
    episode's seed, step it with the episode's `steps` actions from the online buffer (its last rows)
    and restore the writer's per-episode sums. Returns the current observation. Raises
    CheckpointError when a replayed observation differs from the stored one (a simulator that is
    not deterministic here), rather than continue a run that would differ from an uninterrupted one."""
    obs, _ = env.reset(seed=reset_seed)
    for i in online.recent_rows(steps):
        stored = online.data["observations"][i]
        if not np.array_equal(np.asarray(obs, np.float32), stored):
            raise CheckpointError(
                f"replaying the unfinished training episode (seed {reset_seed}, {steps} steps) did not "
                f"reproduce its observations: this simulator is not deterministic on this machine; "
                f"resume with checkpoint_interval_s large enough to end the run, or start it again")
        obs, reward, _, _, _ = env.step(online.data["actions"][i])
        writer.rewards.append(float(online.data["rewards"][i]))
        writer.env_return += float(reward)
    return obs
