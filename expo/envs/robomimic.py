"""Robomimic-style low-dim robosuite tasks (Lift; Can/Square share the same code path).

Observation: float32 concat, in this order, of robomimic's low-dim keys
  object (robosuite "object-state"), robot0_eef_pos, robot0_eef_quat, robot0_gripper_qpos
-> 19 dims for Lift. Action: OSC_POSE delta (6) + gripper (1) in [-1, 1]^7; incoming actions are clipped.
Reward 1.0 on task success else 0.0; the episode terminates at success; the horizon is truncation.

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
import logging
from typing import Optional

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding

from expo.envs.wrappers import ClipAction, TimeLimit
from expo.protocol import TaskSpec

# robomimic's low-dim observation keys, in the order the suite concatenates them.
ROBOMIMIC_OBS_KEYS = ("object", "robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos")
# robomimic renamed robosuite's "object-state" to "object"; every other key keeps its robosuite name.
_ROBOSUITE_NAME = {"object": "object-state"}

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
    controller = robosuite.load_composite_controller_config(controller="BASIC")
    # BASIC also configures left arm / torso / head / base / legs; a single Panda has only the right
    # arm (OSC_POSE + gripper). Keeping only it avoids five "component missing" warnings per make.
    controller["body_parts"] = {"right": controller["body_parts"]["right"]}
    kwargs = dict(
        robots=["Panda"],
        controller_configs=controller,
        control_freq=20,
        has_renderer=False,
        has_offscreen_renderer=False,
        use_camera_obs=False,
        use_object_obs=True,
        reward_shaping=False,
        ignore_done=True,  # time limits are the TimeLimit wrapper's job
        hard_reset=False,  # a hard reset reloads the model: ~1.3 s per episode
    )
    kwargs.update(copy.deepcopy(overrides or {}))
    return kwargs


class RobosuiteLowDimEnv(gym.Env):
    """A robosuite task seen through robomimic's low-dim observation keys (no time limit, no clipping)."""

    metadata = {"render_modes": []}

    def __init__(self, env_name: str, seed: int, obs_keys=ROBOMIMIC_OBS_KEYS, env_kwargs: Optional[dict] = None):
        robosuite = _import_robosuite()
        self.env_name = env_name
        self.obs_keys = tuple(obs_keys)
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
            "type": 1,  # robomimic's EnvType.ROBOSUITE_TYPE
            "env_version": _import_robosuite().__version__,
            "env_kwargs": copy.deepcopy(self.env_kwargs),
        }

    def close(self):
        self.raw.close()


def _derive_seed(seed: int, stream: int) -> int:
    """Independent 32-bit seeds for the separate uses of one env seed."""
    return int(np.random.SeedSequence([int(seed), stream]).generate_state(1)[0])


def make_robomimic_env(spec: TaskSpec, seed: int, env_kwargs: Optional[dict] = None) -> gym.Env:
    """TimeLimit(ClipAction(RobosuiteLowDimEnv)) for a robomimic task; checks dims against the protocol.

    `env_kwargs` overrides entries of `robosuite_env_kwargs()` (what goes to robosuite.make).
    The robosuite env is `env.unwrapped.raw`; `env.unwrapped.sim_state()` gives robomimic's `states`.
    """
    if spec.domain != "robomimic":
        raise ValueError(f"make_robomimic_env got task {spec.name!r} of domain {spec.domain!r}")
    core = RobosuiteLowDimEnv(spec.env_name, seed=seed, env_kwargs=env_kwargs)
    if core.observation_space.shape != (spec.obs_dim,) or core.action_space.shape != (spec.act_dim,):
        raise ValueError(
            f"{spec.name}: env gives obs {core.observation_space.shape} / act {core.action_space.shape}, "
            f"protocol says ({spec.obs_dim},) / ({spec.act_dim},)"
        )
    return TimeLimit(ClipAction(core), spec.horizon)
