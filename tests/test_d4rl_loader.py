"""The D4RL hdf5 loader on small files written in D4RL's antmaze layout (timeouts, terminals, infos/*)."""
import dataclasses

import h5py
import numpy as np
import pytest

from expo.data import load_entry, load_task_dataset, registry
from expo.data.errors import DatasetError
from expo.protocol import get_task

SPEC = get_task("antmaze-medium-play-v2")
ENTRY = registry.get_dataset(SPEC.dataset)
# 12 rows = 3 episodes of 4 steps (timeouts on each episode's last row, as in D4RL's files), with a
# goal state (reward 1, terminal 1) at row 5. Row k's observation is filled with the number k.
N = 12
TIMEOUTS = [0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1]
TERMINALS = [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
REWARDS = [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]


def write_d4rl(path, n=N, obs_dim=29, act_dim=8, next_obs=False, drop=(), overrides=None):
    rng = np.random.default_rng(0)
    arrays = {
        "observations": np.repeat(np.arange(n, dtype=np.float32)[:, None], obs_dim, axis=1),
        "actions": rng.uniform(-1, 1, (n, act_dim)).astype(np.float32),
        "rewards": np.array(REWARDS[:n], np.float32),
        "terminals": np.array(TERMINALS[:n], bool),
        "timeouts": np.array(TIMEOUTS[:n], bool),
        "infos/goal": np.zeros((n, 2), np.float32),
        "infos/qpos": np.zeros((n, 15), np.float32),
        "infos/qvel": np.zeros((n, 14), np.float32),
    }
    arrays["actions"][0, 0] = 1.0   # exactly at the bound: must come back clipped to 1 - 1e-5
    arrays["actions"][1, 1] = -1.0
    if next_obs:
        arrays["next_observations"] = arrays["observations"] + 0.5
    arrays.update(overrides or {})
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            if key not in drop:
                f.create_dataset(key, data=value)
    return arrays


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPO_DATA_ROOT", str(tmp_path))
    ENTRY.path().parent.mkdir(parents=True, exist_ok=True)
    return tmp_path


def test_transitions_follow_qlearning_dataset(data_root):
    raw = write_d4rl(ENTRY.path())
    d = load_task_dataset(SPEC, num_demos=None, seed=0)
    # Rows 3 and 7 (timeouts) and 11 (timeout and final row) are dropped: 12 - 3 = 9 transitions.
    kept = [0, 1, 2, 4, 5, 6, 8, 9, 10]
    assert len(d["observations"]) == len(kept)
    np.testing.assert_array_equal(d["observations"][:, 0], kept)
    np.testing.assert_array_equal(d["next_observations"][:, 0], [k + 1 for k in kept])  # s' = obs[i+1]
    # Rewards after the antmaze transform r - 1; masks = 1 - terminals (0 only at the goal row 5).
    np.testing.assert_array_equal(d["rewards"], [-1, -1, -1, -1, 0, -1, -1, -1, -1])
    np.testing.assert_array_equal(d["masks"], [1, 1, 1, 1, 0, 1, 1, 1, 1])
    # Episode boundaries: before each dropped timeout row (rows 2, 6, 10) and at the terminal row 5.
    np.testing.assert_array_equal(d["dones"], [0, 0, 1, 0, 1, 1, 0, 0, 1])
    np.testing.assert_array_equal(d["episode_starts"], [1, 0, 0, 1, 0, 1, 1, 0, 0])
    # Same boundaries as RLPD's rule: obs[k+1] != next_obs[k] or terminal, and the last one.
    rlpd = np.r_[(np.abs(d["observations"][1:] - d["next_observations"][:-1]).max(1) > 1e-6) | (d["masks"][:-1] == 0), True]
    np.testing.assert_array_equal(d["dones"].astype(bool), rlpd)
    assert d["actions"].max() == pytest.approx(1 - 1e-5) and d["actions"].min() == pytest.approx(-(1 - 1e-5))
    np.testing.assert_allclose(d["actions"][2:], raw["actions"][kept][2:], atol=1e-6)
    for key, value in d.items():
        assert value.dtype == (bool if key == "episode_starts" else np.float32), key
    # Without a spec the rewards are the file's own.
    np.testing.assert_array_equal(load_entry(ENTRY)["rewards"], [0, 0, 0, 0, 1, 0, 0, 0, 0])


def test_next_observations_key_is_used_when_present(data_root):
    write_d4rl(ENTRY.path(), next_obs=True)
    d = load_task_dataset(SPEC)
    np.testing.assert_array_equal(d["next_observations"][:, 0], d["observations"][:, 0] + 0.5)


def test_column_rewards_and_terminals_are_squeezed(data_root):
    write_d4rl(ENTRY.path(), overrides={"rewards": np.array(REWARDS, np.float32)[:, None],
                                        "terminals": np.array(TERMINALS, np.float32)[:, None]})
    assert load_task_dataset(SPEC)["masks"].tolist() == [1, 1, 1, 1, 0, 1, 1, 1, 1]


@pytest.mark.parametrize("kwargs, message", [
    ({"drop": ("timeouts",)}, "missing dataset(s) timeouts"),
    ({"obs_dim": 27}, "observations have dim 27"),
    ({"act_dim": 7}, "actions 7"),
    ({"overrides": {"rewards": np.zeros(N - 1, np.float32)}}, "'rewards' has shape (11,)"),
    ({"overrides": {"actions": np.full((N, 8), np.nan, np.float32)}}, "'actions' contains NaN"),
    ({"overrides": {"terminals": np.full(N, 2.0)}}, "'terminals' has values other than 0/1"),
    ({"overrides": {"timeouts": np.ones(N, bool)}}, "no transitions left"),
])
def test_malformed_files_raise_one_line_errors(data_root, kwargs, message):
    write_d4rl(ENTRY.path(), **kwargs)
    with pytest.raises(DatasetError) as e:
        load_task_dataset(SPEC)
    text = str(e.value)
    assert "\n" not in text and message in text
    # The file is present, so the fix must replace it: plain `fetch` would skip it.
    assert text.startswith(str(ENTRY.path())) and text.endswith(f"fix: {ENTRY.replace_hint()}")
    assert f"fetch {ENTRY.key} --force" in text


def test_missing_and_unreadable_files(data_root):
    with pytest.raises(DatasetError, match="file not found.*python -m expo.data fetch"):
        load_task_dataset(SPEC)
    ENTRY.path().write_bytes(b"not hdf5")
    with pytest.raises(DatasetError, match="not a readable HDF5 file.*fetch d4rl_antmaze_medium_play_v2 --force"):
        load_task_dataset(SPEC)


def test_num_demos_is_rejected(data_root):
    write_d4rl(ENTRY.path())
    with pytest.raises(DatasetError, match="used whole"):
        load_task_dataset(SPEC, num_demos=5)
    empty = dataclasses.replace(ENTRY, files=())
    with pytest.raises(DatasetError, match="no files registered"):
        load_entry(empty, SPEC)
