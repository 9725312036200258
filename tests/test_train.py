"""The training loop end to end at a tiny size: CSV layout, determinism, learning, the launcher."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from expo import config as config_lib, protocol
from tests.conftest import read_rows, tiny_train_run

ROOT = Path(__file__).resolve().parents[1]

TINY = {
    "scale": "mini", "steps": 24, "pretrain_steps": 40, "pretrain_chunk": 20, "eval_interval": 12,
    "eval_episodes": 2, "log_interval": 8, "progress": False, "dataset.num_demos": 3,
    "agent.hidden_dims": (16, 16), "agent.diffusion_width": 16, "agent.time_dim": 8,
    "agent.N": 2, "agent.n_edit": 2, "agent.T": 2, "agent.utd": 2, "agent.batch_size": 8,
}


# every test runs in the shared tiny world (tests/conftest.py): 4 demos, horizon 15
pytestmark = pytest.mark.usefixtures("tiny_world")


def run(tmp_path, **overrides):
    return tiny_train_run(tmp_path, {**TINY, **overrides})[0]


def test_run_writes_eval_train_config(tmp_path):
    run_dir = run(tmp_path, figure="t", seed=3)
    assert run_dir == tmp_path / "t" / "lift" / "expo" / "seed_3"
    rows = read_rows(run_dir / "eval.csv")
    assert [int(r["env_step"]) for r in rows] == [0, 12, 24]
    for r in rows:
        assert 0.0 <= float(r["success"]) <= 1.0 and int(r["episodes"]) == 2
        assert 1 <= float(r["episode_length"]) <= 15
    train_rows = read_rows(run_dir / "train.csv")
    assert {r["phase"] for r in train_rows} == {"pretrain", "online"}
    online = [r for r in train_rows if r["phase"] == "online"]
    assert [int(r["env_step"]) for r in online] == [8, 16, 24]
    assert all(r["critic_loss"] and r["q_mean"] and r["edit_loss"] for r in online)
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["agent"]["N"] == 2 and cfg["protocol"]["horizon"] == 15
    assert cfg["environment"]["packages"]["jax"]
    assert "truncation" in cfg["protocol"]["deviations"] and cfg["agent"]["deviations"]
    status = json.loads((run_dir / "status.json").read_text())
    assert status["finished"] is True and status["resumes"] == 0
    assert not (run_dir / "checkpoint").exists()  # deleted once the run finished


def test_entropy_backup_runs_end_to_end_and_logs_the_edit_temperature(tmp_path):
    """method=expo_entropy_backup: soft selection in the target (positive selection entropy) and
    train.csv carries the edit policy's temperature and the Q share of its gradient."""
    run_dir = run(tmp_path, method="expo_entropy_backup")
    online = [r for r in read_rows(run_dir / "train.csv") if r["phase"] == "online"]
    assert len(online) == 3
    for r in online:
        assert 0.0 < float(r["selection_entropy"]) <= np.log(4) + 1e-6  # N + n_edit = 4 candidates
        assert 0.0 <= float(r["edit_q_grad_share"]) <= 1.0
        assert np.isclose(np.exp(float(r["log_temperature"])), float(r["temperature"]), rtol=1e-4)
    assert_eval = read_rows(run_dir / "eval.csv")
    assert [int(r["env_step"]) for r in assert_eval] == [0, 12, 24]
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["agent"]["entropy_backup"] is True and "backup_temperature" in cfg["agent"]["deviations"]


def test_the_run_reports_its_phase_for_the_launcher_and_clears_it_when_done(tmp_path, monkeypatch):
    from expo import train as train_module
    calls = []
    real = train_module.write_progress
    monkeypatch.setattr(train_module, "write_progress",
                        lambda run_dir, phase, done=0, total=0, **d: (calls.append((phase, done, total, d)),
                                                                      real(run_dir, phase, done, total, **d)))
    (tmp_path / "adhoc" / "lift" / "expo" / "seed_0").mkdir(parents=True)  # as the launcher makes it
    run_dir = run(tmp_path)
    assert calls == [("data", 0, 0, {}), ("pretrain", 20, 40, {}), ("pretrain", 40, 40, {}),
                     ("evaluating", 0, 0, {"env_step": 0}), ("online", 8, 24, {}),
                     ("evaluating", 0, 0, {"env_step": 12}), ("online", 16, 24, {}), ("online", 24, 24, {}),
                     ("evaluating", 0, 0, {"env_step": 24})]
    assert not (run_dir / "progress.json").exists()  # status.json is the record of a finished run


def _without_wall_time(path):
    return [{k: v for k, v in r.items() if k != "wall_time_s"} for r in read_rows(path)]


def test_same_seed_same_csv(tmp_path):
    a = run(tmp_path / "a", seed=1)
    b = run(tmp_path / "b", seed=1)
    # Every byte of train.csv, and every column of eval.csv except the measured wall time.
    assert (a / "train.csv").read_bytes() == (b / "train.csv").read_bytes()
    assert _without_wall_time(a / "eval.csv") == _without_wall_time(b / "eval.csv")
    c = run(tmp_path / "c", seed=2)
    assert (a / "train.csv").read_bytes() != (c / "train.csv").read_bytes()


def test_imitation_pretraining_lowers_the_diffusion_loss(tmp_path):
    run_dir = run(tmp_path, method="bc", pretrain_steps=400, pretrain_chunk=50, log_interval=50,
                  **{"agent.batch_size": 32})
    losses = [float(r["bc_loss"]) for r in read_rows(run_dir / "train.csv")]
    assert len(losses) == 8
    # epsilon-MSE of an untrained net is about |A| = 7; imitation must bring it well below
    assert losses[-1] < 0.6 * losses[0]
    assert [int(r["env_step"]) for r in read_rows(run_dir / "eval.csv")] == [0]  # no online step


def test_online_setting_skips_pretraining(tmp_path):
    run_dir = run(tmp_path, setting="online", start_training=10)
    assert {r["phase"] for r in read_rows(run_dir / "train.csv")} == {"online"}


def test_warm_start_episodes_fill_the_buffer_before_step_one_and_are_not_counted(tmp_path):
    run_dir = run(tmp_path, keep_offline_data=False, warm_start_episodes=1, steps=6, eval_interval=6,
                  pretrain_steps=20)
    rows = read_rows(run_dir / "train.csv")
    assert [r["phase"] for r in rows] == ["pretrain", "warm_start"]
    assert rows[1]["episodes"] == "1" and rows[1]["env_step"] == "0"  # the set count, not the 3 demos
    assert 1 <= int(rows[1]["warm_start_env_steps"]) <= 15  # one episode, horizon 15
    assert [r["env_step"] for r in read_rows(run_dir / "eval.csv")] == ["0", "6"]


@pytest.mark.parametrize("warmup_acts, policy_steps", [("random", 24 - 10), ("policy", 24)])
def test_warm_up_steps_act_randomly_or_with_the_policy_and_do_not_update(tmp_path, monkeypatch,
                                                                         warmup_acts, policy_steps):
    """start_training=10: no update before online step 10 either way; the first 10 steps act
    uniformly at random, or (warmup_acts=policy, IDQL's fine-tuning) with the pretrained policy."""
    from expo.seed_group import SeedGroup

    calls = []
    real = SeedGroup.act

    def counting(self, agent, observations, keys, step):  # the online acting path only
        calls.append(step)
        return real(self, agent, observations, keys, step)

    monkeypatch.setattr(SeedGroup, "act", counting)
    run_dir = run(tmp_path, start_training=10, warmup_acts=warmup_acts)
    assert calls == list(range(24 - policy_steps + 1, 25))
    online = [r for r in read_rows(run_dir / "train.csv") if r["phase"] == "online"]
    assert [int(r["env_step"]) for r in online] == [16, 24]  # step 8 came before any update


@pytest.mark.parametrize("overrides, message", [
    ({"keep_offline_data": 1}, "keep_offline_data must be true or false"),
    ({"warm_start_episodes": -1}, "warm_start_episodes must be >= 0"),
    ({"warm_start_episodes": 2.5}, "warm_start_episodes must be of type int"),
    ({"checkpoint_interval_s": -5}, "checkpoint_interval_s must be >= 0"),
])
def test_bad_loop_options_are_rejected(overrides, message):
    with pytest.raises(config_lib.ConfigError, match=message):
        config_lib.build_config(overrides)


def launch(*args):
    return subprocess.run([sys.executable, "experiments/launch.py", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_launcher_errors_are_one_line():
    out = launch("figure=nope")
    assert out.returncode != 0 and "unknown figure 'nope'; valid figures: baselines, canary, cpu3, cpu4, cpu_mimicgen, demo, " in out.stderr
    assert "quickstart" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    out = launch("figure=quickstart", "agent.bogus=1")
    assert out.returncode != 0 and "unknown key 'agent.bogus'" in out.stderr
    out = launch("figure=quickstart", "methods=expo,nope")
    assert out.returncode != 0 and "unknown method 'nope'" in out.stderr


def test_launcher_dry_run_lists_the_grid(tmp_path):
    out = launch("figure=quickstart", "dry_run=true", f"results_dir={tmp_path}", "seeds=3")
    assert out.returncode == 0, out.stderr
    assert "12 runs, 0 finished, 12 to run" in out.stdout
    for method in ("expo", "expo_no_edit", "expo_no_otf_backup", "bc"):
        assert f"quickstart/lift/{method}/seed_2" in out.stdout


def test_launcher_skips_only_runs_finished_with_the_same_length(tmp_path):
    from experiments.launch import is_finished

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    assert not is_finished(run_dir, {"steps": 10})
    (run_dir / "status.json").write_text(json.dumps({"finished": True, "env_steps": 10}))
    assert is_finished(run_dir, {"steps": 10})
    assert not is_finished(run_dir, {"steps": 20})  # a longer grid redoes the run


def test_launcher_task_key_selects_the_task_and_checks_data_first(tmp_path):
    # task= picks the grid's task (it is not overwritten by the grid's own task list)...
    out = launch("figure=quickstart", "task=can", "dry_run=true", f"results_dir={tmp_path}", "seeds=1")
    assert out.returncode == 0, out.stderr
    assert "quickstart/can/expo/seed_0" in out.stdout and "/lift/" not in out.stdout
    # ...and a grid whose data are not downloaded stops before any run, naming the file and the fix.
    env = dict(os.environ, EXPO_DATA_ROOT=str(tmp_path / "data"))
    out = subprocess.run([sys.executable, "experiments/launch.py", "figure=quickstart", "task=can",
                          f"results_dir={tmp_path}", "seeds=1"], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, env=env)
    assert out.returncode != 0
    assert "low_dim_v141.hdf5" in out.stderr and "python -m expo.data fetch robomimic_can_mh" in out.stderr
    assert not (tmp_path / "quickstart").exists()
    out = launch("figure=quickstart", "task=lift", "tasks=lift", "dry_run=true")
    assert out.returncode != 0 and "not both" in out.stderr


@pytest.mark.parametrize("task", [n for n, s in protocol.TASKS.items() if s.embedded])
def test_quickstart_grid_resolves_for_every_embedded_task(task, tmp_path):
    out = launch("figure=quickstart", f"task={task}", "dry_run=true", f"results_dir={tmp_path}")
    assert out.returncode == 0, out.stderr
    for method in ("expo", "expo_no_edit", "expo_no_otf_backup", "bc"):
        assert f"quickstart/{task}/{method}/seed_1" in out.stdout
