"""Environment construction: `make_env(spec, seed)` dispatches on the task's domain.

Every domain module returns a gymnasium Env with the suite's conventions: float32 observations of
spec.obs_dim, actions clipped to the [-1, 1] box of spec.act_dim, the simulator's raw reward (the
learner's transform is TaskSpec.transform_reward, applied by the training loop), terminated only on
a true termination (spec.terminate_on), truncated at spec.horizon, and info["success"] every step.
"""
from __future__ import annotations

import importlib

import gymnasium as gym

from expo.protocol import TaskSpec

# domain -> (module, maker); modules are imported lazily (robosuite alone takes ~1 s to import)
MAKERS = {
    "robomimic": ("expo.envs.robomimic", "make_robomimic_env"),
    "antmaze": ("expo.envs.antmaze", "make_antmaze_env"),
    "adroit": ("expo.envs.adroit", "make_adroit_env"),
    "mimicgen": ("expo.envs.mimicgen", "make_mimicgen_env"),
    "classic": ("expo.envs.classic", "make_classic_env"),  # the canary (Pendulum-v1)
}


def make_env(spec: TaskSpec, seed: int, **kwargs) -> gym.Env:
    """A gymnasium env for `spec`; extra keyword arguments go to the domain's maker."""
    if spec.domain not in MAKERS:
        raise ValueError(f"task {spec.name!r} has unknown domain {spec.domain!r}; known: {', '.join(MAKERS)}")
    module, maker = MAKERS[spec.domain]
    return getattr(importlib.import_module(module), maker)(spec, seed, **kwargs)


def dataset_maker_kwargs(spec: TaskSpec, dataset) -> dict:
    """Maker keyword arguments that come from the run's dataset.

    robosuite tasks (robomimic, MimicGen) are built with the env kwargs stored in the dataset file's
    env_args, as robomimic does, so that online data come from the env the demos were recorded in
    (controller configs of robosuite 1.4 files are converted: expo/robomimic_format.py). `dataset` is a
    registry entry (expo/data/registry.py) or a file path: the envs never import expo.data. The file must exist: the training loop loads the
    dataset (generating an embedded one) before making envs.
    """
    if spec.domain not in ("robomimic", "mimicgen"):
        return {}
    from expo.robomimic_format import dataset_env_kwargs

    env_kwargs = dataset_env_kwargs(dataset, spec)
    return {} if env_kwargs is None else {"env_kwargs": env_kwargs}
