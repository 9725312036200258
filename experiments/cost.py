"""Estimated compute of a grid's runs, from measured per-step costs (printed by the launcher's dry run).

The estimate is in hours ON THE MACHINE THE PER-STEP COSTS WERE MEASURED ON, one run at a time. The
built-in costs (MEASURED) were measured on a 2-core CPU without a GPU, so by default the dry run
prints CPU hours of that machine, not GPU-hours. For an estimate for your cluster, measure there and
give the launcher the numbers (`step_costs=<file>`, `load_step_costs`):

    # step_costs.toml: seconds per call on YOUR machine, from `python -m expo.bench` run on it
    machine = "1x A100 40GB, 8 CPU cores"   # required: what the hours are hours of
    [expo.paper]                            # <method>.<scale>
    update_s = 0.05                         # bench column "update s/env-step"
    act_s = 0.002                           # bench column "act ms" / 1000
    [rlpd.paper]
    update_s = 0.01
    act_s = 0.0004
    [env_steps_per_s]                       # optional: `python -m expo.bench --envs` there;
    lift = 210.0                            # tasks not listed keep the built-in speeds

    python experiments/launch.py figure=4 dry_run=true step_costs=step_costs.toml

A <method>.<scale> entry is what `python -m expo.bench --methods <method> --only <scale>` measured,
at that method's resolved config of that scale (Lift sizes, as the bench builds it): its UTD ratio
and N are read from that config, so the scaling below applies to your numbers too. A method without
an entry is charged the entry of a method with the same agent module, else EXPO's (named in the
dry run's line).

One run's seconds, with every count taken from its resolved config:

    updates        * update_s        one jitted agent update per online env step from start_training on
  + policy actions * act_s           online steps after the random-action warm-up
  + online steps   * env_s           the simulator
  + pretrain steps * pretrain_s      offline imitation / offline RL steps
  + evaluations * eval_episodes * horizon * (act_s + env_s)     every episode charged its full horizon
  + warm-start rollouts * horizon * (act_s + env_s)             Fig. 8: the buffer's warm start

Where the built-in numbers come from (MEASURED, ENV_STEPS_PER_S): `python -m expo.bench` and
`python -m expo.bench --envs` on the 2-core CPU machine in docs/MEASURED.md, nothing else running.
They are CPU costs: the hours are that machine's (the simulators run on a CPU either way).

Simplifications, stated rather than hidden:
- the built-in update and acting costs were measured for EXPO and RLPD; a method with no cost of
  its own (or of its agent module) is charged EXPO's at the same scale (unmeasured_methods() names
  them, the dry run prints them);
- EXPO's cost is scaled linearly in N (the OTF policy samples and scores N actions, which dominates
  the update's TD targets and acting) and, for updates, in the UTD ratio (critic steps per update);
  RLPD's update in its UTD ratio;
- a pretraining step is charged one critic minibatch step of the update (update_s / utd): a bound,
  since one imitation step on a minibatch does less work than one critic step whose TD target
  samples N actions through T denoising steps;
- evaluation episodes are charged their full horizon (episodes that end at success are shorter).
"""
from __future__ import annotations

import dataclasses
import math
import tomllib
from pathlib import Path

# `python -m expo.bench`, docs/MEASURED.md: median seconds of one update call (= one env step: utd
# critic minibatches + the policy updates) and of one acting call (the policy for one state), per
# agent module and scale, at each scale's sizes.
MEASURED: dict = {
    "machine": "the 2-core x86-64 CPU of docs/MEASURED.md (no GPU)",
    "source": "per-step costs from `python -m expo.bench` on that machine (docs/MEASURED.md)",
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

# `python -m expo.bench --envs --env-steps 2000` (docs/TASKS.md): env steps per second
# under uniform random actions, resets included.
ENV_STEPS_PER_S: dict[str, float] = {
    "antmaze-medium-play-v2": 3030.0, "antmaze-medium-diverse-v2": 3030.0,
    "antmaze-large-play-v2": 2960.0, "antmaze-large-diverse-v2": 2960.0,
    "pen-binary-v0": 4580.0, "door-binary-v0": 4290.0, "relocate-binary-v0": 4070.0,
    "lift": 179.0, "can": 144.0, "square": 148.0,
    # The suite's MimicGen envs (expo/envs/mimicgen_tasks, lite_physics=False): `python -m expo.bench
    # --envs --tasks lift,threading,stack --env-steps 2000` with nothing else running, 2026-12-03,
    # gave lift 116, threading 78, stack 78 steps/s; the machine ran slower that day than when lift's
    # 179 above was measured, so they are lift's 179 times their same-run ratio to lift (0.67).
    "threading": 120.0, "stack": 120.0,
    # The canary (gymnasium Pendulum-v1): `python -m expo.bench --envs --tasks pendulum`, 2026-12-08.
    "pendulum": 25270.0,
}
# Tasks charged another task's measured speed (none: every task is measured).
ENV_PROXY: dict[str, str] = {}

EXPO_AGENT = "expo.agents.expo"
COST_KEYS = ("update_s", "act_s")


class CostError(ValueError):
    """A step-costs file that cannot be used; the message is one line."""


@dataclasses.dataclass(frozen=True)
class StepCosts:
    """Per-step costs of one machine: per agent module (built-in) or per method (a user's file),
    per scale, {"update_s", "act_s", "utd"[, "N"]}; and simulator speeds per task."""

    machine: str                      # what the hours are hours of
    source: str                       # where the numbers come from
    agents: dict                      # agent module -> scale -> reference costs
    methods: dict                     # method -> scale -> reference costs
    env_steps_per_s: dict             # task -> env steps per second
    env_source: str = ("simulator speeds from `python -m expo.bench --envs` on that machine too "
                       "(docs/TASKS.md)")


BUILT_IN = StepCosts(machine=MEASURED["machine"], source=MEASURED["source"],
                     agents=MEASURED["agents"], methods={}, env_steps_per_s=ENV_STEPS_PER_S)


def _positive(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 \
            or not math.isfinite(value):
        raise CostError(f"{where} must be a positive number of seconds, got {value!r}")
    return float(value)


def load_step_costs(path) -> StepCosts:
    """A user's per-step costs (the TOML format of the module docstring), checked entry by entry;
    CostError with one line naming the file and the entry otherwise."""
    from expo.config import METHODS, SCALES, build_config

    path = Path(path).expanduser()
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise CostError(f"step_costs: cannot read {path}: {' '.join(str(e).split())}") from None
    machine = raw.pop("machine", None)
    if not isinstance(machine, str) or not machine.strip():
        raise CostError(f"step_costs {path}: `machine = \"...\"` is required: what the hours are "
                        f"hours of (e.g. \"1x A100 40GB\")")
    speeds = dict(ENV_STEPS_PER_S)
    env = raw.pop("env_steps_per_s", {})
    if not isinstance(env, dict):
        raise CostError(f"step_costs {path}: env_steps_per_s must be a table of task = steps/s")
    from expo.protocol import TASKS

    for task, value in env.items():
        if task not in TASKS:
            raise CostError(f"step_costs {path}: env_steps_per_s.{task}: unknown task; tasks: "
                            f"{', '.join(TASKS)}")
        speeds[task] = _positive(value, f"step_costs {path}: env_steps_per_s.{task}")
    methods = {}
    for method, scales in raw.items():
        if method not in METHODS:
            raise CostError(f"step_costs {path}: unknown key or method {method!r}; methods: "
                            f"{', '.join(METHODS)} (plus machine, env_steps_per_s)")
        if not isinstance(scales, dict) or not scales:
            raise CostError(f"step_costs {path}: {method} needs a [{method}.<scale>] table with "
                            f"update_s and act_s")
        for scale, entry in scales.items():
            where = f"step_costs {path}: {method}.{scale}"
            if scale not in SCALES:
                raise CostError(f"{where}: unknown scale; scales: {', '.join(SCALES)}")
            if not isinstance(entry, dict) or set(entry) != set(COST_KEYS):
                found = sorted(entry) if isinstance(entry, dict) else entry
                raise CostError(f"{where}: needs exactly {' and '.join(COST_KEYS)}, got {found}")
            # the sizes the bench measured at: the method's resolved config of that scale on Lift
            agent = build_config({"method": method, "scale": scale, "task": "lift"})["agent"]
            ref = {k: _positive(entry[k], f"{where}.{k}") for k in COST_KEYS}
            ref["utd"] = agent["utd"]
            if METHODS[method]["agent"] == EXPO_AGENT:
                ref["N"] = agent["N"]
            methods.setdefault(method, {})[scale] = ref
    if not methods:
        raise CostError(f"step_costs {path}: no [<method>.<scale>] entry; at least EXPO's, e.g. "
                        f"[expo.paper] update_s = ... act_s = ...")
    return StepCosts(machine=machine.strip(), source=f"per-step costs from {path}", agents={},
                     methods=methods, env_steps_per_s=speeds,
                     env_source=("simulator speeds: " + (f"{path} where given, else " if env
                                                         else "") + "the built-in ones (measured "
                                 "on this repository's 2-core CPU)"))


def _own_table(method: str, costs: StepCosts):
    """The costs measured for `method` itself, or for a method with its agent module; None."""
    from expo.config import METHODS

    module = METHODS[method]["agent"]
    if method in costs.methods:
        return costs.methods[method]
    if module in costs.agents:
        return costs.agents[module]
    return next((t for m, t in costs.methods.items() if METHODS[m]["agent"] == module), None)


def _reference(cfg: dict, costs: StepCosts) -> tuple[dict, bool]:
    """(the reference costs cfg is charged, whether they are its own agent's)."""
    own = _own_table(cfg["method"], costs)
    scales = own if own is not None else _own_table("expo", costs)
    if scales is None:
        raise CostError(f"no per-step cost for {cfg['method']} and none for expo to charge it "
                        f"({costs.source})")
    if cfg["scale"] not in scales:
        raise CostError(f"no measured cost for scale {cfg['scale']!r} of {cfg['method']}; measured: "
                        f"{', '.join(scales)} ({costs.source})")
    return scales[cfg["scale"]], own is not None


def check_covers(cfgs: list[dict], costs: StepCosts) -> None:
    """CostError (one line) when a run of `cfgs` has no cost in `costs` (a scale not measured)."""
    for cfg in cfgs:
        _reference(cfg, costs)
        env_seconds_per_step(cfg["task"], costs)


def env_seconds_per_step(task: str, costs: StepCosts = BUILT_IN) -> float:
    name = task if task in costs.env_steps_per_s else ENV_PROXY.get(task, task)
    if name not in costs.env_steps_per_s:
        raise CostError(f"no measured simulator speed for task {task!r}; "
                         f"run `python -m expo.bench --envs --tasks {task}` and add it to ENV_STEPS_PER_S")
    return 1.0 / costs.env_steps_per_s[name]


def step_costs(cfg: dict, costs: StepCosts = BUILT_IN) -> dict[str, float]:
    """Seconds per update, per acting call, per pretraining step and per env step for this run."""
    ref, measured_own = _reference(cfg, costs)
    update_s, act_s = ref["update_s"], ref["act_s"]
    agent = cfg["agent"]
    if measured_own:  # a measured agent scales with its own UTD (critic steps per update) ...
        update_s *= agent["utd"] / ref["utd"]
        if "N" in ref:  # ... and EXPO with N (sampling and scoring N actions dominates)
            update_s *= agent["N"] / ref["N"]
            act_s *= agent["N"] / ref["N"]
    return {"update_s": update_s, "act_s": act_s, "pretrain_s": ref["update_s"] / ref["utd"],
            "env_s": env_seconds_per_step(cfg["task"], costs)}


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


def run_seconds(cfg: dict, costs: StepCosts = BUILT_IN) -> float:
    """Estimated wall seconds of one run on `costs`' machine (see the module docstring)."""
    c = step_costs(cfg, costs)
    steps, warmup = cfg["steps"], cfg["start_training"]
    updates = max(0, steps - max(warmup, 1) + 1)   # expo/train.py updates when step >= start_training
    policy_actions = max(0, steps - warmup)
    horizon = cfg["protocol"]["horizon"]
    rollout_steps = (evaluations(cfg) * cfg["eval_episodes"] + warm_start_rollouts(cfg)) * horizon
    return (updates * c["update_s"] + policy_actions * c["act_s"] + steps * c["env_s"]
            + cfg["pretrain_steps"] * c["pretrain_s"] + rollout_steps * (c["act_s"] + c["env_s"]))


def estimate_hours(cfgs: list[dict], costs: StepCosts = BUILT_IN) -> float:
    """Estimated hours of the runs, one at a time, on the machine `costs` were measured on."""
    return sum(run_seconds(cfg, costs) for cfg in cfgs) / 3600.0


def unmeasured_methods(cfgs: list[dict], costs: StepCosts = BUILT_IN) -> list[str]:
    """Methods in `cfgs` charged EXPO's cost because neither they nor a method with their agent
    module were measured."""
    return sorted({c["method"] for c in cfgs if _own_table(c["method"], costs) is None})


def describe(cfgs: list[dict], costs: StepCosts = BUILT_IN) -> str:
    """One line for a dry run: the estimate, on which machine, what it rests on, what it does not
    model."""
    if not cfgs:
        return "estimated compute: nothing to run"
    hours = estimate_hours(cfgs, costs)
    longest = max(run_seconds(c, costs) for c in cfgs) / 3600.0
    line = (f"estimated compute: {hours:,.1f} hours on {costs.machine} for {len(cfgs)} runs one "
            f"at a time, longest run {longest:,.1f} h; {costs.source}; {costs.env_source}")
    if costs is BUILT_IN:
        line += ("; not GPU-hours: for your machines run `python -m expo.bench` there and pass "
                 "step_costs=<file> (format: experiments/cost.py)")
    others = unmeasured_methods(cfgs, costs)
    if others:
        line += f"; charged EXPO's per-step cost (not measured): {', '.join(others)}"
    return line


def format_hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{math.ceil(seconds / 60)} min"
