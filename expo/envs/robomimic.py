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

Datasets' env metadata: `env_kwargs_from_env_args` turns a robomimic file's data.attrs["env_args"] into
robosuite.make kwargs for the installed robosuite (old part-controller configs are converted to the 1.5
composite format); `dataset_env_kwargs(entry_or_path)` reads it from a file or registry entry, and
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
import json
import logging
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding

from expo.envs.wrappers import ClipAction, TimeLimit
from expo.protocol import TaskSpec

# robomimic's low-dim observation keys, in the order the suite concatenates them.
ROBOMIMIC_OBS_KEYS = ("object", "robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos")
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

# robosuite.make kwargs the suite always sets itself, whatever a dataset's env_args say: no rendering or
# cameras (low-dim only), sparse reward, time limits by the TimeLimit wrapper, no per-episode model reload.
SUITE_CONTROLLED_KWARGS: dict[str, Any] = dict(
    has_renderer=False,
    has_offscreen_renderer=False,
    use_camera_obs=False,
    use_object_obs=True,
    reward_shaping=False,
    ignore_done=True,
    hard_reset=False,
)
# Rendering / camera keys of a dataset's env_kwargs that are dropped (meaningless without cameras).
_DROPPED_KWARGS = (
    "camera_names", "camera_heights", "camera_widths", "camera_depths", "camera_segmentations",
    "render_camera", "render_collision_mesh", "render_visual_mesh", "render_gpu_device_id", "renderer",
    "renderer_config", "camera_info",
)
# robosuite <= 1.4.1 part-controller keys renamed in 1.5's controllers.
_LEGACY_CONTROLLER_KEYS = {"damping": "damping_ratio", "damping_limits": "damping_ratio_limits"}
ROBOSUITE_ENV_TYPE = 1  # robomimic's EnvType.ROBOSUITE_TYPE

# Messages robosuite logs on every import / make that say nothing about this suite's setup: no private
# macro file, optional packages (robosuite_models, mink) absent, the composite-controller file path.
_NOISE_PREFIXES = (
    "No private macro file found",
    "It is recommended to use a private macro file",
    "To setup, run: python",
    "Could not import robosuite_models",
    "Could not load the mink-based whole-body IK",
    "Loading controller configuration from",
    'The config has defined for the controller "',
)


class _DropRobosuiteNoise(logging.Filter):
    """Drops the known-harmless robosuite messages above; anything at ERROR or above always passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        return not str(record.msg).startswith(_NOISE_PREFIXES)


def _import_robosuite():
    """Import robosuite with its import-time warning spam filtered (idempotent)."""
    # robosuite logs through the logger named "robosuite_logs"; getLogger returns the same object
    # robosuite configures later, so a filter attached now also covers the import itself.
    logger = logging.getLogger("robosuite_logs")
    if not any(isinstance(f, _DropRobosuiteNoise) for f in logger.filters):
        logger.addFilter(_DropRobosuiteNoise())
    import robosuite

    return robosuite


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


def convert_controller_config(controller: Mapping[str, Any], robots) -> dict:
    """A controller config from any robosuite version as the installed robosuite's composite config.

    robosuite <= 1.4.1 files store one part config ({"type": "OSC_POSE", ...}); robosuite 1.5 expects a
    composite config ({"type": "BASIC", "body_parts": {...}}). The conversion is robosuite's own
    `refactor_composite_controller_config` (robot default composite config, arm replaced by the old part
    config plus a GRIP gripper), after renaming the pre-1.5 keys 1.5 no longer reads (robomimic v0.1's
    damping / damping_limits; control_delta -> input_type), so that their values are not silently
    replaced by defaults. Only the arm body parts a single-arm robot has are kept.
    """
    controller = copy.deepcopy(dict(controller))
    try:
        from robosuite.controllers.composite.composite_controller_factory import (
            is_part_controller_config,
            refactor_composite_controller_config,
        )
    except ImportError:  # robosuite < 1.5 reads part configs itself (MimicGen environment, untested here)
        return controller
    if not is_part_controller_config(controller):
        return controller  # already composite (robosuite >= 1.5, e.g. this suite's own files)
    for old, new in _LEGACY_CONTROLLER_KEYS.items():
        if old in controller:
            controller.setdefault(new, controller[old])
            del controller[old]
    if "control_delta" in controller:
        controller.setdefault("input_type", "delta" if controller["control_delta"] else "absolute")
        del controller["control_delta"]
    robot = robots[0] if isinstance(robots, (list, tuple)) else robots
    if not isinstance(robot, str):
        raise ValueError(f"env_args robots must name a robot, got {robots!r}")
    composite = refactor_composite_controller_config(controller, robot, ["right"])
    composite["body_parts"] = {"right": composite["body_parts"]["right"]}
    return composite


def env_kwargs_from_env_args(env_args: Union[str, Mapping[str, Any]], env_name: Optional[str] = None) -> dict:
    """robosuite.make kwargs (for the installed robosuite) from a robomimic file's data.attrs["env_args"].

    `env_args` is robomimic's env metadata (JSON text or dict): {"env_name", "type", "env_version",
    "env_kwargs"}. The result keeps the recorded task settings (robots, control_freq, controller, object
    options), converts an old controller config (`convert_controller_config`), drops rendering / camera
    keys and forces SUITE_CONTROLLED_KWARGS. With `env_name`, a file recorded in another env is an error.
    """
    if isinstance(env_args, (str, bytes)):
        try:
            env_args = json.loads(env_args)
        except json.JSONDecodeError as e:
            raise ValueError(f"env_args is not valid JSON ({e}); fix: pass the file's data.attrs['env_args']") from None
    if not isinstance(env_args, Mapping) or "env_kwargs" not in env_args:
        raise ValueError("env_args has no 'env_kwargs'; fix: pass robomimic's env metadata {env_name, type, env_kwargs}")
    if env_args.get("type", ROBOSUITE_ENV_TYPE) != ROBOSUITE_ENV_TYPE:
        raise ValueError(f"env_args type {env_args.get('type')!r} is not a robosuite env (type {ROBOSUITE_ENV_TYPE})")
    if env_name is not None and env_args.get("env_name") not in (None, env_name):
        raise ValueError(
            f"dataset was recorded in {env_args.get('env_name')!r}, the task's env is {env_name!r}; "
            "fix: use the task's own dataset"
        )
    kwargs = {k: copy.deepcopy(v) for k, v in env_args["env_kwargs"].items() if k not in _DROPPED_KWARGS}
    kwargs.pop("env_name", None)  # robomimic sometimes repeats it inside env_kwargs; make() takes it apart
    if "controller_configs" in kwargs:
        kwargs["controller_configs"] = convert_controller_config(kwargs["controller_configs"], kwargs.get("robots", "Panda"))
    kwargs.update(SUITE_CONTROLLED_KWARGS)
    return kwargs


def dataset_env_kwargs(entry_or_path, spec: Optional[TaskSpec] = None) -> Optional[dict]:
    """robosuite.make kwargs for the env a robomimic-format dataset was recorded in; None without env_args.

    `entry_or_path`: a registry key (str naming a DATASETS entry), a registry entry (its last file is
    read) or a path to an hdf5 file. The
    training loop passes the result to `make_env(spec, seed, env_kwargs=...)`. With `spec`, the file's
    env_name must be spec.env_name.
    """
    import h5py

    from expo.data.registry import DATASETS  # lazy: the registry imports this module

    if isinstance(entry_or_path, str) and entry_or_path in DATASETS:
        entry_or_path = DATASETS[entry_or_path]
    if hasattr(entry_or_path, "paths"):
        paths = entry_or_path.paths()
        if not paths:
            raise ValueError(f"dataset {entry_or_path.key!r} has no files registered")
        # A composed MimicGen entry is [human source, generated core]; the generated file names the
        # task's own env variant (e.g. Threading_D0), so its env_args are the ones to build.
        path, hint = paths[-1], entry_or_path.fix_hint()
    else:
        path, hint = Path(entry_or_path), "pass the path of a robomimic-format hdf5 file"
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: file not found; fix: {hint}")
    with h5py.File(path, "r") as f:
        raw = f["data"].attrs.get("env_args") if "data" in f else None
    if raw is None or (isinstance(raw, (str, bytes)) and not raw.strip()):
        return None
    if isinstance(raw, bytes):
        raw = raw.decode()
    return env_kwargs_from_env_args(str(raw), env_name=spec.env_name if spec is not None else None)
