"""The policy a finished run keeps (expo/policy_store.py) and its re-evaluation,
`python -m expo.evaluate <run_dir>` (expo/reevaluate.py): the same evaluation as the run's last one,
to the last bit, from the saved parameters alone."""
import ctypes.util
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from expo import config as config_lib, evaluate as evaluate_module, train as train_module
from expo.agents import expo
from expo.policy_store import load_policy, policy_fields, policy_state, save_policy
from expo.reevaluate import main, reevaluate
from expo.train import group_configs, train_seeds
from tests.conftest import read_rows, use_tiny_dataset
from tests.subprocess_world import ROOT, tiny_world_env
from tests.test_expo_agent import ACT, OBS, tiny_cfg
from tests.test_train import TINY, run

pytestmark = pytest.mark.usefixtures("tiny_world")

HAS_HEADLESS_GL = bool(ctypes.util.find_library("EGL") or ctypes.util.find_library("OSMesa"))
# A committed run, finished before runs kept their policy.
OLD_RUN = ROOT / "results" / "cpu4" / "lift" / "expo" / "seed_0"


def record_actions(monkeypatch, module) -> list[list[str]]:
    """Every evaluation made through `module`'s as_numpy_policy: the sha256 of each batch of
    actions, one list per evaluation."""
    evaluations = []
    real = module.as_numpy_policy

    def recording(batch_policy, agent):
        act, calls = real(batch_policy, agent), []
        evaluations.append(calls)

        def recorded(observations, keys):
            actions = act(observations, keys)
            calls.append(hashlib.sha256(np.ascontiguousarray(actions).tobytes()).hexdigest())
            return actions
        return recorded

    monkeypatch.setattr(module, "as_numpy_policy", recording)
    return evaluations


def without_wall_time(row):
    return {k: v for k, v in row.items() if k != "wall_time_s"}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One tiny run (seed 3) trained in the tiny world for the tests here, and the sha256 of the
    actions of each of its evaluations: (run directory, evaluations)."""
    with pytest.MonkeyPatch.context() as mp:
        use_tiny_dataset(mp, tmp_path_factory.getbasetemp() / "data_root", "lift_scripted", "lift",
                         horizon=15, num_demos=4)
        trained = record_actions(mp, train_module)
        run_dir = run(tmp_path_factory.mktemp("finished"), seed=3)
    return run_dir, trained


@pytest.fixture
def finished_run(finished, tmp_path):
    """A copy of that run, the test's own."""
    return Path(shutil.copytree(finished[0], tmp_path / "seed_3"))


def test_a_finished_run_keeps_its_policy_and_reevaluates_to_its_last_evaluation(finished, tmp_path,
                                                                                monkeypatch):
    run_dir, trained = finished
    run_dir = Path(shutil.copytree(run_dir, tmp_path / "adhoc" / "lift" / "expo" / "seed_3"))
    info = json.loads((run_dir / "policy" / "policy.json").read_text())
    assert info["env_step"] == 24 and info["seed"] == 3 and info["method"] == "expo"
    assert info["fields"] == sorted(expo.POLICY_FIELDS)
    assert (run_dir / "policy" / "params.msgpack").stat().st_size == info["params_bytes"] < 100_000
    assert not (run_dir / "checkpoint").exists()
    csvs = {name: (run_dir / name).read_bytes() for name in ("eval.csv", "train.csv")}

    reevaluated = record_actions(monkeypatch, evaluate_module)
    result = reevaluate(run_dir)
    assert result["matches"] is True
    last = read_rows(run_dir / "eval.csv")[-1]
    row = read_rows(run_dir / "reeval.csv")[0]
    assert row["env_step"] == "24" and row["seed"] == "3" and row["video"] == ""
    assert {k: row[k] for k in last if k != "wall_time_s"} == without_wall_time(last)
    # every action of the run's last evaluation again, bit for bit (the tiny world's sparse reward
    # alone would not tell policies apart)
    assert len(trained) == 3 and reevaluated == [trained[-1]] and len(trained[-1]) == 15

    # other episodes and seed: a second row, not compared; the run's CSVs never change
    other = reevaluate(run_dir, episodes=1, seed=4)
    assert other["matches"] is None and other["episodes"] == 1
    assert [r["seed"] for r in read_rows(run_dir / "reeval.csv")] == ["3", "4"]
    assert {name: (run_dir / name).read_bytes() for name in csvs} == csvs
    from analysis.runs import load_runs

    loaded = load_runs(tmp_path)
    assert list(loaded.data["env_step"]) == [0, 12, 24]  # reeval.csv is not an evaluation of the run

    # without its dataset file (robosuite env kwargs come from it): one line naming the fix
    monkeypatch.setenv("EXPO_DATA_ROOT", str(tmp_path / "no_data"))
    with pytest.raises(SystemExit) as e:
        main([str(run_dir)])
    assert str(e.value).startswith("error: the run's dataset is needed for its env kwargs: ")
    assert "file not found" in str(e.value) and "python -m expo.data generate lift" in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.slow  # heavy end-to-end check: make test-heavy (CI runs it)
def test_each_seed_of_a_group_keeps_its_own_policy(tmp_path, monkeypatch):
    trained = record_actions(monkeypatch, train_module)
    overrides = {**TINY, "seeds_per_process": 2, "seed": 5, "results_dir": str(tmp_path)}
    run_dirs = train_seeds(group_configs(config_lib.build_config(overrides), overrides))
    reevaluated = record_actions(monkeypatch, evaluate_module)
    for i, run_dir in enumerate(run_dirs):
        assert reevaluate(run_dir)["matches"] is True
        assert reevaluated[-1] == trained[-2 + i]  # the group evaluates seed 5, then seed 6
    assert trained[-2] != trained[-1]


def test_the_command_line_says_it_matches_and_prints_usage(finished_run, tmp_path, tmp_path_factory):
    run_dir = finished_run
    env = tiny_world_env(tmp_path_factory.getbasetemp() / "data_root")
    out = subprocess.run([sys.executable, "-m", "expo.evaluate", str(run_dir)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"re-evaluated {run_dir}: policy of env step 24, seed 3, 2 episodes: success ")
    assert lines[1].startswith("same as its last evaluation (eval.csv, env step 24: success ")
    assert lines[2] == f"wrote {run_dir / 'reeval.csv'} (row 1)"
    out = subprocess.run([sys.executable, "-m", "expo.evaluate", "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.startswith("usage: python -m expo.evaluate <run_dir>")
    out = subprocess.run([sys.executable, "-m", "expo.evaluate", str(tmp_path / "nope")], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and out.stderr == f"error: {tmp_path / 'nope'} is not a directory\n"


def one_line_error(argv) -> str:
    with pytest.raises(SystemExit) as e:
        main(argv)
    message = str(e.value)
    assert message.startswith("error: ") and "\n" not in message, message
    return message


def test_runs_that_cannot_be_reevaluated_stop_with_one_line(tmp_path):
    old = tmp_path / "old"
    shutil.copytree(OLD_RUN, old)  # a committed run: finished before policies were kept
    assert one_line_error([str(old)]) == (
        f"error: {old} has no saved policy (policy/): it finished before runs kept their final "
        f"policy; train it again to re-evaluate it")
    (old / "status.json").unlink()
    assert "has not finished" in one_line_error([str(old)])
    (old / "status.json").write_text(json.dumps({"finished": False, "failed": True, "diverged": True,
                                                 "reason": "diverged at online step 8: critic_loss = nan"}))
    assert one_line_error([str(old)]) == (
        f"error: {old} diverged (diverged at online step 8: critic_loss = nan); a diverged run "
        f"keeps no policy")
    assert one_line_error([str(tmp_path)]) == f"error: {tmp_path} is not a run directory (no config.json)"
    assert "unknown key 'episode'; valid keys: episodes, seed, video, video_episodes" in \
        one_line_error([str(old), "episode=3"])
    assert "episodes must be >= 1" in one_line_error([str(old), "episodes=0"])
    assert "video must be true or false" in one_line_error([str(old), "video=yes"])
    assert "expected one run directory, got 2" in one_line_error([str(old), str(old)])


def test_the_policy_fields_are_all_that_expos_evaluation_reads():
    """EXPO keeps only POLICY_FIELDS (expo/policy_store.py): every other leaf of the agent changed,
    the same actions; and a saved policy restored into an agent of zeros acts as the original."""
    cfg = tiny_cfg()
    agent = config_lib.build_agent(expo, 0, OBS, ACT, cfg)
    obs = jax.random.normal(jax.random.PRNGKey(1), (4, OBS))
    key = jax.random.PRNGKey(2)
    actions = np.asarray(expo.sample_actions(agent, obs, key))

    def changed(tree):
        return jax.tree_util.tree_map(lambda x: x + 1 if np.issubdtype(x.dtype, np.floating) else x ^ 1, tree)

    fields = {f: getattr(agent, f) if f in expo.POLICY_FIELDS else changed(getattr(agent, f))
              for f in ("rng", "actor", "actor_ema", "edit", "critic", "target_critic", "temp", "schedule")}
    np.testing.assert_array_equal(np.asarray(expo.sample_actions(agent.replace(**fields), obs, key)), actions)

    import tempfile
    with tempfile.TemporaryDirectory() as d:
        save_policy(Path(d), agent, {}, policy_fields(expo))
        zeros = jax.tree_util.tree_map(jnp.zeros_like, agent)
        restored = load_policy(Path(d), zeros, policy_fields(expo))
    np.testing.assert_array_equal(np.asarray(expo.sample_actions(restored, obs, key)), actions)


def test_a_mini_expo_policy_is_the_size_schema_md_states():
    """analysis/SCHEMA.md: 914,414 bytes for EXPO at mini scale on Lift (obs 19, act 7)."""
    cfg = config_lib.build_config({"task": "lift", "method": "expo", "scale": "mini"})
    agent = config_lib.build_agent(expo, 0, 19, 7, cfg["agent"])
    data = flax.serialization.msgpack_serialize(policy_state(agent, policy_fields(expo)))
    assert len(data) == 914_414
    assert "914,414 bytes" in (ROOT / "analysis" / "SCHEMA.md").read_text()


@pytest.mark.skipif(not HAS_HEADLESS_GL, reason="neither libEGL nor libOSMesa is installed: MuJoCo "
                                                "cannot render offscreen here")
def test_video_true_writes_an_mp4_of_the_evaluated_episodes(finished_run, tmp_path_factory):
    import cv2

    run_dir = finished_run
    env = tiny_world_env(tmp_path_factory.getbasetemp() / "data_root")
    env.pop("MUJOCO_GL", None)  # the command picks egl or osmesa itself
    out = subprocess.run([sys.executable, "-m", "expo.evaluate", str(run_dir), "video=true",
                          "video_episodes=2"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert f"wrote {run_dir / 'reeval_1.mp4'} (32 frames of 2 episode(s), success 0)" in out.stdout
    assert read_rows(run_dir / "reeval.csv")[0]["video"] == "reeval_1.mp4"
    video = cv2.VideoCapture(str(run_dir / "reeval_1.mp4"))
    frames = []
    while True:
        ok, frame = video.read()
        if not ok:
            break
        frames.append(frame)
    assert len(frames) == 32  # each episode: its reset and 15 steps
    assert frames[0].shape == (256, 256, 3) and frames[-1].std() > 10  # a picture, not a blank frame
