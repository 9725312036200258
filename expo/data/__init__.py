"""Offline datasets: `load_task_dataset(spec, num_demos, seed)` is the one entry point for training.

The registry entry's `format` names the loader module (FORMATS below); each such module has
`load_dataset(entry, spec, num_demos, seed) -> dict of arrays` returning the same transition arrays:
  observations [N, D], next_observations [N, D], actions [N, A], rewards [N] (after the protocol's
  reward transform; untransformed when spec is None), masks [N] (0 only on true termination),
  dones [N] (1 at an episode boundary), episode_starts [N] (bool).
Embedded tasks (TaskSpec.embedded) get their file generated under the data root on first use
(`expo.data.paths.data_root()`: $EXPO_DATA_ROOT or ~/.cache/expo-suite).
A module may also define `file_facts(entry) -> dict`: counts of the raw files that its arrays do not
show (e.g. D4RL rows before time-outs are dropped), which `python -m expo.data verify` compares with the
registry's `expected`.

Every unusable dataset raises DatasetError (DatasetMissing when it is not on disk) with a one-line
message naming the file, the problem and the command that fixes it; `train` and `verify` print that line.
"""
from __future__ import annotations

import fcntl
from pathlib import Path
from typing import Optional

import numpy as np

from expo.data.errors import DatasetError, DatasetMissing
from expo.data.paths import data_root
from expo.data.registry import DATASETS, GeneratedDataset, get_dataset
from expo.protocol import TaskSpec

__all__ = ["DATASETS", "FORMATS", "DatasetError", "DatasetMissing", "data_root", "ensure_generated", "file_facts",
           "load_entry", "load_task_dataset"]

# registry format -> loader module (imported lazily: minari, for one, is optional)
FORMATS = {
    "robomimic_hdf5": "expo.data.robomimic_hdf5",
    "d4rl_hdf5": "expo.data.d4rl_hdf5",
    "awac_npy": "expo.data.awac_npy",
    "minari": "expo.data.minari_datasets",
}


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
    The generator is the entry's expert's (expo.data.experts.GENERATORS; imported here, on use: the experts
    sit above the registry and the envs, and importing expo.data does not import them).
    """
    path = Path(path) if path is not None else entry.path()
    if path.is_file() and not force:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the lock file is closed
        if path.is_file() and not force:  # another process generated it while we waited
            return None
        from expo.data.experts import GENERATORS

        generate = GENERATORS[entry.expert]
        return generate(path, entry.num_demos, entry.noise, entry.seed, max_attempts=max_attempts, progress=progress)


def load_task_dataset(spec: TaskSpec, num_demos: Optional[int] = None, seed: int = 0) -> dict[str, np.ndarray]:
    """The offline transitions of spec.dataset for `spec` (keys and conventions: the module docstring).

    `num_demos` demos are drawn with np.random.default_rng(seed) (None: all of them); runs normally
    pass spec.num_demos and their own seed. Embedded datasets are generated if missing.
    """
    return load_entry(get_dataset(spec.dataset), spec, num_demos, seed)


def load_entry(entry, spec: Optional[TaskSpec] = None, num_demos: Optional[int] = None, seed: int = 0):
    """Load a registry entry through its format's loader (generating an embedded file if missing)."""
    import importlib

    if isinstance(entry, GeneratedDataset):
        ensure_generated(entry)
    if entry.format not in FORMATS:
        raise ValueError(f"dataset {entry.key!r} has unknown format {entry.format!r}; known: {', '.join(FORMATS)}")
    module = importlib.import_module(FORMATS[entry.format])
    try:
        return module.load_dataset(entry, spec, num_demos, seed)
    except (DatasetError, ImportError, MemoryError):  # the last two: this machine's problem, not the data's
        raise
    except Exception as e:  # noqa: BLE001
        # The loaders turn every failure they foresee into a DatasetError; anything else is still a
        # failure on this data, and a run (or verify) must say so in one line, not with a traceback.
        raise DatasetError(
            f"{_where(entry)}: the {entry.format} loader failed on this data ({type(e).__name__}: "
            f"{' '.join(str(e).split())}); fix: {entry.replace_hint()} if the data are damaged; if they are "
            f"not, this is a bug in {module.__name__.replace('.', '/')}.py") from e


def _where(entry) -> str:
    """The files of `entry` (a Minari dataset: its id), for an error message."""
    paths = entry.paths()
    if paths:
        return ", ".join(map(str, paths))
    ident = getattr(entry, "options", {}).get("dataset_id")
    return f"dataset {entry.key!r}" + (f" ({ident})" if ident else "")


def file_facts(entry) -> dict:
    """Raw counts of `entry`'s files from its format module's file_facts (empty when it has none);
    read after load_entry succeeded. Unreadable files raise DatasetError."""
    import importlib

    module = importlib.import_module(FORMATS[entry.format])
    if not hasattr(module, "file_facts"):
        return {}
    try:
        return module.file_facts(entry)
    except DatasetError:
        raise
    except Exception as e:  # noqa: BLE001 - same reason as in load_entry
        raise DatasetError(f"{_where(entry)}: cannot read its counts ({type(e).__name__}: {' '.join(str(e).split())}); "
                           f"fix: {entry.replace_hint()}") from e
