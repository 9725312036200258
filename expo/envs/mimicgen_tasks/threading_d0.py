"""MimicGen's Threading_D0 written for robosuite 1.5: thread the needle through the tripod's ring.

Facts taken from MimicGen mimicgen/envs/robosuite/threading.py at commit
72bd767c255545f462e7ccfb2731f2e5d4c1d9bb (the code here is this suite's own):
  - table: full size (0.8, 0.8, 0.05), friction (1, 5e-3, 1e-4), top at z = 0.8 (threading.py:144-145, 171);
    robot base at the table's "table" offset (threading.py:244-245);
  - objects: NeedleObject "needle_obj" and RingTripodObject "tripod_obj" (threading.py:263-264; their
    geometry: expo/envs/mimicgen_tasks/objects.py);
  - D0 placement (threading.py:289-302, 307-335), sampled needle first, then tripod, both with
    ensure_valid_placement and reference (0, 0, 0.8):
      needle: x in (-0.2, -0.05), y in (0.15, 0.25), z-rotation in (-2 pi / 3, -pi / 3), z offset 0;
      tripod: x = 0, y = -0.15, z-rotation pi / 2, z offset 0.001;
  - observation "object" (28 numbers, threading.py:376-454): for needle then tripod, the object's
    world position (body xpos), world quaternion (xyzw), then its pose in the end-effector frame
    (position, quaternion xyzw), the frame being the inverse of (robot0_eef_pos, robot0_eef_quat);
    observable names needle_pos, needle_quat, needle_to_robot0_eef_pos, needle_to_robot0_eef_quat,
    tripod_pos, ... (threading.py:452);
  - success (threading.py:456-474): the needle bar geom's centre is within ring_size[1] (1.2 cm) of the
    mean position of the ring's 20 geoms;
  - reward: 1 at success, else 0, times reward_scale (threading.py:207-235); control_freq 20 (threading.py:156).
"""
from __future__ import annotations

import numpy as np
import robosuite.utils.transform_utils as T
from robosuite.environments.manipulation.manipulation_env import ManipulationEnv
from robosuite.models.arenas import TableArena
from robosuite.models.tasks import ManipulationTask
from robosuite.utils.observables import Observable, sensor
from robosuite.utils.placement_samplers import SequentialCompositeSampler, UniformRandomSampler

from expo.envs.mimicgen_tasks.objects import NeedleObject, RingTripodObject

TABLE_TOP = np.array((0.0, 0.0, 0.8))
# D0 placement bounds (threading.py:289-302): x range, y range, z-rotation range, z offset.
NEEDLE_BOUNDS = dict(x=(-0.2, -0.05), y=(0.15, 0.25), z_rot=(-2.0 * np.pi / 3.0, -np.pi / 3.0), z_offset=0.0)
TRIPOD_BOUNDS = dict(x=(0.0, 0.0), y=(-0.15, -0.15), z_rot=(np.pi / 2.0, np.pi / 2.0), z_offset=0.001)
# MimicGen's object names (threading.py:263-264): the success check reads their geoms by these names.
NEEDLE_NAME, TRIPOD_NAME = "needle_obj", "tripod_obj"
OBJECTS = ("needle", "tripod")  # observation order (threading.py:346-349 dict order)


def _sampler(name: str, obj, bounds: dict) -> UniformRandomSampler:
    return UniformRandomSampler(
        name=name, mujoco_objects=obj, x_range=bounds["x"], y_range=bounds["y"], rotation=bounds["z_rot"],
        rotation_axis="z", ensure_object_boundary_in_range=False, ensure_valid_placement=True,
        reference_pos=TABLE_TOP, z_offset=bounds["z_offset"],
    )


class Threading_D0(ManipulationEnv):  # noqa: N801 - robosuite registers envs by class name; MimicGen's name
    """MimicGen Threading_D0 on robosuite 1.5 (a single-arm robot; the suite uses a Panda)."""

    def __init__(self, robots, env_configuration="default", controller_configs=None, gripper_types="default",
                 initialization_noise="default", table_full_size=(0.8, 0.8, 0.05), table_friction=(1.0, 5e-3, 1e-4),
                 use_camera_obs=True, use_object_obs=True, reward_scale=1.0, reward_shaping=False,
                 has_renderer=False, has_offscreen_renderer=True, render_camera="frontview",
                 render_collision_mesh=False, render_visual_mesh=True, render_gpu_device_id=-1, control_freq=20,
                 lite_physics=False, horizon=1000, ignore_done=False, hard_reset=True, camera_names="agentview",
                 camera_heights=256, camera_widths=256, camera_depths=False, camera_segmentations=None,
                 renderer="mjviewer", renderer_config=None):
        self.table_full_size = table_full_size
        self.table_friction = table_friction
        self.table_offset = TABLE_TOP.copy()
        self.reward_scale = reward_scale
        self.reward_shaping = reward_shaping  # MimicGen's Threading has no shaped reward either
        self.use_object_obs = use_object_obs
        # lite_physics=False: robosuite 1.5's own switch for stepping MuJoCo the way robosuite 1.4.1 did
        # (forward before every substep), which MimicGen's data were recorded with.
        super().__init__(
            robots=robots, env_configuration=env_configuration, controller_configs=controller_configs,
            base_types="default", gripper_types=gripper_types, initialization_noise=initialization_noise,
            use_camera_obs=use_camera_obs, has_renderer=has_renderer, has_offscreen_renderer=has_offscreen_renderer,
            render_camera=render_camera, render_collision_mesh=render_collision_mesh,
            render_visual_mesh=render_visual_mesh, render_gpu_device_id=render_gpu_device_id,
            control_freq=control_freq, lite_physics=lite_physics, horizon=horizon, ignore_done=ignore_done,
            hard_reset=hard_reset, camera_names=camera_names, camera_heights=camera_heights,
            camera_widths=camera_widths, camera_depths=camera_depths, camera_segmentations=camera_segmentations,
            renderer=renderer, renderer_config=renderer_config,
        )

    # ------------------------------------------------------------------------------------ task
    def reward(self, action=None) -> float:
        reward = 1.0 if self._check_success() else 0.0
        return reward * self.reward_scale if self.reward_scale is not None else reward

    def _check_success(self) -> bool:
        """The needle bar's centre is inside the ring: closer than ring_size[1] to the ring geoms' mean."""
        data, model = self.sim.data, self.sim.model
        bar = np.array(data.geom_xpos[model.geom_name2id(f"{NEEDLE_NAME}_needle")])
        ring = np.mean([data.geom_xpos[model.geom_name2id(f"{TRIPOD_NAME}_ring_{i}")]
                        for i in range(self.tripod.num_ring_geoms)], axis=0)
        return bool(np.linalg.norm(bar - ring) < self.tripod.ring_size[1])

    # ------------------------------------------------------------------------------------ model
    def _load_model(self):
        super()._load_model()
        robot = self.robots[0].robot_model
        robot.set_base_xpos(robot.base_xpos_offset["table"](self.table_full_size[0]))
        arena = TableArena(table_full_size=self.table_full_size, table_friction=self.table_friction,
                           table_offset=self.table_offset)
        arena.set_origin([0, 0, 0])
        self.needle = NeedleObject(name=NEEDLE_NAME)
        self.tripod = RingTripodObject(name=TRIPOD_NAME)
        self.placement_initializer = SequentialCompositeSampler(name="ObjectSampler")
        self.placement_initializer.append_sampler(_sampler("NeedleSampler", self.needle, NEEDLE_BOUNDS))
        self.placement_initializer.append_sampler(_sampler("TripodSampler", self.tripod, TRIPOD_BOUNDS))
        self.model = ManipulationTask(mujoco_arena=arena, mujoco_robots=[r.robot_model for r in self.robots],
                                      mujoco_objects=[self.needle, self.tripod])

    def _setup_references(self):
        super()._setup_references()
        self.obj_body_id = {"needle": self.sim.model.body_name2id(self.needle.root_body),
                            "tripod": self.sim.model.body_name2id(self.tripod.root_body)}

    def _reset_internal(self):
        super()._reset_internal()
        if not self.deterministic_reset:
            for pos, quat, obj in self.placement_initializer.sample().values():
                self.sim.data.set_joint_qpos(obj.joints[0], np.concatenate([np.array(pos), np.array(quat)]))

    # ------------------------------------------------------------------------------ observation
    def _setup_observables(self):
        """Robot observables (robosuite's), then MimicGen's object observables in its order."""
        observables = super()._setup_observables()
        if not self.use_object_obs:
            return observables
        pf = self.robots[0].robot_model.naming_prefix
        modality = "object"

        # The inverse end-effector pose, computed once per step for both objects' relative poses
        # (not part of the observation itself: inactive, as in MimicGen).
        @sensor(modality=modality)
        def world_pose_in_gripper(obs_cache):
            if f"{pf}eef_pos" not in obs_cache or f"{pf}eef_quat" not in obs_cache:
                return np.eye(4)
            return T.pose_inv(T.pose2mat((obs_cache[f"{pf}eef_pos"], obs_cache[f"{pf}eef_quat"])))

        entries = [("world_pose_in_gripper", world_pose_in_gripper, False)]
        for obj in OBJECTS:
            entries += [(name, fn, True) for name, fn in self._object_sensors(obj, pf, modality)]
        for name, fn, active in entries:
            observables[name] = Observable(name=name, sensor=fn, sampling_rate=self.control_freq, active=active)
        return observables

    def _object_sensors(self, obj: str, pf: str, modality: str):
        """(name, sensor) for `obj`: world position, world quaternion (xyzw), pose in the eef frame."""
        body = self.obj_body_id[obj]
        pos_key, quat_key = f"{obj}_pos", f"{obj}_quat"
        rel_pos_key, rel_quat_key = f"{obj}_to_{pf}eef_pos", f"{obj}_to_{pf}eef_quat"

        @sensor(modality=modality)
        def world_pos(obs_cache):
            return np.array(self.sim.data.body_xpos[body])

        @sensor(modality=modality)
        def world_quat(obs_cache):
            return T.convert_quat(self.sim.data.body_xquat[body], to="xyzw")

        @sensor(modality=modality)
        def pos_in_eef(obs_cache):
            # The first observation after a reset may come before the cache holds the poses it needs.
            if any(k not in obs_cache for k in (pos_key, quat_key, "world_pose_in_gripper")):
                return np.zeros(3)
            pose = obs_cache["world_pose_in_gripper"] @ T.pose2mat((obs_cache[pos_key], obs_cache[quat_key]))
            rel_pos, rel_quat = T.mat2pose(pose)
            obs_cache[rel_quat_key] = rel_quat  # read by quat_in_eef, evaluated right after
            return rel_pos

        @sensor(modality=modality)
        def quat_in_eef(obs_cache):
            return obs_cache[rel_quat_key] if rel_quat_key in obs_cache else np.zeros(4)

        return [(pos_key, world_pos), (quat_key, world_quat), (rel_pos_key, pos_in_eef), (rel_quat_key, quat_in_eef)]

    def visualize(self, vis_settings):
        super().visualize(vis_settings=vis_settings)
        if vis_settings["grippers"]:
            self._visualize_gripper_to_target(gripper=self.robots[0].gripper, target=self.needle)
