"""The per-task protocol: ONE table of facts that every other module reads.

Reward transform, mask rule, horizon, evaluation schedule, metric, edit scale beta and pretraining
steps live here and nowhere else. Sources: PAPER.md (Table 1, Table 2, evaluation protocol) and the
authors' code as described in IMPLEMENTATIONS.md. Where the suite deliberately differs from the
authors' code the entry says so in `deviations`, and that text is saved into every run's config.
"""
from __future__ import annotations

import dataclasses
from typing import Optional


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    name: str
    domain: str                 # robomimic | adroit | antmaze | mimicgen
    env_name: str               # the simulator's own name for the task
    obs_dim: int
    act_dim: int
    horizon: int                # episode time limit; hitting it is truncation (mask stays 1)
    # Reward given to the learner: new_r = reward_scale * r + reward_shift.
    reward_scale: float
    reward_shift: float
    # Mask rule: mask = 0 only on true termination. "success" = the episode ends at task success.
    terminate_on: str
    eval_interval: int          # env steps between evaluations
    eval_episodes: int
    metric: str                 # success_rate | percent_solved_steps
    beta_online: float          # edit scale, online RL with offline data (Table 1)
    beta_offline_to_online: float
    pretrain_steps: int         # base-policy imitation steps in offline-to-online (Table 1)
    num_min_qs: int             # critic subset size for the target min (code: antmaze 1)
    edit_dropout: float         # edit-policy dropout (Table 1: Adroit 0.1)
    start_training: int         # random-action steps before updates (code)
    dataset: str                # dataset key, see expo/data
    num_demos: Optional[int]    # demos used (Table 2); None = the whole file
    embedded: bool              # True: a scripted expert generates the dataset on this machine
    deviations: str = ""

    def transform_reward(self, r):
        return self.reward_scale * r + self.reward_shift


TASKS: dict[str, TaskSpec] = {
    "lift": TaskSpec(
        name="lift",
        domain="robomimic",
        env_name="Lift",
        obs_dim=19,
        act_dim=7,
        horizon=400,
        reward_scale=1.0,
        reward_shift=0.0,
        terminate_on="success",
        eval_interval=10_000,
        eval_episodes=50,
        metric="success_rate",
        beta_online=0.05,
        beta_offline_to_online=0.1,
        pretrain_steps=200_000,
        num_min_qs=2,
        edit_dropout=0.0,
        start_training=5_000,
        dataset="lift_scripted",
        num_demos=10,
        embedded=True,
        deviations=(
            "Time-outs are truncation (mask 1); the authors' code gives mask 0 at time-outs too. "
            "Embedded dataset: demonstrations from a noisy scripted expert in robosuite 1.5 "
            "(the paper uses robomimic v0.1 Lift PH, recorded with robosuite 1.4.1; the same "
            "loader reads those files)."
        ),
    ),
}


def get_task(name: str) -> TaskSpec:
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; valid tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]


def edit_scale(spec: TaskSpec, setting: str) -> float:
    return spec.beta_offline_to_online if setting == "offline_to_online" else spec.beta_online


def as_dict(spec: TaskSpec) -> dict:
    """The protocol row as plain data, saved into every run's config.json."""
    return dataclasses.asdict(spec)
