"""A scripted, optionally noisy expert for MimicGen Threading_D0 (expo/envs/mimicgen_tasks), through the
env of expo/envs/mimicgen.py.

The task: pick the needle (a 12 cm bar with a 4 cm cube handle, lying on the table with its tip towards
the robot) and push the bar through the tripod's ring (1.6 cm square opening, its axis along world y,
centred 18.9 cm above the table at (0, -0.15)) until the bar's centre is within 1.2 cm of the ring's
centre; the env then reports success and the episode ends. The bar is 1 cm thick: 3 mm to spare per side.

Phases (a small state machine on the 37-dim observation):
  detour:   (noise > 0 only) first visit a random waypoint near the start;
  approach: go above the handle (gripper open), yaw set so that the fingers close across the handle's
            sides (along the needle's x axis, perpendicular to the bar);
  descend / close: as the Lift expert (expo/data/experts/common.py), on the handle;
  lift:     straight up to the ring's height;
  align:    turn the needle until its bar points along -y (towards the ring) and bring the bar's tip
            2 cm in front of the ring, on the ring's axis;
  insert:   push along -y at most 6 mm per step, keeping the point of the bar that is at the ring's
            plane on the ring's axis; no progress for a while -> back to align;
  retreat:  the needle was dropped: up with the gripper open, then approach again.
While the needle is in the hand, targets are set for points of the needle itself (target - point added
to the eef), so the grasp offset does not matter. Control: P-control on eef position through OSC_POSE
delta actions (1.0 = 5 cm per step), P-control on orientation towards "pointing down" with the yaw the
phase needs, gripper -1 open / +1 close.

Noise (`noise` = sigma), the model of expo/data/experts/lift.py: white Gaussian noise N(0, sigma^2) on
every action dimension (clipped to [-1, 1]), a detour waypoint, a random approach height, a random
position gain and hesitations at phase changes; during align / insert the white noise is scaled by
INSERT_NOISE_SCALE (a careful hand where 3 mm matter; elsewhere the demos vary as much as Lift's).
Measured success rates: results/experts/threading.csv (`python -m expo.data experts threading`).
With sigma = 0 the expert is deterministic given the env's reset seed.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from expo.data.experts.common import (
    EMPTY_GAP, PControlExpert, close_phase, descend_phase, generate_demonstrations, quat_to_mat, rot_z, yaw,
)
from expo.data.registry import EXPERT_VERSIONS

# Part of the dataset file name and attributes; bump it in expo/data/registry.py (EXPERT_VERSIONS)
# when the expert's behaviour changes.
EXPERT_VERSION = EXPERT_VERSIONS["threading"]

TASK = "threading"

# Slices of the 37-dim Threading observation (MimicGen's order: expo/envs/mimicgen_tasks/threading_d0.py).
_NEEDLE_POS = slice(0, 3)
_NEEDLE_QUAT = slice(3, 7)  # xyzw
_TRIPOD_POS = slice(14, 17)
_TRIPOD_QUAT = slice(17, 21)
_EEF_POS = slice(28, 31)
_EEF_QUAT = slice(31, 35)
_GRIPPER_QPOS = slice(35, 37)

# Points of the needle in its own frame (expo/envs/mimicgen_tasks/objects.py).
_HANDLE = np.array([0.0, 0.06, 0.0])
_BAR_CENTRE = np.array([0.0, -0.02, 0.0])
_BAR_HALF_LENGTH = 0.06
_RING_IN_TRIPOD = np.array([0.0, 0.0, 0.088])  # the ring's centre in the tripod's frame

_OPEN_GAP = 0.07  # finger gap (sum of |qpos|) that counts as fully open
_PRE_INSERT = 0.02  # the bar's tip stops this far in front of the ring before the push
_INSERT_STEP = 0.006  # at most this far along the ring's axis per step while pushing
INSERT_NOISE_SCALE = 0.3
# "Pointing down" with yaw 0: eef x along world x, fingers (eef y) along world -y, eef z down.
_DOWN = np.diag([1.0, -1.0, -1.0])


def _wrap(angle: float) -> float:
    return float((angle + np.pi) % (2 * np.pi) - np.pi)


class ThreadingExpert(PControlExpert):
    """Call `reset(obs)` at each episode start, then `act(obs)` every step."""

    EEF_POS, EEF_QUAT = _EEF_POS, _EEF_QUAT

    # --- episode state -------------------------------------------------------------------------
    def reset(self, obs: np.ndarray) -> None:
        self._start_episode(obs, approach_base=0.06)
        self.target_ori = rot_z(yaw(quat_to_mat(obs[_EEF_QUAT]))) @ _DOWN
        self.best_progress = np.inf
        self.stuck = 0

    def _enter(self, phase: str) -> None:
        self.phase, self.phase_steps = phase, 0
        self.stuck, self.best_progress = 0, np.inf
        self._maybe_pause()

    def act(self, obs: np.ndarray) -> np.ndarray:
        """PControlExpert's action; in align / insert with INSERT_NOISE_SCALE of the white noise."""
        noise = self.noise
        target_phase = self.phase in ("align", "insert")
        if target_phase:
            self.noise = noise * INSERT_NOISE_SCALE
        try:
            return super().act(obs)
        finally:
            self.noise = noise

    # --- geometry ------------------------------------------------------------------------------
    @staticmethod
    def _ring(obs: np.ndarray) -> np.ndarray:
        tripod = quat_to_mat(obs[_TRIPOD_QUAT])
        return obs[_TRIPOD_POS].astype(np.float64) + tripod @ _RING_IN_TRIPOD

    def _needle_frame(self, obs: np.ndarray):
        return obs[_NEEDLE_POS].astype(np.float64), quat_to_mat(obs[_NEEDLE_QUAT])

    # --- policy: act() is PControlExpert's ------------------------------------------------------
    def _clean_target(self, obs: np.ndarray):
        """Advance the state machine and return (eef position target, gripper command)."""
        origin, rot = self._needle_frame(obs)
        handle = origin + rot @ _HANDLE
        centre = origin + rot @ _BAR_CENTRE
        tip_dir = -rot[:, 1]  # the bar's tip lies along the needle's -y axis
        ring = self._ring(obs)
        raw_eef = obs[_EEF_POS].astype(np.float64)
        self.eef_avg = 0.5 * self.eef_avg + 0.5 * raw_eef
        eef = self.eef_avg
        gap = float(np.abs(obs[_GRIPPER_QPOS]).sum())
        eef_yaw = yaw(quat_to_mat(obs[_EEF_QUAT]))
        needle_yaw = yaw(rot)
        above = handle + np.r_[0.0, 0.0, self.approach_height]
        xy_err = float(np.linalg.norm((handle - eef)[:2]))
        self.phase_steps += 1

        if self.phase == "detour":
            if np.linalg.norm(self.detour - eef) < 0.02 or self.phase_steps > 40:
                self._enter("approach")
            return self.detour, -1.0

        if self.phase == "retreat":  # straight up, gripper open, before approaching the handle again
            up = np.r_[self.hold[:2], max(self.hold[2], ring[2]) + 0.05]
            if eef[2] > up[2] - 0.02 or self.phase_steps > 20:
                self._enter("approach")
            return up, -1.0

        if self.phase == "approach":
            # Fingers (at angle yaw - pi/2) across the handle, i.e. along the needle's x axis (angle
            # needle_yaw), the turn of the two such yaws (pi apart) that is the smaller one.
            grasp_yaw = eef_yaw + _wrap((needle_yaw + np.pi / 2 - eef_yaw + np.pi / 2) % np.pi - np.pi / 2)
            self.target_ori = rot_z(grasp_yaw) @ _DOWN
            yaw_ok = abs(_wrap(grasp_yaw - eef_yaw)) < 0.1 + self.noise
            if xy_err < self.xy_tol and abs(eef[2] - above[2]) < 0.02 + self.xy_tol and gap > _OPEN_GAP and yaw_ok:
                self._enter("descend")
            return above, -1.0

        if self.phase == "descend":
            return descend_phase(self, handle, above, eef, raw_eef, xy_err, gap)

        if self.phase == "close":
            return close_phase(self, above, gap)

        # From here on the needle is in the hand; losing it sends the expert up and back to approach.
        if gap < EMPTY_GAP or np.linalg.norm(handle - raw_eef) > 0.05:
            self.hold = raw_eef.copy()
            self._enter("retreat")
            return self.hold, -1.0

        # Turn the needle (not the hand: the grasp may have slipped) until its tip points along -y.
        self.target_ori = rot_z(eef_yaw + _wrap(0.0 - needle_yaw)) @ _DOWN

        if self.phase == "lift":
            if centre[2] > ring[2] - 0.01 or self.phase_steps > 40:
                self._enter("align")
            return np.r_[self.lift_xy, raw_eef[2] + (ring[2] - centre[2])], 1.0

        # The point of the bar in the ring's plane (y = ring y), or its tip while the tip is in front.
        along = np.clip((centre[1] - ring[1]) / max(-tip_dir[1], 1e-3), -_BAR_HALF_LENGTH, _BAR_HALF_LENGTH)
        at_ring = centre + along * tip_dir
        off_axis = np.r_[ring[0] - at_ring[0], 0.0, ring[2] - at_ring[2]]
        pre_insert_y = ring[1] + _PRE_INSERT + _BAR_HALF_LENGTH  # the bar centre's y with the tip 2 cm out

        if self.phase == "align":
            dy = pre_insert_y - centre[1]
            aligned = (np.linalg.norm(off_axis) < 0.002 and abs(dy) < 0.006
                       and abs(_wrap(needle_yaw)) < 0.03)
            if aligned or self.phase_steps > 80:
                self._enter("insert")
            return raw_eef + off_axis + np.r_[0.0, dy, 0.0], 1.0

        # insert: push along -y until the bar's centre reaches the ring (success ends the episode).
        progress = centre[1] - ring[1]
        if progress < self.best_progress - 0.001:
            self.best_progress, self.stuck = progress, 0
        else:
            self.stuck += 1
        if self.stuck > 15 or np.linalg.norm(off_axis) > 0.006:
            self._enter("align")  # jammed or off the axis: back out and line up again
        dy = float(np.clip(-0.002 - progress, -_INSERT_STEP, _INSERT_STEP))
        return raw_eef + off_axis + np.r_[0.0, dy, 0.0], 1.0


# --- dataset generation ----------------------------------------------------------------------------

def generate_threading_dataset(path, num_demos: int, noise: float, seed: int, max_attempts: Optional[int] = None,
                               progress: bool = False) -> dict:
    """Successful episodes of the noisy Threading expert in Threading_D0, written to `path` (contract
    and determinism: expo.data.experts.common.generate_demonstrations)."""
    return generate_demonstrations("threading", TASK, lambda n, s: ThreadingExpert(n, seed=s), EXPERT_VERSION,
                                   path, num_demos, noise, seed, max_attempts=max_attempts, progress=progress)
