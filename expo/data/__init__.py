"""Offline datasets: `load_task_dataset(spec, num_demos, seed)` is the one entry point for training.

Embedded tasks (TaskSpec.embedded) get their file generated under the data root on first use
(`expo.data.paths.data_root()`: $EXPO_DATA_ROOT or ~/.cache/expo-suite).
"""
from __future__ import annotations

import fcntl
from pathlib import Path
from typing import Optional

import numpy as np

from expo.data.errors import DatasetError
from expo.data.paths import data_root
from expo.data.registry import DATASETS, EXPERTS, GeneratedDataset, get_dataset
from expo.data.robomimic_hdf5 import load_robomimic_hdf5
from expo.protocol import TaskSpec

__all__ = ["DATASETS", "DatasetError", "data_root", "ensure_generated", "load_task_dataset"]


def ensure_generated(
    entry: GeneratedDataset,
    path: Optional[Path] = None,
    force: bool = False,
    max_attempts: Optional[int] = None,
    progress: bool = False,
) -> Optional[dict]:
    """Generate `entry`'s file at `path` (default entry.path()) if it is missing, or always with `force`.

    Returns the generator's summary, or None when the file was already there. An exclusive fcntl lock
    on "<file>.lock" makes parallel runs wait for one generator instead of racing; the file itself
    appears atomically (temp file + os.replace), so a reader never sees a half-written file.
    """
    path = Path(path) if path is not None else entry.path()
    if path.is_file() and not force:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the lock file is closed
        if path.is_file() and not force:  # another process generated it while we waited
            return None
        generate, _ = EXPERTS[entry.expert]
        return generate(path, entry.num_demos, entry.noise, entry.seed, max_attempts=max_attempts, progress=progress)


def load_task_dataset(spec: TaskSpec, num_demos: Optional[int] = None, seed: int = 0) -> dict[str, np.ndarray]:
    """The offline transitions for `spec` (keys and conventions: expo.data.robomimic_hdf5).

    `num_demos` demos are drawn from the file with np.random.default_rng(seed) (None: all of them);
    runs normally pass spec.num_demos and their own seed. Embedded datasets are generated if missing.
    """
    if spec.domain not in ("robomimic", "mimicgen"):
        raise NotImplementedError(f"dataset loading for domain {spec.domain!r} (task {spec.name!r})")
    entry = get_dataset(spec.dataset)
    if isinstance(entry, GeneratedDataset):
        ensure_generated(entry)
    return load_robomimic_hdf5(
        entry.path(), entry.obs_keys, num_demos=num_demos, seed=seed, spec=spec, fix_hint=entry.fix_hint()
    )
