"""The AWAC Adroit binary loader (expo/data/awac_npy.py) on small files written in the real layouts.

Layouts as in the AWAC release (see the loader's docstring): the expert file holds per-step observation
dicts and one extra trailing reward per trajectory; the BC file holds [T, D] arrays and [T, 1] reward /
terminal columns. Every observation carries (file, trajectory, step) in its first entries so the tests
can tell exactly which transitions were kept, in which order.
"""
import dataclasses

import numpy as np
import pytest

from expo.data import DatasetError, load_entry, load_task_dataset
from expo.data.registry import get_dataset
from expo.protocol import get_task

SPEC = get_task("pen-binary-v0")
ENTRY_KEY = "awac_pen_binary"
OBS, ACT = 45, 24
EXPERT_LENGTHS = [4, 6, 5, 3, 7, 4, 5, 6, 3, 4, 5, 6, 4, 3, 5, 6, 7, 4, 5, 3, 4, 6, 5, 4, 3]  # 25 -> keep 22
BC_LENGTHS = [5, 4, 6, 3, 5, 4, 6, 5, 3, 4, 5]  # 11 -> keep int(9.9) = 9
EPS_LIM = np.float32(1 - 1e-5)


def _obs(source, traj, length, obs_dim):
    rows = np.zeros((length + 1, obs_dim))
    rows[:, 0], rows[:, 1], rows[:, 2] = source, traj, np.arange(length + 1)
    return rows  # length + 1 states: s_0 .. s_T


def _rewards(traj, length):
    """goal reached (0) from the middle of each trajectory on, -1 before."""
    return np.where(np.arange(length) >= length // 2, 0.0, -1.0)


def _actions(traj, length, act_dim):
    a = np.full((length, act_dim), 0.5)
    a[:, 0] = (traj % 3) * 1.5 - 1.5  # -1.5, 0, 1.5: outside the box for two of every three
    a[:, 1] = 1.0                     # exactly at the bound: clipped to 1 - 1e-5 too
    return a


def expert_traj(traj, length, obs_dim=OBS, act_dim=ACT):
    states = _obs(0, traj, length, obs_dim)
    as_dicts = lambda rows: [{"observation": r.copy(), "state_observation": r.copy()} for r in rows]  # noqa: E731
    # The trailing extra reward is 0 while the last real one is... whatever it is: dropping the wrong
    # end would shift every label by one step, which the reward check below catches.
    rewards = np.append(_rewards(traj, length), 0.0)
    rewards[0] = -1.0
    return {
        "observations": as_dicts(states[:-1]),
        "actions": list(_actions(traj, length, act_dim)),
        "rewards": rewards,
        "next_observations": as_dicts(states[1:]),
        "terminals": np.zeros(length),
        "agent_infos": [{} for _ in range(length)],
        "env_infos": [{} for _ in range(length)],
    }


def bc_traj(traj, length, obs_dim=OBS, act_dim=ACT):
    states = _obs(1, traj, length, obs_dim)
    rewards = _rewards(traj, length)
    terminals = np.zeros((length, 1), bool)
    terminals[-1] = True  # the rollout's time limit, stored as a terminal
    return {
        "observations": states[:-1],
        "actions": _actions(traj, length, act_dim).astype(np.float32),
        "rewards": rewards.reshape(-1, 1),
        "next_observations": states[1:],
        "terminals": terminals,
        "agent_infos": [{} for _ in range(length)],
        "env_infos": [{"goal_achieved": r == 0, "env_reward": r, "TimeLimit.truncated": t == length - 1}
                      for t, r in enumerate(rewards)],
    }


def save(path, trajs):
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.empty(len(trajs), dtype=object)
    arr[:] = trajs
    np.save(path, arr, allow_pickle=True)


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPO_DATA_ROOT", str(tmp_path))
    return tmp_path


def write_default(root, expert=None, bc=None):
    expert = [expert_traj(i, n) for i, n in enumerate(EXPERT_LENGTHS)] if expert is None else expert
    bc = [bc_traj(i, n) for i, n in enumerate(BC_LENGTHS)] if bc is None else bc
    save(root / "awac" / "pen2_sparse.npy", expert)
    save(root / "awac" / "pen_bc_sparse4.npy", bc)
    return root / "awac" / "pen2_sparse.npy", root / "awac" / "pen_bc_sparse4.npy"


def test_registry_entry_points_at_the_awac_archive():
    for task in ("pen", "door", "relocate"):
        entry = get_dataset(get_task(f"{task}-binary-v0").dataset)
        assert entry.format == "awac_npy"
        expert, bc = entry.files  # the loader relies on this order
        assert (expert.relpath, expert.member) == (f"awac/{task}2_sparse.npy", f"{task}2_sparse.npy")
        assert (bc.relpath, bc.member) == (f"awac/{task}_bc_sparse4.npy", f"{task}_bc_sparse4.npy")
        for f in entry.files:
            assert f.url == "https://drive.google.com/uc?export=download&id=1SsVaQKZnY5UkuR78WrInp9XxTdKHbF0x"


def test_composes_first_90_percent_of_both_files(root):
    write_default(root)
    d = load_task_dataset(SPEC)
    kept = [(0, i, n) for i, n in enumerate(EXPERT_LENGTHS[:22])] + [(1, i, n) for i, n in enumerate(BC_LENGTHS[:9])]
    total = sum(n for _, _, n in kept)
    for key in ("observations", "next_observations", "actions", "rewards", "masks", "dones"):
        assert d[key].dtype == np.float32 and len(d[key]) == total, key
    assert d["observations"].shape == (total, OBS) and d["actions"].shape == (total, ACT)

    # which trajectories, in which order, step by step
    want_ids = np.concatenate([np.tile([s, i], (n, 1)) for s, i, n in kept])
    np.testing.assert_array_equal(d["observations"][:, :2], want_ids)
    np.testing.assert_array_equal(d["next_observations"][:, :2], want_ids)
    steps = np.concatenate([np.arange(n) for _, _, n in kept])
    np.testing.assert_array_equal(d["observations"][:, 2], steps)
    np.testing.assert_array_equal(d["next_observations"][:, 2], steps + 1)
    np.testing.assert_array_equal(d["demo_ids"], want_ids[:, 1])
    np.testing.assert_array_equal(d["from_expert"], want_ids[:, 0] == 0)

    # rewards: the expert file's trailing extra entry is dropped (not the first), BC columns squeezed
    want_r = []
    for s, i, n in kept:
        r = _rewards(i, n)
        if s == 0:
            r = r.copy()
            r[0] = -1.0
        want_r.append(r)
    np.testing.assert_array_equal(d["rewards"], np.concatenate(want_r))
    assert set(np.unique(d["rewards"])) == {-1.0, 0.0}

    # no terminals (BC time-limit terminals removed), dones / starts at trajectory boundaries
    np.testing.assert_array_equal(d["masks"], 1.0)
    np.testing.assert_array_equal(d["dones"], np.concatenate([np.arange(n) == n - 1 for _, _, n in kept]))
    np.testing.assert_array_equal(d["episode_starts"], np.concatenate([np.arange(n) == 0 for _, _, n in kept]))
    assert d["episode_starts"].dtype == bool

    # actions clipped to +-(1 - 1e-5); values inside the box untouched
    assert d["actions"].max() == EPS_LIM and d["actions"].min() == -EPS_LIM
    np.testing.assert_array_equal(d["actions"][:, 1], EPS_LIM)
    np.testing.assert_array_equal(d["actions"][:, 2:], np.float32(0.5))
    np.testing.assert_array_equal(np.unique(d["actions"][:, 0]), [-EPS_LIM, 0.0, EPS_LIM])


def test_reward_transform_comes_from_the_spec(root):
    write_default(root)
    entry = get_dataset(ENTRY_KEY)
    plain = load_entry(entry, None)
    scaled = load_entry(entry, dataclasses.replace(SPEC, reward_scale=10.0, reward_shift=5.0))
    np.testing.assert_array_equal(scaled["rewards"], 10.0 * plain["rewards"] + 5.0)
    np.testing.assert_array_equal(load_entry(entry, SPEC)["rewards"], plain["rewards"])  # identity for adroit


def test_num_demos_is_refused(root):
    write_default(root)
    with pytest.raises(DatasetError, match=r"dataset.num_demos=5 was asked for.*fix: leave dataset.num_demos unset"):
        load_task_dataset(SPEC, num_demos=5)


def _set(traj_list, index, key, value):
    traj_list[index] = dict(traj_list[index])
    if value is KeyError:
        del traj_list[index][key]
    else:
        traj_list[index][key] = value


def _bad_expert_rewards(e, b):  # T rewards instead of T + 1
    _set(e, 3, "rewards", _rewards(3, EXPERT_LENGTHS[3]))


def _bc_missing_terminals(e, b):
    _set(b, 2, "terminals", KeyError)


def _bc_short_actions(e, b):
    _set(b, 1, "actions", b[1]["actions"][:-1])


def _expert_nan(e, b):
    obs = [dict(s) for s in e[0]["observations"]]
    obs[1]["state_observation"] = np.full(OBS, np.nan)
    _set(e, 0, "observations", obs)


def _dense_reward(e, b):
    r = b[0]["rewards"].copy()
    r[0] = 50.0  # a dense / "sparse 50" env reward instead of goal_achieved - 1
    _set(b, 0, "rewards", r)


def _expert_obs_arrays(e, b):
    _set(e, 0, "observations", np.zeros((EXPERT_LENGTHS[0], OBS)))


def _door_width(e, b):
    e[:] = [expert_traj(i, n, obs_dim=39, act_dim=28) for i, n in enumerate(EXPERT_LENGTHS)]
    b[:] = [bc_traj(i, n, obs_dim=39, act_dim=28) for i, n in enumerate(BC_LENGTHS)]


def _bc_other_width(e, b):
    b[:] = [bc_traj(i, n, obs_dim=OBS + 1) for i, n in enumerate(BC_LENGTHS)]


def _one_expert(e, b):
    del e[1:]


MALFORMED = [
    ("expert", _bad_expert_rewards, "trajectory 3 has ragged lengths: 3 actions but 3 rewards (expected 4)"),
    ("bc", _bc_missing_terminals, "trajectory 2 has no 'terminals'"),
    ("bc", _bc_short_actions, "trajectory 1 has ragged lengths"),
    ("expert", _expert_nan, "trajectory 0 observations contain NaN"),
    ("bc", _dense_reward, "rewards must be goal_achieved - 1"),
    ("expert", _expert_obs_arrays, "one dict per step"),
    ("expert", _door_width, "task 'pen-binary-v0' expects 45 and 24"),
    ("expert", _bc_other_width, "disagree on widths"),
    ("expert", _one_expert, "has 1 trajectories; the first 90% of them is empty"),
]


@pytest.mark.parametrize("which,mutate,message", MALFORMED, ids=[m[1].__name__ for m in MALFORMED])
def test_malformed_files_raise_one_line_dataset_error(root, which, mutate, message):
    expert = [expert_traj(i, n) for i, n in enumerate(EXPERT_LENGTHS)]
    bc = [bc_traj(i, n) for i, n in enumerate(BC_LENGTHS)]
    mutate(expert, bc)
    paths = dict(zip(("expert", "bc"), write_default(root, expert, bc)))
    with pytest.raises(DatasetError) as err:
        load_task_dataset(SPEC)
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith(f"{paths[which]}: ")
    assert message in text
    assert text.endswith("; fix: " + get_dataset(ENTRY_KEY).replace_hint())  # present: `fetch --force`


@pytest.mark.parametrize("problem", ["missing", "garbage", "numeric_array", "empty"])
def test_unreadable_files_raise_dataset_error(root, problem):
    expert_path, bc_path = write_default(root)
    if problem == "missing":
        bc_path.unlink()
        expected = "file not found"
    elif problem == "garbage":
        bc_path.write_bytes(b"<html>Google Drive virus scan warning</html>")
        expected = "not a readable .npy file"
    elif problem == "numeric_array":
        np.save(bc_path, np.zeros((3, OBS)))
        expected = "expected a 1-d object array of trajectory dicts"
    else:
        save(bc_path, [])
        expected = "contains no trajectories"
    with pytest.raises(DatasetError) as err:
        load_task_dataset(SPEC)
    text = str(err.value)
    assert text.startswith(f"{bc_path}: ") and expected in text
    # a missing file is fetched; one that is there has to be replaced (plain fetch skips it)
    force = "" if problem == "missing" else " --force"
    assert f"fix: `python -m expo.data fetch awac_pen_binary{force}`" in text
