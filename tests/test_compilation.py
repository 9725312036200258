"""Compilation: the online update compiles exactly once per run, and jax's persistent compilation
cache (expo/compilation.py) lets a second run start from the compiled code without changing what
it computes."""
import json
import subprocess
import sys

import jax
import numpy as np
import pytest

from expo import compilation
from tests.conftest import tiny_train_run
from tests.subprocess_world import ROOT, rows_without_wall_time, tiny_keys, tiny_world_env
from tests.test_train import TINY


@pytest.mark.usefixtures("tiny_world")
@pytest.mark.parametrize("method", ["expo", "rlpd"])
def test_the_online_update_compiles_once_per_run(tmp_path, method):
    """24 online steps (two evaluations, buffers of every fill level): one compilation of update,
    as counted by jax's own compile events and recorded in status.json."""
    jax.clear_caches()  # what this test process compiled before must not hide a compilation
    shared = ("agent.hidden_dims", "agent.utd", "agent.batch_size")  # keys RLPD has too
    keys = {k: v for k, v in TINY.items() if method == "expo" or not k.startswith("agent.")
            or k in shared}
    run_dir, _, train_rows = tiny_train_run(tmp_path, {**keys, "method": method})
    assert sum(r["phase"] == "online" for r in train_rows) == 3
    compiles = json.loads((run_dir / "status.json").read_text())["compilations"]
    assert compiles["update"] == 1
    assert compiles["total"] >= 2 and compiles["seconds"] > 0


def test_counting_sees_each_compilation_and_only_inside_the_block():
    f = jax.jit(lambda x: x * 2.0 + 1.0)
    with compilation.counting() as c:
        f(np.ones(3, np.float32))
        f(np.zeros(3, np.float32))      # same shapes: no new compilation
        f(np.ones(5, np.float32))       # a new shape: compiled again
    f(np.ones(7, np.float32))           # outside the block: not counted
    assert c.of("<lambda>") == 2 and c.count == 2


def test_cache_dir_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("EXPO_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.delenv("EXPO_COMPILATION_CACHE", raising=False)
    assert compilation.cache_dir() == tmp_path / "data" / "jax-compilation-cache"
    monkeypatch.setenv("EXPO_COMPILATION_CACHE", str(tmp_path / "elsewhere"))
    assert compilation.cache_dir() == tmp_path / "elsewhere"
    monkeypatch.setenv("EXPO_COMPILATION_CACHE", "off")
    assert compilation.cache_dir() is None


@pytest.mark.slow  # heavy end-to-end check: make test-heavy (CI runs it)
def test_a_second_run_loads_the_update_from_the_persistent_cache(tmp_path):
    """Two processes, the same tiny run: the first writes the compiled update to the cache folder,
    the second loads it from there, and both write the same CSVs."""
    env = tiny_world_env(tmp_path / "data")
    env["EXPO_COMPILATION_CACHE"] = str(tmp_path / "cache")

    def train(name):
        out = subprocess.run([sys.executable, "-m", "expo.train", *tiny_keys(),
                              f"results_dir={tmp_path / name}"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
        run_dir = tmp_path / name / "adhoc" / "lift" / "expo" / "seed_0"
        return run_dir, json.loads((run_dir / "status.json").read_text())["compilations"]

    first_dir, first = train("first")
    assert first["from_cache"] == 0 and first["update"] == 1
    assert any(p.name.startswith("jit_update-") for p in (tmp_path / "cache").iterdir())
    second_dir, second = train("second")
    assert second["update"] == 1 and second["from_cache"] >= 1
    assert second["seconds"] < first["seconds"]
    for name in ("eval.csv", "train.csv"):
        assert (rows_without_wall_time(first_dir / name) == rows_without_wall_time(second_dir / name))
