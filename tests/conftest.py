"""Shared test pieces: the tiny embedded-data world the end-to-end runs train in, reading a run's
CSV files, and the compile-once check's batches.

Fixtures here are found by pytest; the plain helpers are imported (`from tests.conftest import ...`).
"""
import csv
import dataclasses
import os
import shutil
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from expo import config as config_lib, protocol
from expo.data import ensure_generated, registry
from expo.train import train


def pytest_configure(config):
    """One persistent compilation cache for the whole session (expo/compilation.py), inherited by
    every subprocess the tests start: the many tiny runs of the launcher and SLURM tests compile
    the same programs, and load them from here after the first. Never the user's own cache."""
    os.environ["EXPO_COMPILATION_CACHE"] = tempfile.mkdtemp(prefix="expo-test-jax-cache-")


def pytest_unconfigure(config):
    shutil.rmtree(os.environ.get("EXPO_COMPILATION_CACHE", ""), ignore_errors=True)


def use_tiny_dataset(monkeypatch, root, dataset: str, task: str, horizon: int, **dataset_changes):
    """Point EXPO_DATA_ROOT at `root`, shrink the registry's `dataset` (dataset_changes, e.g.
    num_demos), generate it there, then shorten `task`'s horizon. Generation runs with the real
    horizon: the scripted experts need ~70-80 steps per demo. Returns ensure_generated's summary."""
    monkeypatch.setenv("EXPO_DATA_ROOT", str(root))
    tiny = dataclasses.replace(registry.DATASETS[dataset], **dataset_changes)
    monkeypatch.setitem(registry.DATASETS, dataset, tiny)
    summary = ensure_generated(tiny)
    monkeypatch.setitem(protocol.TASKS, task, dataclasses.replace(protocol.TASKS[task], horizon=horizon))
    return summary


@pytest.fixture
def tiny_world(tmp_path_factory, monkeypatch):
    """A 4-demo embedded lift dataset (generated once per session) and a 15-step horizon, so a run
    takes seconds."""
    use_tiny_dataset(monkeypatch, tmp_path_factory.getbasetemp() / "data_root", "lift_scripted", "lift",
                     horizon=15, num_demos=4)


def read_rows(path):
    """A CSV file's rows as dicts of strings."""
    with open(path) as f:
        return list(csv.DictReader(f))


def tiny_train_run(results_dir, overrides):
    """build_config(overrides) with results_dir, then train(): (run_dir, eval rows, train rows)."""
    run_dir = train(config_lib.build_config({**overrides, "results_dir": str(results_dir)}))
    return run_dir, read_rows(run_dir / "eval.csv"), read_rows(run_dir / "train.csv")


def assert_eval_rows(rows, env_steps):
    """eval.csv has one row at each of env_steps, each with a success rate in [0, 1]."""
    assert [int(r["env_step"]) for r in rows] == list(env_steps)
    assert all(0.0 <= float(r["success"]) <= 1.0 for r in rows)


def loop_batch(rng, k, b, obs_dim, act_dim, rewards=0.0, **extra):
    """A numpy batch [k, B, ...] as the training loop passes it (float32 leaves); extra fields are
    filled with the given constants."""
    batch = {"observations": rng.normal(size=(k, b, obs_dim)).astype(np.float32),
             "actions": rng.uniform(-1, 1, (k, b, act_dim)).astype(np.float32),
             "rewards": np.full((k, b), rewards, np.float32),
             "next_observations": rng.normal(size=(k, b, obs_dim)).astype(np.float32),
             "masks": np.ones((k, b), np.float32)}
    batch.update({name: np.full((k, b), value, np.float32) for name, value in extra.items()})
    return batch


def fresh_jit(update):
    """jax.jit of a new function that calls the jitted `update`'s Python body: its own jit cache
    counts only the calls made through it (`._cache_size()`)."""
    def fresh_update(agent, batch):
        return update.__wrapped__(agent, batch)

    return jax.jit(fresh_update)


def jax_batch(key, utd, batch, obs_dim, act_dim, obs_bound=None, masks=1.0):
    """A random jax batch [utd, B, ...]: observations normal (or uniform in +-obs_bound), actions
    uniform in [-1, 1], rewards uniform in [0, 1), masks the given constant."""
    k = jax.random.split(key, 4)

    def states(key):
        shape = (utd, batch, obs_dim)
        if obs_bound is None:
            return jax.random.normal(key, shape)
        return jax.random.uniform(key, shape, minval=-obs_bound, maxval=obs_bound)

    return {
        "observations": states(k[0]),
        "actions": jax.random.uniform(k[1], (utd, batch, act_dim), minval=-1, maxval=1),
        "rewards": jax.random.uniform(k[2], (utd, batch)),
        "next_observations": states(k[3]),
        "masks": masks * jnp.ones((utd, batch)),
    }


def with_hp(agent, **kw):
    """The agent with some of its static hyperparameters (agent.hp, a frozen dataclass) replaced."""
    return agent.replace(hp=dataclasses.replace(agent.hp, **kw))


def leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def trees_equal(a, b):
    return all(np.array_equal(x, y) for x, y in zip(leaves(a), leaves(b)))
