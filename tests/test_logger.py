"""Per-run output files (expo/logger.py): atomic CSV tables and config.json."""
import csv
import json
import os
from importlib import metadata
from pathlib import Path

import pytest

from expo import logger


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_csv_table_header_and_rows(tmp_path):
    t = logger.CsvTable(tmp_path / "eval.csv", ("env_step", "success"))
    t.append({"env_step": 0, "success": 0.0})
    assert read_csv(tmp_path / "eval.csv") == [["env_step", "success"], ["0", "0"]]
    t.append({"env_step": 10000, "success": 1 / 3})
    t.append({"env_step": 20000})  # missing value -> empty cell
    assert read_csv(tmp_path / "eval.csv") == [["env_step", "success"], ["0", "0"],
                                               ["10000", "0.333333"], ["20000", ""]]


def test_fixed_columns_reject_unknown_keys(tmp_path):
    t = logger.CsvTable(tmp_path / "eval.csv", ("env_step", "success"))
    t.append({"env_step": 0, "success": 0.5})
    before = (tmp_path / "eval.csv").read_bytes()
    with pytest.raises(KeyError):
        t.append({"env_step": 1, "sucess": 0.5})
    assert (tmp_path / "eval.csv").read_bytes() == before


def test_free_table_grows_header_and_keeps_old_rows(tmp_path):
    t = logger.CsvTable(tmp_path / "train.csv")
    t.append({"env_step": 500, "bc_loss": 1.5})
    t.append({"env_step": 1000, "bc_loss": 1.25, "critic_loss": 0.5})
    assert read_csv(tmp_path / "train.csv") == [["env_step", "bc_loss", "critic_loss"],
                                                ["500", "1.5", ""], ["1000", "1.25", "0.5"]]


def test_equal_inputs_give_equal_bytes(tmp_path):
    rows = [{"env_step": i * 1000, "success": i / 7, "return": -0.1 * i, "note": "x,y"}
            for i in range(5)]
    for name in ("a.csv", "b.csv"):
        t = logger.CsvTable(tmp_path / name)
        for r in rows:
            t.append(dict(r))
    a, b = (tmp_path / "a.csv").read_bytes(), (tmp_path / "b.csv").read_bytes()
    assert a == b
    assert b"0.142857" in a and b'"x,y"' in a  # 6 significant digits; commas quoted
    assert a.endswith(b"\n") and b"\r" not in a


def test_format_value():
    assert logger.format_value(0.1 + 0.2) == "0.3"
    assert logger.format_value(1234567.0) == "1.23457e+06"
    assert logger.format_value(3) == "3" and logger.format_value("lift") == "lift"


def test_every_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "train.csv"
    t = logger.CsvTable(path)
    real_replace = os.replace
    seen = []

    def checking_replace(src, dst):
        # just before the swap the visible file is still the previous complete one
        if Path(dst).exists():
            seen.append(read_csv(dst))
        real_replace(src, dst)

    monkeypatch.setattr(logger.os, "replace", checking_replace)
    for i in range(4):
        t.append({"env_step": i, "loss": float(i)})
        rows = read_csv(path)
        assert rows[0] == ["env_step", "loss"] and len(rows) == i + 2
    assert [len(s) for s in seen] == [2, 3, 4]  # header + complete rows, never partial
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.csv"]  # no temp files left

    # a crash before the swap leaves the previous complete file in place
    def crash(src, dst):
        raise OSError("pre-empted")

    monkeypatch.setattr(logger.os, "replace", crash)
    before = path.read_bytes()
    with pytest.raises(OSError):
        t.append({"env_step": 99, "loss": 9.0})
    assert path.read_bytes() == before
    assert len(read_csv(path)) == 5


def test_run_logger_writes_config_with_versions(tmp_path):
    cfg = {"task": "lift", "method": "expo", "seed": 0, "agent": {"hidden_dims": (8, 8), "N": 3}}
    run = logger.RunLogger(tmp_path / "run", cfg)
    data = json.loads((tmp_path / "run" / "config.json").read_text())
    assert data["task"] == "lift" and data["agent"] == {"hidden_dims": [8, 8], "N": 3}
    env = data["environment"]
    for name in ("jax", "jaxlib", "flax", "optax", "numpy"):
        assert env["packages"][name] == metadata.version(name)
    assert set(logger.PACKAGES) <= set(env["packages"])
    assert env["python"].count(".") == 2
    assert env["git_commit"] is None or len(env["git_commit"]) == 40
    run.log_eval({"env_step": 0, "success": 0.5, "return": 0.5, "episodes": 10,
                  "episode_length": 400, "wall_time_s": 1.0})
    assert read_csv(tmp_path / "run" / "eval.csv")[0] == list(logger.EVAL_COLUMNS)
    run.log_train({"env_step": 500, "critic_loss": 0.1})
    assert read_csv(tmp_path / "run" / "train.csv") == [["env_step", "critic_loss"], ["500", "0.1"]]
    with pytest.raises(KeyError):
        run.log_eval({"env_step": 1, "bogus": 1})


def test_run_dir_layout():
    cfg = {"results_dir": "results", "figure": "fig3", "task": "lift", "method": "expo", "seed": 2}
    assert logger.run_dir_for(cfg) == Path("results/fig3/lift/expo/seed_2")


def test_restore_truncates_to_the_checkpoint_and_continues_byte_identically(tmp_path):
    rows = [{"phase": "pretrain", "step": 1, "bc_loss": 1 / 3},
            {"phase": "online", "step": 2, "critic_loss": 0.25, "note": "a,b"},
            {"phase": "online", "step": 3, "critic_loss": 0.125, "q_mean": 7.0}]
    reference = logger.CsvTable(tmp_path / "reference.csv")
    for r in rows:
        reference.append(dict(r))

    path = tmp_path / "train.csv"
    interrupted = logger.CsvTable(path)
    interrupted.append(dict(rows[0]))
    interrupted.append(dict(rows[1]))
    position = interrupted.position()
    assert position == {"rows": 2, "columns": ["phase", "step", "bc_loss", "critic_loss", "note"]}
    interrupted.append({"phase": "online", "step": 99, "lost_column": 1.0})  # lost work

    resumed = logger.CsvTable(path)
    resumed.restore(position)
    assert read_csv(path)[-1] == ["online", "2", "", "0.25", "a,b"]  # row 99 and its column gone
    resumed.append(dict(rows[2]))
    assert path.read_bytes() == (tmp_path / "reference.csv").read_bytes()


def test_restore_refuses_a_file_that_does_not_match_the_checkpoint(tmp_path):
    t = logger.CsvTable(tmp_path / "eval.csv", ("env_step", "success"))
    t.append({"env_step": 0, "success": 0.5})
    with pytest.raises(ValueError, match="expects at least 2 rows"):
        logger.CsvTable(tmp_path / "eval.csv", ("env_step", "success")).restore(
            {"rows": 2, "columns": ["env_step", "success"]})
    with pytest.raises(ValueError, match="columns"):
        logger.CsvTable(tmp_path / "eval.csv").restore({"rows": 1, "columns": ["success"]})
    empty = logger.CsvTable(tmp_path / "eval.csv", ("env_step", "success"))
    empty.restore({"rows": 0, "columns": ["env_step", "success"]})  # no row yet: no file
    assert not (tmp_path / "eval.csv").exists()


def test_run_logger_fresh_start_drops_stale_csvs_and_resume_keeps_them(tmp_path):
    cfg = {"task": "lift", "method": "expo", "seed": 0}
    run = logger.RunLogger(tmp_path, cfg)
    run.log_eval({"env_step": 0, "success": 0.5})
    run.log_train({"phase": "pretrain", "step": 10})
    position = run.position()
    run.log_eval({"env_step": 10, "success": 1.0})

    logger.RunLogger(tmp_path, cfg, position=position)
    assert [r[0] for r in read_csv(tmp_path / "eval.csv")] == ["env_step", "0"]
    assert read_csv(tmp_path / "train.csv") == [["phase", "step"], ["pretrain", "10"]]
    logger.RunLogger(tmp_path, cfg)  # a run that never reached a checkpoint starts over
    assert not (tmp_path / "eval.csv").exists() and not (tmp_path / "train.csv").exists()
