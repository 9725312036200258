"""The AWAC Adroit binary datasets ({task}2_sparse.npy + {task}_bc_sparse4.npy), composed as RLPD / EXPO do.

File layouts (established from rlkit's own copy of pen2_sparse.npy, rail-berkeley/rlkit
tests/regression/awac/hand/pen2_sparse.npy, and from public loaders of these files: RLPD
rlpd/data/binary_datasets.py, Cal-QL's get_hand_dataset_with_mc_calculation, EXPO's
convert_minari_to_awac.py). Both files are np.save'd 1-d object arrays of trajectory dicts, read
with np.load(allow_pickle=True) (pickle: load only files from the official archive).
  expert  {task}2_sparse.npy, one dict per human demonstration:
      observations / next_observations  list of T dicts {"observation", "state_observation"}: [D]
      actions     list of T arrays [A]
      rewards     [T + 1]  (one extra trailing entry; rlkit and RLPD drop the last one)
      terminals   [T]      (all 0 in pen)
      agent_infos, env_infos  lists of empty dicts (ignored)
  bc      {task}_bc_sparse4.npy, one dict per rollout of a behaviour-cloned policy:
      observations / next_observations [T, D], actions [T, A], rewards [T, 1], terminals [T, 1]
      (terminals mark the time-limit end of the rollout), agent_infos, env_infos (ignored)
Rewards are the binary task's goal_achieved - 1, values in {-1, 0}. RLPD uses them unchanged (it only
shifts antmaze rewards), so the learner sees {-1, 0} as from the env (expo/envs/adroit.py);
spec.transform_reward (identity for adroit) is applied anyway so the protocol stays the one place
that decides. Note that the stored labels are used as they are: in rlkit's pen2_sparse.npy they agree
with the goal test recomputed from the stored next observations on only ~65% of the steps (some
demos are labelled all -1 although the stored states reach the goal); RLPD and EXPO train on the labels.

Composition (RLPD BinaryDataset, used unchanged by EXPO's expo/data/binary_datasets.py):
  - the first int(0.9 * n) trajectories of the expert file, then the first int(0.9 * n) of the BC file
    (the 90% "train split" RLPD took from rlkit's AWAC launcher); no shuffling, so `seed` is unused;
  - expert rewards: the trailing extra entry dropped (rewards[:-1]);
  - terminals removed: every mask is 1 (the binary tasks never terminate; the BC terminals are
    time-outs);
  - actions clipped to +-(1 - 1e-5), so that a tanh policy's log-prob of a dataset action is finite;
  - dones: 1 at each trajectory's last transition (RLPD derives the same boundaries from
    observation discontinuities; here the trajectory structure is known).
Returned keys: observations, next_observations, actions, rewards, masks, dones (float32),
episode_starts (bool), demo_ids (int32, the trajectory's index in its file), from_expert (bool).
Any missing key, ragged length, wrong width or non-finite value raises DatasetError, one line:
"<file>: <what is wrong>; fix: <entry.replace_hint()>" (a missing file: DatasetMissing, entry.fix_hint()).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from expo.data.errors import DatasetError, DatasetMissing
from expo.protocol import TaskSpec

TRAIN_SPLIT = 0.9         # RLPD: dataset_split = 0.9, for both files
ACTION_CLIP_EPS = 1e-5    # RLPD: clip_to_eps=True, eps=1e-5
REQUIRED_KEYS = ("observations", "actions", "rewards", "next_observations", "terminals")
OBS_KEY = "state_observation"  # the key RLPD (and rlkit's AWAC hand launcher) reads from the expert dicts


def train_split_count(n: int) -> int:
    """How many leading trajectories RLPD keeps out of n (the same float expression, int-truncated)."""
    return int(TRAIN_SPLIT * n)


def load_dataset(entry, spec: Optional[TaskSpec] = None, num_demos: Optional[int] = None, seed: int = 0):
    """The registry interface (expo/data/__init__.py): entry.files = (expert file, BC file), in that order."""
    del seed  # the split is the files' first 90%: nothing random
    paths = entry.paths()
    if num_demos is not None:  # a run's setting, not the files' fault: a DatasetError, so `train` says it in one line
        raise DatasetError(
            f"{paths[0] if paths else entry.key}: dataset.num_demos={num_demos} was asked for, but dataset "
            f"{entry.key!r} always uses the first 90% of both AWAC files (no demo subsets); fix: leave "
            f"dataset.num_demos unset (none)"
        )
    if len(paths) != 2:
        raise DatasetError(
            f"dataset {entry.key!r} must register 2 files (expert, BC), has {len(paths)}; fix: expo/data/registry.py"
        )
    return load_awac_binary(paths[0], paths[1], spec=spec, fix_hint=entry.fix_hint(),
                            replace_hint=entry.replace_hint())


def file_facts(entry) -> dict:
    """Counts of the raw files that expo/data/verify.py compares with entry.expected (the loader keeps
    only the first 90% of the trajectories, so these are not visible in its arrays). Called after
    load_dataset succeeded on the same files."""
    expert = _read_file(entry.paths()[0], "expert", entry.fix_hint(), entry.replace_hint())
    bc = _read_file(entry.paths()[1], "bc", entry.fix_hint(), entry.replace_hint())
    lengths = sorted({len(t["actions"]) for t in expert})
    return {
        "expert_trajectories": len(expert),
        # one number when every demo has the same length (rlkit's pen file: 199), else "min-max"
        "expert_trajectory_length": lengths[0] if len(lengths) == 1 else f"{lengths[0]}-{lengths[-1]}",
        "bc_trajectories": len(bc),
    }


def load_awac_binary(expert_path, bc_path, spec: Optional[TaskSpec] = None,
                     fix_hint: str = "re-download the AWAC archive", replace_hint: Optional[str] = None):
    """RLPD's Adroit binary dataset from the two AWAC files (module docstring); float32 arrays.

    fix_hint names the command for a missing file, replace_hint (default: fix_hint) the one for a
    file that is present but unusable."""
    replace_hint = fix_hint if replace_hint is None else replace_hint
    expert = _read_file(Path(expert_path), "expert", fix_hint, replace_hint)
    bc = _read_file(Path(bc_path), "bc", fix_hint, replace_hint)
    fix_hint = replace_hint  # both files are there: every error below is about a present file
    parts = []  # (path, trajectories kept, from_expert)
    for path, trajs, is_expert in ((Path(expert_path), expert, True), (Path(bc_path), bc, False)):
        keep = train_split_count(len(trajs))
        if keep == 0:
            raise _fail(path, fix_hint, f"has {len(trajs)} trajectories; the first 90% of them is empty")
        parts.append((path, trajs[:keep], is_expert))

    widths = {}
    for path, trajs, _ in parts:
        for i, t in enumerate(trajs):
            w = (t["obs"].shape[1], t["actions"].shape[1])
            widths.setdefault(w, (path, i))
    if len(widths) != 1:
        where = "; ".join(f"{p.name} trajectory {i}: obs {w[0]}, actions {w[1]}" for w, (p, i) in widths.items())
        raise _fail(Path(expert_path), fix_hint, f"the two AWAC files disagree on widths ({where})")
    (obs_dim, act_dim), = widths
    if spec is not None and (obs_dim, act_dim) != (spec.obs_dim, spec.act_dim):
        raise _fail(
            Path(expert_path), fix_hint,
            f"observations have dim {obs_dim} and actions dim {act_dim}; task {spec.name!r} expects "
            f"{spec.obs_dim} and {spec.act_dim} (a file of another Adroit task?)",
        )

    trajs = [(t, i, is_expert) for _, kept, is_expert in parts for i, t in enumerate(kept)]
    lengths = [len(t["rewards"]) for t, _, _ in trajs]
    raw_rewards = np.concatenate([t["rewards"] for t, _, _ in trajs])
    rewards = raw_rewards if spec is None else spec.transform_reward(raw_rewards)
    lim = 1.0 - ACTION_CLIP_EPS
    return {
        "observations": np.concatenate([t["obs"] for t, _, _ in trajs]).astype(np.float32),
        "next_observations": np.concatenate([t["next_obs"] for t, _, _ in trajs]).astype(np.float32),
        "actions": np.clip(np.concatenate([t["actions"] for t, _, _ in trajs]), -lim, lim).astype(np.float32),
        "rewards": np.asarray(rewards, dtype=np.float32),
        "masks": np.ones(len(raw_rewards), dtype=np.float32),  # terminals removed (RLPD remove_terminals)
        "dones": np.concatenate([np.arange(n) == n - 1 for n in lengths]).astype(np.float32),
        "episode_starts": np.concatenate([np.arange(n) == 0 for n in lengths]),
        "demo_ids": np.concatenate([np.full(n, i, np.int32) for n, (_, i, _) in zip(lengths, trajs)]),
        "from_expert": np.concatenate([np.full(n, e, bool) for n, (_, _, e) in zip(lengths, trajs)]),
    }


def _fail(path: Path, fix_hint: str, what: str) -> DatasetError:
    return DatasetError(" ".join(f"{path}: {what}; fix: {fix_hint}".splitlines()))


def _read_file(path: Path, kind: str, fix_hint: str, replace_hint: Optional[str] = None) -> list[dict]:
    """Validated trajectories of one AWAC file: dicts of obs, next_obs [T, D], actions [T, A], rewards [T].
    A missing file names fix_hint, a present but unusable one replace_hint (default: fix_hint)."""
    def fail(what: str) -> DatasetError:
        return _fail(path, fix_hint if replace_hint is None else replace_hint, what)

    if not path.is_file():
        raise DatasetMissing(f"{path}: file not found; fix: {fix_hint}")
    try:
        data = np.load(path, allow_pickle=True)
    except Exception as e:  # a truncated download, an html error page, ... (np.load raises several types)
        raise fail(f"not a readable .npy file ({type(e).__name__}: {e})") from None
    if not isinstance(data, np.ndarray) or data.dtype != object or data.ndim != 1:
        desc = f"{type(data).__name__} {getattr(data, 'dtype', '')} {getattr(data, 'shape', '')}".strip()
        raise fail(f"expected a 1-d object array of trajectory dicts (AWAC layout), got {desc}")
    if len(data) == 0:
        raise fail("contains no trajectories")
    return [_read_trajectory(t, i, kind, fail) for i, t in enumerate(data)]


def _read_trajectory(traj, i: int, kind: str, fail) -> dict:
    where = f"trajectory {i}"
    if not isinstance(traj, dict):
        raise fail(f"{where} is a {type(traj).__name__}, expected a dict")
    for key in REQUIRED_KEYS:
        if key not in traj:
            raise fail(f"{where} has no '{key}' (has: {', '.join(sorted(map(str, traj)))})")

    if kind == "expert":  # per-step observation dicts
        obs = _stack_obs_dicts(traj["observations"], f"{where} observations", fail)
        next_obs = _stack_obs_dicts(traj["next_observations"], f"{where} next_observations", fail)
    else:
        obs = _numeric(traj["observations"], f"{where} observations", fail)
        next_obs = _numeric(traj["next_observations"], f"{where} next_observations", fail)
    actions = _numeric(traj["actions"], f"{where} actions", fail)
    rewards = _column(traj["rewards"], f"{where} rewards", fail)
    terminals = _column(traj["terminals"], f"{where} terminals", fail)

    for name, arr in (("observations", obs), ("next_observations", next_obs), ("actions", actions)):
        if arr.ndim != 2:
            raise fail(f"{where} {name} has shape {arr.shape}, expected [T, width]")
    horizon = len(actions)
    if horizon == 0:
        raise fail(f"{where} is empty (0 transitions)")
    # The expert file's rewards have T + 1 entries and the last one is dropped (RLPD: rewards[:-1]);
    # the BC file's have T. Anything else means the wrong file or a damaged one.
    want = {"observations": horizon, "next_observations": horizon, "terminals": horizon,
            "rewards": horizon + 1 if kind == "expert" else horizon}
    got = {"observations": len(obs), "next_observations": len(next_obs), "terminals": len(terminals),
           "rewards": len(rewards)}
    bad = [k for k in want if got[k] != want[k]]
    if bad:
        extra = " (the expert file's rewards carry one extra trailing entry)" if kind == "expert" else ""
        raise fail(
            f"{where} has ragged lengths: {horizon} actions but "
            + ", ".join(f"{got[k]} {k} (expected {want[k]})" for k in bad) + extra
        )
    if obs.shape[1] != next_obs.shape[1]:
        raise fail(f"{where} observations have width {obs.shape[1]} but next_observations {next_obs.shape[1]}")
    rewards = rewards[:horizon]
    for name, arr in (("observations", obs), ("next_observations", next_obs), ("actions", actions),
                      ("rewards", rewards)):
        if not np.all(np.isfinite(arr)):
            raise fail(f"{where} {name} contain NaN or inf")
    odd = np.setdiff1d(np.unique(rewards), [-1.0, 0.0])
    if odd.size:
        raise fail(f"{where} rewards must be goal_achieved - 1 in {{-1, 0}} (AWAC sparse labels), "
                   f"found {odd[:5].tolist()}")
    return {"obs": obs, "next_obs": next_obs, "actions": actions, "rewards": rewards}


def _stack_obs_dicts(steps, where: str, fail) -> np.ndarray:
    if isinstance(steps, np.ndarray) and steps.dtype != object:
        raise fail(f"{where} is a numeric array; the expert layout stores one dict per step with '{OBS_KEY}'")
    if not isinstance(steps, (list, tuple, np.ndarray)):
        raise fail(f"{where} is a {type(steps).__name__}; the expert layout stores a list of one dict per step")
    rows = []
    for t, step in enumerate(steps):
        if not isinstance(step, dict) or OBS_KEY not in step:
            raise fail(f"{where} step {t} is not a dict with '{OBS_KEY}'")
        rows.append(np.asarray(step[OBS_KEY]).ravel())
    if not rows:
        return np.zeros((0, 0))
    if len({r.shape for r in rows}) != 1:
        raise fail(f"{where} steps have different widths: {sorted({r.size for r in rows})}")
    return _numeric(np.stack(rows), where, fail)


def _numeric(value, where: str, fail) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except ValueError as e:  # ragged nested lists
        raise fail(f"{where} is ragged ({e})") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise fail(f"{where} has non-numeric dtype {arr.dtype} (ragged steps?)")
    return arr.astype(np.float64)


def _column(value, where: str, fail) -> np.ndarray:
    """[T] or [T, 1] (the BC file stores rewards / terminals as columns) -> [T]."""
    arr = _numeric(value, where, fail)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise fail(f"{where} has shape {arr.shape}, expected [T] or [T, 1]")
    return arr
