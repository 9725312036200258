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

from typing import Optional

import numpy as np

from expo.data.experts.common import (
    EMPTY_GAP, PControlExpert, close_phase, descend_phase, generate_demonstrations, quat_to_mat, rot_z,
    wrap_quarter_turn, yaw,
)
from expo.data.registry import EXPERT_VERSIONS

# Part of the dataset file name and attributes; bump it in expo/data/registry.py (EXPERT_VERSIONS)
# when the expert's behaviour changes.
EXPERT_VERSION = EXPERT_VERSIONS["lift"]

TASK = "lift"

# Slices of the 19-dim Lift observation (expo.robomimic_format.ROBOMIMIC_OBS_KEYS order).
_CUBE_POS = slice(0, 3)
_CUBE_QUAT = slice(3, 7)  # xyzw, robosuite's convention
_EEF_POS = slice(10, 13)
_EEF_QUAT = slice(13, 17)
_GRIPPER_QPOS = slice(17, 19)

_OPEN_GAP = 0.07  # finger gap (sum of |qpos|) that counts as fully open


class LiftExpert(PControlExpert):
    """Call `reset(obs)` at each episode start, then `act(obs)` every step."""

    EEF_POS, EEF_QUAT = _EEF_POS, _EEF_QUAT

    # --- episode state -------------------------------------------------------------------------
    def reset(self, obs: np.ndarray) -> None:
        self._start_episode(obs, approach_base=0.05)
        self.down = quat_to_mat(obs[_EEF_QUAT])  # reset orientation: gripper pointing down
        self.target_ori = self.down

    def _enter(self, phase: str) -> None:
        self.phase, self.phase_steps = phase, 0
        self._maybe_pause()

    # --- policy: act() is PControlExpert's ------------------------------------------------------
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
            eef_yaw = yaw(quat_to_mat(obs[_EEF_QUAT]))
            yaw_err = wrap_quarter_turn(yaw(quat_to_mat(obs[_CUBE_QUAT])) - eef_yaw)
            self.target_ori = rot_z(eef_yaw + yaw_err - yaw(self.down)) @ self.down
            if xy_err < self.xy_tol and abs(eef[2] - above[2]) < 0.02 + self.xy_tol and gap > _OPEN_GAP:
                self._enter("descend")
            return above, -1.0

        if self.phase == "descend":
            return descend_phase(self, cube, above, eef, eef, xy_err, gap)

        if self.phase == "close":
            return close_phase(self, above, gap)

        # lift
        if gap < EMPTY_GAP:  # dropped the cube
            self._enter("approach")
            return above, -1.0
        return np.r_[self.lift_xy, cube[2] + 0.15], 1.0


# --- dataset generation ----------------------------------------------------------------------------

def generate_lift_dataset(path, num_demos: int, noise: float, seed: int, max_attempts: Optional[int] = None,
                          progress: bool = False) -> dict:
    """Successful episodes of the noisy Lift expert, written to `path` (contract and determinism:
    expo.data.experts.common.generate_demonstrations)."""
    return generate_demonstrations("lift", TASK, lambda n, s: LiftExpert(n, seed=s), EXPERT_VERSION, path,
                                   num_demos, noise, seed, max_attempts=max_attempts, progress=progress)
