"""A run that diverges stops and says so (expo/divergence.py): no non-finite value reaches an
environment, a checkpoint, a CSV or a figure; a finite run is unchanged."""
import json
import math
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from expo import config as config_lib, divergence
from tests.conftest import read_rows
from tests.subprocess_world import ROOT, tiny_keys as tiny_cli_keys, tiny_world_env
from tests.test_train import TINY

# EXPO (diverges in imitation) and RLPD (online only) in the default suite; every other baseline
# behind make test-heavy, which CI runs too.
METHODS = ["expo", "rlpd"] + [pytest.param(m, marks=pytest.mark.slow)
                              for m in ("idql", "calql", "dac", "dipo", "qsm", "parl")]


def tiny_keys(method: str, **changes) -> dict:
    """TINY with the agent sizes this method has, and `changes`."""
    known = config_lib.agent_module(method).get_config()
    keys = {k: v for k, v in TINY.items() if not k.startswith("agent.") or k[6:] in known}
    return {**keys, "method": method, **changes}


def poison_seed_after_update(monkeypatch, seed_index: int, update: int) -> None:
    """Make SeedGroup.update set every float of the seed_index-th seed's agent to nan right after
    its update-th call: one seed of a group diverges, the others must not notice."""
    from expo.seed_group import SeedGroup

    real_update, calls = SeedGroup.update, []

    def poisoned_update(self, agent, batches):
        agent, info = real_update(self, agent, batches)
        calls.append(1)
        if len(calls) == update:
            agent = jax.tree_util.tree_map(
                lambda x: x.at[seed_index].set(np.nan) if jnp.issubdtype(x.dtype, jnp.floating) else x,
                agent)
        return agent, info

    monkeypatch.setattr(SeedGroup, "update", poisoned_update)


def test_first_non_finite_names_the_first_bad_value_of_a_row():
    assert divergence.first_non_finite({"critic_loss": 1.0, "q_max": 2.0}) is None
    row = {"actor_loss": 0.5, "critic_loss": math.nan, "q_max": math.inf}
    assert divergence.first_non_finite(row) == "critic_loss = nan"


def test_non_finite_parameters_are_found_per_seed_and_named_by_path():
    agent = {"critic": {"kernel": jnp.ones((3, 2)), "bias": jnp.array([1.0, np.nan])},
             "step": jnp.array(3, jnp.int32), "key": jnp.zeros(2, jnp.uint32), "alpha": jnp.float32(1)}
    assert divergence.first_non_finite_parameters(agent, 1) == [
        "parameter ['critic']['bias'] is not finite"]
    stacked = {"w": jnp.ones((2, 4, 3)), "log_alpha": jnp.array([0.0, -np.inf])}  # two seeds
    assert divergence.first_non_finite_parameters(stacked, 2) == [
        None, "parameter ['log_alpha'] is not finite"]


def test_a_non_finite_action_is_refused():
    assert divergence.check_actions(np.zeros(3), "action").shape == (3,)
    with pytest.raises(divergence.NonFiniteAction, match="action = nan"):
        divergence.check_actions(np.array([0.1, np.nan, np.inf]), "action")


@pytest.mark.usefixtures("tiny_world")
@pytest.mark.parametrize("method", METHODS)
def test_a_diverging_run_stops_with_one_line_and_its_status(tmp_path, method):
    cfg = config_lib.build_config({**tiny_keys(method, start_training=8), "results_dir": str(tmp_path),
                                   "agent.actor_lr": 1e15, "agent.critic_lr": 1e15})
    from expo.train import train
    with pytest.raises(divergence.Diverged) as raised:
        train(cfg)
    [line] = raised.value.lines
    run_dir = tmp_path / "adhoc" / "lift" / method / "seed_0"
    assert line.startswith(f"{run_dir} diverged at "), line
    status = json.loads((run_dir / "status.json").read_text())
    assert status["diverged"] and status["failed"] and not status["finished"]
    assert line.endswith(status["reason"])
    assert not (run_dir / "policy").exists()  # only a finished run keeps its policy
    for name in ("train.csv", "eval.csv"):  # whatever was written before is finite
        if (run_dir / name).exists():
            for row in read_rows(run_dir / name):
                assert all(math.isfinite(float(v)) for k, v in row.items() if v and k != "phase")
    print(method, line)


def _restored_checkpoint(run_dir, cfg):
    """The agent and loop state of the run's newest checkpoint."""
    from expo import buffers, protocol
    from expo.checkpoint import RunCheckpointer
    from expo.seeding import numpy_rng
    spec = protocol.get_task(cfg["task"])
    module = config_lib.agent_module(cfg["method"])
    template = config_lib.build_agent(module, cfg["seed"], spec.obs_dim, spec.act_dim, cfg["agent"])
    online = buffers.ReplayBuffer(spec.obs_dim, spec.act_dim, capacity=cfg["steps"])
    rngs = {"sampler": numpy_rng(0, "sampler"), "random_actions": numpy_rng(0, "random_actions")}
    agent, loop, _ = RunCheckpointer(run_dir, cfg).restore(template, online, rngs)
    return agent, loop


@pytest.mark.usefixtures("tiny_world")
def test_no_checkpoint_is_non_finite_and_a_relaunch_is_refused_unless_retried(tmp_path, capsys):
    """The imitation phase stays finite, the critic diverges from the first online update, and a
    checkpoint is due after every step: none of them is saved once the parameters are not finite.
    The same settings are then refused; retry_diverged=true resumes from the last finite checkpoint
    (and, the run being deterministic, diverges again in the same way); new settings start over."""
    from expo.train import train
    keys = {**TINY, "results_dir": str(tmp_path), "checkpoint_interval_s": 0.0}
    cfg = config_lib.build_config({**keys, "agent.critic_lr": 1e15})
    run_dir = tmp_path / "adhoc" / "lift" / "expo" / "seed_0"
    (run_dir / "policy").mkdir(parents=True)  # left by an earlier run: never taken for this one's
    with pytest.raises(divergence.Diverged):
        train(cfg)
    assert not (run_dir / "policy").exists()
    status = json.loads((run_dir / "status.json").read_text())
    assert status["where"].startswith("online step") and status["last_checkpoint"].startswith("online step")
    agent, loop = _restored_checkpoint(run_dir, cfg)
    assert divergence.first_non_finite_parameters(agent, 1) == [None]
    assert f"online step {loop.online_step}" == status["last_checkpoint"]
    assert loop.online_step < int(status["where"].split()[-1])
    eval_before = (run_dir / "eval.csv").read_text()

    with pytest.raises(divergence.Diverged, match="before and is not run again with the same settings"):
        train(cfg)
    assert json.loads((run_dir / "status.json").read_text()) == status  # nothing was touched

    capsys.readouterr()
    with pytest.raises(divergence.Diverged) as again:
        train(config_lib.build_config({**keys, "agent.critic_lr": 1e15, "retry_diverged": True}))
    assert f"from its checkpoint at {status['last_checkpoint']}" in capsys.readouterr().err
    assert again.value.lines == [f"{run_dir} {status['reason']}"]
    assert (run_dir / "eval.csv").read_text() == eval_before

    train(config_lib.build_config(keys))  # a corrected setting: from the beginning, to the end
    assert json.loads((run_dir / "status.json").read_text())["finished"] is True
    assert json.loads((run_dir / "policy" / "policy.json").read_text())["env_step"] == 24
    assert [int(r["env_step"]) for r in read_rows(run_dir / "eval.csv")] == [0, 12, 24]


@pytest.mark.slow  # two seed-group runs: make test-heavy (CI runs it)
@pytest.mark.usefixtures("tiny_world")
def test_one_diverging_seed_of_a_group_stops_alone(tmp_path, monkeypatch):
    """seeds_per_process=2 with seed 1's parameters made non-finite after the 10th online update:
    seed 1 stops with its line and status; seed 0 finishes with the CSVs it writes without it."""
    from expo.train import group_configs, train_seeds

    def run(results_dir):
        keys = {**TINY, "seeds_per_process": 2, "results_dir": str(results_dir)}
        return train_seeds(group_configs(config_lib.build_config(keys), keys))

    clean = run(tmp_path / "clean")
    poison_seed_after_update(monkeypatch, seed_index=1, update=10)
    with pytest.raises(divergence.Diverged) as raised:
        run(tmp_path / "poisoned")
    seed0, seed1 = (tmp_path / "poisoned" / "adhoc" / "lift" / "expo" / f"seed_{s}" for s in (0, 1))
    [line] = raised.value.lines
    # poisoned after online step 10: its next action (step 11) or train.csv row (step 16) says so
    assert re.match(rf"{re.escape(str(seed1))} diverged at online step 1[1-6]: ", line), line
    assert json.loads((seed1 / "status.json").read_text())["diverged"]
    assert json.loads((seed0 / "status.json").read_text())["finished"]
    assert not (seed0 / "checkpoint").exists() and (seed1 / "checkpoint").exists()
    assert (seed0 / "policy").is_dir() and not (seed1 / "policy").exists()
    strip = lambda path: [{k: v for k, v in r.items() if k != "wall_time_s"} for r in read_rows(path)]
    for name in ("eval.csv", "train.csv"):
        assert strip(seed0 / name) == strip(clean[0] / name)
        assert len(read_rows(seed1 / name)) < len(read_rows(clean[1] / name))


def test_the_command_line_stops_with_one_line_and_a_non_zero_exit(tmp_path, tmp_path_factory):
    """The issue's case: huge learning rates exit 1 with one line, and write no CSV row at all."""
    env = tiny_world_env(tmp_path_factory.getbasetemp() / "data_root")
    out = subprocess.run([sys.executable, "-m", "expo.train", *tiny_cli_keys(), f"results_dir={tmp_path}",
                          "agent.actor_lr=1e15", "agent.critic_lr=1e15"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    run_dir = tmp_path / "adhoc" / "lift" / "expo" / "seed_0"
    assert out.returncode == 1, out.stderr[-2000:]
    assert [line for line in out.stderr.splitlines() if "diverged" in line] == [
        f"error: {run_dir} diverged at pretraining step 20: bc_loss = nan"]
    assert not (run_dir / "train.csv").exists() and not (run_dir / "eval.csv").exists()
    assert json.loads((run_dir / "status.json").read_text())["last_checkpoint"] is None


@pytest.mark.slow  # two tiny runs: make test-heavy (CI runs it)
@pytest.mark.usefixtures("tiny_world")
def test_the_checks_do_not_change_a_finite_run(tmp_path, monkeypatch):
    """The same run with every divergence check and without them (the loop as it was before they
    existed): the same train.csv bytes and the same eval.csv apart from wall time."""
    from expo import train as train_module
    keys = {**TINY, "checkpoint_interval_s": 0.0}  # the checkpoint-time check at every step too
    checked = train_module.train(config_lib.build_config({**keys, "results_dir": str(tmp_path / "a")}))
    monkeypatch.setattr(divergence, "first_non_finite_parameters", lambda agent, seeds: [None] * seeds)
    monkeypatch.setattr(divergence, "first_non_finite", lambda values: None)
    monkeypatch.setattr(divergence, "check_actions", lambda actions, what: actions)
    monkeypatch.setattr("expo.evaluate.check_actions", lambda actions, what: actions)
    unchecked = train_module.train(config_lib.build_config({**keys, "results_dir": str(tmp_path / "b")}))
    assert (checked / "train.csv").read_bytes() == (unchecked / "train.csv").read_bytes()
    strip = lambda path: [{k: v for k, v in r.items() if k != "wall_time_s"} for r in read_rows(path)]
    assert strip(checked / "eval.csv") == strip(unchecked / "eval.csv")
