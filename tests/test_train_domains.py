"""The one training loop on a downloaded-data domain: AntMaze (D4RL hdf5) and Adroit (AWAC .npy), on
small files written in the real layouts at the registry's paths, with tiny sizes and horizons."""
import dataclasses
import json

import pytest

from expo import protocol
from tests.test_awac_loader import write_default as write_awac_pen
from tests.conftest import tiny_train_run
from tests.test_d4rl_loader import write_d4rl

TINY = {
    "scale": "mini", "steps": 16, "pretrain_steps": 20, "pretrain_chunk": 10, "eval_interval": 8,
    "eval_episodes": 2, "log_interval": 8, "progress": False, "start_training": 4,
    "agent.hidden_dims": (16, 16), "agent.diffusion_width": 16, "agent.time_dim": 8,
    "agent.N": 2, "agent.n_edit": 2, "agent.T": 2, "agent.utd": 2, "agent.batch_size": 8,
}


def tiny_run(tmp_path, monkeypatch, task, horizon):
    monkeypatch.setitem(protocol.TASKS, task, dataclasses.replace(protocol.TASKS[task], horizon=horizon))
    run_dir, rows, _ = tiny_train_run(tmp_path / "results", {**TINY, "task": task})
    return json.loads((run_dir / "config.json").read_text()), rows


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPO_DATA_ROOT", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.mark.slow  # heavy end-to-end check: make test-heavy (CI runs it)
def test_antmaze_run_on_a_d4rl_layout_file(tmp_path, monkeypatch, data_root):
    spec = protocol.get_task("antmaze-medium-play-v2")
    from expo.data.registry import get_dataset

    file = get_dataset(spec.dataset).path()
    file.parent.mkdir(parents=True, exist_ok=True)
    write_d4rl(file)
    saved, rows = tiny_run(tmp_path, monkeypatch, spec.name, horizon=6)
    assert [int(r["env_step"]) for r in rows] == [0, 8, 16]
    assert saved["protocol"]["reward_shift"] == -1.0 and saved["agent"]["num_min_qs"] == 1
    for r in rows:
        assert 0.0 <= float(r["success"]) <= 1.0 and float(r["episode_length"]) <= 6
        # env reward is 1 at the goal, else 0: a 6-step episode that misses the goal returns 0
        assert float(r["return"]) in (0.0, 1.0)


@pytest.mark.slow  # heavy end-to-end check: make test-heavy (CI runs it)
def test_adroit_run_on_awac_layout_files(tmp_path, monkeypatch, data_root):
    write_awac_pen(data_root)
    saved, rows = tiny_run(tmp_path, monkeypatch, "pen-binary-v0", horizon=5)
    assert [int(r["env_step"]) for r in rows] == [0, 8, 16]
    assert saved["protocol"]["metric"] == "percent_solved_steps" and saved["agent"]["edit_dropout"] == 0.1
    for r in rows:
        # never terminates: every episode runs the full horizon; return = sum of (success - 1)
        assert float(r["episode_length"]) == 5
        assert -5.0 <= float(r["return"]) <= 0.0 and 0.0 <= float(r["success"]) <= 1.0
