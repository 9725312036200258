"""The suite's MimicGen Threading_D0 / Stack_D0 (expo/envs/mimicgen_tasks) against MimicGen's definitions.

- observation: for the same MuJoCo state the env gives what a MimicGen dataset stores. The fixtures are
  small hdf5 files in MimicGen's format (data/demo_i/{states, obs/<key>, actions, rewards, dones}, data
  attrs env_args JSON of a robosuite 1.4.1 recording) whose `obs` are computed here from raw MuJoCo
  data with MimicGen's formulas, independently of robosuite's observables; the env built from the
  file's env_args is set to each stored state (robomimic's reset_to) and must reproduce them;
- layout: 37 / 32 dims, robomimic's key order, MimicGen's object observables in its order;
- success: states built from MimicGen's geometry where the task is / is not solved;
- placement: MimicGen's D0 ranges and rotations after seeded resets;
- bad input: a MimicGen file of another task or observation width at a task's path is one line.
"""
import json

import h5py
import mujoco
import numpy as np
import pytest

from expo.data.robomimic_hdf5 import load_robomimic_hdf5
from expo.envs import make_env
from expo.envs.mimicgen import observe_state
from expo.envs.robomimic import ROBOMIMIC_OBS_KEYS, dataset_env_kwargs
from expo.protocol import get_task
from tests.test_dataset_errors import (  # noqa: F401  (world: the fixture)
    entry_of, problem_lines, run_train, set_expected, world, write_robomimic,
)

OBJECT_NAMES = {  # MimicGen's observable order (threading.py:452 over needle, tripod; robosuite 1.4.1 stack.py:462)
    "threading": ["needle_pos", "needle_quat", "needle_to_robot0_eef_pos", "needle_to_robot0_eef_quat",
                  "tripod_pos", "tripod_quat", "tripod_to_robot0_eef_pos", "tripod_to_robot0_eef_quat"],
    "stack": ["cubeA_pos", "cubeA_quat", "cubeB_pos", "cubeB_quat", "gripper_to_cubeA", "gripper_to_cubeB",
              "cubeA_to_cubeB"],
}
FREE_JOINTS = {"threading": ("needle_obj_joint0", "tripod_obj_joint0"), "stack": ("cubeA_joint0", "cubeB_joint0")}
# A robosuite 1.4.1 recording's env_args, as MimicGen's files store them (OSC_POSE part controller config).
V141_ENV_KWARGS = {
    "has_renderer": False, "has_offscreen_renderer": True, "ignore_done": True, "use_object_obs": True,
    "use_camera_obs": True, "control_freq": 20, "robots": ["Panda"], "reward_shaping": False,
    "camera_names": ["agentview", "robot0_eye_in_hand"], "camera_heights": 84, "camera_widths": 84,
    "controller_configs": {
        "type": "OSC_POSE", "input_max": 1, "input_min": -1, "output_max": [0.05, 0.05, 0.05, 0.5, 0.5, 0.5],
        "output_min": [-0.05, -0.05, -0.05, -0.5, -0.5, -0.5], "kp": 150, "damping": 1, "impedance_mode": "fixed",
        "kp_limits": [0, 300], "damping_limits": [0, 10], "position_limits": None, "orientation_limits": None,
        "uncouple_pos_ori": True, "control_delta": True, "interpolation": None, "ramp_ratio": 0.2,
    },
}


# ------------------------------------------------------------------ MimicGen's observation, from raw MuJoCo

def _xyzw_from_matrix(m: np.ndarray) -> np.ndarray:
    """Unit quaternion (x, y, z, w) of a rotation matrix, w >= 0 (the sign robosuite's mat2quat gives)."""
    w = np.sqrt(max(0.0, 1.0 + np.trace(m))) / 2
    x = np.copysign(np.sqrt(max(0.0, 1.0 + m[0, 0] - m[1, 1] - m[2, 2])) / 2, m[2, 1] - m[1, 2])
    y = np.copysign(np.sqrt(max(0.0, 1.0 - m[0, 0] + m[1, 1] - m[2, 2])) / 2, m[0, 2] - m[2, 0])
    z = np.copysign(np.sqrt(max(0.0, 1.0 - m[0, 0] - m[1, 1] + m[2, 2])) / 2, m[1, 0] - m[0, 1])
    q = np.array([x, y, z, w])
    return q / np.linalg.norm(q)


def _matrix_from_wxyz(q: np.ndarray) -> np.ndarray:
    m = np.zeros(9)
    mujoco.mju_quat2Mat(m, np.asarray(q, np.float64) / np.linalg.norm(q))
    return m.reshape(3, 3)


def mimicgen_observation(task: str, model, state: np.ndarray) -> dict:
    """What MimicGen stores for `state`, computed with MuJoCo alone: objects' poses from their free joints'
    qpos, the end effector from the grip site (position) and the hand body (orientation), fingers' qpos."""
    data = mujoco.MjData(model)
    state = np.asarray(state, np.float64)  # robosuite's flattened [time, qpos, qvel]
    data.time, data.qpos[:], data.qvel[:] = state[0], state[1:1 + model.nq], state[1 + model.nq:]
    mujoco.mj_forward(model, data)
    eef_pos = data.site("gripper0_right_grip_site").xpos.copy()
    hand_wxyz = data.body("robot0_right_hand").xquat.copy()
    eef_rot = _matrix_from_wxyz(hand_wxyz)
    fingers = [model.joint(f"gripper0_right_finger_joint{i}").qposadr[0] for i in (1, 2)]
    poses = []
    for joint in FREE_JOINTS[task]:
        adr = model.joint(joint).qposadr[0]
        pos, wxyz = data.qpos[adr:adr + 3].copy(), data.qpos[adr + 3:adr + 7].copy()
        poses.append((pos, wxyz))
    def world_xyzw(wxyz):  # MuJoCo's body quaternion as stored, sign included (robosuite's convert_quat)
        wxyz = wxyz / np.linalg.norm(wxyz)
        return np.r_[wxyz[1:], wxyz[0]]

    parts = []
    if task == "threading":  # world pose, then pose in the eef frame (threading.py:426-451)
        for pos, wxyz in poses:
            rel_rot = eef_rot.T @ _matrix_from_wxyz(wxyz)
            parts += [pos, world_xyzw(wxyz), eef_rot.T @ (pos - eef_pos), _xyzw_from_matrix(rel_rot)]
    else:  # robosuite 1.4.1 Stack (stack.py:419-462)
        (a, a_q), (b, b_q) = poses
        parts = [a, world_xyzw(a_q), b, world_xyzw(b_q), a - eef_pos, b - eef_pos, b - a]
    return {"object": np.concatenate(parts), "robot0_eef_pos": eef_pos,
            "robot0_eef_quat": np.r_[hand_wxyz[1:], hand_wxyz[0]], "robot0_gripper_qpos": data.qpos[fingers].copy()}


def recorded_states(task: str, n: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """`n` MuJoCo states [time, qpos, qvel] of seeded episodes with random actions (the fingers open and
    closed, the arm away from its start) and the actions taken."""
    env = make_env(get_task(task), seed=3)
    rng = np.random.default_rng(0)
    states, actions = [], []
    try:
        for episode in range(2):
            env.reset(seed=episode)
            for _ in range(n // 2):
                for _ in range(3):
                    action = rng.uniform(-1, 1, 7)
                    env.step(action)
                states.append(env.unwrapped.sim_state())
                actions.append(action)
    finally:
        env.close()
    return np.stack(states), np.stack(actions)


def write_mimicgen_file(path, task: str, states: np.ndarray, actions: np.ndarray, model) -> None:
    """A MimicGen-format file: one demo of `states`, its obs computed by mimicgen_observation."""
    obs = [mimicgen_observation(task, model, s) for s in states]
    env_args = {"env_name": get_task(task).env_name, "env_version": "1.4.1", "type": 1, "env_kwargs": V141_ENV_KWARGS}
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        demo = data.create_group("demo_0")
        demo.create_dataset("states", data=states)
        for key in ROBOMIMIC_OBS_KEYS:
            demo.create_dataset(f"obs/{key}", data=np.stack([o[key] for o in obs]))
        demo.create_dataset("actions", data=actions)
        demo.create_dataset("rewards", data=np.zeros(len(states)))
        demo.create_dataset("dones", data=np.zeros(len(states), dtype=np.int64))
        demo.attrs["num_samples"] = len(states)
        data.attrs["total"] = len(states)
        data.attrs["env_args"] = json.dumps(env_args)


@pytest.mark.parametrize("task", ["threading", "stack"])
def test_the_env_reproduces_a_mimicgen_file_from_its_states(task, tmp_path):
    spec = get_task(task)
    states, actions = recorded_states(task)
    probe = make_env(spec, seed=0)
    model = probe.unwrapped.raw.sim.model._model
    path = tmp_path / f"{task}_d0.hdf5"
    write_mimicgen_file(path, task, states, actions, model)
    probe.close()

    # the suite's loader reads the file, and the env is built from its (robosuite 1.4.1) env_args
    with pytest.warns(UserWarning, match="using obs shifted by one step"):  # MimicGen stores no next_obs
        loaded = load_robomimic_hdf5(path, ROBOMIMIC_OBS_KEYS, spec=spec)
    assert loaded["observations"].shape == (len(states), spec.obs_dim)
    env = make_env(spec, seed=7, env_kwargs=dataset_env_kwargs(str(path), spec))
    try:
        env.reset(seed=1)
        with h5py.File(path, "r") as f:
            demo = f["data/demo_0"]
            for t, state in enumerate(demo["states"][:]):
                got = observe_state(env, state)
                assert list(got) == list(ROBOMIMIC_OBS_KEYS)
                for key in ROBOMIMIC_OBS_KEYS:
                    # robosuite's mat2quat works in float32: relative quaternions agree to ~1e-7
                    np.testing.assert_allclose(got[key], demo[f"obs/{key}"][t], atol=2e-6, err_msg=f"{key} t={t}")
        flat = np.concatenate([got[k] for k in ROBOMIMIC_OBS_KEYS])
        np.testing.assert_allclose(loaded["observations"][-1], flat, atol=2e-6)
    finally:
        env.close()


def test_a_state_of_the_wrong_width_is_refused():
    env = make_env(get_task("stack"), seed=0)
    try:
        with pytest.raises(ValueError, match="a state has 44 numbers, the env's MuJoCo state .* has 45"):
            observe_state(env, np.zeros(44))
    finally:
        env.close()


# ----------------------------------------------------------------------------------------------- layout

@pytest.mark.parametrize("task,dims", [("threading", (28, 3, 4, 2)), ("stack", (23, 3, 4, 2))])
def test_observation_layout_is_mimicgens(task, dims):
    spec = get_task(task)
    env = make_env(spec, seed=0)
    try:
        obs, _ = env.reset(seed=0)
        core = env.unwrapped
        assert obs.shape == (spec.obs_dim,) == (sum(dims),) and obs.dtype == np.float32
        assert [(k, v.size) for k, v in core.last_obs_dict.items()] == list(zip(ROBOMIMIC_OBS_KEYS, dims))
        observables = core.raw._observables
        active_objects = [n for n, o in observables.items() if o.modality == "object" and o.is_active()]
        assert active_objects == OBJECT_NAMES[task]
        # the flat observation is those observables, then the robot's keys, in this order
        parts = [observables[n].obs for n in OBJECT_NAMES[task]]
        parts += [observables[k].obs for k in ROBOMIMIC_OBS_KEYS[1:]]
        np.testing.assert_allclose(obs, np.concatenate(parts).astype(np.float32))
        # the MuJoCo state MimicGen stores: 7 arm + 2 finger joints, then the two objects' free joints
        assert core.sim_state().shape == (1 + 23 + 21,)
    finally:
        env.close()


# ---------------------------------------------------------------------------------------------- success

def _set_free_joint(raw, joint: str, pos, wxyz=(1.0, 0.0, 0.0, 0.0)):
    raw.sim.data.set_joint_qpos(joint, np.r_[pos, wxyz])
    raw.sim.data.set_joint_qvel(joint, np.zeros(6))


def test_threading_success_is_the_bar_centre_in_the_ring():
    env = make_env(get_task("threading"), seed=0)
    try:
        env.reset(seed=0)
        core, raw = env.unwrapped, env.unwrapped.raw
        tripod = raw.sim.data.body_xpos[raw.obj_body_id["tripod"]].copy()
        ring = tripod + np.array([0.0, 0.0, 0.088])  # the tripod is upright: its ring centre (objects.py)
        # Needle yaw 0: its bar (centre at (0, -0.02, 0) of the needle frame) along world y, through the ring.
        for shift, solved in (((0, 0, 0), True), ((0, 0.011, 0), True), ((0, -0.011, 0), True),
                              ((0, 0.02, 0), False), ((0.015, 0, 0), False), ((0, 0, 0.015), False)):
            _set_free_joint(raw, "needle_obj_joint0", ring - np.array([0.0, -0.02, 0.0]) + np.array(shift))
            raw.sim.forward()
            assert core.success() is solved, shift
        # Centred, the 1 cm bar passes through the 1.6 cm opening without touching the ring.
        _set_free_joint(raw, "needle_obj_joint0", ring + np.array([0.0, 0.02, 0.0]))
        raw.sim.forward()
        ring_geoms = {raw.sim.model.geom_name2id(f"tripod_obj_ring_{i}") for i in range(20)}
        bar = raw.sim.model.geom_name2id("needle_obj_needle")
        touching = {(c.geom1, c.geom2) for c in raw.sim.data.contact[:raw.sim.data.ncon]}
        assert not any({g1, g2} & ring_geoms and bar in (g1, g2) for g1, g2 in touching)
    finally:
        env.close()


def test_stack_success_is_a_released_cube_a_resting_on_cube_b():
    env = make_env(get_task("stack"), seed=0)
    try:
        env.reset(seed=2)
        core, raw = env.unwrapped, env.unwrapped.raw
        b = raw.sim.data.body_xpos[raw.cubeB_body_id].copy()
        far = np.array([0.0, 0.0, 0.1]) + (np.array([0.2, 0.0, 0.0]) if b[0] < 0.05 else -np.array([0.2, 0.0, 0.0]))
        cases = [
            (b + np.array([0.0, 0.0, 0.045 - 1e-4]), True),          # resting on B (4.5 cm up), just in contact
            (b + np.array([0.0, 0.0, 0.06]), False),                 # above B, not touching
            (np.r_[b[:2] + np.array([0.0451, 0.0]), 0.82], False),   # beside B on the table: touching, not lifted
            (b + far, False),                                        # lifted, nowhere near B
        ]
        for pos, solved in cases:
            _set_free_joint(raw, "cubeA_joint0", pos)
            raw.sim.forward()
            assert core.success() is solved, pos
    finally:
        env.close()


# -------------------------------------------------------------------------------------------- placement

def _yaw_of_xyzw(q):
    x, y, z, w = q
    return float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))


def test_d0_placement_ranges_and_rotations():
    thr, stk = make_env(get_task("threading"), seed=1), make_env(get_task("stack"), seed=1)
    try:
        needle_yaws, cube_yaws = [], []
        for seed in range(12):
            obs, _ = thr.reset(seed=seed)
            needle, tripod = obs[0:3], obs[14:17]
            assert -0.2 <= needle[0] <= -0.05 and 0.15 <= needle[1] <= 0.25 and needle[2] == pytest.approx(0.82)
            needle_yaws.append(_yaw_of_xyzw(obs[3:7]))
            np.testing.assert_allclose(tripod, [0.0, -0.15, 0.901], atol=1e-6)
            assert _yaw_of_xyzw(obs[17:21]) == pytest.approx(np.pi / 2, abs=1e-5)
            obs, _ = stk.reset(seed=seed)
            for cube, half in ((obs[0:3], 0.02), (obs[7:10], 0.025)):
                assert np.all(np.abs(cube[:2]) <= 0.08) and cube[2] == pytest.approx(0.8 + 0.01 + half)
            cube_yaws += [_yaw_of_xyzw(obs[3:7]), _yaw_of_xyzw(obs[10:14])]
        assert all(-2 * np.pi / 3 - 1e-6 <= y <= -np.pi / 3 + 1e-6 for y in needle_yaws)
        assert np.ptp(needle_yaws) > 0.3  # drawn, not fixed
        assert np.ptp(cube_yaws) > np.pi  # anywhere in (0, 2 pi)
    finally:
        thr.close()
        stk.close()


# -------------------------------------------------------------------------------------------- bad input

def test_a_stack_file_at_the_threading_path_is_one_line(world, capsys, monkeypatch):  # noqa: F811
    from expo.data.__main__ import main as data_main

    set_expected(monkeypatch, "mimicgen_threading", file_demos=(10, 40))  # the small fixture's own counts
    source, core = entry_of("mimicgen_threading").paths()
    write_robomimic(source, demos=10, env_name="Threading")
    stack_args = json.dumps({"env_name": "Stack_D0", "env_version": "1.4.1", "type": 1, "env_kwargs": V141_ENV_KWARGS})
    write_robomimic(core, demos=40, env_name="Threading_D0", rewards=False, next_obs=False, env_args=stack_args)
    assert data_main(["verify", "mimicgen_threading", "--no-hash"]) == 1
    (line,) = problem_lines(capsys.readouterr().out, "mimicgen_threading")
    assert "recorded in 'Stack_D0', task 'threading' runs in 'Threading_D0'" in line
    message = run_train(world, "task=threading", "dataset.name=mimicgen_threading")
    assert "recorded in 'Stack_D0'" in message and "fetch mimicgen_threading --force" in message


def test_a_file_of_the_wrong_observation_width_is_one_line(world):  # noqa: F811
    source, core = entry_of("mimicgen_stack").paths()
    write_robomimic(source, demos=10, env_name="Threading")  # 28-dim objects: Threading's, not Stack's 23
    write_robomimic(core, demos=190, env_name="Threading", rewards=False, next_obs=False,
                    env_args=json.dumps({"env_name": "Stack_D0", "env_version": "1.4.1", "type": 1,
                                         "env_kwargs": V141_ENV_KWARGS}))
    message = run_train(world, "task=stack", "dataset.name=mimicgen_stack")
    assert "obs dim 37" in message and "32" in message


# ------------------------------------------------------------------------------------ scripted experts

def test_experts_command_writes_the_threading_experts_success_rates(tmp_path, capsys):
    """`python -m expo.data experts threading`: noise-free and at the data's noise, one CSV row each."""
    import csv

    from expo.data.__main__ import main as data_main
    from expo.data.registry import DATASETS

    assert data_main(["experts", "threading", "--episodes", "1", "--seed", "3", "--out-dir", str(tmp_path)]) == 0
    with open(tmp_path / "threading.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["noise"]) for r in rows] == [0.0, DATASETS["threading_scripted"].noise]
    noise_free = rows[0]
    assert (noise_free["task"], noise_free["episodes"], noise_free["successes"], noise_free["seed"]) == (
        "threading", "1", "1", "3")  # the noise-free expert threads the needle
    assert 60 < float(noise_free["mean_length_of_successes"]) < 400
    assert f"wrote {tmp_path / 'threading.csv'}" in capsys.readouterr().out
