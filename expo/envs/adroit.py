"""Adroit binary tasks (pen / door / relocate-binary-v0) on gymnasium-robotics AdroitHand*-v1.

The paper's tasks are mj_envs' `*-binary-v0` (mujoco_py; registered by the mj_envs forks that RLPD,
Cal-QL and EXPO install). There, step() returns reward = goal_achieved - 1 and done = False always, and
the gym registration sets the horizon: pen 100, door 200, relocate 200. gymnasium-robotics 1.4.2 ports
the same three scenes to mujoco 3 with the same observation layouts (45 / 39 / 39), the same
[-1, 1] action normalisation (act_mean + a * act_rng, its action space is Box(-1, 1, float32) of
24 / 28 / 30) and the same goal tests, which it reports as info["success"]:
  pen       |pen position - desired position| < 0.075 and cos(pen axis, target axis) > 0.95
  door      door hinge qpos >= 1.35
  relocate  |object position - target site| < 0.1
(checked against nakamotoo/mj_envs hand_manipulation_suite/{pen,door,relocate}_v0.py and
gymnasium_robotics/envs/adroit_hand/adroit_{pen,door,relocate}.py).

What this module changes relative to the gymnasium-robotics env, and why:
  - The class is constructed directly, not through gym.make: the registered ids add a 200-step
    TimeLimit (wrong for pen, whose binary task has horizon 100), OrderEnforcing and the passive env
    checker. The suite's own TimeLimit(spec.horizon) is the only time limit.
  - reward = 1.0 * success - 1.0, in {-1, 0}, exactly what the AWAC "sparse" datasets contain, so the
    protocol's reward transform for adroit is the identity. The library's own sparse (10 / -0.1) and
    dense rewards are discarded.
  - terminated is always False. gymnasium-robotics 1.4.2 never terminates these envs either (its pen
    docstring claims termination on success; its code returns False); should a later version start
    terminating, the binary task still must not, so the library's flags are deliberately ignored.
  - observations are float32 (the library gives float64); info["success"] is a Python bool on every
    step and also after reset (computed from the simulator state with the same tests, see
    `goal_achieved`), which the library does not report at reset.
Seeding: `reset(seed=s)` fully determines the episode (the library draws the pen target orientation /
door position / object and target positions from the env's np_random). The env's generator and the
action space are also seeded at construction, so an env built with seed s gives the same episodes
for the same actions even when the first reset passes no seed.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import sys
from typing import Optional

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding

from expo.envs.wrappers import ClipAction, TimeLimit
from expo.protocol import TaskSpec

# spec.env_name -> (module, class) of the gymnasium-robotics implementation
ADROIT_CLASSES = {
    "AdroitHandPen-v1": ("gymnasium_robotics.envs.adroit_hand.adroit_pen", "AdroitHandPenEnv"),
    "AdroitHandDoor-v1": ("gymnasium_robotics.envs.adroit_hand.adroit_door", "AdroitHandDoorEnv"),
    "AdroitHandRelocate-v1": ("gymnasium_robotics.envs.adroit_hand.adroit_relocate", "AdroitHandRelocateEnv"),
}

# Goal thresholds of mj_envs' binary tasks (also gymnasium-robotics'); used only for the reset-time
# info["success"], step() reports the library's own info["success"].
PEN_POS_TOL = 0.075
PEN_COS_MIN = 0.95
DOOR_OPEN = 1.35
RELOCATE_TOL = 0.1

# gymnasium_robotics prints this notice to stderr on import (via farama_notifications). It concerns the
# *Dense-v1 reward functions, which the binary tasks never use, so it is dropped; anything else printed
# during the import is passed through.
_IRRELEVANT_NOTICE = "AdroitHandRelocateDense-v1, AdroitHandHammerDense-v1, AdroitHandDoorDense-v1"


def import_quietly(module: str):
    """importlib.import_module(module) without gymnasium_robotics' irrelevant import notice (any
    gymnasium_robotics module triggers it the first time; expo/envs/antmaze.py imports through here)."""
    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        mod = importlib.import_module(module)
    rest = [line for line in buf.getvalue().splitlines() if line.strip() and not line.startswith(_IRRELEVANT_NOTICE)]
    if rest:
        sys.stderr.write("\n".join(rest) + "\n")
    return mod


def goal_achieved(raw) -> bool:
    """The binary task's goal test evaluated on a gymnasium-robotics Adroit env's current state."""
    name = type(raw).__name__
    data = raw.data
    if name == "AdroitHandPenEnv":
        obj_pos = data.xpos[raw.obj_body_id]
        desired_pos = data.site_xpos[raw.eps_ball_site_id]
        obj_axis = (data.site_xpos[raw.obj_t_site_id] - data.site_xpos[raw.obj_b_site_id]) / raw.pen_length
        target_axis = (data.site_xpos[raw.tar_t_site_id] - data.site_xpos[raw.tar_b_site_id]) / raw.tar_length
        return bool(np.linalg.norm(obj_pos - desired_pos) < PEN_POS_TOL and np.dot(obj_axis, target_axis) > PEN_COS_MIN)
    if name == "AdroitHandDoorEnv":
        return bool(data.qpos[raw.door_hinge_addrs] >= DOOR_OPEN)
    if name == "AdroitHandRelocateEnv":
        dist = np.linalg.norm(data.xpos[raw.obj_body_id] - data.site_xpos[raw.target_obj_site_id])
        return bool(dist < RELOCATE_TOL)
    raise TypeError(f"goal_achieved: not a gymnasium-robotics Adroit pen/door/relocate env: {name}")


class AdroitBinary(gym.Wrapper):
    """A gymnasium-robotics Adroit env with the binary task: reward success - 1, never terminated.

    No time limit and no action clipping here (make_adroit_env adds the suite's wrappers); the
    library clips to [-1, 1] internally as well.
    """

    def __init__(self, raw: gym.Env, obs_dim: int, seed: int):
        super().__init__(raw)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(obs_dim,), dtype=np.float32)
        # Seed the env's generator now so that an unseeded first reset is still reproducible.
        raw.unwrapped.np_random, _ = seeding.np_random(seed)
        self.action_space.seed(int(np.random.SeedSequence([int(seed), 1]).generate_state(1)[0]))

    def _obs(self, obs) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float32)
        if obs.shape != self.observation_space.shape:
            name = type(self.env.unwrapped).__name__
            raise ValueError(f"{name} gave obs of shape {obs.shape}, expected {self.observation_space.shape}")
        return obs

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None):
        obs, info = self.env.reset(seed=seed, options=options)
        info = dict(info)
        info["success"] = goal_achieved(self.env.unwrapped)
        return self._obs(obs), info

    def step(self, action):
        obs, _, _, _, info = self.env.step(action)  # library reward and flags discarded (module doc)
        info = dict(info)
        success = bool(info["success"])
        info["success"] = success
        return self._obs(obs), float(success) - 1.0, False, False, info


def make_adroit_env(spec: TaskSpec, seed: int, **kwargs) -> gym.Env:
    """TimeLimit(ClipAction(AdroitBinary(gymnasium-robotics env)), spec.horizon) for an adroit task.

    Extra keyword arguments (and spec.env_kwargs) go to the gymnasium-robotics constructor, e.g.
    render_mode="rgb_array". The MuJoCo model / data are `env.unwrapped.model` / `env.unwrapped.data`.
    """
    if spec.domain != "adroit":
        raise ValueError(f"make_adroit_env got task {spec.name!r} of domain {spec.domain!r}")
    if spec.env_name not in ADROIT_CLASSES:
        raise ValueError(f"{spec.name}: unknown Adroit env {spec.env_name!r}; known: {', '.join(ADROIT_CLASSES)}")
    module, cls = ADROIT_CLASSES[spec.env_name]
    options = {**dict(spec.env_kwargs), **kwargs}
    # The library's reward_type only picks which of its rewards to compute; both are discarded, and
    # "sparse" skips the dense terms.
    options.setdefault("reward_type", "sparse")
    raw = getattr(import_quietly(module), cls)(**options)
    if raw.observation_space.shape != (spec.obs_dim,) or raw.action_space.shape != (spec.act_dim,):
        raise ValueError(
            f"{spec.name}: env gives obs {raw.observation_space.shape} / act {raw.action_space.shape}, "
            f"protocol says ({spec.obs_dim},) / ({spec.act_dim},)"
        )
    low, high = raw.action_space.low, raw.action_space.high
    if not (np.all(low == -1.0) and np.all(high == 1.0)):
        raise ValueError(
            f"{spec.name}: expected a [-1, 1] action box (AWAC's normalised actions), got [{low.min()}, {high.max()}]"
        )
    core = AdroitBinary(raw, spec.obs_dim, seed)
    return TimeLimit(ClipAction(core), spec.horizon)
