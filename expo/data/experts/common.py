"""What the scripted experts share: rotation helpers, one episode's rollout, and the generator loop
that keeps successful episodes and writes them as a robomimic-format hdf5 file.

An expert is an object with `reset(obs)` and `act(obs) -> action`; expo/data/experts/<task>.py
defines one per task plus `generate_<task>_dataset`, a thin call of `generate_demonstrations`.
"""
from __future__ import annotations

import time
from typing import Callable, Optional

import mujoco
import numpy as np
from tqdm import tqdm

from expo.data.robomimic_hdf5 import write_robomimic_hdf5
from expo.envs import make_env
from expo.protocol import get_task


def quat_to_mat(q_xyzw: np.ndarray) -> np.ndarray:
    x, y, z, w = np.asarray(q_xyzw, dtype=np.float64) / np.linalg.norm(q_xyzw)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def orientation_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Axis-angle-like vector rotating `current` towards `target` (small-angle formula, both 3x3)."""
    return 0.5 * sum(np.cross(current[:, i], target[:, i]) for i in range(3))


def yaw(mat: np.ndarray) -> float:
    return float(np.arctan2(mat[1, 0], mat[0, 0]))


def wrap_quarter_turn(angle: float) -> float:
    """Wrap to [-pi/4, pi/4): a cube looks the same every quarter turn."""
    return float((angle + np.pi / 4) % (np.pi / 2) - np.pi / 4)


POS_SCALE = 0.05  # metres per unit of OSC position action (robosuite BASIC config output_max)
ORI_SCALE = 0.5  # radians per unit of OSC orientation action


class PControlExpert:
    """Turns a state machine's (eef target, gripper) into a noisy OSC_POSE action.

    Subclasses set EEF_POS / EEF_QUAT (slices of their task's observation) and define
    `_clean_target(obs)` plus the state the action uses: gain, pause, target_ori, noise, rng.
    """

    EEF_POS: slice
    EEF_QUAT: slice

    def __init__(self, noise: float = 0.0, seed: int = 0):
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        self.noise = float(noise)
        self.rng = np.random.default_rng(seed)

    def _start_episode(self, obs: np.ndarray, approach_base: float, between=None) -> np.ndarray:
        """The episode state every expert shares; returns the eef start position.

        The random draws come in a fixed order (gain, approach height, whatever `between` draws,
        detour), so that the demonstrations of a dataset depend only on its seed and expert version.
        Alignment tolerance grows with the noise: noisy actions jitter the eef by ~3 cm x sigma per
        step, and a 4 cm object fits in the 8 cm open gripper with about 2 cm to spare."""
        s, rng = self.noise, self.rng
        self.phase = "detour" if s > 0 else "approach"
        self.phase_steps = 0
        self.pause = 0
        self.gain = max(0.3, 1.0 + s * rng.uniform(-0.5, 0.5))
        self.approach_height = approach_base + s * rng.uniform(0.0, 0.1)
        if between is not None:
            between()
        start = obs[self.EEF_POS].astype(np.float64)
        self.eef_avg = start
        self.hold = start
        self.lift_xy = None
        self.detour = start + np.r_[rng.normal(0.0, 0.15 * s, 2), s * rng.uniform(0.0, 0.15)]
        self.xy_tol = 0.01 + 0.02 * s
        return start

    def _maybe_pause(self) -> None:
        """At a phase change, hesitate for a few steps with probability min(1, noise)."""
        if self.noise > 0 and self.rng.random() < min(1.0, self.noise):
            self.pause = int(self.rng.integers(1, max(1, round(20 * self.noise)) + 1))

    def act(self, obs: np.ndarray) -> np.ndarray:
        target, grip = self._clean_target(obs)
        eef = obs[self.EEF_POS].astype(np.float64)
        action = np.zeros(7)
        if self.pause > 0:  # hesitation: hold the gripper command, no motion
            self.pause -= 1
        else:
            action[:3] = np.clip(self.gain * (target - eef) / POS_SCALE, -1.0, 1.0)
        current = quat_to_mat(obs[self.EEF_QUAT])
        action[3:6] = np.clip(orientation_error(self.target_ori, current) / ORI_SCALE, -1.0, 1.0)
        action[6] = grip
        if self.noise > 0:
            action = action + self.rng.normal(0.0, self.noise, size=7)
        return np.clip(action, -1.0, 1.0).astype(np.float32)


# The pick-up phases both robosuite experts share (their other phases differ). They read and update the
# expert's state: phase (through expert._enter), phase_steps, xy_tol, hold, prev_gap, stalled, lift_xy.
GRASP_DEPTH = -0.005  # grasp target: eef 5 mm below the object's centre (the fingers stop on the table)
EMPTY_GAP = 0.012  # finger gap below which the gripper closed on nothing (cube sides are 4-4.4 cm)


def descend_phase(expert, obj: np.ndarray, above: np.ndarray, eef: np.ndarray, hold_at: np.ndarray,
                  xy_err: float, gap: float):
    """Go down onto `obj`; close ("close" phase, holding `hold_at`) once low and centred.
    Returns (eef target, gripper command)."""
    if xy_err > 2 * expert.xy_tol:  # the object moved (or we drifted) away
        expert._enter("approach")
        return above, -1.0
    grasp = obj + np.r_[0.0, 0.0, GRASP_DEPTH]
    # The fingertips reach the table about 1 cm above the object's centre; close there once it is
    # well centred (P-control keeps correcting xy meanwhile).
    if eef[2] - obj[2] < 0.012 and xy_err < 1.5 * expert.xy_tol:
        expert.hold = hold_at.copy()
        expert.prev_gap, expert.stalled = gap, 0
        expert._enter("close")
    elif expert.phase_steps > 40:
        expert._enter("approach")
    return grasp, -1.0


def close_phase(expert, above: np.ndarray, gap: float):
    """Hold still and close; then "lift", or back to "approach" if the fingers closed on nothing."""
    # The fingers need ~7 steps to close on the object: wait until they stop moving.
    expert.stalled = expert.stalled + 1 if expert.prev_gap - gap < 0.001 else 0
    expert.prev_gap = gap
    if (expert.phase_steps > 3 and expert.stalled >= 2) or expert.phase_steps > 20:
        if gap < EMPTY_GAP:  # closed on nothing: open and try again
            expert._enter("approach")
            return above, -1.0
        expert.lift_xy = expert.hold[:2].copy()
        expert._enter("lift")
    return expert.hold, 1.0


def rollout(env, expert, episode_seed: int) -> dict:
    """One expert episode in `env` (from expo.envs.make_env). Returns the robomimic per-step arrays
    plus "success" and "length"; the episode ends at success (terminated) or at the horizon."""
    core = env.unwrapped
    obs, _ = env.reset(seed=episode_seed)
    expert.reset(obs)
    keys = core.obs_keys
    steps = {"obs": [], "next_obs": [], "actions": [], "rewards": [], "dones": [], "states": []}
    while True:
        steps["obs"].append(dict(core.last_obs_dict))
        steps["states"].append(core.sim_state())
        action = expert.act(obs)
        obs, reward, terminated, truncated, _ = env.step(action)
        steps["next_obs"].append(dict(core.last_obs_dict))
        steps["actions"].append(np.clip(action, env.action_space.low, env.action_space.high))
        steps["rewards"].append(reward)
        steps["dones"].append(int(terminated))
        if terminated or truncated:
            break
    return {
        "obs": {k: np.stack([o[k] for o in steps["obs"]]) for k in keys},
        "next_obs": {k: np.stack([o[k] for o in steps["next_obs"]]) for k in keys},
        "actions": np.stack(steps["actions"]),
        "rewards": np.asarray(steps["rewards"], dtype=np.float64),
        "dones": np.asarray(steps["dones"], dtype=np.int64),
        "states": np.stack(steps["states"]),
        "model_file": core.model_xml(),
        "success": bool(terminated),
        "length": len(steps["actions"]),
    }


def generate_demonstrations(
    expert_name: str,
    task: str,
    make_expert: Callable[[float, int], object],
    expert_version: int,
    path,
    num_demos: int,
    noise: float,
    seed: int,
    max_attempts: Optional[int] = None,
    progress: bool = False,
) -> dict:
    """Roll out `make_expert(noise, seed)` in `task`'s env until `num_demos` successful episodes,
    and write them to `path`.

    Only successful episodes are kept (each ends at its first success state: reward 1, done 1).
    Determinism: the env is built with `seed`, episode i is reset with a seed drawn from
    SeedSequence([seed, i]) and the expert's noise stream comes from SeedSequence([seed, 10**6]), so
    (num_demos, noise, seed, expert_version) fix the file's arrays. `max_attempts` (default
    4 * num_demos + 20) bounds the episodes tried; falling short raises RuntimeError.
    Returns a summary: path, num_demos, attempts, success_rate, mean_length, seconds.
    """
    if num_demos < 1:
        raise ValueError(f"num_demos must be >= 1, got {num_demos}")
    max_attempts = 4 * num_demos + 20 if max_attempts is None else max_attempts
    spec = get_task(task)
    start = time.perf_counter()
    env = make_env(spec, seed=seed)
    core = env.unwrapped
    expert = make_expert(noise, int(np.random.SeedSequence([seed, 10**6]).generate_state(1)[0]))
    demos, attempts = [], 0
    bar = tqdm(total=num_demos, desc=f"{expert_name} demos (noise {noise:g})", unit="demo", disable=not progress)
    while len(demos) < num_demos:
        if attempts >= max_attempts:
            raise RuntimeError(
                f"{expert_name} expert (noise {noise:g}) succeeded in {len(demos)} of {attempts} episodes, "
                f"short of {num_demos}; lower the noise or raise max_attempts"
            )
        episode_seed = int(np.random.SeedSequence([seed, attempts]).generate_state(1)[0])
        attempts += 1
        episode = rollout(env, expert, episode_seed)
        if episode["success"]:
            demos.append(episode)
            bar.update(1)
        bar.set_postfix(success_rate=f"{len(demos) / attempts:.2f}")
    bar.close()
    env_args = core.env_args()
    env.close()

    lengths = [d["length"] for d in demos]
    summary = {
        "path": str(path),
        "num_demos": num_demos,
        "attempts": attempts,
        "success_rate": num_demos / attempts,
        "mean_length": float(np.mean(lengths)),
    }
    generator = {
        "expert": expert_name,
        "expert_version": expert_version,
        "noise": noise,
        "seed": seed,
        "num_demos": num_demos,
        "attempts": attempts,
        "success_rate": summary["success_rate"],
        "robosuite_version": env_args["env_version"],
        "mujoco_version": mujoco.__version__,
    }
    write_robomimic_hdf5(path, demos, env_args, attrs={"expo_generator": generator})
    summary["seconds"] = time.perf_counter() - start
    return summary
