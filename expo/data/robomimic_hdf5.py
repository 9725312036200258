"""Reading and writing robomimic-format low-dim hdf5 files.

Layout (robomimic v0.1 and the files this suite generates):
  data/                      attrs: total (int), env_args (JSON {"env_name", "type", "env_kwargs"})
  data/demo_<k>/             attrs: num_samples (int), optionally model_file (MJCF xml)
      obs/<key>              [T, d]
      next_obs/<key>         [T, d]   (some old files lack it for some keys)
      actions                [T, A]
      rewards, dones         [T]
      states                 [T, S]   MuJoCo state [time, qpos, qvel]
  mask/<filter_key>          optional: names of the demos in a split ("train", "valid", ...)
Demos are ordered by their numeric index k (demo_2 before demo_10), never lexically.
"""
from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from typing import Optional, Sequence

import h5py
import numpy as np

from expo.data.errors import DatasetError
from expo.protocol import TaskSpec

DEFAULT_FIX = "regenerate it with `python -m expo.data generate lift` or re-download the robomimic file"
_DEMO_RE = re.compile(r"^demo_(\d+)$")


def demo_names(data: h5py.Group) -> list[str]:
    """Names of the demo groups, sorted by numeric index."""
    found = [(int(m.group(1)), k) for k in data.keys() if (m := _DEMO_RE.match(k))]
    return [k for _, k in sorted(found)]


def load_robomimic_hdf5(
    path,
    obs_keys: Sequence[str],
    num_demos: Optional[int] = None,
    seed: int = 0,
    spec: Optional[TaskSpec] = None,
    filter_key: Optional[str] = None,
    fix_hint: str = DEFAULT_FIX,
) -> dict[str, np.ndarray]:
    """Flat transition arrays from a robomimic-format low-dim file.

    Demo selection: all demos (or those listed in mask/<filter_key>), in numeric order; with
    `num_demos=k`, k of them are drawn without replacement by `np.random.default_rng(seed).choice`
    over that ordered list, and the drawn demos are then kept in numeric order. k larger than the
    number available is an error.

    Returns float32 arrays (N transitions, D = sum of the obs_keys' widths, in the given order):
      observations [N, D], next_observations [N, D], actions [N, A],
      rewards [N]   spec.transform_reward(file reward) (untransformed when spec is None),
      masks [N]     0 on a true termination, else 1; with terminate_on == "success" (or spec None)
                    a termination is a success state, i.e. file reward > 0,
      dones [N]     1 at an episode boundary: a termination or the demo's last transition,
    plus episode_starts [N] (bool, True at each demo's first transition) and demo_ids [N] (int32,
    the k of demo_<k>). With `spec`, the obs / action widths must match spec.obs_dim / spec.act_dim.
    Any missing file, group, key or inconsistent shape raises DatasetError; nothing is reshaped.
    """
    path = Path(path)

    def fail(what: str) -> DatasetError:
        return DatasetError(" ".join(f"{path}: {what}; fix: {fix_hint}".splitlines()))

    if not path.is_file():
        raise fail("file not found")
    if not obs_keys:
        raise ValueError("obs_keys is empty")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise fail(f"not a readable HDF5 file ({e})") from None
    with f:
        if "data" not in f:
            raise fail("no 'data' group")
        data = f["data"]
        names = demo_names(data)
        if filter_key is not None:
            names = _filtered(f, names, filter_key, fail)
        if not names:
            raise fail("no data/demo_<k> groups")
        if num_demos is not None:
            if not 1 <= num_demos <= len(names):
                raise fail(f"asked for {num_demos} demos, the file has {len(names)}")
            picked = np.random.default_rng(seed).choice(len(names), size=num_demos, replace=False)
            names = [names[i] for i in sorted(picked)]
        demos = [_read_demo(data[n], f"data/{n}", obs_keys, fail) for n in names]

    widths = {(d["obs"].shape[1], d["actions"].shape[1]) for d in demos}
    if len(widths) != 1:
        raise fail(f"demos disagree on observation/action widths: {sorted(widths)}")
    (obs_dim, act_dim), = widths
    if spec is not None and (obs_dim, act_dim) != (spec.obs_dim, spec.act_dim):
        raise fail(
            f"obs keys {list(obs_keys)} give obs dim {obs_dim} and actions have dim {act_dim}; "
            f"task {spec.name!r} expects {spec.obs_dim} and {spec.act_dim}"
        )

    raw_rewards = np.concatenate([d["rewards"] for d in demos])
    terminate_on = "success" if spec is None else spec.terminate_on
    terminal = raw_rewards > 0 if terminate_on == "success" else np.zeros_like(raw_rewards, dtype=bool)
    last = np.concatenate([np.arange(len(d["rewards"])) == len(d["rewards"]) - 1 for d in demos])
    rewards = raw_rewards if spec is None else spec.transform_reward(raw_rewards)
    return {
        "observations": np.concatenate([d["obs"] for d in demos]).astype(np.float32),
        "actions": np.concatenate([d["actions"] for d in demos]).astype(np.float32),
        "rewards": np.asarray(rewards, dtype=np.float32),
        "next_observations": np.concatenate([d["next_obs"] for d in demos]).astype(np.float32),
        "masks": (~terminal).astype(np.float32),
        "dones": (terminal | last).astype(np.float32),
        "episode_starts": np.concatenate([np.arange(len(d["rewards"])) == 0 for d in demos]),
        "demo_ids": np.concatenate(
            [np.full(len(d["rewards"]), int(_DEMO_RE.match(n).group(1)), np.int32) for d, n in zip(demos, names)]
        ),
    }


def load_dataset(entry, spec: Optional[TaskSpec] = None, num_demos: Optional[int] = None, seed: int = 0):
    """The registry interface (expo/data/__init__.py): one robomimic-format file per entry."""
    if not entry.paths():
        raise DatasetError(f"dataset {entry.key!r} has no files registered; fix: {entry.fix_hint()}")
    return load_robomimic_hdf5(entry.path(), entry.obs_keys, num_demos=num_demos, seed=seed, spec=spec,
                               fix_hint=entry.fix_hint())


def _filtered(f: h5py.File, names: list[str], filter_key: str, fail) -> list[str]:
    if f"mask/{filter_key}" not in f:
        raise fail(f"no filter key mask/{filter_key}")
    wanted = {x.decode() if isinstance(x, bytes) else str(x) for x in f[f"mask/{filter_key}"][()]}
    missing = wanted - set(names)
    if missing:
        raise fail(f"mask/{filter_key} lists demos that do not exist: {sorted(missing)[:5]}")
    return [n for n in names if n in wanted]


def _read_demo(g: h5py.Group, where: str, obs_keys: Sequence[str], fail) -> dict:
    """One demo's arrays, validated: obs/next_obs [T, D] concatenated, actions [T, A], rewards [T]."""
    for key in ("actions", "rewards", "obs"):
        if key not in g:
            raise fail(f"{where} has no '{key}'")
    actions = _array(g, "actions", where, 2, fail)
    horizon = actions.shape[0]
    if horizon == 0:
        raise fail(f"{where} is empty (0 transitions)")
    rewards = _array(g, "rewards", where, 1, fail, horizon)

    obs_parts, next_parts = [], []
    for key in obs_keys:
        if key not in g["obs"]:
            raise fail(f"{where}/obs has no key '{key}' (has: {', '.join(sorted(g['obs'].keys()))})")
        obs = _array(g["obs"], key, f"{where}/obs", 2, fail, horizon)
        if "next_obs" in g and key in g["next_obs"]:
            nxt = _array(g["next_obs"], key, f"{where}/next_obs", 2, fail, horizon)
            if nxt.shape[1] != obs.shape[1]:
                raise fail(f"{where}/next_obs/{key} has width {nxt.shape[1]}, obs/{key} has {obs.shape[1]}")
        else:
            # Old robomimic files lack next_obs for some keys: s'_t = s_{t+1}, and the last one repeats.
            warnings.warn(f"{where} has no next_obs/{key}; using obs shifted by one step", stacklevel=3)
            nxt = np.concatenate([obs[1:], obs[-1:]])
        obs_parts.append(obs)
        next_parts.append(nxt)
    return {
        "obs": np.concatenate(obs_parts, axis=1),
        "next_obs": np.concatenate(next_parts, axis=1),
        "actions": actions,
        "rewards": rewards,
    }


def _array(g: h5py.Group, key: str, where: str, ndim: int, fail, length: Optional[int] = None) -> np.ndarray:
    obj = g[key]
    if not isinstance(obj, h5py.Dataset):
        raise fail(f"{where}/{key} is not a dataset")
    arr = obj[()]
    if arr.ndim != ndim or (length is not None and arr.shape[0] != length):
        want = f"{ndim}-d" + (f" with {length} rows" if length is not None else "")
        raise fail(f"{where}/{key} has shape {arr.shape}, expected {want}")
    if not np.issubdtype(arr.dtype, np.number) and arr.dtype != bool:
        raise fail(f"{where}/{key} has non-numeric dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        raise fail(f"{where}/{key} contains NaN or inf")
    return arr


def write_robomimic_hdf5(path, demos: Sequence[dict], env_args: dict, attrs: Optional[dict] = None) -> None:
    """Write demos in robomimic's layout, atomically (a temp file in the same folder, then os.replace).

    Each demo: {"obs": {key: [T, d]}, "next_obs": {key: [T, d]}, "actions": [T, A], "rewards": [T],
    "dones": [T], "states": [T, S], optionally "model_file": str}. `attrs` go on the data group
    (values that are not str / number are stored as JSON strings).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with h5py.File(tmp, "w") as f:
            data = f.create_group("data")
            total = 0
            for k, demo in enumerate(demos):
                g = data.create_group(f"demo_{k}")
                horizon = len(demo["actions"])
                for group in ("obs", "next_obs"):
                    for key, value in demo[group].items():
                        g.create_dataset(f"{group}/{key}", data=np.asarray(value, dtype=np.float64))
                g.create_dataset("actions", data=np.asarray(demo["actions"], dtype=np.float64))
                g.create_dataset("rewards", data=np.asarray(demo["rewards"], dtype=np.float64))
                g.create_dataset("dones", data=np.asarray(demo["dones"], dtype=np.int64))
                g.create_dataset("states", data=np.asarray(demo["states"], dtype=np.float64))
                g.attrs["num_samples"] = horizon
                if "model_file" in demo:
                    g.attrs["model_file"] = demo["model_file"]
                total += horizon
            data.attrs["total"] = total
            data.attrs["env_args"] = json.dumps(env_args)
            for key, value in (attrs or {}).items():
                data.attrs[key] = value if isinstance(value, (str, int, float)) else json.dumps(value)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
