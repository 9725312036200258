"""The per-task protocol: ONE table of facts that every other module reads.

Reward transform, mask rule, horizon, evaluation schedule, metric, dataset, edit scale beta and
pretraining steps live here and nowhere else. Sources: the paper (Table 1, Table 2, its evaluation
protocol) and the authors' public code (EXPO at commit bbd5713). Where the suite deliberately
differs from the authors' code the entry says so in `deviations`, and that text is saved into every
run's config. `python -m expo.protocol` renders this table into docs/PROTOCOL.md (a test keeps the
two identical, so the docs never drift from the code).

Each domain's shared facts are written once (the `_antmaze`, `_adroit`, `_robosuite` builders
below); a task row only names what differs.
"""
from __future__ import annotations

import dataclasses
import types
from typing import Any, Mapping, Optional


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    name: str
    domain: str                 # antmaze | adroit | robomimic | mimicgen | classic (the canary)
    env_name: str               # the simulator's own name for the task
    env_backend: str            # the library that simulates it (docs; expo/envs/<domain>.py builds it)
    obs_dim: int
    act_dim: int
    horizon: int                # episode time limit; hitting it is truncation (mask stays 1)
    # Reward given to the learner, offline and online alike: new_r = reward_scale * r + reward_shift.
    reward_scale: float
    reward_shift: float
    # Mask rule: mask = 0 only on true termination. "success": the episode ends at task success;
    # "never": episodes only end at the horizon (truncation), so every mask is 1.
    terminate_on: str
    eval_interval: int          # env steps between evaluations
    eval_episodes: int
    metric: str                 # success_rate | percent_solved_steps | return (the canary)
    train_steps: int            # online env steps of a paper-scale run (authors' code)
    beta_online: float          # edit scale, online RL with offline data (Table 1)
    beta_offline_to_online: float
    pretrain_steps: int         # base-policy imitation steps in offline-to-online (Table 1)
    # Critic subset size for the target min: the authors' scripts pass --config.num_min_qs=1 on
    # antmaze (scripts/expo_antmaze/*.sh) and 2 elsewhere (Table 1 says 2 for every domain).
    num_min_qs: int
    edit_dropout: float         # edit-policy dropout (Table 1: Adroit 0.1)
    # Random-action steps before the first update in a run WITHOUT pretraining (online RL with
    # offline data); a run that pretrains starts updating at once (expo/config.py).
    start_training: int
    start_training_source: str  # where the value comes from: an authors' script, or the suite
    dataset: str                # key of expo/data/registry.py DATASETS: what a run uses by default
    num_demos: Optional[int]    # demos used (Table 2); None = the whole dataset
    embedded: bool              # True: a scripted expert generates the dataset on this machine
    env_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # domain maker options
    paper_task: bool = True     # False: a clearly named stand-in that is not one of the paper's 12
    # The paper's own dataset where the default is an embedded one ("" = the default is the
    # paper's): what `python -m expo.data fetch <task>` downloads and the figure grids run on.
    paper_dataset: str = ""
    deviations: str = ""

    def __post_init__(self):
        if self.terminate_on not in ("success", "never"):
            raise ValueError(f"{self.name}: terminate_on must be 'success' or 'never'")
        if self.metric not in ("success_rate", "percent_solved_steps", "return"):
            raise ValueError(f"{self.name}: unknown metric {self.metric!r}")
        # Read-only, so a spec shared by every module cannot be edited in place by one of them.
        object.__setattr__(self, "env_kwargs", types.MappingProxyType(dict(self.env_kwargs)))

    def __reduce__(self):
        # Pickled for the evaluation worker processes (expo/env_pool.py); a mappingproxy is not
        # picklable, so env_kwargs travels as a dict and __post_init__ wraps it again.
        values = [getattr(self, f.name) for f in dataclasses.fields(self)]
        values = [dict(v) if isinstance(v, types.MappingProxyType) else v for v in values]
        return (type(self), tuple(values))

    def transform_reward(self, r):
        return self.reward_scale * r + self.reward_shift


TIMEOUT_IS_TRUNCATION = (
    "Time-outs are truncation (mask 1); the authors' code gives mask 0 at time-outs as well as at "
    "success (its robomimic wrapper reports the horizon as done, expo/data/robomimic_datasets.py:113, "
    "and train_robo.py:225-228 masks every done without TimeLimit.truncated, at bbd5713)."
)


def _antmaze(name: str, maze: str, data: str) -> TaskSpec:
    return TaskSpec(
        name=name, domain="antmaze", env_name=f"AntMaze_{maze.capitalize()}-v4",
        env_backend="gymnasium-robotics AntMaze v4 with the D4RL map, start and goal",
        obs_dim=29, act_dim=8, horizon=1000,
        # D4RL reward is 1 inside 0.5 of the goal; learners see r - 1 (IQL / RLPD / EXPO code).
        reward_scale=1.0, reward_shift=-1.0, terminate_on="success",
        eval_interval=5_000, eval_episodes=100, metric="success_rate", train_steps=300_000,
        beta_online=0.05, beta_offline_to_online=0.05, pretrain_steps=500_000,
        num_min_qs=1, edit_dropout=0.0, start_training=5_000,
        start_training_source="code: scripts/expo_antmaze/expo_antmaze_lp.sh",
        dataset=f"d4rl_antmaze_{maze}_{data}_v2", num_demos=None, embedded=False,
        env_kwargs={"maze": maze},
        deviations=(
            "gymnasium-robotics AntMaze (maintained, MuJoCo 3) stands in for D4RL's mujoco_py env: "
            "same maze map, start and goal distributions (the goal cell plus D4RL's uniform noise, "
            "re-drawn at each reset), success radius 0.5 and horizon 1000; its 27-dim observation "
            "preceded by the achieved goal is D4RL's 29-dim observation, translated into the D4RL "
            "dataset frame (expo/envs/antmaze.py). The ant is gymnasium's with D4RL's physics set on "
            "the compiled model (timestep 0.02, torque 30 x action, D4RL contact softness); "
            "MuJoCo 3.3 instead of MuJoCo 2.1 remains. "
            "The goal is reached -> terminated (mask 0); the time limit is truncation."
        ),
    )


def _adroit(name: str, hand: str, obs_dim: int, act_dim: int, horizon: int) -> TaskSpec:
    return TaskSpec(
        name=name, domain="adroit", env_name=f"AdroitHand{hand}-v1",
        env_backend="gymnasium-robotics AdroitHand v1 with the binary reward",
        obs_dim=obs_dim, act_dim=act_dim, horizon=horizon,
        # The binary env already gives goal_achieved - 1 in {-1, 0}; the AWAC sparse files too.
        reward_scale=1.0, reward_shift=0.0, terminate_on="never",
        eval_interval=5_000, eval_episodes=100, metric="percent_solved_steps", train_steps=1_000_000,
        beta_online=0.7, beta_offline_to_online=0.7, pretrain_steps=20_000,
        num_min_qs=2, edit_dropout=0.1, start_training=0 if hand == "Pen" else 5_000,
        # Only pen has an authors' script; door and relocate take the other domains' 5000.
        start_training_source=("code: scripts/expo_adroit/expo_pen.sh" if hand == "Pen"
                               else "suite's choice: no authors' script for this task"),
        dataset=f"awac_{hand.lower()}_binary", num_demos=None, embedded=False,
        deviations=(
            "gymnasium-robotics AdroitHand v1 (mujoco 3) stands in for mj_envs' *-binary-v0 "
            "(mujoco_py); reward goal_achieved - 1 from its info['success'], no termination."
        ),
    )


def _robosuite(name: str, domain: str, env_name: str, obs_dim: int, horizon: int, dataset: str,
               num_demos: Optional[int], embedded: bool = False, beta_offline_to_online: float = 0.1,
               paper_task: bool = True, deviations: str = "", backend: str = "", paper_dataset: str = "",
               start_training_source: str = "code: scripts/expo_robomimic/expo_square.sh"
               ) -> TaskSpec:
    return TaskSpec(
        name=name, domain=domain, env_name=env_name,
        env_backend=backend or "robosuite 1.5 (robomimic low-dim observation)",
        obs_dim=obs_dim, act_dim=7, horizon=horizon,
        reward_scale=1.0, reward_shift=0.0, terminate_on="success",
        eval_interval=10_000, eval_episodes=50, metric="success_rate", train_steps=1_000_000,
        beta_online=0.05, beta_offline_to_online=beta_offline_to_online, pretrain_steps=200_000,
        num_min_qs=2, edit_dropout=0.0, start_training=5_000,
        start_training_source=start_training_source,
        dataset=dataset, num_demos=num_demos, embedded=embedded, paper_task=paper_task,
        paper_dataset=paper_dataset, deviations=" ".join(x for x in (TIMEOUT_IS_TRUNCATION, deviations) if x),
    )


MIMICGEN_BACKEND = ("the suite's robosuite 1.5 rewrite of MimicGen's env (expo/envs/mimicgen_tasks; "
                    "EXPO_MIMICGEN=package: MimicGen's own)")


def _mimicgen_deviations(task: str, composition: str) -> str:
    """What differs from MimicGen's env and data (docs/MIMICGEN.md has the details and sources)."""
    env = {"threading": "Threading_D0", "stack": "Stack_D0"}[task]
    return (
        f"Embedded dataset: demonstrations from a noisy scripted expert in the suite's {env} (the paper uses "
        f"MimicGen's {composition} D0 demos, recorded with robosuite 1.4.1; the same loader reads those "
        f"files: dataset.name=mimicgen_{task}). The env is the suite's robosuite 1.5 rewrite of MimicGen's "
        f"{env} (expo/envs/mimicgen_tasks, from MimicGen at commit 72bd767): same objects, table, D0 placement "
        "ranges and rotations, success test, control frequency and low-dim observation (for the same MuJoCo "
        "state it gives what MimicGen's files store). What cannot be the same in robosuite 1.5: the arm "
        "controller is robosuite 1.5's composite BASIC / OSC_POSE (a MimicGen file's OSC_POSE part config "
        "is converted by robosuite's refactor_composite_controller_config); the model XML is robosuite "
        "1.5's (Panda, gripper and mount files reformatted, gripper parts renamed gripper0_right_*; the "
        "MuJoCo state has the same joints in the same order, so stored states load as they are); MuJoCo "
        "3.3 instead of 2.3.2; MimicGen's extra agentview_full camera (rendering only) is not added. "
        "Stepping uses robosuite 1.5's lite_physics=False, its setting for robosuite 1.4.1's stepping."
        + (" robosuite 1.5 orders Stack's cube observables differently; the env restores 1.4.1's order."
           if task == "stack" else "")
    )


_TASK_LIST = [
    _antmaze("antmaze-medium-play-v2", "medium", "play"),
    _antmaze("antmaze-medium-diverse-v2", "medium", "diverse"),
    _antmaze("antmaze-large-play-v2", "large", "play"),
    _antmaze("antmaze-large-diverse-v2", "large", "diverse"),
    _adroit("pen-binary-v0", "Pen", 45, 24, 100),
    _adroit("door-binary-v0", "Door", 39, 28, 200),
    _adroit("relocate-binary-v0", "Relocate", 39, 30, 200),
    _robosuite(
        "lift", "robomimic", "Lift", 19, 400, "lift_scripted", 10, embedded=True,
        paper_dataset="robomimic_lift_ph",
        deviations=(
            "Embedded dataset: demonstrations from a noisy scripted expert in robosuite 1.5 "
            "(the paper uses robomimic v0.1 Lift PH, recorded with robosuite 1.4.1; the same "
            "loader reads those files: dataset.name=robomimic_lift_ph)."
        ),
    ),
    _robosuite("can", "robomimic", "PickPlaceCan", 23, 400, "robomimic_can_mh", 300),
    _robosuite("square", "robomimic", "NutAssemblySquare", 23, 400, "robomimic_square_ph", 200),
    _robosuite(
        "threading", "mimicgen", "Threading_D0", 37, 400, "threading_scripted", 50, embedded=True,
        paper_dataset="mimicgen_threading",
        beta_offline_to_online=0.05, start_training_source="code: scripts/expo_mimicgen/expo_threading.sh",
        backend=MIMICGEN_BACKEND, deviations=_mimicgen_deviations("threading", "10 human + 40 generated"),
    ),
    _robosuite(
        "stack", "mimicgen", "Stack_D0", 32, 200, "stack_scripted", 200, embedded=True,
        paper_dataset="mimicgen_stack",
        beta_offline_to_online=0.05, start_training_source="suite's choice: Threading's script (none for Stack)",
        backend=MIMICGEN_BACKEND, deviations=_mimicgen_deviations("stack", "10 human + 190 generated"),
    ),
]

# The canary: not a paper task. Cheap, and every method is known to learn it, so a method that does not
# has a fault in its loop (tests/test_canary.py). Rewards are scaled by 0.1 so that values sit in the
# paper tasks' range (per-step reward in [-1.63, 0], |Q| <= 163 at discount 0.99, like AntMaze's -100).
CANARY = TaskSpec(
    name="pendulum", domain="classic", env_name="Pendulum-v1",
    env_backend="gymnasium classic control (Pendulum-v1)",
    obs_dim=3, act_dim=1, horizon=200, reward_scale=0.1, reward_shift=0.0, terminate_on="never",
    eval_interval=1_000, eval_episodes=10, metric="return", train_steps=20_000,
    beta_online=0.1, beta_offline_to_online=0.1, pretrain_steps=5_000,
    num_min_qs=2, edit_dropout=0.0, start_training=1_000,
    start_training_source="suite's choice: the canary is not a paper task",
    dataset="pendulum_scripted", num_demos=None, embedded=True, paper_task=False,
    deviations=("The suite's canary, not a paper task: Pendulum-v1 with actions in [-1, 1] (torque 2 x action), "
                "a dataset from a controller that swings the pendulum up and never balances it "
                "(expo/data/experts/pendulum.py), rewards x 0.1, metric: the mean return of the raw rewards."),
)
_TASK_LIST.append(CANARY)

TASKS: dict[str, TaskSpec] = {spec.name: spec for spec in _TASK_LIST}
PAPER_TASKS: tuple[str, ...] = tuple(name for name, spec in TASKS.items() if spec.paper_task)
DOMAINS: tuple[str, ...] = ("antmaze", "adroit", "robomimic", "mimicgen")


def paper_dataset(spec: TaskSpec) -> str:
    """The dataset the paper used for the task (its default unless that is an embedded one)."""
    return spec.paper_dataset or spec.dataset


def get_task(name: str) -> TaskSpec:
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}")
    return TASKS[name]


def edit_scale(spec: TaskSpec, setting: str) -> float:
    return spec.beta_offline_to_online if setting == "offline_to_online" else spec.beta_online


def as_dict(spec: TaskSpec) -> dict:
    """The protocol row as plain data, saved into every run's config.json."""
    row = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}
    row["env_kwargs"] = dict(spec.env_kwargs)
    return row
