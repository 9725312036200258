"""`python -m expo.data verify <dataset> --dynamics` (expo/data/dynamics.py): data recorded in the suite's own
envs agree to float tolerance in every observation group; data whose stored next observations were shifted
by a known amount report exactly that amount in the shifted group only; the AWAC format (no states) reports
its label agreement rate; bad input is one line and a non-zero exit."""
import json
import shutil

import h5py
import numpy as np
import pytest

from expo.data import __main__ as cli
from expo.data import registry
from expo.data.dynamics import adroit_goal, check_dynamics, dynamics_path
from expo.data.paths import data_root
from expo.data.registry import ExternalDataset, RemoteFile
from expo.envs.robomimic import ROBOMIMIC_OBS_KEYS

FLOAT_TOL = 1e-5  # float64 states, float32 (D4RL) observations: rounding is ~1e-6 at most
DELTA = 0.0123


def run_cli(*argv):
    return cli.main(["verify", *argv])


def report_of(key):
    return json.loads(dynamics_path(key).read_text())


def assert_agrees(report):
    assert report["groups"], report
    for g in report["groups"]:
        # median and 95th percentile at float rounding. On the 4-demo test data one transition in contact (the
        # cube held) still differs in the cube's orientation by 2.3e-4 (its position by 3e-6); not yet explained,
        # so it is bounded here rather than hidden: at most 1% of transitions, never more than 1e-3.
        assert g["median"] < FLOAT_TOL and g["p95"] < FLOAT_TOL and g["within"] >= 0.99 and g["max"] < 1e-3, str(g)


# ------------------------------------------------------------------------------ robomimic (embedded)

def test_embedded_lift_agrees(tiny_world, capsys):
    assert run_cli("lift_scripted", "--dynamics", "--transitions", "120") == 0
    out = capsys.readouterr().out
    r = report_of("lift_scripted")
    assert r["state"] == "exact" and r["transitions"] == 120 and not r["unmapped"]
    assert [g["name"] for g in r["groups"]] == ["cube_pos", "cube_quat", "gripper_to_cube_pos", "robot0_eef_pos",
                                                 "robot0_eef_quat", "robot0_gripper_qpos"]
    assert_agrees(r)
    assert r["reward_agree"] == 1.0 and r["reward_compared"] == 120
    assert "robot0_eef_pos" in out and str(dynamics_path("lift_scripted")) in out


def _copy_as(monkeypatch, src, key):
    """Register a copy of the file `src` as an external robomimic dataset `key` under the data root."""
    rel = f"test/{key}.hdf5"
    dst = data_root() / rel
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, dst)
    monkeypatch.setitem(registry.DATASETS, key, ExternalDataset(
        key=key, format="robomimic_hdf5", files=(RemoteFile(rel, ""),), description="test",
        obs_keys=ROBOMIMIC_OBS_KEYS))
    return dst


def test_perturbed_lift_reports_the_perturbation(tiny_world, monkeypatch):
    path = _copy_as(monkeypatch, registry.DATASETS["lift_scripted"].path(), "lift_perturbed")
    with h5py.File(path, "a") as f:
        for name in f["data"]:
            f["data"][name]["next_obs/robot0_eef_pos"][...] += DELTA
    r = check_dynamics("lift_perturbed", transitions=120).to_json()
    groups = {g["name"]: g for g in r["groups"]}
    eef = groups.pop("robot0_eef_pos")
    assert abs(eef["median"] - DELTA) < FLOAT_TOL and abs(eef["p95"] - DELTA) < FLOAT_TOL and eef["within"] == 0.0
    for g in groups.values():  # the other groups are untouched
        assert g["median"] < FLOAT_TOL and g["p95"] < FLOAT_TOL, g


def test_a_file_in_mimicgen_generated_layout_is_checked_without_next_obs_or_rewards(tiny_world, monkeypatch):
    """MimicGen's generated files store neither next_obs nor rewards: the next observation is the stored obs of
    the following step (a demo's last step has none and is skipped), and rewards are not compared, with a note."""
    path = _copy_as(monkeypatch, registry.DATASETS["lift_scripted"].path(), "lift_mimicgen_layout")
    with h5py.File(path, "a") as f:
        for name in f["data"]:
            del f["data"][name]["next_obs"], f["data"][name]["rewards"]
    r = check_dynamics("lift_mimicgen_layout", transitions=120).to_json()
    assert 0 < r["transitions"] <= 120 and r["reward_compared"] == 0
    assert any("without rewards" in note for note in r["notes"]), r["notes"]
    assert_agrees(r)


def test_missing_states_and_wrong_width_are_one_line(tiny_world, monkeypatch, capsys):
    src = registry.DATASETS["lift_scripted"].path()
    path = _copy_as(monkeypatch, src, "lift_no_states")
    with h5py.File(path, "a") as f:
        del f["data/demo_1/states"]
    assert run_cli("lift_no_states", "--dynamics", "--transitions", "5") == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert "data/demo_1 has no 'states'" in err and str(path) in err

    path = _copy_as(monkeypatch, src, "lift_short_states")
    with h5py.File(path, "a") as f:
        for name in f["data"]:
            states = f["data"][name]["states"][()]
            del f["data"][name]["states"]
            f["data"][name]["states"] = states[:, :-3]
    assert run_cli("lift_short_states", "--dynamics", "--transitions", "5") == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "states has width 29" in err and "has 32" in err


def test_xml_joint_layout_maps_robosuite_141_names():
    from expo.data.dynamics import _joint_key, _layout, xml_joint_layout

    xml = """<mujoco><default><joint type="slide"/><default class="h"><joint type="hinge"/></default></default>
    <worldbody><body name="a" childclass="h"><body name="b"><joint name="robot0_joint1"/></body>
    <joint name="robot0_joint0"/></body><body name="g"><joint name="gripper0_finger_joint1"/></body>
    <body name="c"><freejoint name="cube_joint0"/></body></worldbody></mujoco>"""
    joints = xml_joint_layout(xml)
    # a body's own joints come before its children's, whatever their order in the file
    assert joints == [("robot0_joint0", "hinge"), ("robot0_joint1", "hinge"), ("gripper0_finger_joint1", "slide"),
                      ("cube_joint0", "free")]
    assert _joint_key("gripper0_right_finger_joint1") == _joint_key("gripper0_finger_joint1")
    assert _layout(joints)["cube_joint0"] == ("free", 3, 3)


# ------------------------------------------------------------------------------------- D4RL AntMaze

D4RL_KEY = "d4rl_antmaze_medium_play_v2"


def write_d4rl_recorded(path, episodes=(40, 35), perturb=None):
    """D4RL's antmaze layout, recorded in the suite's own env (D4RL physics): infos/qpos, infos/qvel in the
    D4RL frame, float32 observations; the time-out row ends each episode."""
    from expo.envs.antmaze import SUCCESS_RADIUS, D4RLAntMaze, env_xy_to_d4rl

    env = D4RLAntMaze("medium", seed=0)
    rng = np.random.default_rng(0)
    rows = {k: [] for k in ("observations", "actions", "rewards", "terminals", "timeouts", "infos/goal",
                            "infos/qpos", "infos/qvel")}
    for e, n in enumerate(episodes):
        obs, _ = env.reset(seed=e)
        for t in range(n):
            data = env.ant.data
            qpos = np.array(data.qpos)
            qpos[:2] = env_xy_to_d4rl(qpos[:2], "medium")
            action = rng.uniform(-1, 1, 8)
            rows["observations"].append(obs)
            rows["infos/qpos"].append(qpos)
            rows["infos/qvel"].append(np.array(data.qvel))
            rows["infos/goal"].append(env.goal.copy())
            rows["actions"].append(action.astype(np.float32))
            obs, _, _, _, _ = env.step(action)
            rows["rewards"].append(float(np.linalg.norm(obs[:2] - env.goal) <= SUCCESS_RADIUS))
            rows["terminals"].append(False)
            rows["timeouts"].append(t == n - 1)
    arrays = {k: np.asarray(v) for k, v in rows.items()}
    arrays["observations"] = arrays["observations"].astype(np.float32)
    if perturb is not None:
        arrays["observations"][:, perturb] += DELTA
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            f.create_dataset(k, data=v)


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPO_DATA_ROOT", str(tmp_path / "data"))
    return tmp_path / "data"


def test_d4rl_recorded_in_the_suite_env_agrees(root):
    write_d4rl_recorded(registry.DATASETS[D4RL_KEY].path())
    assert run_cli(D4RL_KEY, "--dynamics", "--transitions", "50") == 0
    r = report_of(D4RL_KEY)
    assert r["transitions"] == 50 and [g["name"] for g in r["groups"]][:2] == ["torso xy", "torso z"]
    for g in r["groups"]:
        assert g["max"] < FLOAT_TOL and g["within"] == 1.0, g
    assert r["reward_agree"] == 1.0


def test_d4rl_perturbed_joint_velocities(root):
    write_d4rl_recorded(registry.DATASETS[D4RL_KEY].path(), perturb=slice(21, 29))
    r = check_dynamics(D4RL_KEY, transitions=50).to_json()
    groups = {g["name"]: g for g in r["groups"]}
    vel = groups.pop("joint velocities")
    assert abs(vel["median"] - DELTA) < FLOAT_TOL and abs(vel["max"] - DELTA) < FLOAT_TOL and vel["within"] == 0.0
    assert all(g["max"] < FLOAT_TOL for g in groups.values()), groups


def test_d4rl_without_qpos_is_one_line(root, capsys):
    path = registry.DATASETS[D4RL_KEY].path()
    write_d4rl_recorded(path, episodes=(5,))
    with h5py.File(path, "a") as f:
        del f["infos/qpos"]
    assert run_cli(D4RL_KEY, "--dynamics") == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no 'infos/qpos'" in err


# --------------------------------------------------------------------------------------- AWAC Adroit

def test_awac_reports_no_state_and_the_label_agreement(root, capsys):
    from tests.test_dataset_errors import awac_bc, awac_expert, save_npy

    entry = registry.DATASETS["awac_pen_binary"]
    # expert trajectories: the pen reaches the goal in the next observation of every step, labels say
    # success (0) on the first 2 of 4 steps, so 2 of 4 labels agree; BC: never at the goal, labels -1: agree
    expert = []
    for i in range(10):
        t = awac_expert(i)
        for o in t["next_observations"]:
            v = o["state_observation"]
            v[33:36] = v[36:39] = (0.0, 0.0, 1.0)
            v[39:42] = 0.0
        t["rewards"] = np.r_[0.0, 0.0, -1.0, -1.0, 0.0]
        expert.append(t)
    bc = []
    for i in range(10):
        t = awac_bc(i)
        t["next_observations"][:, 39:42] = 1.0  # far from the goal
        bc.append(t)
    save_npy(entry.paths()[0], expert)
    save_npy(entry.paths()[1], bc)
    assert run_cli("awac_pen_binary", "--dynamics", "--transitions", "1000") == 0
    out = capsys.readouterr().out
    r = report_of("awac_pen_binary")
    assert r["state"] == "none" and r["groups"] == []
    # 9 expert trajectories used (90%), half of their 36 steps disagree; 36 BC steps agree
    assert r["reward_compared"] == 72 and r["reward_agree"] == pytest.approx(54 / 72)
    assert "store no simulator state" in out


def test_adroit_goal_matches_the_env():
    """adroit_goal reads the goal test from observations exactly as expo/envs/adroit.py evaluates it."""
    from expo.envs import make_env
    from expo.envs.adroit import goal_achieved
    from expo.protocol import TASKS

    for task, hand in (("door-binary-v0", "door"), ("relocate-binary-v0", "relocate"), ("pen-binary-v0", "pen")):
        env = make_env(TASKS[task], seed=0)
        obs, _ = env.reset(seed=0)
        raw = env.unwrapped
        assert adroit_goal(hand, obs[None].astype(np.float64))[0] == goal_achieved(raw)
        if hand == "door":  # open the door: the hinge is read from the observation
            raw.data.qpos[raw.door_hinge_addrs] = 1.4
        elif hand == "relocate":
            raw.data.qpos[-6:-3] += raw.data.site_xpos[raw.target_obj_site_id] - raw.data.xpos[raw.obj_body_id]
        else:
            continue
        import mujoco
        mujoco.mj_forward(raw.model, raw.data)
        obs = raw._get_obs()
        assert goal_achieved(raw) and adroit_goal(hand, obs[None])[0]
        env.close()


# --------------------------------------------------------------------------------------------- Minari

def test_minari_recorded_in_gymnasium_antmaze_agrees(root, tmp_path, monkeypatch):
    """A Minari AntMaze dataset recorded in gymnasium-robotics' AntMaze (Minari's own env) under the
    registry's id: the state set from each stored observation and stepped with the stored action gives the
    stored next observation in every group."""
    pytest.importorskip("minari")
    from tests.test_dataset_errors import MINARI_ID, MINARI_KEY, _record

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    _record("AntMaze_Medium-v4", MINARI_ID, steps=(20, 15))
    r = check_dynamics(MINARI_KEY, transitions=30).to_json()
    assert r["transitions"] == 30 and r["state"] == "from observation"
    for g in r["groups"]:
        assert g["max"] < FLOAT_TOL and g["within"] == 1.0, g
