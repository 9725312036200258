"""Run configuration as plain data: defaults, scales, method presets, key=value overrides, checks.

A run config is a nested dict. It is built in this order, later layers winning:
  1. RUN_DEFAULTS (loop settings) + the agent module's get_config() under "agent";
  2. the scale preset (SCALES["paper"] or SCALES["mini"]): sizes only, same code path;
  3. the user's key=value overrides (dotted keys, e.g. agent.N=4);
  4. the method preset (METHODS[name]["overrides"]): the switches that DEFINE a method, e.g. the
     no-edits ablation is n_edit=0; they win so that a grid-wide override cannot silently turn one
     method into another;
  5. None entries resolved from the task's protocol row (expo/protocol.py).
"""
from __future__ import annotations

import ast
import copy
from typing import Any, Iterable

from expo import protocol

RUN_DEFAULTS: dict[str, Any] = {
    "task": "lift",                  # a task of expo/protocol.py TASKS: lift, can, square, stack, ...
    "method": "expo",                # a key of METHODS below: expo, its ablations, bc or a baseline
    "seed": 0,                       # the run's seed: networks, environments, episodes, demo subset
    "setting": "offline_to_online",  # online | offline_to_online (imitation pretraining first)
    "scale": "paper",                # paper (Table 1) | mini (sizes only, for a CPU): SCALES below
    "steps": None,                   # online environment steps; None -> protocol (train_steps)
    "pretrain_steps": None,          # offline imitation steps; None -> protocol (offline_to_online only)
    "start_training": None,          # None -> 0 after pretraining, else protocol: steps before updates
    # What acts during those first start_training steps: "random" (uniform actions, runs from
    # scratch) or "policy" (the pretrained policy acts, only the updates wait: IDQL's fine-tuning).
    "warmup_acts": "random",
    "eval_interval": None,           # online env steps between evaluations; None -> protocol
    "eval_episodes": None,           # episodes per evaluation; None -> protocol
    # Evaluation environments stepped side by side, one batched policy call per step (expo/
    # evaluate.py). Every episode is seeded and keyed by its own index, so this changes only speed
    # (and memory: each robosuite environment adds ~130 MB).
    "eval_envs": 10,
    # Worker processes that step those environments (0 or 1: in the training process); worth it
    # where the simulator is the cost (robosuite) and the machine has cores to spare.
    "eval_workers": 0,
    # Seeds trained together in one process by one vmapped update (expo/seed_group.py): the run's
    # seed and the next k - 1. Each seed still writes its own run directory; k is in its config,
    # because vmapping may change float rounding.
    "seeds_per_process": 1,
    "log_interval": 1000,            # env steps between train.csv rows
    "pretrain_chunk": 100,           # imitation steps per jitted call during pretraining
    # Wall seconds between checkpoints (expo/checkpoint.py); 0 = at every point where one can be
    # taken. A killed run resumes from its last checkpoint when started again.
    "checkpoint_interval_s": 600.0,
    # A run whose losses, parameters or actions stop being finite stops and records it in
    # status.json (expo/divergence.py); launched again with the same settings it is refused unless
    # retry_diverged=true, which restarts it from its last (finite) checkpoint.
    "retry_diverged": False,         # true: restart a diverged run from its last finite checkpoint
    # Fig. 8: false = after pretraining, every minibatch comes from the online buffer only.
    "keep_offline_data": True,
    # Episodes of the pretrained acting policy put in the online buffer before online step 1 (not
    # counted in steps); None -> 0 with keep_offline_data, else the offline dataset's episode count.
    "warm_start_episodes": None,
    "dataset": {
        # a key of expo/data/registry.py DATASETS (None -> the task's protocol dataset), e.g.
        # dataset.name=robomimic_lift_ph for the downloaded robomimic Lift PH file.
        "name": None,
        "num_demos": None,           # demonstrations drawn from the dataset; None -> protocol
        "seed": None,                # seed of that draw; None -> the run's seed
    },
    # where runs are written: the default is the checkout's results/ from any working directory; a
    # relative path given on the command line is taken from the working directory.
    "results_dir": "results",
    "figure": "adhoc",               # the folder under results_dir (a grid's runs: the grid's name)
    # A grid's label for one setting of a swept key (e.g. "N16" for agent.N=16 in Fig. 9): the
    # run directory is <method>-<variant>, so runs that differ only in the sweep never collide.
    "variant": "",
    "progress": True,                # a progress bar on stderr while the run trains
    # Where the run computes (expo/device.py): "auto" = JAX's default device; "gpu" = a run given
    # GPUs stops before any work, with one line naming the GPU install, when JAX sees none (the
    # launcher sets it for runs launched with gpus >= 1); "cpu" = the CPU even where a GPU is seen.
    "device": "auto",
}

# Sizes only: the code path is identical at every scale. Agent sizes apply to the methods that have
# them and never exceed a method's own default (see build_config).
SCALES: dict[str, dict[str, Any]] = {
    "paper": {},
    "mini": {
        "steps": 10_000,
        "pretrain_steps": 5_000,
        "start_training": 0,
        "eval_interval": 2_500,
        "eval_episodes": 20,
        "log_interval": 500,
        "agent.hidden_dims": (64, 64, 64),
        "agent.diffusion_width": 64,
        "agent.time_dim": 32,
        "agent.N": 4,
        "agent.num_target_samples": 4,  # DAC's next-action samples in the TD target
        "agent.n_edit": 4,
        "agent.T": 5,
        # PA-RL's local gradient-ascent steps per candidate: its costliest size (10 ascent steps over
        # every candidate and Q head, at every critic step and every action); 3 at mini.
        "agent.ascent_steps": 3,
        "agent.utd": 2,
        "agent.batch_size": 128,
    },
}

# Every method names the agent module that implements it (expo/agents/ or baselines/) and the switches
# that define it. Each module provides get_config, resolve_config, validate_config, create, update,
# pretrain_update, sample_actions (acting), and optionally eval_actions (the authors' evaluation
# policy; default sample_actions) and the batch-field hooks described in expo/train.py.
METHODS: dict[str, dict[str, Any]] = {
    "expo": {"agent": "expo.agents.expo", "overrides": {}},
    "expo_no_edit": {"agent": "expo.agents.expo", "overrides": {"agent.n_edit": 0}},
    "expo_no_otf_backup": {"agent": "expo.agents.expo", "overrides": {"agent.otf_backup": False}},
    "expo_entropy_backup": {"agent": "expo.agents.expo", "overrides": {"agent.entropy_backup": True}},
    # Imitation only: the EXPO base policy alone (one diffusion sample, no critic, no edits),
    # pretrained on the dataset and evaluated without any online step.
    "bc": {
        "agent": "expo.agents.expo",
        "overrides": {"agent.N": 1, "agent.n_edit": 0, "steps": 0,
                      "setting": "offline_to_online"},
    },
    # Baselines (one file each under baselines/). RLPD never pretrains (the paper, Fig. 4).
    "rlpd": {"agent": "baselines.rlpd", "overrides": {"pretrain_steps": 0}},
    # IDQL's fine-tuning acts with the pretrained policy from online step 1 and runs the critic
    # updates only while i > online_start_training = 5000 (launcher/examples/
    # train_ddpm_iql_finetune.py:25 and the online loop of examples/states/
    # train_diffusion_offline.py at 7582571): first update at step 5001 (the loop updates when
    # step >= start_training).
    "idql": {"agent": "baselines.idql", "overrides": {},
             "after_pretraining": {"start_training": 5_001, "warmup_acts": "policy"}},
    # Cal-QL fine-tunes from its pretrained policy: no random-action steps (authors' code).
    "calql": {"agent": "baselines.calql", "overrides": {"start_training": 0}},
    # Fig. 8: Cal-QL pretraining, then plain SAC fine-tuning (no CQL term online).
    "calql_sac": {"agent": "baselines.calql", "overrides": {"start_training": 0, "agent.online_cql": False}},
    "dac": {"agent": "baselines.dac", "overrides": {}},
    "dipo": {"agent": "baselines.dipo", "overrides": {}},
    "qsm": {"agent": "baselines.qsm", "overrides": {}},
    "parl": {"agent": "baselines.parl", "overrides": {}},
}


class ConfigError(ValueError):
    """A bad configuration: the message is one line that names the fix."""


def agent_module(method: str):
    import importlib

    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; valid methods: {', '.join(sorted(METHODS))}")
    return importlib.import_module(METHODS[method]["agent"])


def build_agent(module, seed: int, obs_dim: int, act_dim: int, agent_cfg: dict):
    """module.create(...) in one jitted call: one compilation (kept by the persistent compilation
    cache across runs) instead of compiling every initializer operation one by one."""
    import jax

    return jax.jit(lambda: module.create(seed, obs_dim, act_dim, agent_cfg))()


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def parse_value(text: str) -> Any:
    """'3' -> 3, '1e-4' -> 0.0001, 'true' -> True, 'none' -> None, '(64,64)' -> (64, 64), else str."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value (e.g. agent.N=4)")
        key, value = item.split("=", 1)
        out[key.strip()] = parse_value(value)
    return out


# Keys whose default is None ("take it from the protocol") still have a type.
NONE_DEFAULT_TYPES: dict[str, Any] = {
    "steps": 0, "pretrain_steps": 0, "start_training": 0, "eval_interval": 0, "eval_episodes": 0,
    "dataset.num_demos": 0, "dataset.seed": 0, "dataset.name": "",
    "warm_start_episodes": 0,
}


def _coerce(key: str, value: Any, default: Any) -> Any:
    if default is None:
        default = NONE_DEFAULT_TYPES.get(key)
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r} (write {key}=true or {key}=false)")
        return value
    if isinstance(value, bool):  # bool is an int subclass: 'agent.utd=true' must not become 1
        raise ConfigError(f"{key} must be of type {type(default).__name__}, got {value!r}")
    if isinstance(default, int) and isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, (tuple, list)) and isinstance(value, (tuple, list, int)):
        return tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if not isinstance(value, type(default)):
        raise ConfigError(f"{key} must be of type {type(default).__name__}, got {value!r}")
    return value


def set_dotted(cfg: dict, key: str, value: Any, valid: dict[str, Any]) -> None:
    if key not in valid:
        raise ConfigError(f"unknown key {key!r}; valid keys: {', '.join(sorted(valid))}")
    value = _coerce(key, value, valid[key])
    node = cfg
    parts = key.split(".")
    for p in parts[:-1]:
        node = node[p]
    node[parts[-1]] = value


def build_config(overrides: dict[str, Any] | None = None) -> dict:
    """The fully resolved run config for key=value overrides (task, method, scale among them)."""
    overrides = dict(overrides or {})
    method = overrides.get("method", RUN_DEFAULTS["method"])
    module = agent_module(method)
    cfg = copy.deepcopy(RUN_DEFAULTS)
    cfg["agent"] = module.get_config()
    valid = flatten(cfg)

    scale = overrides.get("scale", cfg["scale"])
    if scale not in SCALES:
        raise ConfigError(f"unknown scale {scale!r}; valid scales: {', '.join(SCALES)}")
    for k, v in SCALES[scale].items():
        if k.startswith("agent."):
            # A scale sizes what a method has (agent.n_edit exists for EXPO only), and only shrinks
            # it: a count below the scale's value stays (Cal-QL's UTD 1 is not raised to 2).
            if k not in valid:
                continue
            default = valid[k]
            if isinstance(default, int) and not isinstance(default, bool) and isinstance(v, int):
                v = min(v, default)
        set_dotted(cfg, k, v, valid)
    for k, v in overrides.items():
        set_dotted(cfg, k, v, valid)
    for k, v in METHODS[method]["overrides"].items():
        set_dotted(cfg, k, v, valid)

    spec = protocol.get_task(cfg["task"])
    if cfg["setting"] not in ("online", "offline_to_online"):
        raise ConfigError(f"setting must be online or offline_to_online, got {cfg['setting']!r}")
    if cfg["pretrain_steps"] is None:
        cfg["pretrain_steps"] = spec.pretrain_steps
    if cfg["setting"] == "online":
        cfg["pretrain_steps"] = 0
    if cfg["steps"] is None:
        cfg["steps"] = spec.train_steps
    if cfg["start_training"] is None:
        # After pretraining, no random actions: the pretrained policy acts from online step 1 and,
        # unless the method's own script delays them (METHODS[...]["after_pretraining"]), updates
        # start at once. Every offline-to-online script of the EXPO authors passes
        # --start_training 0 (scripts/expo_*/*_pretrain.sh; the loops take random actions only
        # while i < start_training: train_robo.py:219-222, train_finetuning.py:176-177 at bbd5713);
        # each baseline's docstring names its own script. The protocol's random-action steps are
        # for runs that start from scratch (online RL with offline data).
        if cfg["pretrain_steps"] > 0:
            after = {"start_training": 0, **METHODS[method].get("after_pretraining", {})}
            for key, value in after.items():
                if key == "start_training" or overrides.get(key) is None:
                    cfg[key] = value
        else:
            cfg["start_training"] = spec.start_training
    for key in ("eval_interval", "eval_episodes"):
        if cfg[key] is None:
            cfg[key] = getattr(spec, key)
    if cfg["dataset"]["name"] is None:
        cfg["dataset"]["name"] = spec.dataset
    from expo.data.registry import DATASETS

    if cfg["dataset"]["name"] not in DATASETS:
        raise ConfigError(f"unknown dataset.name {cfg['dataset']['name']!r}; "
                          f"valid: {', '.join(sorted(DATASETS))}")
    if cfg["dataset"]["num_demos"] is None:
        cfg["dataset"]["num_demos"] = spec.num_demos
    if cfg["dataset"]["seed"] is None:
        cfg["dataset"]["seed"] = cfg["seed"]
    module.resolve_config(cfg["agent"], spec, cfg["setting"])
    module.validate_config(cfg["agent"])
    for key in ("steps", "pretrain_steps", "start_training", "log_interval"):
        if cfg[key] < 0:
            raise ConfigError(f"{key} must be >= 0, got {cfg[key]}")
    for key in ("eval_interval", "eval_episodes", "pretrain_chunk"):
        if cfg[key] < 1:
            raise ConfigError(f"{key} must be >= 1, got {cfg[key]}")
    if cfg["warmup_acts"] not in ("random", "policy"):
        raise ConfigError(f"warmup_acts must be random or policy, got {cfg['warmup_acts']!r}")
    if cfg["device"] not in ("auto", "cpu", "gpu"):
        raise ConfigError(f"device must be auto, cpu or gpu, got {cfg['device']!r}")
    if cfg["seeds_per_process"] < 1:
        raise ConfigError(f"seeds_per_process must be >= 1, got {cfg['seeds_per_process']}")
    if cfg["eval_envs"] < 1:
        raise ConfigError(f"eval_envs must be >= 1, got {cfg['eval_envs']}")
    if cfg["eval_workers"] < 0:
        raise ConfigError(f"eval_workers must be >= 0, got {cfg['eval_workers']}")
    if cfg["checkpoint_interval_s"] < 0:
        raise ConfigError(f"checkpoint_interval_s must be >= 0 (0: at every chance), "
                          f"got {cfg['checkpoint_interval_s']}")
    if cfg["warm_start_episodes"] is not None and cfg["warm_start_episodes"] < 0:
        raise ConfigError(f"warm_start_episodes must be >= 0 or none (none: 0 with keep_offline_data, "
                          f"else the dataset's episode count), got {cfg['warm_start_episodes']}")
    cfg["protocol"] = protocol.as_dict(spec)
    return cfg
