"""Several seeds in one process (seeds_per_process=k, expo/seed_group.py): one vmapped update for k
agents, each seed still writing its own run directory, deterministic and exactly resumable."""
import json

import jax
import numpy as np
import pytest

from baselines import rlpd
from expo import buffers, config as config_lib
from expo.agents import expo as expo_agent
from expo.bench import ACT_DIM, OBS_DIM, random_batch
from expo.checkpoint import CheckpointError, RunCheckpointer
from expo.envs import make_env
from expo.episodes import EpisodeWriter, replay_unfinished_episode
from expo.protocol import get_task
from expo.seed_group import SeedGroup
from expo.train import group_configs, train, train_seeds
from tests.conftest import read_rows
from tests.test_checkpoint import CKPT, Interrupted, comparable
from tests.test_train import TINY

pytestmark = pytest.mark.usefixtures("tiny_world")


def group_run(results_dir, base=TINY, **overrides):
    overrides = {**base, "seed": 3, "seeds_per_process": 2, **overrides, "results_dir": str(results_dir)}
    return train_seeds(group_configs(config_lib.build_config(overrides), overrides))


def numeric_rows(path):
    """A CSV's cells as floats (text and empty cells as nan) without its wall-clock column, for
    comparisons up to float rounding."""
    def number(text):
        try:
            return float(text)
        except ValueError:
            return np.nan

    return np.array([[number(v) for k, v in row.items() if k != "wall_time_s"] for row in read_rows(path)])


@pytest.mark.slow  # heavy end-to-end check: make test-heavy (CI runs it)
def test_each_seed_of_a_group_computes_its_own_run_and_the_group_resumes_exactly(
        tmp_path, monkeypatch, capsys):
    group = group_run(tmp_path / "uninterrupted")  # no checkpoints: they change nothing computed
    assert [d.name for d in group] == ["seed_3", "seed_4"]
    for seed, run_dir in zip((3, 4), group):
        config = json.loads((run_dir / "config.json").read_text())
        assert config["seed"] == seed and config["seeds_per_process"] == 2
        status = json.loads((run_dir / "status.json").read_text())
        assert status["finished"] and status["seeds_in_process"] == 2
        assert status["compilations"]["update"] == 1  # one vmapped update for both seeds
        assert [r["env_step"] for r in read_rows(run_dir / "eval.csv")] == ["0", "12", "24"]

    # The second seed trained alone computes the same thing: equal up to float rounding (here, on this
    # CPU at this size, the CSVs agree to the 6 digits they are written with).
    alone = train(config_lib.build_config({**TINY, "seed": 4, "results_dir": str(tmp_path / "alone")}))
    for name in ("train.csv", "eval.csv"):
        np.testing.assert_allclose(numeric_rows(group[1] / name), numeric_rows(alone / name),
                                   rtol=1e-4, atol=1e-6)
    # the two seeds are different runs
    assert (group[0] / "train.csv").read_text() != (group[1] / "train.csv").read_text()

    # killed after seed 3 saved its checkpoint of step 12 and before seed 4 saved its own: seed 3's is
    # newer than any of seed 4's, and the group goes back to the step both have (11)
    with monkeypatch.context() as m:
        original = RunCheckpointer.save

        def save_then_fail(self, *args):
            if args[1].online_step == 12 and self.directory.parent.name == "seed_4":
                raise Interrupted("between the two seeds' saves")
            return original(self, *args)

        m.setattr(RunCheckpointer, "save", save_then_fail)
        with pytest.raises(Interrupted):
            group_run(tmp_path / "interrupted", base=CKPT)
    seed_3 = RunCheckpointer(tmp_path / "interrupted/adhoc/lift/expo/seed_3", {"checkpoint_interval_s": 0}, keep=2)
    seed_4 = RunCheckpointer(tmp_path / "interrupted/adhoc/lift/expo/seed_4", {"checkpoint_interval_s": 0}, keep=2)
    assert seed_3.steps()[-1] == seed_4.steps()[-1] + 1
    capsys.readouterr()
    resumed = group_run(tmp_path / "interrupted", base=CKPT)
    err = capsys.readouterr().err
    assert err.count("from its checkpoint at online step 11") == 2  # both seeds
    # the same CSVs as the uninterrupted group: deterministic, and resumed exactly
    assert [comparable(d) for d in resumed] == [comparable(d) for d in group]
    assert all(json.loads((d / "status.json").read_text())["resumes"] == 1 for d in resumed)
    assert not any((d / "checkpoint").exists() for d in resumed)


def test_a_resumed_episode_is_replayed_and_a_simulator_that_differs_is_refused():
    spec = get_task("lift")
    env = make_env(spec, seed=0)
    online = buffers.ReplayBuffer(spec.obs_dim, spec.act_dim, capacity=20)
    writer = EpisodeWriter(online, spec, expo_agent, {})
    rng = np.random.default_rng(0)
    online.add(np.zeros(spec.obs_dim), np.zeros(spec.act_dim), 0.0, np.zeros(spec.obs_dim), 1.0)  # older
    obs, _ = env.reset(seed=11)
    for _ in range(5):
        action = rng.uniform(-1, 1, spec.act_dim).astype(np.float32)
        next_obs, reward, terminated, _, _ = env.step(action)
        writer.add(obs, action, reward, next_obs, terminated)
        obs = next_obs
    rewards, env_return = list(writer.rewards), writer.env_return

    replayer = EpisodeWriter(online, spec, expo_agent, {})
    fresh = make_env(spec, seed=0)
    replayed = replay_unfinished_episode(fresh, replayer, online, reset_seed=11, steps=5)
    np.testing.assert_array_equal(replayed, obs)
    assert replayer.rewards == rewards and replayer.env_return == env_return
    assert online.size == 6  # replaying writes nothing

    online.data["observations"][3, 0] += 1e-6
    with pytest.raises(CheckpointError, match="not deterministic"):
        replay_unfinished_episode(make_env(spec, seed=0), EpisodeWriter(online, spec, expo_agent, {}),
                                  online, reset_seed=11, steps=5)


def test_the_vmapped_update_and_acting_are_each_seeds_own():
    """Unit check on RLPD (EXPO's is the training-run comparison above)."""
    module = rlpd
    agent_cfg = {**module.get_config(), "hidden_dims": (8, 8), "num_qs": 3, "num_min_qs": 2, "utd": 2,
                 "batch_size": 4}
    module.resolve_config(agent_cfg, get_task("lift"), "offline_to_online")
    group = SeedGroup(module, 2)
    agents = [config_lib.build_agent(module, seed, OBS_DIM, ACT_DIM, agent_cfg) for seed in (5, 6)]
    rng = np.random.default_rng(0)
    batches = [random_batch(rng, agent_cfg["utd"], agent_cfg["batch_size"]) for _ in agents]
    stacked, info = group.update(group.stack(agents), batches)
    infos = group.infos(info)
    for i, (agent, batch) in enumerate(zip(agents, batches)):
        alone, alone_info = module.update(agent, batch)
        for together, by_itself in zip(jax.tree_util.tree_leaves(group.lane(stacked, i)),
                                       jax.tree_util.tree_leaves(alone)):
            np.testing.assert_allclose(together, by_itself, rtol=1e-5, atol=1e-6)
        assert infos[i] == pytest.approx({k: float(v) for k, v in alone_info.items()}, rel=1e-4, abs=1e-6)

    observations = [rng.normal(size=OBS_DIM).astype(np.float32) for _ in agents]
    keys = [jax.random.PRNGKey(7), jax.random.PRNGKey(8)]
    actions = group.act(group.stack(agents), observations, keys, step=9)
    for agent, obs, key, action in zip(agents, observations, keys, actions):
        alone = module.sample_actions(agent, obs[None], jax.random.fold_in(key, 9))[0]
        np.testing.assert_allclose(action, alone, rtol=1e-5, atol=1e-6)
        assert action.shape == (ACT_DIM,)


def test_group_settings_are_checked(tmp_path, capsys):
    with pytest.raises(config_lib.ConfigError, match="seeds_per_process must be >= 1"):
        config_lib.build_config({"seeds_per_process": 0})
    a = config_lib.build_config({**TINY, "seed": 0, "seeds_per_process": 2})
    b = config_lib.build_config({**TINY, "seed": 1, "seeds_per_process": 2, "agent.N": 3})
    with pytest.raises(ValueError, match="differ only in their seed"):
        train_seeds([a, b])
    with pytest.raises(ValueError, match="3 configs for seeds_per_process=2"):
        train_seeds([a, b, b])
    with pytest.raises(ValueError, match="distinct seeds"):
        train_seeds([a, a])
    # seeds_per_process=3 from seed 5 trains seeds 5, 6, 7, each with the settings its own run derives
    cfgs = group_configs(config_lib.build_config({**TINY, "seed": 5, "seeds_per_process": 3}),
                         {**TINY, "seed": 5, "seeds_per_process": 3})
    assert [(c["seed"], c["dataset"]["seed"]) for c in cfgs] == [(5, 5), (6, 6), (7, 7)]
