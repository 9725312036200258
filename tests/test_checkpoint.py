"""Checkpoint and resume (expo/checkpoint.py, expo/train.py): a run interrupted at any point and
started again writes the same CSVs as an uninterrupted run with the same seed."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from baselines import calql
from expo import buffers, config as config_lib
from expo.agents import expo as expo_agent
from expo.checkpoint import CheckpointError, LoopState, RunCheckpointer
from expo.train import main as train_main, train
from tests.conftest import read_rows, trees_equal
from tests.subprocess_world import tiny_world_env
from tests.test_train import TINY

ROOT = Path(__file__).resolve().parents[1]
# A checkpoint at every chance, so that every interruption below has one to resume from.
CKPT = {**TINY, "checkpoint_interval_s": 0}
# The uninterrupted references need none (a checkpoint costs ~0.2 s and changes nothing computed).
NO_CKPT = {"checkpoint_interval_s": 3600}
# Cal-QL at the sizes of tests/test_calql.py
CALQL = {key: value for key, value in CKPT.items() if not key.startswith("agent.")}
CALQL.update({"pretrain_steps": 20, "pretrain_chunk": 10, "agent.hidden_dims": (16, 16),
              "agent.cql_n_actions": 2, "agent.utd": 1, "agent.batch_size": 8})

pytestmark = pytest.mark.usefixtures("tiny_world")


class Interrupted(Exception):
    """Stands for a pre-emption: raised from inside the loop, it ends train() at that point."""


def fail_on_call(monkeypatch, owner, name, call):
    """Make owner.name raise Interrupted on its call-th call (counting from 1)."""
    original, calls = getattr(owner, name), []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise Interrupted(f"{name} call {call}")
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)


def build(tmp_path, base=CKPT, **overrides):
    return config_lib.build_config({**base, **overrides, "results_dir": str(tmp_path)})


def comparable(run_dir):
    """eval.csv without its wall-clock column, train.csv byte for byte."""
    evals = [{k: v for k, v in r.items() if k != "wall_time_s"} for r in read_rows(run_dir / "eval.csv")]
    return evals, (run_dir / "train.csv").read_bytes()


def status(run_dir):
    return json.loads((run_dir / "status.json").read_text())


@pytest.mark.slow  # heavy end-to-end check: make test-heavy (CI runs it)
def test_interrupted_in_pretraining_and_online_gives_the_uninterrupted_csvs(tmp_path, monkeypatch, capsys):
    overrides = {"seed": 4, "pretrain_steps": 60}
    reference = train(build(tmp_path / "a", **overrides, **NO_CKPT))

    cfg = build(tmp_path / "b", **overrides)
    with monkeypatch.context() as m:  # pre-empted during the third pretraining chunk
        fail_on_call(m, expo_agent, "pretrain_update", 3)
        with pytest.raises(Interrupted):
            train(cfg)
    run_dir = tmp_path / "b" / reference.relative_to(tmp_path / "a")
    assert (run_dir / "checkpoint").is_dir() and not (run_dir / "status.json").exists()
    assert [r["step"] for r in read_rows(run_dir / "train.csv")] == ["20", "40"]
    capsys.readouterr()
    with monkeypatch.context() as m:  # resumed, then pre-empted at online step 20, mid-episode
        fail_on_call(m, expo_agent, "update", 20)
        with pytest.raises(Interrupted):
            train(cfg)
    assert f"resuming {run_dir} from its checkpoint at pretraining step 40" in capsys.readouterr().err
    # the interrupted attempt logged rows the resumed one truncates and writes again
    assert [r["env_step"] for r in read_rows(run_dir / "eval.csv")] == ["0", "12"]
    train(cfg)
    assert f"resuming {run_dir} from its checkpoint at online step" in capsys.readouterr().err

    assert comparable(run_dir) == comparable(reference)
    assert status(run_dir)["finished"] is True and status(run_dir)["resumes"] == 2
    assert status(reference)["resumes"] == 0
    assert not (run_dir / "checkpoint").exists() and not (reference / "checkpoint").exists()


@pytest.mark.slow  # heavy end-to-end check: make test-heavy (CI runs it)
def test_fig8_run_without_offline_data_warm_starts_and_resumes_exactly(tmp_path, monkeypatch, capsys):
    """Cal-QL pretraining + SAC fine-tuning with no offline data kept (Fig. 8): mc_returns (an
    extra buffer field) and the warm-start episodes must come back from the checkpoint."""
    overrides = {"base": CALQL, "method": "calql_sac", "keep_offline_data": False, "seed": 2}
    sampled_from = []

    def recording_sample_stacked(rng, stores, num_batches):
        sampled_from.append(tuple(type(store) for store, _ in stores))
        return original_sample_stacked(rng, stores, num_batches)

    original_sample_stacked = buffers.sample_stacked
    with monkeypatch.context() as m:
        m.setattr(buffers, "sample_stacked", recording_sample_stacked)
        reference = train(build(tmp_path / "a", **overrides, **NO_CKPT))
    # pretraining: 2 chunks from the offline store; then 24 online updates from the online buffer only
    assert sampled_from == [(buffers.TransitionStore,)] * 2 + [(buffers.ReplayBuffer,)] * 24
    train_rows = read_rows(reference / "train.csv")
    warm = [r for r in train_rows if r["phase"] == "warm_start"]
    assert len(warm) == 1 and int(warm[0]["episodes"]) == 3  # dataset.num_demos=3 demos
    assert 3 <= int(warm[0]["warm_start_env_steps"]) <= 3 * 15 and warm[0]["env_step"] == "0"
    assert [r["phase"] for r in train_rows] == ["pretrain"] * 2 + ["warm_start"] + ["online"] * 3

    cfg = build(tmp_path / "b", **overrides)
    with monkeypatch.context() as m:
        fail_on_call(m, calql, "update", 22)
        with pytest.raises(Interrupted):
            train(cfg)
    run_dir = tmp_path / "b" / reference.relative_to(tmp_path / "a")
    capsys.readouterr()
    train(cfg)
    # from the online phase: the warm-start episodes come from the checkpoint, not a new rollout
    assert f"resuming {run_dir} from its checkpoint at online step" in capsys.readouterr().err
    assert comparable(run_dir) == comparable(reference)
    assert status(run_dir)["resumes"] == 1


# ------------------------------------------------------------------ the checkpointer on its own

def small_state(seed):
    cfg = build("unused")
    agent = expo_agent.create(seed, 19, 7, cfg["agent"])
    online = buffers.ReplayBuffer(19, 7, capacity=10, extra={"mc_returns": -np.inf})
    data_rng = np.random.default_rng(seed)
    for _ in range(4):
        online.add(data_rng.normal(size=19), data_rng.normal(size=7), 1.0, data_rng.normal(size=19), 1.0)
    online.write_recent("mc_returns", [3.0, 2.0])
    rngs = {"sampler": np.random.default_rng([seed, 1]), "random_actions": np.random.default_rng([seed, 2])}
    return cfg, agent, online, rngs


def test_checkpointer_restores_agent_buffer_rngs_and_loop(tmp_path):
    cfg, agent, online, rngs = small_state(0)
    saver = RunCheckpointer(tmp_path, cfg)
    assert not saver.complete()
    loop = LoopState(phase="online", online_step=7, episode=2, ep_returns=[0.1, 1 / 3],
                     last_eval={"env_step": 0, "success": 0.5})
    position = {"eval.csv": {"rows": 1, "columns": ["env_step"]}}
    saver.save(agent, loop, online, rngs, position)
    rngs["sampler"].random(5)  # progress made after the checkpoint is lost

    _, template, fresh_online, fresh_rngs = small_state(1)  # another seed: every value differs
    loader = RunCheckpointer(tmp_path, cfg)
    assert loader.complete()
    restored, restored_loop, restored_position = loader.restore(template, fresh_online, fresh_rngs)
    assert type(restored) is type(agent) and trees_equal(restored, agent)
    assert [x.dtype for x in jax.tree_util.tree_leaves(restored)] == \
        [x.dtype for x in jax.tree_util.tree_leaves(agent)]
    assert restored_loop == loop and restored_position == position
    for f in online.fields:
        np.testing.assert_array_equal(fresh_online.data[f], online.data[f])
    assert (fresh_online.size, fresh_online._next) == (4, 4)
    _, _, _, replay = small_state(0)
    assert fresh_rngs["sampler"].random() == replay["sampler"].random()
    loader.discard()
    assert not (tmp_path / "checkpoint").exists()


def test_checkpointer_keeps_one_checkpoint_and_saves_an_empty_buffer(tmp_path):
    cfg, agent, _, rngs = small_state(0)
    empty = buffers.ReplayBuffer(19, 7, capacity=10)
    saver = RunCheckpointer(tmp_path, cfg)
    for step in range(3):
        saver.save(agent, LoopState(pretrain_steps_done=step), empty, rngs, {})
    assert [p.name for p in (tmp_path / "checkpoint").iterdir() if p.name.isdigit()] == ["2"]
    restored = RunCheckpointer(tmp_path, cfg).restore(agent, buffers.ReplayBuffer(19, 7, capacity=10), rngs)
    assert restored[1].pretrain_steps_done == 2


def damage_arrays(step_dir):
    for path in (step_dir / "agent").rglob("*"):
        if path.is_file() and path.stat().st_size > 64:
            path.write_bytes(b"\0" * 16)


def damage_state(step_dir):
    (step_dir / "state" / "metadata").write_text("{not json")


def test_changed_settings_fail_in_one_line_naming_the_fix(tmp_path):
    cfg, agent, online, rngs = small_state(0)
    RunCheckpointer(tmp_path, cfg).save(agent, LoopState(), online, rngs, {})
    other = config_lib.build_config({**CKPT, "agent.N": 3, "results_dir": "elsewhere",
                                     "checkpoint_interval_s": 60, "progress": True})
    with pytest.raises(CheckpointError) as e:
        RunCheckpointer(tmp_path, other).restore(agent, online, rngs)
    message = str(e.value)
    assert "(changed: agent.N)" in message and f"delete {tmp_path / 'checkpoint'}" in message
    assert "\n" not in message


@pytest.mark.parametrize("damage", [damage_arrays, damage_state])
def test_a_corrupt_checkpoint_fails_in_one_line_naming_the_fix(tmp_path, damage):
    cfg, agent, online, rngs = small_state(0)
    RunCheckpointer(tmp_path, cfg).save(agent, LoopState(), online, rngs, {})
    ckpt = tmp_path / "checkpoint"
    damage(ckpt / "0")
    with pytest.raises(CheckpointError) as e:
        RunCheckpointer(tmp_path, cfg).restore(agent, online, rngs)
    message = str(e.value)
    assert message.startswith(f"checkpoint {ckpt} cannot be resumed (")
    assert message.endswith(f"; delete {ckpt} to restart the run from the beginning")
    assert "\n" not in message


def test_train_stops_on_a_corrupt_checkpoint_and_main_says_how_to_fix_it(tmp_path, capsys, monkeypatch):
    cfg = build(tmp_path, steps=0)
    run_dir = Path(tmp_path) / "adhoc" / "lift" / "expo" / "seed_0"
    (run_dir / "checkpoint" / "0").mkdir(parents=True)  # a complete-looking step with nothing in it
    with pytest.raises(CheckpointError, match="cannot be resumed"):
        train(cfg)
    args = [f"{k}={v}" for k, v in {**CKPT, "steps": 0, "results_dir": tmp_path}.items()]
    with pytest.raises(SystemExit) as e:
        train_main([a.replace(" ", "") for a in args])
    assert str(e.value).startswith(f"error: checkpoint {run_dir / 'checkpoint'} cannot be resumed")
    assert "to restart the run from the beginning" in str(e.value)


def test_an_unfinished_first_save_is_a_fresh_start_and_stale_csvs_go(tmp_path):
    cfg = build(tmp_path, steps=0, pretrain_steps=20)
    run_dir = Path(tmp_path) / "adhoc" / "lift" / "expo" / "seed_0"
    (run_dir / "checkpoint" / "0.orbax-checkpoint-tmp-123").mkdir(parents=True)
    (run_dir / "eval.csv").write_text("env_step,success\n999,1\n999,1\n")  # a run that died early
    train(cfg)
    assert [r["env_step"] for r in read_rows(run_dir / "eval.csv")] == ["0"]
    assert status(run_dir)["resumes"] == 0 and not (run_dir / "checkpoint").exists()


# ------------------------------------------------------------------ a real kill of a real process

def start_run(env, overrides, log_path):
    """`python -m expo.train` in a new process; its output goes to log_path (a pipe that nobody
    reads while the run goes on could fill up and stall it)."""
    args = [f"{k}={str(v).replace(' ', '')}" for k, v in overrides.items()]
    with open(log_path, "w") as log:
        return subprocess.Popen([sys.executable, "-m", "expo.train", *args], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_to_the_same_csvs(tmp_path, tmp_path_factory):
    overrides = {**CKPT, "seed": 5, "steps": 60}
    reference = train(config_lib.build_config({**overrides, **NO_CKPT, "results_dir": str(tmp_path / "a")}))

    # the processes train in the same tiny world (tests/tiny_world_site), on the same data file
    env = tiny_world_env(tmp_path_factory.getbasetemp() / "data_root")
    overrides["results_dir"] = tmp_path / "b"
    run_dir = tmp_path / "b" / reference.relative_to(tmp_path / "a")
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    proc = start_run(env, overrides, first_log)
    # Kill once the online phase is well under way (evaluations at env steps 0, 12 and 24 written).
    while proc.poll() is None:
        if (run_dir / "eval.csv").is_file() and len(read_rows(run_dir / "eval.csv")) >= 3:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, first_log.read_text()
    assert (run_dir / "checkpoint").is_dir() and not (run_dir / "status.json").exists()

    proc = start_run(env, overrides, second_log)
    assert proc.wait() == 0, second_log.read_text()
    assert f"resuming {run_dir} from its checkpoint at online step" in second_log.read_text()
    assert comparable(run_dir) == comparable(reference)
    assert status(run_dir)["finished"] is True and status(run_dir)["resumes"] == 1
