"""Estimated compute of a grid's runs, from measured per-step costs (printed by the launcher's dry run).

One run's seconds, with every count taken from its resolved config:

    updates        * update_s        one jitted agent update per online env step from start_training on
  + policy actions * act_s           online steps after the random-action warm-up
  + online steps   * env_s           the simulator
  + pretrain steps * pretrain_s      offline imitation / offline RL steps
  + evaluations * eval_episodes * horizon * (act_s + env_s)     every episode charged its full horizon
  + warm-start rollouts * horizon * (act_s + env_s)             Fig. 8: the buffer's warm start

Where the numbers come from (MEASURED, ENV_STEPS_PER_S): `python -m expo.bench` and
`python -m expo.bench --envs` on the 2-core CPU machine in README "Measured", nothing else running.
No GPU measurement is recorded yet, so the update and acting costs are CPU costs: on a GPU they are
an upper bound (the simulators run on the CPU either way). Recording a GPU line in MEASURED (same
keys, from `python -m expo.bench` on that GPU) makes the estimate a GPU one.

Simplifications, stated rather than hidden:
- the update and acting cost were measured for EXPO and RLPD; the other baselines are charged EXPO's
  cost at the same scale (unmeasured_methods() names them, the dry run prints them);
- EXPO's cost is scaled linearly in N (the OTF policy samples and scores N actions, which dominates
  the update's TD targets and acting) and, for updates, in the UTD ratio (critic steps per update);
  RLPD's update in its UTD ratio;
- a pretraining step is charged one critic minibatch step of the update (update_s / utd): a bound,
  since one imitation step on a minibatch does less work than one critic step whose TD target
  samples N actions through T denoising steps;
- evaluation episodes are charged their full horizon (episodes that end at success are shorter).
"""
from __future__ import annotations

import math

# `python -m expo.bench`, README "Measured": median seconds of one update call (= one env step: utd
# critic minibatches + the policy updates) and of one acting call (the policy for one state), per
# agent module and scale, at each scale's sizes.
MEASURED: dict = {
    "source": "`python -m expo.bench` on a 2-core CPU, no GPU (README 'Measured')",
    "device": "cpu",
    "agents": {
        "expo.agents.expo": {
            "paper": {"update_s": 8.5770, "act_s": 5.09e-3, "N": 8, "utd": 20},
            "mini": {"update_s": 0.0170, "act_s": 0.52e-3, "N": 4, "utd": 2},
        },
        "baselines.rlpd": {
            "paper": {"update_s": 0.5539, "act_s": 0.21e-3, "utd": 20},
            "mini": {"update_s": 0.0058, "act_s": 0.20e-3, "utd": 2},
        },
    },
}

# `python -m expo.bench --envs --env-steps 2000` (README "Tasks and data"): env steps per second
# under uniform random actions, resets included.
ENV_STEPS_PER_S: dict[str, float] = {
    "antmaze-medium-play-v2": 3030.0, "antmaze-medium-diverse-v2": 3030.0,
    "antmaze-large-play-v2": 2960.0, "antmaze-large-diverse-v2": 2960.0,
    "pen-binary-v0": 4580.0, "door-binary-v0": 4290.0, "relocate-binary-v0": 4070.0,
    "lift": 179.0, "can": 144.0, "square": 148.0, "stack_robosuite": 166.0,
}
# Not measured (MimicGen needs robosuite 1.4): charged a measured robosuite task of the same kind.
ENV_PROXY: dict[str, str] = {"stack": "stack_robosuite", "threading": "can"}

EXPO_AGENT = "expo.agents.expo"


def _measured_agent(method: str) -> str:
    """The agent module whose measured cost a method is charged: its own, else EXPO's."""
    from expo.config import METHODS

    module = METHODS[method]["agent"]
    return module if module in MEASURED["agents"] else EXPO_AGENT


def _reference(cfg: dict) -> dict:
    scales = MEASURED["agents"][_measured_agent(cfg["method"])]
    if cfg["scale"] not in scales:
        raise ValueError(f"no measured cost for scale {cfg['scale']!r}; measured: {', '.join(scales)}")
    return scales[cfg["scale"]]


def env_seconds_per_step(task: str) -> float:
    name = ENV_PROXY.get(task, task)
    if name not in ENV_STEPS_PER_S:
        raise ValueError(f"no measured simulator speed for task {task!r}; "
                         f"run `python -m expo.bench --envs --tasks {task}` and add it to ENV_STEPS_PER_S")
    return 1.0 / ENV_STEPS_PER_S[name]


def step_costs(cfg: dict) -> dict[str, float]:
    """Seconds per update, per acting call, per pretraining step and per env step for this run."""
    from expo.config import METHODS

    ref = _reference(cfg)
    update_s, act_s = ref["update_s"], ref["act_s"]
    agent = cfg["agent"]
    measured_own = _measured_agent(cfg["method"]) == METHODS[cfg["method"]]["agent"]
    if measured_own:  # a measured agent scales with its own UTD (critic steps per update) ...
        update_s *= agent["utd"] / ref["utd"]
        if "N" in ref:  # ... and EXPO with N (sampling and scoring N actions dominates)
            update_s *= agent["N"] / ref["N"]
            act_s *= agent["N"] / ref["N"]
    return {"update_s": update_s, "act_s": act_s, "pretrain_s": ref["update_s"] / ref["utd"],
            "env_s": env_seconds_per_step(cfg["task"])}


def evaluations(cfg: dict) -> int:
    """Evaluation rounds of expo/train.py: one after pretraining, then every eval_interval online
    steps and at the last step."""
    steps, interval = cfg["steps"], cfg["eval_interval"]
    return 1 + steps // interval + (1 if steps % interval else 0)


def warm_start_rollouts(cfg: dict) -> int:
    """Episodes of the pretrained policy put in the buffer before online step 1 (expo/config.py:
    warm_start_episodes; unset: none while the offline data are kept, else one per dataset episode,
    i.e. per demo used; a whole D4RL / AWAC dataset's episode count is not known before loading it,
    so such a run is charged none)."""
    episodes = cfg.get("warm_start_episodes")
    if episodes is not None:
        return int(episodes)
    if cfg.get("keep_offline_data", True):
        return 0
    return int(cfg["dataset"]["num_demos"] or 0)


def run_seconds(cfg: dict) -> float:
    """Estimated wall seconds of one run (see the module docstring for the model)."""
    c = step_costs(cfg)
    steps, warmup = cfg["steps"], cfg["start_training"]
    updates = max(0, steps - max(warmup, 1) + 1)   # expo/train.py updates when step >= start_training
    policy_actions = max(0, steps - warmup)
    horizon = cfg["protocol"]["horizon"]
    rollout_steps = (evaluations(cfg) * cfg["eval_episodes"] + warm_start_rollouts(cfg)) * horizon
    return (updates * c["update_s"] + policy_actions * c["act_s"] + steps * c["env_s"]
            + cfg["pretrain_steps"] * c["pretrain_s"] + rollout_steps * (c["act_s"] + c["env_s"]))


def estimate_gpu_hours(cfgs: list[dict]) -> float:
    """Estimated device-hours of the runs, one run per device (CPU-derived upper bound, see above)."""
    return sum(run_seconds(cfg) for cfg in cfgs) / 3600.0


def unmeasured_methods(cfgs: list[dict]) -> list[str]:
    """Methods in `cfgs` charged EXPO's measured cost because their own was not measured."""
    from expo.config import METHODS

    return sorted({c["method"] for c in cfgs
                   if _measured_agent(c["method"]) != METHODS[c["method"]]["agent"]})


def describe(cfgs: list[dict]) -> str:
    """One line for a dry run: the estimate, what it rests on, and what it does not model."""
    if not cfgs:
        return "estimated compute: nothing to run"
    hours = estimate_gpu_hours(cfgs)
    longest = max(run_seconds(c) for c in cfgs) / 3600.0
    bound = "" if MEASURED["device"] == "gpu" else " (an upper bound: per-step costs measured on a CPU)"
    line = (f"estimated compute: {hours:,.1f} GPU-hours for {len(cfgs)} runs, longest run "
            f"{longest:,.1f} h{bound}; from {MEASURED['source']}")
    others = unmeasured_methods(cfgs)
    if others:
        line += f"; charged EXPO's per-step cost (not measured): {', '.join(others)}"
    return line


def format_hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{math.ceil(seconds / 60)} min"
