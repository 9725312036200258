"""D4RL hdf5 files (antmaze-*-v2) -> the suite's transition arrays.

File layout (D4RL offline_env.get_dataset / generate_dataset.py): top-level datasets
  observations [N, 29], actions [N, 8], rewards [N] (or [N, 1]), terminals [N] (or [N, 1]),
  timeouts [N], infos/goal [N, 2], infos/qpos [N, 15], infos/qvel [N, 14], optionally
  next_observations [N, 29]. Rows are consecutive steps; an episode ends at a timeout.

Transitions are built the way D4RL's qlearning_dataset (terminate_on_end=False) builds them, which is
what IQL, RLPD and EXPO train on:
  - row i (0 <= i < N - 1) gives (observations[i], actions[i], rewards[i], s'), with
    s' = observations[i + 1] (D4RL); when the file has next_observations, s' = next_observations[i];
  - rows with timeouts[i] are dropped (their successor is the next episode's first state), and the
    last row N - 1 always is (it has no successor);
  - terminal rows are kept (D4RL keeps them; antmaze terminals mark goal states);
  - actions are clipped to +-(1 - 1e-5) (RLPD D4RLDataset clip_to_eps, so a tanh policy's
    log-prob stays finite);
  - masks = 1 - terminals (RLPD); rewards = spec.transform_reward(r) (antmaze: r - 1) when spec is
    given; dones = 1 at a terminal, where the next kept row does not continue this one (a dropped
    timeout row follows), and at the last transition (RLPD marks the same places by comparing
    observations[k + 1] with next_observations[k]); episode_starts = first row and every row after a
    done.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import h5py
import numpy as np

from expo.data.errors import DatasetError, DatasetMissing
from expo.protocol import TaskSpec

ACTION_CLIP = 1.0 - 1e-5
REQUIRED = ("observations", "actions", "rewards", "terminals", "timeouts")


def load_d4rl_hdf5(path, spec: Optional[TaskSpec] = None, fix_hint: str = "re-download the D4RL file",
                   replace_hint: Optional[str] = None) -> dict:
    """Transition arrays (see the module docstring) from one D4RL hdf5 file.

    fix_hint names the command for a missing file (DatasetMissing), replace_hint (default: fix_hint)
    the one for a file that is present but unusable (DatasetError).
    """
    path = Path(path)
    replace_hint = fix_hint if replace_hint is None else replace_hint

    def fail(what: str) -> DatasetError:
        return DatasetError(" ".join(f"{path}: {what}; fix: {replace_hint}".splitlines()))

    if not path.is_file():
        raise DatasetMissing(f"{path}: file not found; fix: {fix_hint}")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise fail(f"not a readable HDF5 file ({e})") from None
    with f:
        missing = [k for k in REQUIRED if k not in f or not isinstance(f[k], h5py.Dataset)]
        if missing:
            raise fail(f"missing dataset(s) {', '.join(missing)} (has: {', '.join(sorted(f.keys()))})")
        try:  # a file whose header is intact can still have unreadable (e.g. cut off) data chunks
            raw = {k: f[k][()] for k in REQUIRED}
            if "next_observations" in f:
                raw["next_observations"] = f["next_observations"][()]
        except (OSError, RuntimeError, KeyError, ValueError, TypeError) as e:
            raise fail(f"its data cannot be read ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None

    n = raw["observations"].shape[0] if raw["observations"].ndim else 0
    for key in ("rewards", "terminals", "timeouts"):  # D4RL accepts [N, 1] and squeezes it
        if raw[key].ndim == 2 and raw[key].shape[1] == 1:
            raw[key] = raw[key][:, 0]
    want_ndim = {"observations": 2, "actions": 2, "next_observations": 2, "rewards": 1, "terminals": 1, "timeouts": 1}
    for key, arr in raw.items():
        if arr.ndim != want_ndim[key] or arr.shape[0] != n:
            raise fail(f"'{key}' has shape {arr.shape}, expected {want_ndim[key]}-d with {n} rows (as observations)")
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise fail(f"'{key}' has non-numeric dtype {arr.dtype}")
        if not np.all(np.isfinite(arr)):
            raise fail(f"'{key}' contains NaN or inf")
    if n < 2:
        raise fail(f"{n} rows; at least 2 are needed to form a transition")
    if "next_observations" in raw and raw["next_observations"].shape[1] != raw["observations"].shape[1]:
        raise fail(f"next_observations width {raw['next_observations'].shape[1]} != observations width "
                   f"{raw['observations'].shape[1]}")
    for key in ("terminals", "timeouts"):
        if not np.all(np.isin(raw[key], (0, 1))):
            raise fail(f"'{key}' has values other than 0/1")
    obs_dim, act_dim = raw["observations"].shape[1], raw["actions"].shape[1]
    if spec is not None and (obs_dim, act_dim) != (spec.obs_dim, spec.act_dim):
        raise fail(f"observations have dim {obs_dim} and actions {act_dim}; task {spec.name!r} expects "
                   f"{spec.obs_dim} and {spec.act_dim}")

    timeouts = raw["timeouts"].astype(bool)
    terminals = raw["terminals"].astype(bool)
    keep = ~timeouts[:-1]                       # rows 0..N-2 that are not timeouts
    idx = np.flatnonzero(keep)
    if idx.size == 0:
        raise fail("no transitions left after dropping timeout rows")
    nxt = raw["next_observations"][idx] if "next_observations" in raw else raw["observations"][idx + 1]
    # The next kept row continues row i iff it is row i + 1, i.e. row i + 1 is kept (not a timeout
    # and not the dropped final row).
    continues = np.zeros(n, dtype=bool)
    continues[:-2] = keep[1:]
    term = terminals[idx]
    dones = term | ~continues[idx]
    dones[-1] = True
    starts = np.zeros(idx.size, dtype=bool)
    starts[0] = True
    starts[1:] = dones[:-1]
    raw_rewards = raw["rewards"][idx].astype(np.float64)
    rewards = raw_rewards if spec is None else spec.transform_reward(raw_rewards)
    return {
        "observations": raw["observations"][idx].astype(np.float32),
        "actions": np.clip(raw["actions"][idx], -ACTION_CLIP, ACTION_CLIP).astype(np.float32),
        "rewards": np.asarray(rewards, dtype=np.float32),
        "next_observations": nxt.astype(np.float32),
        "masks": (~term).astype(np.float32),
        "dones": dones.astype(np.float32),
        "episode_starts": starts,
    }


def load_dataset(entry, spec: Optional[TaskSpec] = None, num_demos: Optional[int] = None, seed: int = 0):
    """The registry interface (expo/data/__init__.py): one D4RL hdf5 file per entry, used whole."""
    if not entry.paths():
        raise DatasetError(f"dataset {entry.key!r} has no files registered; fix: add them to expo/data/registry.py")
    if num_demos is not None:
        raise DatasetError(
            f"{entry.path()}: dataset.num_demos={num_demos} was asked for, but D4RL datasets are used whole "
            f"(no demo subsets); fix: leave dataset.num_demos unset (none) for dataset {entry.key!r}")
    return load_d4rl_hdf5(entry.path(), spec=spec, fix_hint=entry.fix_hint(), replace_hint=entry.replace_hint())


def file_facts(entry) -> dict:
    """What expo/data/verify.py compares with entry.expected besides the loaded arrays: the file's raw
    row count (the loader drops the time-out rows and the last one, so its transitions are fewer).
    Called after load_dataset succeeded on the same file."""
    with h5py.File(entry.path(), "r") as f:
        return {"rows": int(f["observations"].shape[0])}


def write_d4rl_hdf5(path, arrays: dict, attrs: Optional[dict] = None) -> None:
    """Write D4RL's layout (the REQUIRED datasets, plus next_observations when given), atomically
    (a temp file in the same folder, then os.replace). `attrs` go on the file (values that are not
    str / number are stored as JSON strings)."""
    import json
    import os

    path = Path(path)
    missing = [k for k in REQUIRED if k not in arrays]
    if missing:
        raise ValueError(f"write_d4rl_hdf5: missing array(s) {', '.join(missing)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with h5py.File(tmp, "w") as f:
            for key in (*REQUIRED, "next_observations"):
                if key in arrays:
                    f.create_dataset(key, data=np.asarray(arrays[key]))
            for key, value in (attrs or {}).items():
                f.attrs[key] = value if isinstance(value, (str, int, float)) else json.dumps(value)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
