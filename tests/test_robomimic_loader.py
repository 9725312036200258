"""The robomimic hdf5 loader on a hand-written v0.1-layout file, and a round trip through the generator."""
import dataclasses
import json

import h5py
import numpy as np
import pytest

from expo.data import load_task_dataset, registry
from expo.data.errors import DatasetError
from expo.data.experts.lift import generate_lift_dataset
from expo.data.robomimic_hdf5 import load_robomimic_hdf5
from expo.envs import make_env
from expo.envs.robomimic import ROBOMIMIC_OBS_KEYS
from expo.protocol import get_task

SPEC = get_task("lift")
WIDTHS = {"object": 10, "robot0_eef_pos": 3, "robot0_eef_quat": 4, "robot0_gripper_qpos": 2}
# demo index -> raw rewards. Like robomimic's PH files: a few success states at the end of a demo.
REWARDS = {0: [0, 0, 0, 1, 1], 1: [0, 0, 1], 2: [0, 0, 0, 0], 10: [0, 1]}


def obs_value(demo, t, key):
    """Recognisable content: demo, time step and key are all readable back from the number."""
    return demo * 1000 + t + 0.1 * list(WIDTHS).index(key)


def write_v01_file(path, skip_next_obs=()):
    """A file in robomimic v0.1's low_dim layout, written by hand (demo_10 tests numeric ordering)."""
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        total = 0
        for k, rewards in REWARDS.items():
            g = data.create_group(f"demo_{k}")
            n = len(rewards)
            for key, width in WIDTHS.items():
                obs = np.array([[obs_value(k, t, key)] * width for t in range(n + 1)])
                g.create_dataset(f"obs/{key}", data=obs[:-1])
                if (k, key) not in skip_next_obs:
                    g.create_dataset(f"next_obs/{key}", data=obs[1:])
            g.create_dataset("actions", data=np.full((n, 7), k / 100.0))
            g.create_dataset("rewards", data=np.array(rewards, dtype=np.float64))
            g.create_dataset("dones", data=np.array([0] * (n - 1) + [1], dtype=np.int64))
            g.create_dataset("states", data=np.zeros((n, 32)))
            g.attrs["num_samples"] = n
            total += n
        data.attrs["total"] = total
        data.attrs["env_args"] = json.dumps({"env_name": "Lift", "type": 1, "env_kwargs": {}})
        f.create_dataset("mask/train", data=np.array([b"demo_0", b"demo_2", b"demo_10"]))
        f.create_dataset("mask/valid", data=np.array([b"demo_1"]))


@pytest.fixture
def v01_file(tmp_path):
    path = tmp_path / "low_dim.hdf5"
    write_v01_file(path)
    return path


def test_observations_follow_obs_keys_order(v01_file):
    d = load_robomimic_hdf5(v01_file, ROBOMIMIC_OBS_KEYS, spec=SPEC)
    order = [0, 1, 2, 10]  # numeric, not lexical (demo_10 last)
    np.testing.assert_array_equal(d["demo_ids"], np.repeat(order, [len(REWARDS[k]) for k in order]))
    assert d["observations"].shape == (14, 19) and d["observations"].dtype == np.float32
    row = d["observations"][0]  # demo_0, t=0
    np.testing.assert_allclose(row[:10], 0.0)
    np.testing.assert_allclose(row[10:13], 0.1, rtol=1e-6)
    np.testing.assert_allclose(row[13:17], 0.2, rtol=1e-6)
    np.testing.assert_allclose(row[17:19], 0.3, rtol=1e-6)
    np.testing.assert_allclose(d["next_observations"][0, :10], 1.0)
    np.testing.assert_array_equal(d["actions"][-1], np.full(7, 0.1, np.float32))
    np.testing.assert_array_equal(np.flatnonzero(d["episode_starts"]), [0, 5, 8, 12])

    swapped = load_robomimic_hdf5(v01_file, ["robot0_gripper_qpos", "object"])
    assert swapped["observations"].shape == (14, 12)
    np.testing.assert_allclose(swapped["observations"][0, :2], 0.3, rtol=1e-6)
    np.testing.assert_allclose(swapped["observations"][0, 2:], 0.0)


def test_rewards_masks_dones(v01_file):
    spec = dataclasses.replace(SPEC, reward_scale=10.0, reward_shift=-5.0)
    d = load_robomimic_hdf5(v01_file, ROBOMIMIC_OBS_KEYS, spec=spec)
    raw = np.concatenate([REWARDS[k] for k in (0, 1, 2, 10)]).astype(np.float32)
    np.testing.assert_array_equal(d["rewards"], 10 * raw - 5)
    np.testing.assert_array_equal(d["masks"], 1 - raw)  # success states are terminal
    expected_dones = raw.copy()
    expected_dones[[4, 7, 11, 13]] = 1  # last transition of every demo (demo_2 never succeeds)
    np.testing.assert_array_equal(d["dones"], expected_dones)
    for key in ("rewards", "masks", "dones"):
        assert d[key].dtype == np.float32 and d[key].shape == (14,)

    no_termination = dataclasses.replace(SPEC, terminate_on="never")
    d = load_robomimic_hdf5(v01_file, ROBOMIMIC_OBS_KEYS, spec=no_termination)
    np.testing.assert_array_equal(d["masks"], 1.0)
    np.testing.assert_array_equal(np.flatnonzero(d["dones"]), [4, 7, 11, 13])


def test_num_demos_subsampling_is_seeded(v01_file):
    def picked(seed, k=2):
        d = load_robomimic_hdf5(v01_file, ROBOMIMIC_OBS_KEYS, num_demos=k, seed=seed)
        return tuple(d["demo_ids"][d["episode_starts"]])

    names = [0, 1, 2, 10]
    expected = tuple(names[i] for i in sorted(np.random.default_rng(3).choice(4, size=2, replace=False)))
    assert picked(3) == picked(3) == expected
    assert len({picked(s) for s in range(10)}) > 1
    assert picked(0, k=4) == (0, 1, 2, 10)
    with pytest.raises(DatasetError, match="asked for 5 demos, the file has 4"):
        picked(0, k=5)


def test_filter_key(v01_file):
    d = load_robomimic_hdf5(v01_file, ROBOMIMIC_OBS_KEYS, filter_key="train")
    assert tuple(d["demo_ids"][d["episode_starts"]]) == (0, 2, 10)
    with pytest.raises(DatasetError, match="mask/test"):
        load_robomimic_hdf5(v01_file, ROBOMIMIC_OBS_KEYS, filter_key="test")


def test_missing_next_obs_is_derived_from_obs(tmp_path):
    path = tmp_path / "old.hdf5"
    write_v01_file(path, skip_next_obs={(1, "object")})
    with pytest.warns(UserWarning, match="next_obs/object"):
        d = load_robomimic_hdf5(path, ROBOMIMIC_OBS_KEYS)
    full = load_robomimic_hdf5(path, ["robot0_eef_pos"])
    rows = np.flatnonzero(d["demo_ids"] == 1)  # 3 transitions
    np.testing.assert_allclose(d["next_observations"][rows, 0], [1001, 1002, 1002])  # last repeats
    np.testing.assert_allclose(d["next_observations"][rows, 10], full["next_observations"][rows, 0])


def test_clear_errors(v01_file, tmp_path):
    with pytest.raises(DatasetError, match=r"nope\.hdf5: file not found; fix: .*python -m expo.data generate lift"):
        load_robomimic_hdf5(tmp_path / "nope.hdf5", ROBOMIMIC_OBS_KEYS)
    with pytest.raises(DatasetError, match=r"data/demo_0/obs has no key 'robot0_eef_vel'"):
        load_robomimic_hdf5(v01_file, ["object", "robot0_eef_vel"])
    with pytest.raises(DatasetError, match="task 'lift' expects 19"):
        load_robomimic_hdf5(v01_file, ["object"], spec=SPEC)
    with h5py.File(v01_file, "a") as f:
        del f["data/demo_2/rewards"]
        f["data/demo_2/rewards"] = np.zeros((4, 1))
    with pytest.raises(DatasetError, match=r"data/demo_2/rewards has shape \(4, 1\), expected 1-d"):
        load_robomimic_hdf5(v01_file, ROBOMIMIC_OBS_KEYS)
    with h5py.File(v01_file, "a") as f:
        del f["data/demo_2/actions"]
    with pytest.raises(DatasetError, match="data/demo_2 has no 'actions'"):
        load_robomimic_hdf5(v01_file, ROBOMIMIC_OBS_KEYS)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    path = tmp_path_factory.mktemp("gen") / "lift.hdf5"
    summary = generate_lift_dataset(path, num_demos=2, noise=0.2, seed=5)
    return path, summary


def test_generated_file_round_trip(generated):
    path, summary = generated
    assert summary["num_demos"] == 2 and 0 < summary["success_rate"] <= 1
    with h5py.File(path, "r") as f:
        data = f["data"]
        env_args = json.loads(data.attrs["env_args"])
        assert env_args["env_name"] == "Lift" and env_args["type"] == 1
        assert env_args["env_kwargs"]["control_freq"] == 20
        gen = json.loads(data.attrs["expo_generator"])
        assert (gen["noise"], gen["seed"], gen["expert_version"]) == (0.2, 5, 1)
        lengths = [data[f"demo_{k}"].attrs["num_samples"] for k in range(2)]
        assert data.attrs["total"] == sum(lengths)
        states = data["demo_1/states"][()]
        obs_eef = data["demo_1/obs/robot0_eef_pos"][()]
        obs_cube = data["demo_1/obs/object"][()][:, :3]
        assert data["demo_1/dones"][-1] == 1 and data["demo_1/rewards"][-1] == 1

    d = load_robomimic_hdf5(path, ROBOMIMIC_OBS_KEYS, spec=SPEC)
    assert d["observations"].shape == (sum(lengths), 19)
    ends = np.cumsum(lengths) - 1
    np.testing.assert_array_equal(np.flatnonzero(d["dones"]), ends)  # episodes end at first success
    np.testing.assert_array_equal(np.flatnonzero(d["masks"] == 0), ends)
    np.testing.assert_array_equal(np.flatnonzero(d["rewards"]), ends)
    inner = np.setdiff1d(np.arange(len(d["dones"]) - 1), ends)
    np.testing.assert_array_equal(d["next_observations"][inner], d["observations"][inner + 1])
    assert np.all(np.abs(d["actions"]) <= 1)

    # `states` are the MuJoCo states of `obs`: restoring one reproduces the observation, up to one
    # 2 ms physics substep (robosuite reads observations before MuJoCo's last integration).
    env = make_env(SPEC, seed=5)
    try:
        env.reset()
        raw = env.unwrapped.raw
        t = len(states) // 2
        raw.sim.set_state_from_flattened(states[t])
        raw.sim.forward()
        np.testing.assert_allclose(raw.sim.data.body_xpos[raw.cube_body_id], obs_cube[t], atol=1e-3)
        np.testing.assert_allclose(raw._get_observations(force_update=True)["robot0_eef_pos"], obs_eef[t], atol=2e-3)
    finally:
        env.close()


def test_generation_is_deterministic(generated, tmp_path):
    path, _ = generated
    again = tmp_path / "again.hdf5"
    generate_lift_dataset(again, num_demos=2, noise=0.2, seed=5)
    a = load_robomimic_hdf5(path, ROBOMIMIC_OBS_KEYS)
    b = load_robomimic_hdf5(again, ROBOMIMIC_OBS_KEYS)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_load_task_dataset_generates_once(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPO_DATA_ROOT", str(tmp_path))
    tiny = dataclasses.replace(registry.DATASETS["lift_scripted"], num_demos=2, noise=0.0, seed=1)
    monkeypatch.setitem(registry.DATASETS, "lift_scripted", tiny)
    assert tiny.path().parent.parent == tmp_path and "noise0_" in tiny.path().name
    d = load_task_dataset(SPEC, num_demos=1, seed=0)
    assert d["observations"].shape[1] == 19 and d["episode_starts"].sum() == 1
    mtime = tiny.path().stat().st_mtime_ns
    load_task_dataset(SPEC, num_demos=2, seed=0)
    assert tiny.path().stat().st_mtime_ns == mtime  # reused, not regenerated
    with pytest.raises(DatasetError, match="asked for 3 demos, the file has 2.*generate lift"):
        load_task_dataset(SPEC, num_demos=3, seed=0)


def write_generated_file(path, num_demos, lengths=(3, 4, 5)):
    """A MimicGen-generated layout: obs, actions, states, datagen_info; no rewards, dones or next_obs."""
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        for k in range(num_demos):
            n = lengths[k % len(lengths)]
            g = data.create_group(f"demo_{k}")
            for key, width in WIDTHS.items():
                g.create_dataset(f"obs/{key}", data=np.full((n, width), 500 + k + 0.001 * np.arange(n)[:, None]))
            g.create_dataset("actions", data=np.full((n, 7), -k / 100.0))
            g.create_dataset("states", data=np.zeros((n, 32)))
            g.create_dataset("datagen_info/eef_pose", data=np.zeros((n, 4, 4)))
            g.attrs["num_samples"] = n
        data.attrs["env_args"] = json.dumps({"env_name": "Lift", "type": 1, "env_kwargs": {}})


@pytest.fixture
def composed_entry(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPO_DATA_ROOT", str(tmp_path))
    write_v01_file(tmp_path / "source.hdf5")  # 4 human demos with rewards and next_obs
    write_generated_file(tmp_path / "gen.hdf5", num_demos=6)
    return registry.ExternalDataset(
        key="composed_test", format="robomimic_hdf5",
        files=(registry.RemoteFile("source.hdf5", ""), registry.RemoteFile("gen.hdf5", "")),
        description="test", obs_keys=ROBOMIMIC_OBS_KEYS,
        options={"compose": (4, 3), "missing_rewards": "success_at_end"},
    )


def test_composed_dataset_takes_k_demos_per_file(composed_entry):
    from expo.data import load_entry

    with pytest.warns(UserWarning, match=r"gen\.hdf5: 3 demos have no 'rewards'"):
        d = load_entry(composed_entry, SPEC, num_demos=None, seed=0)
    starts = d["episode_starts"]
    assert starts.sum() == 7
    np.testing.assert_array_equal(d["file_ids"][starts], [0, 0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(d["demo_ids"][starts][:4], [0, 1, 2, 10])  # the whole 4-demo file
    gen_ids = d["demo_ids"][starts][4:]
    expected = np.sort(np.random.default_rng(np.random.SeedSequence([0, 1]).generate_state(1)[0]).choice(6, 3, replace=False))
    np.testing.assert_array_equal(gen_ids, expected)  # seeded draw, stream 1 of the run seed, numeric order
    gen = d["file_ids"] == 1
    # no rewards in the file: reward 1 (terminal) on each generated demo's last transition only
    ends = np.flatnonzero(gen & (d["dones"] == 1))
    np.testing.assert_array_equal(d["rewards"][gen].sum(), 3.0)
    np.testing.assert_array_equal(d["rewards"][ends], 1.0)
    np.testing.assert_array_equal(d["masks"][ends], 0.0)
    # no next_obs in the file: s'_t = s_{t+1} inside a demo
    first = np.flatnonzero(gen)[0]
    np.testing.assert_allclose(d["next_observations"][first], d["observations"][first + 1])
    np.testing.assert_allclose(d["observations"][gen][:, 0] // 1, 500 + np.repeat(gen_ids, [3 if i % 3 == 0 else 4 if i % 3 == 1 else 5 for i in gen_ids]))

    def picked(seed):
        with pytest.warns(UserWarning):
            out = load_entry(composed_entry, SPEC, num_demos=7, seed=seed)
        return tuple(out["demo_ids"][out["episode_starts"]][4:])

    assert picked(0) == tuple(gen_ids) and len({picked(s) for s in range(8)}) > 1


def test_composed_dataset_errors(composed_entry, tmp_path):
    from expo.data import load_entry

    with pytest.raises(DatasetError, match=r"has 7 demos \(4 \+ 3\), 5 were asked for; fix: use num_demos=7"):
        load_entry(composed_entry, SPEC, num_demos=5, seed=0)
    strict = dataclasses.replace(composed_entry, options={"compose": (4, 3)})
    with pytest.raises(DatasetError, match=r"gen\.hdf5: data/demo_\d+ has no 'rewards'"):
        load_entry(strict, SPEC, num_demos=None, seed=0)
    too_many = dataclasses.replace(composed_entry, options={"compose": (4, 7), "missing_rewards": "success_at_end"})
    with pytest.raises(DatasetError, match="asked for 7 demos, the file has 6"):
        load_entry(too_many, SPEC, num_demos=None, seed=0)


def test_mimicgen_registry_entries_match_table_2():
    from expo.protocol import get_task

    for task, generated in (("threading", 40), ("stack", 190)):
        entry = registry.DATASETS[f"mimicgen_{task}"]
        spec = get_task(task)
        assert entry.options["compose"] == (10, generated) and sum(entry.options["compose"]) == spec.num_demos
        assert entry.expected["demos"] == spec.num_demos
        hf = "https://huggingface.co/datasets/amandlek/mimicgen_datasets/resolve/main"
        assert [f.url for f in entry.files] == [f"{hf}/source/{task}.hdf5", f"{hf}/core/{task}_d0.hdf5"]
    for key, demos in (("robomimic_lift_ph", 200), ("robomimic_can_mh", 300), ("robomimic_square_ph", 200)):
        assert registry.DATASETS[key].expected["demos"] == demos
