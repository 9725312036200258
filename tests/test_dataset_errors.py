"""Bad dataset inputs, per format: one line naming the file, the problem and the fix; a non-zero exit;
no traceback; nothing written. For `python -m expo.data verify <key>` in every case, and for
`python -m expo.train` in a representative case per format (in-process through main(), plus one real
subprocess for the exit code and stderr).

Each format has a writer of a small dataset in its real layout (D4RL hdf5, AWAC .npy pickles,
robomimic v0.1 low_dim hdf5, MimicGen source + generated hdf5, a Minari dataset recorded with
minari's DataCollector), stored where the registry's real entry looks for it under a temporary
EXPO_DATA_ROOT / MINARI_DATASETS_PATH, and a table of damages applied to it afterwards. The good
files themselves verify ok (with the registry's expected facts set to the small files' true
values), so every failure below is caused by the damage and not by the fixture.
"""
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from expo.data import __main__ as data_cli
from expo.data import registry, verify
from expo.protocol import TASKS, paper_dataset

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------- environment


@pytest.fixture
def world(tmp_path, monkeypatch):
    """A fresh data root, Minari store and results folder, and the compilation cache at its default
    place under the data root (so a stray cache folder would show up there)."""
    import jax

    w = dataclasses.make_dataclass("World", ["data", "minari", "results"])(
        tmp_path / "data", tmp_path / "minari", tmp_path / "results")
    w.data.mkdir()
    w.minari.mkdir()
    monkeypatch.setenv("EXPO_DATA_ROOT", str(w.data))
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(w.minari))
    monkeypatch.delenv("EXPO_COMPILATION_CACHE", raising=False)
    previous = jax.config.jax_compilation_cache_dir
    yield w
    jax.config.update("jax_compilation_cache_dir", previous)  # train() in-process points jax here


def snapshot(*folders):
    """Every path under the folders with its size and mtime (folders too: an empty new one counts)."""
    out = {}
    for folder in folders:
        for p in sorted(Path(folder).rglob("*")):
            st = p.stat()
            out[str(p)] = (p.is_dir(), st.st_size if p.is_file() else None, st.st_mtime_ns)
    return out


def entry_of(key):
    return registry.DATASETS[key]


def set_expected(monkeypatch, key, **facts):
    """The registry entry with some expected facts replaced by the small fixture's true values (the
    keys stay the registry's own, so each one must still be measurable by verify)."""
    e = entry_of(key)
    unknown = set(facts) - set(e.expected)
    assert not unknown, f"{key} records no {unknown}"
    monkeypatch.setitem(registry.DATASETS, key, dataclasses.replace(e, expected={**e.expected, **facts}))


# ------------------------------------------------------------------------------------- writers


def truncate(path):
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: len(data) // 2])


def empty(path):
    Path(path).write_bytes(b"")


D4RL_KEY, D4RL_TASK = "d4rl_antmaze_medium_play_v2", "antmaze-medium-play-v2"
D4RL_ROWS = 12  # 3 episodes of 4 steps, a time-out on each episode's last row: 9 transitions


def write_d4rl(path, obs_dim=29, act_dim=8, drop=(), **overrides):
    """D4RL's antmaze layout (offline_env.get_dataset): top-level arrays, infos/*, time-outs."""
    n = D4RL_ROWS
    rng = np.random.default_rng(0)
    arrays = {
        "observations": rng.normal(size=(n, obs_dim)).astype(np.float32),
        "actions": rng.uniform(-1, 1, (n, act_dim)).astype(np.float32),
        "rewards": np.zeros(n, np.float32),
        "terminals": np.zeros(n, bool),
        "timeouts": np.arange(n) % 4 == 3,
        "infos/goal": np.zeros((n, 2), np.float32),
        "infos/qpos": np.zeros((n, 15), np.float32),
        "infos/qvel": np.zeros((n, 14), np.float32),
    }
    arrays.update(overrides)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            if key not in drop:
                f.create_dataset(key, data=value)


AWAC_KEY, AWAC_TASK = "awac_pen_binary", "pen-binary-v0"
AWAC_EXPERT, AWAC_BC, AWAC_LEN = 10, 10, 4  # trajectories per file (the first 9 of each are used), steps


def awac_expert(i, n=AWAC_LEN, obs_dim=45, act_dim=24):
    """The expert file's layout: one observation dict per step, T + 1 rewards."""
    states = np.full((n + 1, obs_dim), float(i)) + np.arange(n + 1)[:, None]
    dicts = lambda rows: [{"observation": r.copy(), "state_observation": r.copy()} for r in rows]  # noqa: E731
    return {"observations": dicts(states[:-1]), "next_observations": dicts(states[1:]),
            "actions": list(np.zeros((n, act_dim))), "rewards": np.r_[-np.ones(n), 0.0],
            "terminals": np.zeros(n), "agent_infos": [{}] * n, "env_infos": [{}] * n}


def awac_bc(i, n=AWAC_LEN, obs_dim=45, act_dim=24):
    """The BC file's layout: [T, D] arrays, [T, 1] reward / terminal columns."""
    states = np.full((n + 1, obs_dim), 100.0 + i)
    return {"observations": states[:-1], "next_observations": states[1:], "actions": np.zeros((n, act_dim)),
            "rewards": -np.ones((n, 1)), "terminals": np.eye(n)[-1][:, None].astype(bool),
            "agent_infos": [{}] * n, "env_infos": [{}] * n}


def save_npy(path, trajectories):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    arr = np.empty(len(trajectories), dtype=object)
    arr[:] = trajectories
    np.save(path, arr, allow_pickle=True)


def write_awac(expert=None, bc=None, **widths):
    e = entry_of(AWAC_KEY)
    save_npy(e.paths()[0], expert or [awac_expert(i, **widths) for i in range(AWAC_EXPERT)])
    save_npy(e.paths()[1], bc or [awac_bc(i, **widths) for i in range(AWAC_BC)])
    return e.paths()


ROBO_KEY, ROBO_TASK = "robomimic_can_mh", "can"
# robomimic v141's env metadata for Can (robosuite 1.4.1 part controller config, as in the public files)
V141_CAN_ENV_ARGS = {
    "env_name": "PickPlaceCan", "env_version": "1.4.1", "type": 1,
    "env_kwargs": {
        "has_renderer": False, "has_offscreen_renderer": False, "ignore_done": True, "use_object_obs": True,
        "use_camera_obs": False, "control_freq": 20, "robots": ["Panda"], "reward_shaping": False,
        "controller_configs": {
            "type": "OSC_POSE", "input_max": 1, "input_min": -1, "output_max": [0.05, 0.05, 0.05, 0.5, 0.5, 0.5],
            "output_min": [-0.05, -0.05, -0.05, -0.5, -0.5, -0.5], "kp": 150, "damping": 1,
            "impedance_mode": "fixed", "kp_limits": [0, 300], "damping_limits": [0, 10], "position_limits": None,
            "orientation_limits": None, "uncouple_pos_ori": True, "control_delta": True, "interpolation": None,
            "ramp_ratio": 0.2,
        },
    },
}
OBJECT_WIDTH = {"PickPlaceCan": 14, "NutAssemblySquare": 14, "Lift": 10, "Threading_D0": 28, "Threading": 28}


def write_robomimic(path, demos=3, steps=4, env_name="PickPlaceCan", env_args=None, rewards=True,
                    next_obs=True, act_dim=7):
    """robomimic v0.1 low_dim layout: data/demo_<k>/{obs,next_obs}/<key>, actions, rewards, dones, states,
    data.attrs total / env_args. rewards=False, next_obs=False: MimicGen's generated-file layout."""
    widths = {"object": OBJECT_WIDTH[env_name], "robot0_eef_pos": 3, "robot0_eef_quat": 4, "robot0_gripper_qpos": 2}
    if env_args is None:
        env_args = json.dumps({**V141_CAN_ENV_ARGS, "env_name": env_name})
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        for k in range(demos):
            g = data.create_group(f"demo_{k}")
            for key, w in widths.items():
                states = np.full((steps + 1, w), float(k)) + np.arange(steps + 1)[:, None]
                g.create_dataset(f"obs/{key}", data=states[:-1])
                if next_obs:
                    g.create_dataset(f"next_obs/{key}", data=states[1:])
            g.create_dataset("actions", data=np.zeros((steps, act_dim)))
            if rewards:
                g.create_dataset("rewards", data=np.eye(steps)[-1])
                g.create_dataset("dones", data=np.eye(steps, dtype=np.int64)[-1])
            g.create_dataset("states", data=np.zeros((steps, 32)))
            g.attrs["num_samples"] = steps
        data.attrs["total"] = demos * steps
        data.attrs["env_args"] = env_args


def rewrite(path, name, value):
    with h5py.File(path, "a") as f:
        del f[name]
        f[name] = value


MG_KEY, MG_TASK = "mimicgen_threading", "threading"
MG_SOURCE, MG_CORE = 10, 40  # registry compose: the 10 human source demos + 40 of the generated ones


def write_mimicgen(core_demos=MG_CORE):
    source, core = entry_of(MG_KEY).paths()
    write_robomimic(source, demos=MG_SOURCE, env_name="Threading")
    write_robomimic(core, demos=core_demos, env_name="Threading_D0", rewards=False, next_obs=False)
    return source, core


MINARI_KEY = "minari_antmaze_medium_play"
MINARI_ID = "D4RL/antmaze/medium-play-v1"  # the registry's id: recorded under it in a private store


def _record(env_id, dataset_id, steps=(6, 5)):
    import gymnasium as gym
    import gymnasium_robotics  # noqa: F401  registers AntMaze_*
    import minari

    env = minari.DataCollector(gym.make(env_id, continuing_task=True, reset_target=False))
    rng = np.random.default_rng(0)
    for e, n in enumerate(steps):
        env.reset(seed=e)
        for _ in range(n):
            env.step(rng.uniform(-1, 1, 8).astype(np.float32))
    env.create_dataset(dataset_id=dataset_id, algorithm_name="random", author="test", author_email="t@t",
                       code_permalink="none", description="expo test data", eval_env=env_id)
    env.close()


@pytest.fixture(scope="module")
def minari_recordings(tmp_path_factory):
    """Recorded once: the medium maze under the registry's id, and a large-maze dataset (another env)."""
    pytest.importorskip("minari")
    store = tmp_path_factory.mktemp("minari_recorded")
    mp = pytest.MonkeyPatch()
    mp.setenv("MINARI_DATASETS_PATH", str(store))
    try:
        _record("AntMaze_Medium-v4", MINARI_ID)
        _record("AntMaze_Large-v4", "expotest/antmaze/large-v0")
    finally:
        mp.undo()
    return store


def minari_data(world):
    return world.minari / MINARI_ID / "data"


# ------------------------------------------------------------------------------------- damages
# Each case: (id, format, setup(world), expected words of the problem line, verify status). setup
# writes the good dataset and damages it. "present" is True when the data are on disk (the fix
# must then replace them: `--force`), False when they are missing (plain fetch / download).


def d4rl_path():
    return entry_of(D4RL_KEY).path()


def d4rl_case(damage):
    def setup(world):
        write_d4rl(d4rl_path())
        damage(d4rl_path())
    return setup


def d4rl_other_dataset(world):
    write_robomimic(d4rl_path())  # a robomimic file saved under the D4RL name


def awac_case(damage):
    def setup(world):
        write_awac()
        damage(*entry_of(AWAC_KEY).paths())
    return setup


def awac_drop_key(expert, bc):
    trajs = [awac_expert(i) for i in range(AWAC_EXPERT)]
    del trajs[2]["rewards"]
    save_npy(expert, trajs)


def awac_ragged(expert, bc):
    trajs = [awac_bc(i) for i in range(AWAC_BC)]
    trajs[1]["actions"] = trajs[1]["actions"][:-1]
    save_npy(bc, trajs)


def awac_nan(expert, bc):
    trajs = [awac_bc(i) for i in range(AWAC_BC)]
    trajs[0]["observations"][2, 5] = np.nan
    save_npy(bc, trajs)


def awac_door_files(world):
    write_awac(obs_dim=39, act_dim=28)  # door's widths, at pen's paths


def awac_swapped(expert, bc):
    shutil.copy(bc, expert)  # the BC file under the expert file's name


def awac_d4rl_file(expert, bc):
    write_d4rl(expert)


def robo_path():
    return entry_of(ROBO_KEY).path()


def robo_case(damage, **kwargs):
    def setup(world):
        write_robomimic(robo_path(), **kwargs)
        damage(robo_path())
    return setup


def nothing(*_):
    pass


def robo_drop_obs_key(path):
    with h5py.File(path, "a") as f:
        del f["data/demo_1/obs/robot0_eef_quat"]


def robo_nan(path):
    with h5py.File(path, "a") as f:
        f["data/demo_2/obs/object"][1, 3] = np.nan


def robo_other_dataset(world):
    write_d4rl(robo_path())


def mg_case(damage, **kwargs):
    def setup(world):
        source, core = write_mimicgen(**kwargs)
        damage(source, core)
    return setup


def mg_core_drop_obs_key(source, core):
    with h5py.File(core, "a") as f:
        for k in range(MG_CORE):  # every demo: whichever 40 the seeded draw picks, one lacks it
            del f[f"data/demo_{k}/obs/object"]


def mg_core_nan(source, core):
    with h5py.File(core, "a") as f:
        f["data/demo_7/actions"][0, 0] = np.nan


def mg_core_other_env(source, core):
    write_robomimic(core, demos=MG_CORE, env_name="Threading_D0", rewards=False, next_obs=False,
                    env_args=json.dumps({**V141_CAN_ENV_ARGS, "env_name": "Threading_D1"}))


def mg_can_file_as_core(source, core):
    write_robomimic(core, demos=MG_CORE)  # a robomimic Can file (23-dim observations) at the core path


def minari_case(damage):
    def setup(world):
        shutil.copytree(world.recorded, world.minari, dirs_exist_ok=True)
        damage(world)
    return setup


def minari_h5(world):
    return minari_data(world) / "main_data.hdf5"


def minari_missing(world):
    shutil.rmtree(world.minari / MINARI_ID)


def minari_drop_actions(world):
    with h5py.File(minari_h5(world), "a") as f:
        del f["episode_0/actions"]


def minari_narrow_obs(world):
    with h5py.File(minari_h5(world), "a") as f:
        obs = f["episode_1/observations/observation"][()]
        del f["episode_1/observations/observation"]
        f["episode_1/observations/observation"] = obs[:, :26]


def minari_nan(world):
    with h5py.File(minari_h5(world), "a") as f:
        f["episode_0/observations/observation"][2, 4] = np.nan


def minari_large_maze(world):
    shutil.rmtree(minari_data(world))
    shutil.copytree(world.minari / "expotest/antmaze/large-v0/data", minari_data(world))


def minari_d4rl_file(world):
    write_d4rl(minari_h5(world))


def minari_bad_metadata(world):
    (minari_data(world) / "metadata.json").write_text('{"total_episodes": 2, ')


CASES = [
    # D4RL hdf5 (antmaze v2)
    ("d4rl-truncated", D4RL_KEY, d4rl_case(truncate), "not a readable HDF5 file", "malformed"),
    ("d4rl-empty", D4RL_KEY, d4rl_case(empty), "not a readable HDF5 file", "malformed"),
    ("d4rl-missing", D4RL_KEY, d4rl_case(lambda p: p.unlink()), "is missing", "missing"),
    ("d4rl-wrong-keys", D4RL_KEY, lambda w: write_d4rl(d4rl_path(), drop=("timeouts",)),
     "missing dataset(s) timeouts", "malformed"),
    ("d4rl-wrong-shapes", D4RL_KEY, lambda w: write_d4rl(d4rl_path(), rewards=np.zeros(D4RL_ROWS - 1, np.float32)),
     "'rewards' has shape (11,)", "malformed"),
    ("d4rl-nan", D4RL_KEY, lambda w: write_d4rl(d4rl_path(), actions=np.full((D4RL_ROWS, 8), np.nan, np.float32)),
     "'actions' contains NaN", "malformed"),
    ("d4rl-wrong-env", D4RL_KEY, lambda w: write_d4rl(d4rl_path(), obs_dim=17, act_dim=6),  # a locomotion file
     "task 'antmaze-medium-play-v2' expects 29 and 8", "malformed"),
    ("d4rl-other-dataset", D4RL_KEY, d4rl_other_dataset, "missing dataset(s) observations", "malformed"),
    ("d4rl-fewer-rows", D4RL_KEY, lambda w: write_d4rl(d4rl_path()),  # 12 rows where the release has 1M
     "rows is 12, the registry expects 1,000,000", "mismatch"),
    # AWAC .npy (Adroit binary)
    ("awac-truncated", AWAC_KEY, awac_case(lambda e, b: truncate(e)), "not a readable .npy file", "malformed"),
    ("awac-empty", AWAC_KEY, awac_case(lambda e, b: empty(b)), "not a readable .npy file", "malformed"),
    ("awac-missing", AWAC_KEY, awac_case(lambda e, b: b.unlink()), "is missing", "missing"),
    ("awac-wrong-keys", AWAC_KEY, awac_case(awac_drop_key), "trajectory 2 has no 'rewards'", "malformed"),
    ("awac-wrong-shapes", AWAC_KEY, awac_case(awac_ragged), "trajectory 1 has ragged lengths", "malformed"),
    ("awac-nan", AWAC_KEY, awac_case(awac_nan), "trajectory 0 observations contain NaN", "malformed"),
    ("awac-wrong-env", AWAC_KEY, awac_door_files, "task 'pen-binary-v0' expects 45 and 24", "malformed"),
    ("awac-bc-as-expert", AWAC_KEY, awac_case(awac_swapped), "one dict per step", "malformed"),
    ("awac-other-dataset", AWAC_KEY, awac_case(awac_d4rl_file), "not a readable .npy file", "malformed"),
    # robomimic v0.1 low_dim hdf5 (Can MH)
    ("robomimic-truncated", ROBO_KEY, robo_case(truncate), "not a readable HDF5 file", "malformed"),
    ("robomimic-empty", ROBO_KEY, robo_case(empty), "not a readable HDF5 file", "malformed"),
    ("robomimic-missing", ROBO_KEY, robo_case(lambda p: p.unlink()), "is missing", "missing"),
    ("robomimic-wrong-keys", ROBO_KEY, robo_case(robo_drop_obs_key), "data/demo_1/obs has no key 'robot0_eef_quat'",
     "malformed"),
    ("robomimic-wrong-shapes", ROBO_KEY, robo_case(lambda p: rewrite(p, "data/demo_0/rewards", np.zeros((4, 1)))),
     "data/demo_0/rewards has shape (4, 1)", "malformed"),
    ("robomimic-nan", ROBO_KEY, robo_case(robo_nan), "data/demo_2/obs/object contains NaN", "malformed"),
    ("robomimic-env-args-not-json", ROBO_KEY, robo_case(nothing, env_args="{'env_name': 'PickPlaceCan'"),
     "env_args'] is not valid JSON", "malformed"),
    # a Square file at Can's path: the same widths (23), only the recorded env tells them apart
    ("robomimic-other-env", ROBO_KEY, robo_case(nothing, env_name="NutAssemblySquare"),
     "recorded in 'NutAssemblySquare', task 'can' runs in 'PickPlaceCan'", "malformed"),
    ("robomimic-env-args-unusable", ROBO_KEY,
     robo_case(nothing, env_args=json.dumps({**V141_CAN_ENV_ARGS, "env_kwargs": {
         **V141_CAN_ENV_ARGS["env_kwargs"], "robots": [7]}})),
     "cannot be turned into robosuite.make arguments", "malformed"),
    ("robomimic-other-dataset", ROBO_KEY, robo_other_dataset, "no 'data' group", "malformed"),
    # MimicGen: 10 human source demos + generated demos (composed)
    ("mimicgen-truncated", MG_KEY, mg_case(lambda s, c: truncate(c)), "not a readable HDF5 file", "malformed"),
    ("mimicgen-empty", MG_KEY, mg_case(lambda s, c: empty(s)), "not a readable HDF5 file", "malformed"),
    ("mimicgen-missing", MG_KEY, mg_case(lambda s, c: c.unlink()), "is missing", "missing"),
    ("mimicgen-wrong-keys", MG_KEY, mg_case(mg_core_drop_obs_key), "obs has no key 'object'", "malformed"),
    ("mimicgen-wrong-shapes", MG_KEY, mg_case(lambda s, c: rewrite(c, "data/demo_3/actions", np.zeros((4, 6)))),
     "demos disagree on observation/action widths", "malformed"),
    ("mimicgen-nan", MG_KEY, mg_case(mg_core_nan), "data/demo_7/actions contains NaN", "malformed"),
    ("mimicgen-other-env", MG_KEY, mg_case(mg_core_other_env),
     "recorded in 'Threading_D1', task 'threading' runs in 'Threading_D0'", "malformed"),
    ("mimicgen-too-few-demos", MG_KEY, mg_case(nothing, core_demos=5), "asked for 40 demos, the file has 5",
     "malformed"),
    ("mimicgen-other-dataset", MG_KEY, mg_case(mg_can_file_as_core), "give obs dim 23", "malformed"),
    # Minari (optional backend)
    ("minari-truncated", MINARI_KEY, minari_case(lambda w: truncate(minari_h5(w))), "cannot be read (OSError",
     "malformed"),
    ("minari-empty", MINARI_KEY, minari_case(lambda w: empty(minari_h5(w))), "cannot be read (OSError", "malformed"),
    ("minari-missing", MINARI_KEY, minari_case(minari_missing), "not downloaded", "missing"),
    ("minari-bad-metadata", MINARI_KEY, minari_case(minari_bad_metadata), "cannot be read", "malformed"),
    ("minari-wrong-keys", MINARI_KEY, minari_case(minari_drop_actions), "cannot be read (KeyError", "malformed"),
    ("minari-wrong-shapes", MINARI_KEY, minari_case(minari_narrow_obs), "episode 1 has observation (6, 26)",
     "malformed"),
    ("minari-nan", MINARI_KEY, minari_case(minari_nan), "episode 0 contains NaN", "malformed"),
    ("minari-wrong-env", MINARI_KEY, minari_case(minari_large_maze), "neither D4RL's medium walls", "malformed"),
    ("minari-other-dataset", MINARI_KEY, minari_case(minari_d4rl_file), "cannot be read", "malformed"),
]


@pytest.fixture
def case_world(request, world):
    """The world, with the Minari recordings available when a Minari case asks for them."""
    if request.node.callspec.params["key"] == MINARI_KEY:
        world.recorded = request.getfixturevalue("minari_recordings")
    return world


def problem_lines(out, key):
    return [line for line in out.splitlines() if line.startswith(f"{key} (")]


def assert_fix_names_the_right_command(line, key, present):
    """The fix is a command that works: for data on disk `fetch --force` (plain fetch skips them)."""
    assert f"fix: `python -m expo.data fetch {key}{' --force' if present else ''}`" in line, line


@pytest.mark.parametrize("name,key,setup,words,status", CASES, ids=[c[0] for c in CASES])
def test_verify_reports_one_line_and_writes_nothing(case_world, capsys, name, key, setup, words, status):
    setup(case_world)
    before = snapshot(case_world.data, case_world.minari)
    assert data_cli.main(["verify", key]) == 1
    captured = capsys.readouterr()
    out = captured.out + captured.err
    assert "Traceback" not in out
    lines = problem_lines(out, key)
    assert lines and all(line.startswith(f"{key} ({status}): ") for line in lines), out
    matching = [x for x in lines if words in x]
    assert len(matching) == 1, f"{words!r} is not in exactly one of {lines}"
    line = matching[0]  # one line: the file, the problem, the fix
    where = str(case_world.minari / MINARI_ID) if key == MINARI_KEY else str(case_world.data)
    assert where in line  # names the file (or Minari's folder of the dataset)
    assert_fix_names_the_right_command(line, key, present=status != "missing")
    assert snapshot(case_world.data, case_world.minari) == before
    assert not (case_world.data / "jax-compilation-cache").exists()


# ------------------------------------------------------------------- good files verify ok (neighbours)


def test_good_files_verify_ok_and_counts_are_compared_like_with_like(world, monkeypatch, minari_recordings, capsys):
    """The undamaged fixtures verify ok once the registry's facts are the small files' own; D4RL's
    rows are the file's raw steps, not the fewer transitions the loader forms (item 8)."""
    write_d4rl(d4rl_path())
    set_expected(monkeypatch, D4RL_KEY, rows=D4RL_ROWS)
    write_awac()
    set_expected(monkeypatch, AWAC_KEY, expert_trajectories=AWAC_EXPERT, expert_trajectory_length=AWAC_LEN)
    write_robomimic(robo_path())
    set_expected(monkeypatch, ROBO_KEY, demos=3)
    write_mimicgen()
    set_expected(monkeypatch, MG_KEY, file_demos=(MG_SOURCE, MG_CORE))
    shutil.copytree(minari_recordings, world.minari, dirs_exist_ok=True)
    before = snapshot(world.data, world.minari)
    rows = {r.dataset: r for key in (D4RL_KEY, AWAC_KEY, ROBO_KEY, MG_KEY, MINARI_KEY) for r in verify.verify(key)}
    assert {k: (r.status, r.problems) for k, r in rows.items()} == {k: ("ok", []) for k in rows}
    assert (rows[D4RL_KEY].transitions, rows[D4RL_KEY].episodes) == (9, 3)  # 12 rows, 3 time-outs dropped
    assert rows[MG_KEY].episodes == MG_SOURCE + MG_CORE
    assert (rows[MINARI_KEY].transitions, rows[MINARI_KEY].obs_dim) == (11, 29)
    assert snapshot(world.data, world.minari) == before


def test_a_failure_no_loader_foresaw_is_still_one_line(world, monkeypatch, capsys):
    """load_entry's guard: an exception a loader does not turn into a DatasetError itself (a bug, or a
    damage nobody thought of) still gives verify and train one line with the file and the fix."""
    from expo.data import d4rl_hdf5

    write_d4rl(d4rl_path())
    monkeypatch.setattr(d4rl_hdf5, "load_d4rl_hdf5", lambda *a, **k: {}["observations"])
    assert data_cli.main(["verify", D4RL_KEY]) == 1
    (line,) = problem_lines(capsys.readouterr().out, D4RL_KEY)
    assert f"{d4rl_path()}: the d4rl_hdf5 loader failed on this data (KeyError: 'observations')" in line
    assert_fix_names_the_right_command(line, D4RL_KEY, present=True)
    assert line.endswith("if they are not, this is a bug in expo/data/d4rl_hdf5.py")
    assert "KeyError: 'observations'" in run_train(world, f"task={D4RL_TASK}")


def test_every_recorded_fact_is_one_verify_measures():
    for key, e in registry.DATASETS.items():
        facts = e.expected if isinstance(e, registry.ExternalDataset) else {"demos": e.num_demos}
        assert set(facts) <= set(verify.FACTS), (key, set(facts) - set(verify.FACTS))


def test_a_can_file_at_the_lift_ph_path_fails_verify_against_lift(world, capsys):
    """robomimic_lift_ph is lift's paper dataset (protocol paper_dataset; the default is the embedded
    data): verify compares the file with the lift task's widths (item 3)."""
    assert paper_dataset(TASKS["lift"]) == "robomimic_lift_ph" != TASKS["lift"].dataset
    path = entry_of("robomimic_lift_ph").path()
    write_robomimic(path, demos=200, steps=2)  # Can's layout (23-dim observations), env PickPlaceCan
    assert data_cli.main(["verify", "robomimic_lift_ph"]) == 1
    out = capsys.readouterr().out
    lines = problem_lines(out, "robomimic_lift_ph")
    assert any("give obs dim 23" in x and "task 'lift' expects 19" in x for x in lines), lines
    for line in lines:
        assert str(path) in line
        assert_fix_names_the_right_command(line, "robomimic_lift_ph", present=True)


def test_a_different_release_of_the_awac_files_is_a_mismatch(world, capsys):
    write_awac()  # 10 expert demos of 4 steps where rlkit's pen file has 25 of 199
    assert data_cli.main(["verify", AWAC_KEY]) == 1
    lines = problem_lines(capsys.readouterr().out, AWAC_KEY)
    assert any("expert_trajectories is 10, the registry expects 25" in x for x in lines), lines
    assert any("expert_trajectory_length is 4, the registry expects 199" in x for x in lines), lines


# --------------------------------------------------------------------------------------- train


def run_train(world, *args):
    """expo.train.main in this process: (the one-line message it exits with, its exit code)."""
    from expo.train import main

    before = snapshot(world.data, world.minari)
    with pytest.raises(SystemExit) as e:
        main([*args, f"results_dir={world.results}", "progress=false"])
    message = e.value.code
    assert isinstance(message, str) and message.startswith("error: ") and "\n" not in message, message
    # nothing written: no run folder, no compilation cache, no file touched
    assert not world.results.exists()
    assert not (world.data / "jax-compilation-cache").exists()
    assert snapshot(world.data, world.minari) == before
    return message


TRAIN_CASES = [  # a representative case per format: (case id of CASES, extra train arguments)
    ("d4rl-truncated", (f"task={D4RL_TASK}",)),
    ("awac-wrong-shapes", (f"task={AWAC_TASK}",)),
    ("robomimic-env-args-not-json", (f"task={ROBO_TASK}", "dataset.num_demos=2")),  # item 2
    ("robomimic-other-env", (f"task={ROBO_TASK}", "dataset.num_demos=2")),
    ("mimicgen-other-env", (f"task={MG_TASK}", f"dataset.name={MG_KEY}")),  # the embedded data are the default
    ("minari-wrong-env", (f"task={D4RL_TASK}", f"dataset.name={MINARI_KEY}")),
]


@pytest.mark.parametrize("name,args", TRAIN_CASES, ids=[c[0] for c in TRAIN_CASES])
def test_train_stops_with_one_line_before_writing_anything(request, world, name, args):
    (_, key, setup, words, status), = [c for c in CASES if c[0] == name]
    if key == MINARI_KEY:
        world.recorded = request.getfixturevalue("minari_recordings")
    setup(world)
    message = run_train(world, *args)
    assert words in message
    # the same fix verify gives: replace the file that is there
    assert f"fix: `python -m expo.data fetch {key} --force`" in message


def test_train_with_num_demos_on_an_adroit_task_says_how_to_fix_it(world):
    """Item 4: a run setting, not a damaged file."""
    write_awac()
    message = run_train(world, f"task={AWAC_TASK}", "dataset.num_demos=5")
    assert "dataset.num_demos=5 was asked for" in message and "fix: leave dataset.num_demos unset (none)" in message


def test_train_on_a_dataset_of_another_env_names_the_setting(world):
    message = run_train(world, "task=lift", "dataset.name=robomimic_can_mh")
    assert "dataset 'robomimic_can_mh' was recorded in 'PickPlaceCan', task 'lift' runs in 'Lift'" in message
    assert "fix: leave dataset.name unset (the task's own dataset: 'lift_scripted')" in message


def test_train_on_a_missing_minari_dataset_says_download_it(world):
    """Item 7: missing is not 'malformed ... the file is present'."""
    message = run_train(world, f"task={D4RL_TASK}", f"dataset.name={MINARI_KEY}")
    assert "not downloaded" in message and "present" not in message
    assert f"fix: `python -m expo.data fetch {MINARI_KEY}` (runs `minari download {MINARI_ID}`;" in message


def test_a_damaged_generated_file_names_the_command_that_regenerates_it(world, capsys):
    """An embedded task's file that is there but cut off: no silent regeneration, no traceback; the fix
    is `generate ... --force` (ensure_generated leaves a present file alone)."""
    e = entry_of("lift_scripted")
    write_robomimic(e.path(), env_name="Lift")
    truncate(e.path())
    assert data_cli.main(["verify", "lift"]) == 1
    (line,) = problem_lines(capsys.readouterr().out, "lift_scripted")
    assert line.startswith(f"lift_scripted (malformed): {e.path()}: not a readable HDF5 file")
    assert line.endswith(f"fix: {e.fix_hint()}") and "--force" in e.fix_hint()
    message = run_train(world, "task=lift")
    assert message == f"error: {line.split(': ', 1)[1]}"  # the same line as verify's


def test_cli_processes_exit_1_with_one_line_for_a_truncated_minari_file(world, minari_recordings):
    """Item 1 end to end, in real processes: `verify` and `train` on a cut-off main_data.hdf5."""
    world.recorded = minari_recordings
    minari_case(lambda w: truncate(minari_h5(w)))(world)
    env = {k: v for k, v in os.environ.items() if k != "EXPO_COMPILATION_CACHE"}
    env.update(EXPO_DATA_ROOT=str(world.data), MINARI_DATASETS_PATH=str(world.minari), PYTHONPATH=str(ROOT))
    before = snapshot(world.data, world.minari)
    out = subprocess.run([sys.executable, "-m", "expo.data", "verify", MINARI_KEY], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and "Traceback" not in out.stdout + out.stderr, out.stdout + out.stderr
    (line,) = problem_lines(out.stdout, MINARI_KEY)
    assert "main_data.hdf5" in line or "truncated file" in line
    out = subprocess.run([sys.executable, "-m", "expo.train", f"task={D4RL_TASK}", f"dataset.name={MINARI_KEY}",
                          f"results_dir={world.results}", "progress=false"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 1 and out.stdout == "", out.stdout
    (line,) = out.stderr.strip().splitlines()  # the only output: no traceback, no warnings
    assert line.startswith("error: minari dataset 'D4RL/antmaze/medium-play-v1'") and "truncated file" in line
    assert f"fix: `python -m expo.data fetch {MINARI_KEY} --force`" in line
    assert not world.results.exists() and not (world.data / "jax-compilation-cache").exists()
    assert snapshot(world.data, world.minari) == before


# ------------------------------------------------------------------- the suggested fix works (item 5)


@pytest.fixture
def server():
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            body = srv.files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.files, srv.url = {}, f"http://127.0.0.1:{srv.server_address[1]}"
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _run_the_fix(message):
    """Run the `python -m expo.data fetch ...` command a message names, in this process."""
    command = re.search(r"fix: `python -m expo\.data ([^`]+)`", message).group(1).split()
    assert data_cli.main([*command, "--no-progress"]) == 0


def test_the_fix_train_names_for_a_corrupt_d4rl_file_repairs_it(world, server, monkeypatch, capsys):
    e = entry_of(D4RL_KEY)
    rf = dataclasses.replace(e.files[0], url=f"{server.url}/antmaze.hdf5")
    monkeypatch.setitem(registry.DATASETS, D4RL_KEY, dataclasses.replace(e, files=(rf,), expected={
        **e.expected, "rows": D4RL_ROWS}))
    write_d4rl(d4rl_path())
    server.files["/antmaze.hdf5"] = d4rl_path().read_bytes()
    truncate(d4rl_path())
    message = run_train(world, f"task={D4RL_TASK}")
    assert data_cli.main(["fetch", D4RL_KEY, "--no-progress"]) == 0  # plain fetch: skips the bad file
    assert d4rl_path().read_bytes() != server.files["/antmaze.hdf5"]
    _run_the_fix(message)
    assert d4rl_path().read_bytes() == server.files["/antmaze.hdf5"]
    assert data_cli.main(["verify", D4RL_KEY]) == 0


def test_the_fix_verify_names_for_a_corrupt_awac_member_repairs_it(world, server, monkeypatch, capsys):
    """AWAC files are members of one archive (data_root/downloads): --force downloads it again."""
    import io
    import zipfile

    paths = write_awac()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in paths:
            zf.writestr(p.name, p.read_bytes())
    server.files["/awac.zip"] = buf.getvalue()
    e = entry_of(AWAC_KEY)
    files = tuple(dataclasses.replace(f, url=f"{server.url}/awac.zip") for f in e.files)
    monkeypatch.setitem(registry.DATASETS, AWAC_KEY, dataclasses.replace(e, files=files, expected={
        **e.expected, "expert_trajectories": AWAC_EXPERT, "expert_trajectory_length": AWAC_LEN}))
    good = paths[1].read_bytes()
    downloads = world.data / "downloads"
    downloads.mkdir()
    (downloads / "awac.zip").write_bytes(b"PK damaged archive")  # left by an earlier, broken download
    empty(paths[1])
    assert data_cli.main(["verify", AWAC_KEY]) == 1
    (line,) = problem_lines(capsys.readouterr().out, AWAC_KEY)
    _run_the_fix(line)
    assert paths[1].read_bytes() == good
    assert data_cli.main(["verify", AWAC_KEY]) == 0


def test_fetch_force_downloads_a_minari_dataset_again(world, monkeypatch):
    minari = pytest.importorskip("minari")
    calls = []
    monkeypatch.setattr(minari, "download_dataset", lambda ident, force_download=False: calls.append(
        (ident, force_download)))
    assert data_cli.main(["fetch", MINARI_KEY]) == 0
    assert data_cli.main(["fetch", MINARI_KEY, "--force"]) == 0
    assert calls == [(MINARI_ID, False), (MINARI_ID, True)]


# --------------------------------------------------------------------- the compilation cache (item 6)


def test_the_compilation_cache_folder_appears_only_at_the_first_compilation(tmp_path):
    """enable_persistent_cache writes nothing (a run that fails on its data leaves no folder); jax
    creates the folder when it first compiles, so the cache still works."""
    code = ("from pathlib import Path; import sys; from expo import compilation; "
            "path = compilation.enable_persistent_cache(); assert not path.exists(), 'created early'; "
            "import jax, jax.numpy as jnp; jax.jit(lambda x: jnp.sin(x) * 2)(jnp.ones(3)).block_until_ready(); "
            "sys.exit(0 if path.is_dir() else 3)")
    env = dict(os.environ, EXPO_COMPILATION_CACHE=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
