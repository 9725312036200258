"""MimicGen tasks (Threading_D0, Stack_D0) through the same robosuite low-dim path as robomimic.

Two backends build them, chosen by the environment variable EXPO_MIMICGEN:
  - "builtin" (the default): the suite's own robosuite 1.5 versions of MimicGen's two tasks
    (expo/envs/mimicgen_tasks/, written from MimicGen's task definitions; docs/MIMICGEN.md). Nothing
    to install.
  - "package": MimicGen's own classes, registered in robosuite by importing the `mimicgen` package
    (github.com/NVlabs/mimicgen, not on PyPI). Its docs (docs/introduction/installation.md) ask for
    robosuite 1.4.1 (`git checkout v1.4.1`), mujoco 2.3.2 and robomimic from source, and say "The current
    codebase does not support robosuite v1.5+", so this path needs a separate environment:
      git clone https://github.com/NVlabs/mimicgen.git && pip install -e mimicgen
      (+ robosuite v1.4.1 and robomimic from source), then `pip install --no-deps -e .` of this suite,
      and EXPO_MIMICGEN=package. expo.envs.robomimic falls back to robosuite 1.4's part-controller config
      there (not tested by this suite's CI, which has robosuite 1.5.1).
Either way the env is robosuite's `robosuite.make(spec.env_name)` seen through robomimic's low-dim keys
object / robot0_eef_pos / robot0_eef_quat / robot0_gripper_qpos -> Threading 37, Stack 32 dims, OSC_POSE
action 7, reward 1 and termination at success, horizon from the protocol row (expo.envs.robomimic).
Both backends give robosuite's "object-state" in the order MimicGen's dataset files store it.

`observe_state(env, state)` is robomimic's reset_to for a stored `states` row: set the flattened MuJoCo
state, forward, and read the observation, as MimicGen's files were written.
"""
from __future__ import annotations

import importlib
import os
from typing import Optional

import gymnasium as gym
import numpy as np

from expo.protocol import TaskSpec

BACKEND_VARIABLE = "EXPO_MIMICGEN"
BACKENDS = ("builtin", "package")

INSTALL_HINT = (
    "install it from source: git clone https://github.com/NVlabs/mimicgen && pip install -e mimicgen "
    "(it needs robosuite 1.4.1 and robomimic from source, which conflicts with this suite's robosuite 1.5.1 "
    "pin: use a separate robosuite-1.4.1 environment, see expo/envs/mimicgen.py), or unset EXPO_MIMICGEN to "
    "use the suite's built-in Threading_D0 / Stack_D0"
)


class MimicGenUnavailable(ImportError):
    """EXPO_MIMICGEN=package asks for the `mimicgen` package, which is not importable (or the variable
    names no backend)."""


def mimicgen_backend() -> str:
    """The backend EXPO_MIMICGEN selects: "builtin" (unset or empty) or "package"."""
    value = os.environ.get(BACKEND_VARIABLE, "").strip().lower() or "builtin"
    if value not in BACKENDS:
        raise MimicGenUnavailable(f"{BACKEND_VARIABLE}={value!r} names no MimicGen backend; fix: set it to one of "
                                  f"{', '.join(BACKENDS)} (or unset it for the built-in envs)")
    return value


def import_mimicgen():
    """Import the mimicgen package (registering its robosuite envs) or raise MimicGenUnavailable with the fix."""
    from expo.envs.robomimic import _import_robosuite

    _import_robosuite()  # robosuite first, with its log noise filtered
    try:
        return importlib.import_module("mimicgen")
    except ImportError as e:
        raise MimicGenUnavailable(f"{BACKEND_VARIABLE}=package but mimicgen is not installed ({e}); "
                                  f"{INSTALL_HINT}") from None


def register_mimicgen_envs() -> str:
    """Make robosuite know Threading_D0 / Stack_D0 through the selected backend; returns its name."""
    backend = mimicgen_backend()
    if backend == "package":
        import_mimicgen()
    else:
        importlib.import_module("expo.envs.mimicgen_tasks")  # defining the classes registers them
    return backend


def mimicgen_available() -> bool:
    """True when the selected backend can build MimicGen's tasks (always with the built-in envs)."""
    try:
        register_mimicgen_envs()
    except MimicGenUnavailable:
        return False
    return True


def make_mimicgen_env(spec: TaskSpec, seed: int, env_kwargs: Optional[dict] = None) -> gym.Env:
    """TimeLimit(ClipAction(RobosuiteLowDimEnv(spec.env_name))) for a MimicGen task.

    `env_kwargs` as for make_robomimic_env (e.g. `dataset_env_kwargs(entry)` of the MimicGen file).
    """
    if spec.domain != "mimicgen":
        raise ValueError(f"make_mimicgen_env got task {spec.name!r} of domain {spec.domain!r}")
    register_mimicgen_envs()
    from expo.envs.robomimic import make_lowdim_env

    return make_lowdim_env(spec, seed, env_kwargs)


def observe_state(env: gym.Env, state: np.ndarray) -> dict[str, np.ndarray]:
    """Put a robosuite low-dim env in a stored MuJoCo state [time, qpos, qvel] and return its observation
    per robomimic key (float64), as robomimic's reset_to reads it: set, forward, observe everything anew.
    The env's action-space conventions and controller state are untouched."""
    core = env.unwrapped
    sim = core.raw.sim
    state = np.asarray(state, dtype=np.float64).reshape(-1)
    width = 1 + sim.model.nq + sim.model.nv
    if state.size != width:
        raise ValueError(f"{core.env_name}: a state has {state.size} numbers, the env's MuJoCo state "
                         f"[time, qpos, qvel] has {width}")
    sim.set_state_from_flattened(state)
    sim.forward()
    core._observe(core.raw._get_observations(force_update=True))
    return dict(core.last_obs_dict)
