"""MimicGen's Stack_D0 written for robosuite 1.5: put the red cube (A) on the green one (B).

MimicGen's Stack_D0 is robosuite's own Stack with a different placement; so is this class (robosuite
1.5's Stack, same cubes, table and robot). Facts from MimicGen mimicgen/envs/robosuite/stack.py at commit
72bd767c255545f462e7ccfb2731f2e5d4c1d9bb and robosuite v1.4.1's
robosuite/environments/manipulation/stack.py (the release MimicGen's data were recorded with):
  - cubes: A 2 cm half-size (red), B 2.5 cm half-size (green), fixed sizes (stack.py:130-143);
  - D0 placement (stack.py:36-46, 180-189): one sampler for both cubes, x and y in (-0.08, 0.08), z-rotation
    uniform in (0, 2 pi), ensure_valid_placement, reference (0, 0, 0.8), z offset 0.01;
  - success (robosuite 1.4.1 stack.py:276-292, 475-483; MimicGen's stack.py:57-72 states the same
    test): A is not grasped, A's centre is more than 4 cm above the table top, and A touches B;
  - observation "object" (23 numbers) in robosuite 1.4.1's order (stack.py:462): cubeA_pos, cubeA_quat,
    cubeB_pos, cubeB_quat, gripper_to_cubeA, gripper_to_cubeB, cubeA_to_cubeB, where gripper_to_X =
    X_pos - robot0_eef_pos and cubeA_to_cubeB = cubeB_pos - cubeA_pos. robosuite 1.5 builds the same
    observables in another order (cubeA_to_cubeB before the gripper ones), so they are reordered here.
"""
from __future__ import annotations

import numpy as np
from robosuite.environments.manipulation.stack import Stack
from robosuite.utils.placement_samplers import UniformRandomSampler

TABLE_TOP = np.array((0.0, 0.0, 0.8))
CUBE_BOUNDS = dict(x=(-0.08, 0.08), y=(-0.08, 0.08), z_rot=(0.0, 2.0 * np.pi), z_offset=0.01)
LIFT_MARGIN = 0.04  # A's centre above the table top (stack.py:57-66)
# robosuite 1.4.1's "object-state" order, the order of MimicGen's Stack "object" vectors.
OBJECT_ORDER = ("cubeA_pos", "cubeA_quat", "cubeB_pos", "cubeB_quat", "gripper_to_cubeA", "gripper_to_cubeB",
                "cubeA_to_cubeB")


class Stack_D0(Stack):  # noqa: N801 - robosuite registers envs by class name; MimicGen's name
    """MimicGen Stack_D0 on robosuite 1.5."""

    def __init__(self, lite_physics=False, **kwargs):
        if "placement_initializer" in kwargs:
            raise ValueError("Stack_D0 places its cubes itself (MimicGen's D0 bounds); drop placement_initializer")
        sampler = UniformRandomSampler(
            name="ObjectSampler", x_range=CUBE_BOUNDS["x"], y_range=CUBE_BOUNDS["y"], rotation=CUBE_BOUNDS["z_rot"],
            rotation_axis="z", ensure_object_boundary_in_range=False, ensure_valid_placement=True,
            reference_pos=TABLE_TOP, z_offset=CUBE_BOUNDS["z_offset"],
        )
        # lite_physics=False: step MuJoCo the way robosuite 1.4.1 did (see threading_d0.py).
        super().__init__(placement_initializer=sampler, lite_physics=lite_physics, **kwargs)

    def _check_success(self) -> bool:
        grasped = self._check_grasp(gripper=self.robots[0].gripper, object_geoms=self.cubeA)
        lifted = self.sim.data.body_xpos[self.cubeA_body_id][2] > self.table_offset[2] + LIFT_MARGIN
        return bool(not grasped and lifted and self.check_contact(self.cubeA, self.cubeB))

    def reward(self, action=None) -> float:
        reward = 1.0 if self._check_success() else 0.0  # robosuite's sparse 2.0 scaled by reward_scale / 2
        return reward * self.reward_scale if self.reward_scale is not None else reward

    def _setup_observables(self):
        observables = super()._setup_observables()
        if self.use_object_obs:
            for name in OBJECT_ORDER:  # move to the end in robosuite 1.4.1's order (insertion order = "object-state")
                observables[name] = observables.pop(name)
        return observables
