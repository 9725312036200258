"""Where a run's wall time goes: expo/walltime.py's clock, status.json's wall_seconds, python -m expo.profile."""
import json

import pytest

from expo import profile
from expo.walltime import PARTS, WallClock
from tests.conftest import tiny_train_run


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_parts_accumulate_and_a_nested_part_is_billed_to_the_inner_one_only():
    now = FakeClock()
    clock = WallClock(now)
    now.t = 1.0                      # 1 s before any part: "other"
    with clock.part("pretraining"):
        now.t = 3.0                  # 2 s pretraining
        with clock.part("checkpoints"):
            now.t = 3.5              # 0.5 s checkpoint inside pretraining
        now.t = 4.0                  # 0.5 s more pretraining
    with clock.part("updates"):
        now.t = 4.25
    with clock.part("updates"):
        now.t = 4.5
    now.t = 5.0
    out = clock.breakdown()
    assert set(out) == set(PARTS)
    assert out["pretraining"] == 2.5 and out["checkpoints"] == 0.5 and out["updates"] == 0.5
    assert out["other"] == 1.5 and sum(out.values()) == pytest.approx(5.0)
    with pytest.raises(KeyError, match="unknown wall-time part 'nope'"):
        with clock.part("nope"):
            pass


E2E = {"method": "expo", "scale": "mini", "steps": 16, "pretrain_steps": 20, "pretrain_chunk": 10,
       "eval_interval": 8, "eval_episodes": 2, "log_interval": 8, "progress": False,
       "dataset.num_demos": 3, "agent.hidden_dims": (16, 16), "agent.diffusion_width": 16,
       "agent.time_dim": 8, "agent.N": 2, "agent.n_edit": 2, "agent.T": 2, "agent.utd": 1, "agent.batch_size": 8}


def test_a_finished_run_records_its_wall_time_per_part_and_profile_prints_it(tiny_world, tmp_path, capsys):
    run_dir, _, _ = tiny_train_run(tmp_path, E2E)
    status = json.loads((run_dir / "status.json").read_text())
    seconds = status["wall_seconds"]
    assert set(seconds) == set(PARTS) and all(v >= 0 for v in seconds.values())
    for part in ("data", "pretraining", "acting", "simulator", "updates", "evaluation"):
        assert seconds[part] > 0, part
    # The parts cover the process; status.json's wall time starts a little later (after the clock).
    assert status["wall_time_s"] <= sum(seconds.values()) + 0.2
    assert profile.main([str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "16 online env steps" in out and out.count("\n") >= len(PARTS) + 1
    row = next(line for line in out.splitlines() if line.startswith("updates"))
    assert float(row.split()[3]) == pytest.approx(1000 * seconds["updates"] / 16, abs=0.01)


def test_profile_explains_a_run_without_a_breakdown(tmp_path, capsys):
    (tmp_path / "status.json").write_text(json.dumps({"finished": True, "env_steps": 10}))
    assert profile.main([str(tmp_path)]) == 0
    assert "no wall_seconds" in capsys.readouterr().out
    assert profile.main([str(tmp_path), "steps=3"]) == 2
