"""The Minari antmaze loader on a tiny dataset recorded here, the way Minari's D4RL/antmaze data were
(gymnasium-robotics AntMaze_Medium-v4, continuing task, D4RL's rows in order = D4RL's world mirrored)."""
import dataclasses

import gymnasium as gym
import numpy as np
import pytest

minari = pytest.importorskip("minari")

from expo.data import load_entry, load_task_dataset, registry  # noqa: E402
from expo.data.errors import DatasetError, DatasetMissing  # noqa: E402
from expo.envs import antmaze  # noqa: E402
from expo.protocol import get_task  # noqa: E402

SPEC = get_task("antmaze-medium-play-v2")
DATASET_ID = "expotest/antmaze/medium-play-v0"
STEPS = (15, 12, 10)  # three episodes; the second one ends at its (forced) goal


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """Record the dataset once (module scope) in a private MINARI_DATASETS_PATH."""
    root = tmp_path_factory.mktemp("minari")
    mp = pytest.MonkeyPatch()
    mp.setenv("MINARI_DATASETS_PATH", str(root))
    import gymnasium_robotics  # noqa: F401  registers AntMaze_*

    env = minari.DataCollector(gym.make("AntMaze_Medium-v4", continuing_task=True, reset_target=False))
    rng = np.random.default_rng(0)
    raw = {"actions": [], "achieved": [], "observation": []}
    for e, steps in enumerate(STEPS):
        obs, _ = env.reset(seed=e)
        acts, ach, ob = [], [obs["achieved_goal"]], [obs["observation"]]
        for t in range(steps):
            if e == 1 and t == steps - 1:
                env.unwrapped.goal = obs["achieved_goal"].copy()  # the ant barely moves in one step
            a = rng.uniform(-1, 1, 8).astype(np.float32)
            a[0] = 1.0  # at the bound: the loader clips to 1 - 1e-5
            obs, *_ = env.step(a)
            acts.append(a), ach.append(obs["achieved_goal"]), ob.append(obs["observation"])
        raw["actions"].append(np.array(acts)), raw["achieved"].append(np.array(ach)), raw["observation"].append(np.array(ob))
    env.create_dataset(dataset_id=DATASET_ID, algorithm_name="random", author="test", author_email="t@t",
                       code_permalink="none", description="expo test data", eval_env="AntMaze_Medium-v4")
    yield raw, root
    mp.undo()


def entry(**options):
    base = registry.get_dataset("minari_antmaze_medium_play")
    return dataclasses.replace(base, options={**base.options, "dataset_id": DATASET_ID, **options})


def test_registry_entries():
    for m in ("medium", "large"):
        for k in ("play", "diverse"):
            e = registry.get_dataset(f"minari_antmaze_{m}_{k}")
            assert e.format == "minari" and e.files == () and e.options["dataset_id"] == f"D4RL/antmaze/{m}-{k}-v1"


def test_loads_and_converts_to_the_d4rl_frame(recorded, monkeypatch):
    recorded, root = recorded
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    d = load_entry(entry(), SPEC)
    n = sum(STEPS)
    assert {k: v.shape for k, v in d.items()} == {
        "observations": (n, 29), "next_observations": (n, 29), "actions": (n, 8), "rewards": (n,),
        "masks": (n,), "dones": (n,), "episode_starts": (n,)}
    assert d["episode_starts"].sum() == len(STEPS)
    # Observations: exactly the mirror conversion of the recorded Minari observations.
    ach, ob = np.concatenate(recorded["achieved"]), np.concatenate(recorded["observation"])
    bounds = np.cumsum((0,) + tuple(s + 1 for s in STEPS))
    expect = np.concatenate([antmaze.minari_obs_to_d4rl(ach[a:b], ob[a:b], "medium")[:-1] for a, b in zip(bounds[:-1], bounds[1:])])
    np.testing.assert_allclose(d["observations"], expect, atol=1e-5)
    # Every converted position lies in a free cell of D4RL's medium map (D4RL: cell (i, j) is centred
    # at (4j - 4, 4i - 4)); a translation without the mirror would put the ant inside walls.
    walls = antmaze.wall_map("medium")
    for x, y in d["observations"][:, :2]:
        assert walls[round(y / 4 + 1), round(x / 4 + 1)] == 0, (x, y)
    # s' of step t is s of step t + 1 inside an episode.
    same_ep = ~d["episode_starts"][1:]
    np.testing.assert_array_equal(d["next_observations"][:-1][same_ep], d["observations"][1:][same_ep])
    # Actions: mirrored motor order and signs, clipped to +-(1 - 1e-5).
    acts = np.concatenate(recorded["actions"])
    np.testing.assert_allclose(d["actions"], np.clip(antmaze.mirror_ant_action(acts), -(1 - 1e-5), 1 - 1e-5), atol=1e-6)
    assert np.abs(d["actions"]).max() == pytest.approx(1 - 1e-5)
    # Reward: only the forced goal step succeeds -> r - 1 = 0 there, mask 0, done.
    goal_step = STEPS[0] + STEPS[1] - 1
    assert np.flatnonzero(d["rewards"] == 0).tolist() == [goal_step]
    assert set(d["rewards"].tolist()) == {-1.0, 0.0}
    assert np.flatnonzero(d["masks"] == 0).tolist() == [goal_step]
    assert np.flatnonzero(d["dones"]).tolist() == [STEPS[0] - 1, goal_step, n - 1]


def test_errors_are_one_line(recorded, monkeypatch, tmp_path):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(recorded[1]))
    with pytest.raises(DatasetError, match="used whole"):
        load_entry(entry(), SPEC, num_demos=3)
    # The wrong maze for the data: its map matches neither orientation of D4RL's large walls.
    with pytest.raises(DatasetError, match="neither D4RL's large walls") as e:
        load_entry(entry(), get_task("antmaze-large-play-v2"))
    assert "\n" not in str(e.value) and "minari download" in str(e.value)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "empty"))
    # Not downloaded: the fix downloads it (no --force needed), and looking creates no store folder.
    with pytest.raises(DatasetMissing, match=r"not downloaded; fix: `python -m expo.data fetch minari_antmaze_medium_play`"):
        load_entry(entry(), SPEC)
    assert not (tmp_path / "empty").exists()


def test_frame_detection():
    assert antmaze.wall_map("large").shape == (9, 12)
    from expo.data.minari_datasets import frame_of

    assert frame_of(antmaze.wall_map("medium").tolist(), "medium") == "mirrored"
    assert frame_of(antmaze.gymnasium_map("medium"), "medium") == "suite"
    with pytest.raises(ValueError):
        frame_of(antmaze.gymnasium_map("medium"), "large")
