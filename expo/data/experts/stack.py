"""A scripted, optionally noisy expert for MimicGen Stack_D0 (expo/envs/mimicgen_tasks/stack_d0.py), acting
through the env of expo/envs/mimicgen.py.

The task (MimicGen Stack_D0's success, robosuite 1.4.1 Stack's): cube A (red, 4 cm) is above the table by more than 4 cm,
touches cube B (green, 5 cm) and is *not* grasped. So the expert must pick A, put it on B and open the
gripper; the env reports success (and the episode terminates) during the release.

Phases (a small state machine on the 32-dim observation):
  detour:   (noise > 0 only) first visit a random waypoint near the start;
  approach: go above cube A (gripper open), turning the gripper's yaw onto A's faces; of the two
            face-aligned grasps the one whose fingers close *across* the A->B line is chosen, so that
            no finger comes down between the cubes (they can be 3.8 cm apart, face to face);
  descend:  go down to grasp height, back to approach if A is no longer under the gripper;
  close:    hold still and close the gripper until the fingers stop moving; if they closed on nothing,
            reopen and approach again;
  lift:     go straight up until A's bottom clears B's top by the carry clearance;
  carry:    move sideways at that height until A is above B;
  lower:    put A down on B (target: A resting on B, 3 mm into it, so the arm presses gently);
  release:  open the gripper where it is; success normally comes within 2-3 steps;
  retreat:  after a drop, or a release that did not end in success, go up with the gripper open,
            then approach again (A is picked from wherever it lies, on the table or half on B).
Control: P-control on eef position through OSC_POSE delta actions (1.0 = 5 cm per step), P-control on
orientation towards "pointing down, yaw on A's faces" (a true vertical, so the ~10 degree tilt of
robosuite's initial pose is corrected while approaching), gripper -1 open / +1 close. While A is in
the hand (lift / carry / lower), targets are set for A itself (target - A added to the eef), so the
grasp offset does not matter.

Noise (`noise` = sigma), the model of expo/data/experts/lift.py. The same sigma scales:
  - white Gaussian noise N(0, sigma^2) on every action dimension, clipped to [-1, 1];
  - per-episode perturbations, so that demos differ in *path* and *timing*, not only in jitter:
    a detour waypoint (xy offset ~ N(0, (0.15 sigma m)^2), raised by up to 0.15 sigma m) visited
    before the approach; approach height 7 cm + U(0, 0.1 sigma) m; carry clearance
    2.5 cm + U(0, 0.1 sigma) m; position gain scaled by U(1 - 0.5 sigma, 1 + 0.5 sigma) (floored at
    0.3); and hesitations: at each phase change, with probability min(1, sigma), a pause of
    U{1..round(20 sigma)} steps (noise still applies).
Robustness to its own noise: phase decisions use exponentially smoothed eef and cube A positions, the xy
alignment tolerances grow with sigma, moving back to an earlier phase needs twice the tolerance that
moving forward needs (no flip-flopping), and failed grasps, drops and failed releases are retried, so
noisier demos are longer and more erratic but still end in success. Measured with expert v1 in
robosuite's own Stack (same cubes, placement ranges and success test as Stack_D0; 50 episodes each, horizon
200): sigma 0 / 0.1 / 0.2 / 0.25 / 0.3 / 0.5 -> success 100 / 100 / 100 / 100 / 92 / 28 %, mean (std) length
of the successful episodes 70 (7) / 75 (7) / 87 (15) / 102 (23) / 113 (27) / 160 (19) steps. Above 0.25 the
failures are grasps lost to the jitter while the fingers close, repeated until the 200-step horizon runs
out; the registry uses 0.25 (expo/data/registry.py). v2 is the same policy in Stack_D0; its rates:
results/experts/stack.csv (`python -m expo.data experts stack`).
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
EXPERT_VERSION = EXPERT_VERSIONS["stack"]

TASK = "stack"

# Slices of the 32-dim Stack_D0 observation (expo.robomimic_format.ROBOMIMIC_OBS_KEYS order). "object" (23)
# is MimicGen's (robosuite 1.4.1's) cubeA_pos, cubeA_quat, cubeB_pos, cubeB_quat, gripper_to_cubeA,
# gripper_to_cubeB, cubeA_to_cubeB; then eef pos (3), eef quat (4), gripper qpos (2).
_A_POS = slice(0, 3)
_A_QUAT = slice(3, 7)  # xyzw, robosuite's convention
_B_POS = slice(7, 10)
_EEF_POS = slice(23, 26)
_EEF_QUAT = slice(26, 30)
_GRIPPER_QPOS = slice(30, 32)

_OPEN_GAP = 0.07  # finger gap (sum of |qpos|) that counts as fully open
_STACKED_DZ = 0.045  # A's centre above B's centre when A rests on B (half-sizes 0.02 + 0.025)
_PRESS = 0.003  # lower A this far "into" B, so that contact is made and held
# "Pointing down" with yaw 0: eef x along world x, fingers (eef y) along world -y, eef z down.
_DOWN = np.diag([1.0, -1.0, -1.0])


def _grasp_yaw(cube_yaw: float, eef_yaw: float, a_to_b: np.ndarray) -> float:
    """The eef yaw for grasping A: on A's faces, fingers across the A->B line, least turning.

    The fingers close along the eef's y axis, which at yaw t points along angle t - pi/2; the two
    face-aligned candidates (t and t + pi/2) are scored by |sin(t - angle(A->B))|, i.e. how much the
    finger axis lies along A->B, and the better one is taken modulo pi, nearest the current yaw.
    """
    base = eef_yaw + wrap_quarter_turn(cube_yaw - eef_yaw)
    toward_b = float(np.arctan2(a_to_b[1], a_to_b[0]))
    best = min((base, base + np.pi / 2), key=lambda t: abs(np.sin(t - toward_b)))
    # Fingers are symmetric: best and best +- pi grasp the same way; turn the least.
    return float(eef_yaw + (best - eef_yaw + np.pi / 2) % np.pi - np.pi / 2)


class StackExpert(PControlExpert):
    """Call `reset(obs)` at each episode start, then `act(obs)` every step."""

    EEF_POS, EEF_QUAT = _EEF_POS, _EEF_QUAT

    # --- episode state -------------------------------------------------------------------------
    def reset(self, obs: np.ndarray) -> None:
        s = self.noise

        def draw_clearance():
            self.clearance = 0.025 + s * self.rng.uniform(0.0, 0.1)

        self._start_episode(obs, approach_base=0.07, between=draw_clearance)
        self.a_avg = obs[_A_POS].astype(np.float64)
        self.target_ori = rot_z(yaw(quat_to_mat(obs[_EEF_QUAT]))) @ _DOWN
        self.grasp_yaw: Optional[float] = None
        # A's centre may be up to ~2 cm off B's and still rest on B (B's half-side is 2.5 cm).
        self.place_tol = 0.008 + 0.015 * s

    def _enter(self, phase: str) -> None:
        self.phase, self.phase_steps = phase, 0
        if phase == "approach":
            self.grasp_yaw = None  # A may have moved or turned: choose the grasp again
        self._maybe_pause()

    # --- policy: act() is PControlExpert's ------------------------------------------------------
    def _clean_target(self, obs: np.ndarray):
        """Advance the state machine and return (eef position target, gripper command)."""
        a = obs[_A_POS].astype(np.float64)
        b = obs[_B_POS].astype(np.float64)
        raw_eef = obs[_EEF_POS].astype(np.float64)
        # Decisions use a smoothed eef position, so that action noise (which jitters the eef) does
        # not flip the phase back and forth every step; control itself uses the raw position.
        self.eef_avg = 0.5 * self.eef_avg + 0.5 * raw_eef
        eef = self.eef_avg
        gap = float(np.abs(obs[_GRIPPER_QPOS]).sum())
        above_a = a + np.r_[0.0, 0.0, self.approach_height]
        xy_err = float(np.linalg.norm((a - eef)[:2]))
        # Where A must be carried: its bottom `clearance` above B's top, then down onto B.
        carry_z = b[2] + _STACKED_DZ + self.clearance
        # Placement decisions likewise use a smoothed position of A (it jitters with the hand).
        self.a_avg = 0.5 * self.a_avg + 0.5 * a
        place_xy_err = float(np.linalg.norm((b - self.a_avg)[:2]))
        self.phase_steps += 1

        def move_cube_to(goal: np.ndarray) -> np.ndarray:
            """The eef target that brings A (held in the hand) to `goal`."""
            return raw_eef + (goal - a)

        if self.phase == "detour":
            if np.linalg.norm(self.detour - eef) < 0.02 or self.phase_steps > 40:
                self._enter("approach")
            return self.detour, -1.0

        if self.phase == "retreat":  # straight up, gripper open, before approaching A again
            up = np.r_[self.hold[:2], max(self.hold[2], carry_z) + 0.03]
            if eef[2] > up[2] - 0.02 or self.phase_steps > 20:
                self._enter("approach")
            return up, -1.0

        if self.phase == "approach":
            eef_yaw = yaw(quat_to_mat(obs[_EEF_QUAT]))
            if self.grasp_yaw is None:
                self.grasp_yaw = _grasp_yaw(yaw(quat_to_mat(obs[_A_QUAT])), eef_yaw, b - a)
            self.target_ori = rot_z(self.grasp_yaw) @ _DOWN
            yaw_ok = abs((self.grasp_yaw - eef_yaw + np.pi) % (2 * np.pi) - np.pi) < 0.15 + self.noise
            if (xy_err < self.xy_tol and abs(eef[2] - above_a[2]) < 0.02 + self.xy_tol
                    and gap > _OPEN_GAP and yaw_ok):
                self._enter("descend")
            return above_a, -1.0

        if self.phase == "descend":
            return descend_phase(self, a, above_a, eef, raw_eef, xy_err, gap)

        if self.phase == "close":
            return close_phase(self, above_a, gap)

        # From here on A is in the hand; losing it sends the expert up and back to approach.
        if gap < EMPTY_GAP:
            self.hold = raw_eef.copy()
            self._enter("retreat")
            return self.hold, -1.0

        if self.phase == "lift":
            if a[2] > carry_z - 0.01 or self.phase_steps > 30:
                self._enter("carry")
            return np.r_[self.lift_xy, raw_eef[2] + (carry_z - a[2])], 1.0

        if self.phase == "carry":
            if place_xy_err < self.place_tol or self.phase_steps > 40:
                self._enter("lower")
            return move_cube_to(np.r_[b[:2], carry_z]), 1.0

        if self.phase == "lower":
            if place_xy_err > 2 * self.place_tol:  # drifted off B: back up to carry height
                self._enter("carry")
                return move_cube_to(np.r_[b[:2], carry_z]), 1.0
            rest_z = b[2] + _STACKED_DZ
            if a[2] - rest_z < 0.004 or self.phase_steps > 30:
                self.hold = raw_eef.copy()
                self._enter("release")
                return self.hold, -1.0
            return move_cube_to(np.r_[b[:2], rest_z - _PRESS]), 1.0

        # release: open in place; the env ends the episode at success. Otherwise A slipped off.
        if self.phase_steps > 15:
            self._enter("retreat")
        return self.hold, -1.0


# --- dataset generation ----------------------------------------------------------------------------

def generate_stack_dataset(path, num_demos: int, noise: float, seed: int, max_attempts: Optional[int] = None,
                           progress: bool = False) -> dict:
    """Successful episodes of the noisy Stack expert in MimicGen Stack_D0, written to `path` (contract
    and determinism: expo.data.experts.common.generate_demonstrations)."""
    return generate_demonstrations("stack", TASK, lambda n, s: StackExpert(n, seed=s), EXPERT_VERSION, path,
                                   num_demos, noise, seed, max_attempts=max_attempts, progress=progress)
