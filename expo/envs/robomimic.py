"""Robomimic-style low-dim robosuite tasks: Lift (Lift), Can (PickPlaceCan), Square (NutAssemblySquare).

Observation: float32 concat, in this order, of robomimic's low-dim keys
  object, robot0_eef_pos, robot0_eef_quat, robot0_gripper_qpos
-> Lift 19, Can 23, Square 23 dims. Action: OSC_POSE delta (6) + gripper (1) in [-1, 1]^7; incoming
actions are clipped. Reward 1.0 on task success else 0.0 (robosuite's own `_check_success`); the episode
terminates at success; the horizon is truncation.

The "object" vector is laid out as in the robomimic v0.1 / v141 datasets (recorded with robosuite 1.4.1),
not as robosuite 1.5 concatenates its "object-state". robosuite 1.4.1 built each PickPlace / NutAssembly
object's observables in the order [pos, quat, to_eef_pos, to_eef_quat]; robosuite 1.5.1 builds them as
[to_eef_pos, to_eef_quat, pos, quat] (compare the two releases' `_create_obj_sensors` /
`_setup_observables`). Same 14 numbers, permuted: a policy trained on the public files would see
shuffled features online. OBJECT_LAYOUTS lists the 1.4.1 order per env and `_extract` concatenates the
named observables in that order. Lift's order did not change between the releases (cube_pos, cube_quat,
gripper_to_cube_pos), so its observation is identical either way. Envs without an entry (e.g. robosuite's
Stack, whose 1.5 order also differs from 1.4.1) keep robosuite's "object-state" as is.

Can and Square need no extra env kwargs: robosuite's PickPlaceCan and NutAssemblySquare subclasses already
fix single_object_mode=2 with object_type="can" / nut_type="square", which disables the other objects'
observables (14-dim object state) and makes `_check_success` look at that one object only. Success also
requires the gripper to be more than ~4 cm from the object (robosuite's r_reach < 0.6 test).

Datasets' env metadata: what datasets and envs share lives in expo/robomimic_format.py (re-exported here):
ROBOMIMIC_OBS_KEYS, `env_kwargs_from_env_args` (a robomimic file's data.attrs["env_args"] as robosuite.make
kwargs for the installed robosuite; old part-controller configs are converted to the 1.5 composite format)
and `dataset_env_kwargs(entry_or_path)`, which reads them from a file or registry entry;
`make_env(spec, seed, env_kwargs=dataset_env_kwargs(...))` builds the env the data were recorded in.

Seeding. robosuite 1.5.1 accepts `seed` but never uses its `rng`: object placement, robot joint noise
and the cube size (drawn once, when the model is built) all come from the *global* np.random. So this
module runs model construction and every reset inside `_seeded_global_numpy(...)`, which installs a
private seed into np.random and restores the caller's global state afterwards (nothing leaks). The
seed for reset k is drawn from the env's own gymnasium `np_random`, so:
  - `reset(seed=s)` fully determines the initial cube pose and robot joints for a given env instance;
  - the cube *size* (0.020-0.022 m, robosuite's randomisation) is fixed per env by the construction
    seed (hard_reset=False keeps the model, and a hard reset would cost ~1.3 s per episode).
Two envs built with the same seed therefore produce identical episodes for identical actions.
"""
from __future__ import annotations

import contextlib
import copy
from typing import Optional

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding

from expo.envs.wrappers import ClipAction, TimeLimit
from expo.protocol import TaskSpec
from expo.robomimic_format import (  # noqa: F401 - re-exported: what datasets and envs share
    ROBOMIMIC_OBS_KEYS,
    ROBOSUITE_ENV_TYPE,
    SUITE_CONTROLLED_KWARGS,
    _import_robosuite,
    convert_controller_config,
    dataset_env_kwargs,
    env_kwargs_from_env_args,
)

# robomimic renamed robosuite's "object-state" to "object"; every other key keeps its robosuite name.
_ROBOSUITE_NAME = {"object": "object-state"}

# env name -> the robosuite observables that make up robomimic's "object", in robosuite 1.4.1's order
# (the order of the public robomimic files; see the module docstring for why 1.5's order is not used).
OBJECT_LAYOUTS: dict[str, tuple[str, ...]] = {
    "Lift": ("cube_pos", "cube_quat", "gripper_to_cube_pos"),
    "PickPlaceCan": ("Can_pos", "Can_quat", "Can_to_robot0_eef_pos", "Can_to_robot0_eef_quat"),
    "NutAssemblySquare": (
        "SquareNut_pos", "SquareNut_quat", "SquareNut_to_robot0_eef_pos", "SquareNut_to_robot0_eef_quat",
    ),
}


@contextlib.contextmanager
def _seeded_global_numpy(seed: int):
    """Run a block with np.random seeded to `seed`, restoring the caller's global RNG state after."""
    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(saved)


def robosuite_env_kwargs(overrides: Optional[dict] = None) -> dict:
    """The keyword arguments given to `robosuite.make` (also written to datasets' env_args)."""
    robosuite = _import_robosuite()
    if not hasattr(robosuite, "load_composite_controller_config"):
        # robosuite < 1.5 (only in a MimicGen environment, see expo/envs/mimicgen.py; untested here):
        # the same OSC_POSE arm controller in that version's part-config format.
        kwargs = dict(robots=["Panda"], controller_configs=robosuite.load_controller_config(default_controller="OSC_POSE"),
                      control_freq=20, **SUITE_CONTROLLED_KWARGS)
        kwargs.update(copy.deepcopy(overrides or {}))
        return kwargs
    controller = robosuite.load_composite_controller_config(controller="BASIC")
    # BASIC also configures left arm / torso / head / base / legs; a single Panda has only the right
    # arm (OSC_POSE + gripper). Keeping only it avoids five "component missing" warnings per make.
    controller["body_parts"] = {"right": controller["body_parts"]["right"]}
    kwargs = dict(robots=["Panda"], controller_configs=controller, control_freq=20)
    # ignore_done: time limits are the TimeLimit wrapper's job; hard_reset=False: a hard reset reloads
    # the model, ~1.3 s per episode.
    kwargs.update(SUITE_CONTROLLED_KWARGS)
    kwargs.update(copy.deepcopy(overrides or {}))
    return kwargs


class RobosuiteLowDimEnv(gym.Env):
    """A robosuite task seen through robomimic's low-dim observation keys (no time limit, no clipping)."""

    metadata = {"render_modes": []}

    def __init__(self, env_name: str, seed: int, obs_keys=ROBOMIMIC_OBS_KEYS, env_kwargs: Optional[dict] = None):
        robosuite = _import_robosuite()
        self.env_name = env_name
        self.obs_keys = tuple(obs_keys)
        # robomimic-file order of the "object" observables (None: robosuite's own "object-state").
        self.object_layout = OBJECT_LAYOUTS.get(env_name)
        self.env_kwargs = robosuite_env_kwargs(env_kwargs)
        # np.random is seeded during construction because robosuite samples the cube size there.
        with _seeded_global_numpy(_derive_seed(seed, 0)):
            self.raw = robosuite.make(env_name, **copy.deepcopy(self.env_kwargs))
        self._np_random, _ = seeding.np_random(seed)
        low, high = self.raw.action_spec
        self.action_space = gym.spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)
        self.action_space.seed(_derive_seed(seed, 1))  # reproducible random exploration actions
        self.last_obs_dict: dict[str, np.ndarray] = {}
        with _seeded_global_numpy(_derive_seed(seed, 2)):
            raw_obs = self.raw.reset()
        dim = sum(self._extract(raw_obs)[k].size for k in self.obs_keys)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(dim,), dtype=np.float32)

    def _extract(self, raw_obs: dict) -> dict[str, np.ndarray]:
        out = {}
        for key in self.obs_keys:
            if key == "object" and self.object_layout is not None:
                missing = [n for n in self.object_layout if n not in raw_obs]
                if missing:
                    raise KeyError(f"robosuite {self.env_name} has no observables {missing} (robomimic 'object' layout)")
                out[key] = np.concatenate([np.asarray(raw_obs[n], dtype=np.float64).reshape(-1) for n in self.object_layout])
                continue
            name = _ROBOSUITE_NAME.get(key, key)
            if name not in raw_obs:
                raise KeyError(f"robosuite {self.env_name} has no observation {name!r} (for key {key!r})")
            out[key] = np.asarray(raw_obs[name], dtype=np.float64).reshape(-1)
        return out

    def _observe(self, raw_obs: dict) -> np.ndarray:
        # Keep robomimic's per-key float64 view for dataset writing; the learner gets a float32 concat.
        self.last_obs_dict = self._extract(raw_obs)
        return np.concatenate([self.last_obs_dict[k] for k in self.obs_keys]).astype(np.float32)

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None):
        super().reset(seed=seed)
        episode_seed = int(self.np_random.integers(2**32))
        with _seeded_global_numpy(episode_seed):
            # Also seed robosuite's own (currently unused) rng in case a later version starts using it.
            self.raw.rng = np.random.default_rng(episode_seed)
            raw_obs = self.raw.reset()
        return self._observe(raw_obs), {"success": self.success()}

    def step(self, action):
        raw_obs, _, _, _ = self.raw.step(np.asarray(action, dtype=np.float64))
        success = self.success()
        return self._observe(raw_obs), float(success), success, False, {"success": success}

    def success(self) -> bool:
        return bool(self.raw._check_success())

    def sim_state(self) -> np.ndarray:
        """MuJoCo state flattened as robomimic stores it in `states`: [time, qpos, qvel]."""
        return np.asarray(self.raw.sim.get_state().flatten(), dtype=np.float64)

    def model_xml(self) -> str:
        return self.raw.sim.model.get_xml()

    def env_args(self) -> dict:
        """robomimic's env metadata (data.attrs["env_args"]) for datasets recorded in this env."""
        return {
            "env_name": self.env_name,
            "type": ROBOSUITE_ENV_TYPE,
            "env_version": _import_robosuite().__version__,
            "env_kwargs": copy.deepcopy(self.env_kwargs),
        }

    def close(self):
        self.raw.close()


def _derive_seed(seed: int, stream: int) -> int:
    """Independent 32-bit seeds for the separate uses of one env seed."""
    return int(np.random.SeedSequence([int(seed), stream]).generate_state(1)[0])


def make_lowdim_env(spec: TaskSpec, seed: int, env_kwargs: Optional[dict] = None) -> gym.Env:
    """TimeLimit(ClipAction(RobosuiteLowDimEnv(spec.env_name))) with its dims checked against the protocol.

    Shared by the robomimic and MimicGen makers (both are robosuite envs seen through robomimic's keys).
    """
    core = RobosuiteLowDimEnv(spec.env_name, seed=seed, env_kwargs=env_kwargs)
    if core.observation_space.shape != (spec.obs_dim,) or core.action_space.shape != (spec.act_dim,):
        core.close()
        raise ValueError(
            f"{spec.name}: env gives obs {core.observation_space.shape} / act {core.action_space.shape}, "
            f"protocol says ({spec.obs_dim},) / ({spec.act_dim},)"
        )
    return TimeLimit(ClipAction(core), spec.horizon)


def make_robomimic_env(spec: TaskSpec, seed: int, env_kwargs: Optional[dict] = None) -> gym.Env:
    """TimeLimit(ClipAction(RobosuiteLowDimEnv)) for a robomimic task; checks dims against the protocol.

    `env_kwargs` overrides entries of `robosuite_env_kwargs()` (what goes to robosuite.make); pass
    `dataset_env_kwargs(entry_or_path)` to build the env a dataset was recorded in.
    The robosuite env is `env.unwrapped.raw`; `env.unwrapped.sim_state()` gives robomimic's `states`.
    """
    if spec.domain != "robomimic":
        raise ValueError(f"make_robomimic_env got task {spec.name!r} of domain {spec.domain!r}")
    return make_lowdim_env(spec, seed, env_kwargs)
