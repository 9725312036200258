"""The launcher in another process, with its jobs in the tiny world of tests/tiny_world_site: the
environment it needs, the run keys of a tiny run, and reading what the runs wrote."""
import csv
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

from expo.data import ensure_generated, registry

ROOT = Path(__file__).resolve().parents[1]
SITE = Path(__file__).resolve().parent / "tiny_world_site"

# The sizes of the in-process tiny runs (tests/test_train.py): seconds per run.
TINY = {
    "scale": "mini", "steps": 24, "pretrain_steps": 40, "pretrain_chunk": 20, "eval_interval": 12,
    "eval_episodes": 2, "log_interval": 8, "dataset.num_demos": 3, "agent.hidden_dims": "(16,16)",
    "agent.diffusion_width": 16, "agent.time_dim": 8, "agent.N": 2, "agent.n_edit": 2, "agent.T": 2,
    "agent.utd": 2, "agent.batch_size": 8, "progress": "false",
}


def tiny_keys(**changes) -> list[str]:
    """TINY with `changes` (dotted keys spelled with "__": dataset__num_demos=100), as key=value."""
    keys = {**TINY, **{k.replace("__", "."): v for k, v in changes.items()}}
    return [f"{k}={v}" for k, v in keys.items()]


def tiny_world_env(data_root: Path, profile: Path | str = "") -> dict[str, str]:
    """Generate the tiny world's dataset under data_root (once: the file is shared with
    tests/conftest.py's tiny_world) and return the environment for launcher subprocesses: that data
    root, the tiny world's start-up module first on PYTHONPATH, and the given cluster profile (""
    for none, so that a profile of the person running the tests never applies)."""
    previous = os.environ.get("EXPO_DATA_ROOT")
    os.environ["EXPO_DATA_ROOT"] = str(data_root)
    try:
        ensure_generated(dataclasses.replace(registry.DATASETS["lift_scripted"], num_demos=4))
    finally:
        if previous is None:
            os.environ.pop("EXPO_DATA_ROOT")
        else:
            os.environ["EXPO_DATA_ROOT"] = previous
    return dict(os.environ, EXPO_DATA_ROOT=str(data_root), PYTHONPATH=f"{SITE}{os.pathsep}{ROOT}",
                EXPO_CLUSTER_PROFILE=str(profile))


def launch(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "experiments/launch.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def rows_without_wall_time(path: Path) -> list[dict[str, str]]:
    """A CSV file's rows, without the wall_time_s column (the only one that differs between equal
    runs)."""
    with open(path) as f:
        return [{k: v for k, v in row.items() if k != "wall_time_s"} for row in csv.DictReader(f)]
