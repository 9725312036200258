"""Robomimic Lift / Can / Square envs: dims, seeding, success through the sim state, dataset env_args."""
import json

import h5py
import numpy as np
import pytest

from expo.envs import make_env
from expo.envs.robomimic import OBJECT_LAYOUTS, dataset_env_kwargs, env_kwargs_from_env_args
from expo.protocol import get_task

TASKS = ("lift", "can", "square")

# robomimic v141 env metadata as the public low_dim_v141.hdf5 files store it (robosuite 1.4.1 part-controller
# config, camera settings, reward shaping off), written by hand. "damping" is robomimic v0.1's key name.
V141_ENV_ARGS = {
    "env_name": "PickPlaceCan",
    "env_version": "1.4.1",
    "type": 1,
    "env_kwargs": {
        "has_renderer": False,
        "has_offscreen_renderer": True,
        "ignore_done": False,
        "use_object_obs": True,
        "use_camera_obs": True,
        "control_freq": 20,
        "controller_configs": {
            "type": "OSC_POSE", "input_max": 1, "input_min": -1,
            "output_max": [0.05, 0.05, 0.05, 0.5, 0.5, 0.5], "output_min": [-0.05, -0.05, -0.05, -0.5, -0.5, -0.5],
            "kp": 150, "damping": 1, "impedance_mode": "fixed", "kp_limits": [0, 300], "damping_limits": [0, 10],
            "position_limits": None, "orientation_limits": None, "uncouple_pos_ori": True, "control_delta": True,
            "interpolation": None, "ramp_ratio": 0.2,
        },
        "robots": ["Panda"],
        "camera_names": ["agentview", "robot0_eye_in_hand"],
        "camera_depths": False,
        "camera_heights": 84,
        "camera_widths": 84,
        "reward_shaping": True,
        "render_gpu_device_id": 0,
    },
}


@pytest.fixture(scope="module", params=TASKS)
def task_env(request):
    spec = get_task(request.param)
    env = make_env(spec, seed=0)
    yield spec, env
    env.close()


def _solve(raw, name):
    """Put the task's object where robosuite counts it as solved, through its free joint's qpos."""
    if name == "can":
        obj = raw.objects[raw.object_id]
        x, y, _ = raw.target_bin_placements[raw.object_id]
        pos = [x, y, raw.bin2_pos[2] + 0.05]  # inside the can's quadrant of bin 2
    elif name == "square":
        obj = raw.nuts[raw.nut_id]
        peg = raw.sim.data.body_xpos[raw.peg1_body_id]
        pos = [peg[0], peg[1], raw.table_offset[2] + 0.02]  # ring around the square peg, near the table
    else:
        obj = raw.cube
        pos = raw.sim.data.body_xpos[raw.cube_body_id] + np.array([0, 0, 0.1])  # lifted 10 cm
    raw.sim.data.set_joint_qpos(obj.joints[0], np.concatenate([pos, [1.0, 0, 0, 0]]))
    raw.sim.forward()


def test_dims_match_protocol_and_robomimic(task_env):
    spec, env = task_env
    assert spec.obs_dim == {"lift": 19, "can": 23, "square": 23}[spec.name]
    assert env.observation_space.shape == (spec.obs_dim,) and env.action_space.shape == (7,)
    obs, info = env.reset(seed=0)
    assert obs.shape == (spec.obs_dim,) and obs.dtype == np.float32 and info == {"success": False}
    parts = env.unwrapped.last_obs_dict
    assert [parts[k].size for k in ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos")] == [3, 4, 2]
    assert parts["object"].size == spec.obs_dim - 9


def test_object_uses_robosuite_141_order(task_env):
    """object = [pos, quat, (rel pos, rel quat)] as in the robomimic files, not robosuite 1.5's object-state."""
    spec, env = task_env
    env.reset(seed=1)
    raw = env.unwrapped.raw
    obs = raw._get_observations(force_update=True)
    layout = OBJECT_LAYOUTS[spec.env_name]
    np.testing.assert_allclose(env.unwrapped._extract(obs)["object"], np.concatenate([obs[n] for n in layout]))
    body = {"lift": "cube_main", "can": "Can_main", "square": "SquareNut_main"}[spec.name]
    np.testing.assert_allclose(env.unwrapped._extract(obs)["object"][:3], raw.sim.data.body_xpos[raw.sim.model.body_name2id(body)])
    if spec.name != "lift":  # robosuite 1.5 puts the relative pose first: the permutation is real
        assert not np.allclose(obs["object-state"], env.unwrapped._extract(obs)["object"])


def test_reset_seeding_and_determinism(task_env):
    spec, env = task_env
    a, _ = env.reset(seed=5)
    env.step(env.action_space.sample())
    b, _ = env.reset(seed=5)
    c, _ = env.reset(seed=6)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a[:3], c[:3])  # object placement differs
    twin = make_env(spec, seed=0)
    try:
        actions = np.random.default_rng(0).uniform(-1, 1, size=(4, 7))
        x, _ = env.reset(seed=9)
        y, _ = twin.reset(seed=9)
        for act in actions:
            x, rx, *_ = env.step(act)
            y, ry, *_ = twin.step(act)
        np.testing.assert_array_equal(x, y)
        assert rx == ry == 0.0
    finally:
        twin.close()


def test_success_gives_reward_and_terminates(task_env):
    spec, env = task_env
    env.reset(seed=2)
    obs, reward, terminated, truncated, info = env.step(np.zeros(7))
    assert (reward, terminated, truncated, info["success"]) == (0.0, False, False, False)
    if spec.name == "lift":
        return  # Lift's solved state is covered by tests/test_lift_env.py (scripted expert)
    _solve(env.unwrapped.raw, spec.name)
    obs, reward, terminated, truncated, info = env.step(np.zeros(7))
    assert reward == 1.0 and terminated and not truncated and info["success"]


def test_env_args_conversion_from_robosuite_141():
    kwargs = env_kwargs_from_env_args(json.dumps(V141_ENV_ARGS), env_name="PickPlaceCan")
    for key in ("camera_names", "camera_heights", "camera_widths", "camera_depths", "render_gpu_device_id"):
        assert key not in kwargs
    assert kwargs["reward_shaping"] is False and kwargs["use_camera_obs"] is False
    assert kwargs["has_offscreen_renderer"] is False and kwargs["ignore_done"] is True and kwargs["hard_reset"] is False
    assert kwargs["robots"] == ["Panda"] and kwargs["control_freq"] == 20
    ctrl = kwargs["controller_configs"]
    assert ctrl["type"] == "BASIC" and list(ctrl["body_parts"]) == ["right"]
    arm = ctrl["body_parts"]["right"]
    assert arm["type"] == "OSC_POSE" and arm["input_type"] == "delta" and arm["gripper"] == {"type": "GRIP"}
    assert arm["damping_ratio"] == 1 and arm["damping_ratio_limits"] == [0, 10] and "damping" not in arm
    assert arm["output_max"] == [0.05, 0.05, 0.05, 0.5, 0.5, 0.5]
    with pytest.raises(ValueError, match="recorded in 'PickPlaceCan', the task's env is 'NutAssemblySquare'"):
        env_kwargs_from_env_args(V141_ENV_ARGS, env_name="NutAssemblySquare")
    with pytest.raises(ValueError, match="not a robosuite env"):
        env_kwargs_from_env_args({**V141_ENV_ARGS, "type": 2})


def test_dataset_env_kwargs_builds_the_recorded_env(tmp_path):
    path = tmp_path / "low_dim_v141.hdf5"
    with h5py.File(path, "w") as f:
        f.create_group("data").attrs["env_args"] = json.dumps(V141_ENV_ARGS)
    bare = tmp_path / "no_env_args.hdf5"
    with h5py.File(bare, "w") as f:
        f.create_group("data")
    assert dataset_env_kwargs(bare) is None
    spec = get_task("can")
    kwargs = dataset_env_kwargs(path, spec=spec)
    env = make_env(spec, seed=3, env_kwargs=kwargs)
    try:
        obs, _ = env.reset(seed=0)
        assert obs.shape == (23,)
        assert env.unwrapped.env_kwargs["controller_configs"]["body_parts"]["right"]["kp"] == 150
        obs, reward, terminated, _, _ = env.step(np.zeros(7))
        assert np.all(np.isfinite(obs)) and reward == 0.0 and not terminated
    finally:
        env.close()
    with pytest.raises(ValueError, match="the task's env is 'NutAssemblySquare'"):
        dataset_env_kwargs(path, spec=get_task("square"))
    with pytest.raises(FileNotFoundError, match="nope.hdf5: file not found"):
        dataset_env_kwargs(tmp_path / "nope.hdf5")
