"""A scripted, optionally noisy expert for robosuite Lift, acting through the env of expo/envs/robomimic.py.

Phases (a small state machine on the 19-dim observation):
  detour:   (noise > 0 only) first visit a random waypoint near the start;
  approach: go above the cube (gripper open), turning the gripper's yaw onto the cube's faces;
  descend:  go down to grasp height, back to approach if the cube is no longer under the gripper;
  close:    hold still and close the gripper until the fingers stop moving; if they closed on nothing,
            reopen and approach again;
  lift:     go up with the gripper closed (the episode ends at success, i.e. cube 4 cm above the table);
            a dropped cube sends the expert back to approach.
Control: P-control on eef position through OSC_POSE delta actions (1.0 = 5 cm per step), P-control on
orientation towards "pointing down, yaw on the cube's faces" (with noise 0 the orientation action
stays ~0; without this feedback, orientation noise would integrate into an ever-growing tilt),
gripper -1 open / +1 close.

Noise (`noise` = sigma). The same sigma scales:
  - white Gaussian noise N(0, sigma^2) on every action dimension, clipped to [-1, 1];
  - per-episode perturbations, so that demos differ in *path* and *timing*, not only in jitter:
    a detour waypoint (xy offset ~ N(0, (0.15 sigma m)^2), raised by up to 0.15 sigma m) visited
    before the approach; approach height 5 cm + U(0, 0.1 sigma) m; position gain scaled by
    U(1 - 0.5 sigma, 1 + 0.5 sigma) (floored at 0.3); and hesitations: at each phase change, with
    probability min(1, sigma), a pause of U{1..round(20 sigma)} steps (noise still applies).
Robustness to its own noise: phase decisions use an exponentially smoothed eef position, and the xy
alignment tolerance is 1 cm + 2 cm x sigma; failed grasps and drops are retried, so noisier demos are
longer and more erratic but still end in success. Measured (expert v1, 50 episodes each, horizon 400):
sigma 0 / 0.1 / 0.2 / 0.3 / 0.5 -> success 100 / 100 / 100 / 100 / 80 %, mean length of the
successful episodes 35 / 39 / 48 / 76 / 190 steps.
With sigma = 0 the expert is deterministic given the env's reset seed.
"""
from __future__ import annotations

import time
from typing import Optional

import mujoco
import numpy as np
from tqdm import tqdm

from expo.data.robomimic_hdf5 import write_robomimic_hdf5
from expo.envs import make_env
from expo.protocol import get_task

# Bump when the expert's behaviour changes: it is part of the dataset file name and attributes.
EXPERT_VERSION = 1

# Slices of the 19-dim Lift observation (expo.envs.robomimic.ROBOMIMIC_OBS_KEYS order).
_CUBE_POS = slice(0, 3)
_CUBE_QUAT = slice(3, 7)  # xyzw, robosuite's convention
_EEF_POS = slice(10, 13)
_EEF_QUAT = slice(13, 17)
_GRIPPER_QPOS = slice(17, 19)

_POS_SCALE = 0.05  # metres per unit of OSC position action (robosuite BASIC config output_max)
_ORI_SCALE = 0.5  # radians per unit of OSC orientation action
_GRASP_DEPTH = -0.005  # grasp target: eef 5 mm below the cube centre (the fingers stop on the table)
_OPEN_GAP = 0.07  # finger gap (sum of |qpos|) that counts as fully open
_EMPTY_GAP = 0.012  # finger gap below which the gripper closed on nothing (cube side is 4-4.4 cm)


def quat_to_mat(q_xyzw: np.ndarray) -> np.ndarray:
    x, y, z, w = np.asarray(q_xyzw, dtype=np.float64) / np.linalg.norm(q_xyzw)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _orientation_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Axis-angle-like vector rotating `current` towards `target` (small-angle formula, both 3x3)."""
    return 0.5 * sum(np.cross(current[:, i], target[:, i]) for i in range(3))


def _yaw(mat: np.ndarray) -> float:
    return float(np.arctan2(mat[1, 0], mat[0, 0]))


def _wrap_quarter_turn(angle: float) -> float:
    """Wrap to [-pi/4, pi/4): a cube looks the same every quarter turn."""
    return float((angle + np.pi / 4) % (np.pi / 2) - np.pi / 4)


class LiftExpert:
    """Call `reset(obs)` at each episode start, then `act(obs)` every step."""

    def __init__(self, noise: float = 0.0, seed: int = 0):
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        self.noise = float(noise)
        self.rng = np.random.default_rng(seed)

    # --- episode state -------------------------------------------------------------------------
    def reset(self, obs: np.ndarray) -> None:
        s, rng = self.noise, self.rng
        self.phase = "detour" if s > 0 else "approach"
        self.phase_steps = 0
        self.pause = 0
        self.gain = max(0.3, 1.0 + s * rng.uniform(-0.5, 0.5))
        self.approach_height = 0.05 + s * rng.uniform(0.0, 0.1)
        start = obs[_EEF_POS].astype(np.float64)
        self.eef_avg = start
        self.hold = start
        self.detour = start + np.r_[rng.normal(0.0, 0.15 * s, 2), s * rng.uniform(0.0, 0.15)]
        self.down = quat_to_mat(obs[_EEF_QUAT])  # reset orientation: gripper pointing down
        self.target_ori = self.down
        self.lift_xy: Optional[np.ndarray] = None
        # Alignment tolerance grows with the noise: noisy actions jitter the eef by ~3 cm x sigma per
        # step, and a 4 cm cube fits in the 8 cm open gripper with about 2 cm to spare.
        self.xy_tol = 0.01 + 0.02 * s

    def _enter(self, phase: str) -> None:
        self.phase, self.phase_steps = phase, 0
        if self.noise > 0 and self.rng.random() < min(1.0, self.noise):
            self.pause = int(self.rng.integers(1, max(1, round(20 * self.noise)) + 1))

    # --- policy --------------------------------------------------------------------------------
    def act(self, obs: np.ndarray) -> np.ndarray:
        target, grip = self._clean_target(obs)
        eef = obs[_EEF_POS].astype(np.float64)
        action = np.zeros(7)
        if self.pause > 0:  # hesitation: hold the gripper command, no motion
            self.pause -= 1
        else:
            action[:3] = np.clip(self.gain * (target - eef) / _POS_SCALE, -1.0, 1.0)
        current = quat_to_mat(obs[_EEF_QUAT])
        action[3:6] = np.clip(_orientation_error(self.target_ori, current) / _ORI_SCALE, -1.0, 1.0)
        action[6] = grip
        if self.noise > 0:
            action = action + self.rng.normal(0.0, self.noise, size=7)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def _clean_target(self, obs: np.ndarray):
        """Advance the state machine and return (eef position target, gripper command)."""
        cube = obs[_CUBE_POS].astype(np.float64)
        # Decisions use a smoothed eef position, so that action noise (which jitters the eef) does
        # not flip the phase back and forth every step; control itself uses the raw position.
        self.eef_avg = 0.5 * self.eef_avg + 0.5 * obs[_EEF_POS].astype(np.float64)
        eef = self.eef_avg
        gap = float(np.abs(obs[_GRIPPER_QPOS]).sum())
        above = cube + np.r_[0.0, 0.0, self.approach_height]
        xy_err = float(np.linalg.norm((cube - eef)[:2]))
        self.phase_steps += 1

        if self.phase == "detour":
            if np.linalg.norm(self.detour - eef) < 0.02 or self.phase_steps > 40:
                self._enter("approach")
            return self.detour, -1.0

        if self.phase == "approach":
            # Align the gripper's yaw with the cube's nearest face while travelling.
            # Only yaw changes: the tilt target stays "pointing down" as at reset.
            eef_yaw = _yaw(quat_to_mat(obs[_EEF_QUAT]))
            yaw_err = _wrap_quarter_turn(_yaw(quat_to_mat(obs[_CUBE_QUAT])) - eef_yaw)
            self.target_ori = _rot_z(eef_yaw + yaw_err - _yaw(self.down)) @ self.down
            if xy_err < self.xy_tol and abs(eef[2] - above[2]) < 0.02 + self.xy_tol and gap > _OPEN_GAP:
                self._enter("descend")
            return above, -1.0

        if self.phase == "descend":
            if xy_err > 2 * self.xy_tol:  # the cube moved (or we drifted) away
                self._enter("approach")
                return above, -1.0
            grasp = cube + np.r_[0.0, 0.0, _GRASP_DEPTH]
            # The fingertips reach the table about 1 cm above the cube centre; close there once the
            # cube is well centred (P-control keeps correcting xy meanwhile).
            if eef[2] - cube[2] < 0.012 and xy_err < 1.5 * self.xy_tol:
                self.hold = eef.copy()
                self.prev_gap, self.stalled = gap, 0
                self._enter("close")
            elif self.phase_steps > 40:
                self._enter("approach")
            return grasp, -1.0

        if self.phase == "close":
            # The fingers need ~7 steps to close on the cube: wait until they stop moving.
            self.stalled = self.stalled + 1 if self.prev_gap - gap < 0.001 else 0
            self.prev_gap = gap
            if (self.phase_steps > 3 and self.stalled >= 2) or self.phase_steps > 20:
                if gap < _EMPTY_GAP:  # closed on nothing: open and try again
                    self._enter("approach")
                    return above, -1.0
                self.lift_xy = self.hold[:2].copy()
                self._enter("lift")
            return self.hold, 1.0

        # lift
        if gap < _EMPTY_GAP:  # dropped the cube
            self._enter("approach")
            return above, -1.0
        return np.r_[self.lift_xy, cube[2] + 0.15], 1.0


# --- dataset generation ----------------------------------------------------------------------------

def rollout(env, expert: LiftExpert, episode_seed: int) -> dict:
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


def generate_lift_dataset(
    path,
    num_demos: int,
    noise: float,
    seed: int,
    max_attempts: Optional[int] = None,
    progress: bool = False,
) -> dict:
    """Roll out the noisy expert until `num_demos` successful episodes, write them to `path`.

    Only successful episodes are kept (each ends at its first success state: reward 1, done 1).
    Determinism: the env is built with `seed`, episode i is reset with a seed drawn from
    SeedSequence([seed, i]) and the expert's noise stream comes from SeedSequence([seed, 10**6]), so
    (num_demos, noise, seed, EXPERT_VERSION) fix the file's arrays. `max_attempts` (default
    4 * num_demos + 20) bounds the episodes tried; falling short raises RuntimeError.
    Returns a summary: path, num_demos, attempts, success_rate, mean_length, seconds.
    """
    if num_demos < 1:
        raise ValueError(f"num_demos must be >= 1, got {num_demos}")
    max_attempts = 4 * num_demos + 20 if max_attempts is None else max_attempts
    spec = get_task("lift")
    start = time.perf_counter()
    env = make_env(spec, seed=seed)
    core = env.unwrapped
    expert = LiftExpert(noise, seed=int(np.random.SeedSequence([seed, 10**6]).generate_state(1)[0]))
    demos, attempts = [], 0
    bar = tqdm(total=num_demos, desc=f"lift demos (noise {noise:g})", unit="demo", disable=not progress)
    while len(demos) < num_demos:
        if attempts >= max_attempts:
            raise RuntimeError(
                f"lift expert (noise {noise:g}) succeeded in {len(demos)} of {attempts} episodes, "
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
        "expert": "lift",
        "expert_version": EXPERT_VERSION,
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
