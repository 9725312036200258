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

Composed datasets (MimicGen, Table 2): a registry entry with options {"compose": [k_1, ..., k_n]} and n
files takes k_i demos from file i (e.g. Threading: 10 human source demos + 40 generated ones) and
concatenates them in file order. Within a file the k_i demos are drawn without replacement with the run's
seed (an independent stream per file), like `num_demos` subsampling: the authors' own 50 / 200-demo
subsets are not public, so which demos they used is unknown; a seeded draw makes each seed's subset
reproducible and lets the spread over seeds include the data subset, where "the first k" would silently
fix one arbitrary subset for every seed. A file with exactly k_i demos (the 10-demo source files) is used
whole. Files written by MimicGen's generator carry no rewards (its write_demo_to_hdf5 stores actions,
states, obs and datagen_info only; NVlabs/mimicgen issue #30); options {"missing_rewards":
"success_at_end"} then gives reward 1 to each demo's last transition: MimicGen keeps only generations that
succeed (failed ones go to a separate file) and a generated trajectory ends with its last subtask. That
every released demo's final state is a success was not checked against the files (no downloads here).

env_args: a run builds its env from data.attrs["env_args"] of the entry's last file (expo/robomimic_format.py
dataset_env_kwargs), so load_dataset checks it the same way before any run starts: valid JSON, robomimic's
{env_name, type, env_kwargs} with a robosuite type, kwargs that convert for the installed robosuite, and,
with a spec, recorded in the task's env. A file without env_args is accepted (the env is then built from
the protocol alone), as the training loop does.
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

from expo.data.errors import DatasetError, DatasetMissing
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
    missing_rewards: Optional[str] = None,
    replace_hint: Optional[str] = None,
    demos_source: Optional[str] = "dataset.num_demos",
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
    `missing_rewards="success_at_end"` accepts demos without `rewards` (MimicGen-generated files): reward
    1 on each such demo's last transition, 0 elsewhere (a warning names the file); None makes it an error.
    A missing file raises DatasetMissing naming fix_hint; a present but unusable one DatasetError naming
    replace_hint (default: fix_hint). demos_source names the setting num_demos came from, for its error
    (None: a fixed count, so a file with fewer demos can only be replaced).
    """
    if missing_rewards not in (None, "success_at_end"):
        raise ValueError(f"missing_rewards must be None or 'success_at_end', got {missing_rewards!r}")
    path = Path(path)
    replace_hint = fix_hint if replace_hint is None else replace_hint

    def fail(what: str, fix: Optional[str] = None) -> DatasetError:
        return DatasetError(" ".join(f"{path}: {what}; fix: {fix or replace_hint}".splitlines()))

    if not path.is_file():
        raise DatasetMissing(" ".join(f"{path}: file not found; fix: {fix_hint}".splitlines()))
    if not obs_keys:
        raise ValueError("obs_keys is empty")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise fail(f"not a readable HDF5 file ({e})") from None
    with f:
        if "data" not in f or not isinstance(f["data"], h5py.Group):
            raise fail(f"no 'data' group (has: {', '.join(sorted(f.keys())) or 'nothing'}): not a robomimic-format file")
        data = f["data"]
        names = demo_names(data)
        if filter_key is not None:
            names = _filtered(f, names, filter_key, fail)
        if not names:
            raise fail("no data/demo_<k> groups")
        if num_demos is not None:
            if not 1 <= num_demos <= len(names):
                raise fail(f"asked for {num_demos} demos, the file has {len(names)}",
                           None if demos_source is None else
                           f"ask for at most {len(names)} ({demos_source}), or if the file should hold more, "
                           f"replace it: {replace_hint}")
            picked = np.random.default_rng(seed).choice(len(names), size=num_demos, replace=False)
            names = [names[i] for i in sorted(picked)]
        try:  # intact headers can hold unreadable (cut off) data chunks or objects of the wrong kind
            demos = [_read_demo(data[n], f"data/{n}", obs_keys, fail, missing_rewards) for n in names]
        except (OSError, RuntimeError, KeyError, TypeError, ValueError) as e:
            raise fail(f"its demos cannot be read ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    no_next = sorted({k for d in demos for k in d["derived_next"]})
    if no_next:
        count = sum(bool(d["derived_next"]) for d in demos)
        keys = ", ".join(f"next_obs/{k}" for k in no_next)
        warnings.warn(f"{path}: {count} demos have no {keys}; using obs shifted by one step", stacklevel=2)
    derived = [n for n, d in zip(names, demos) if d["derived_rewards"]]
    if derived:
        warnings.warn(
            f"{path}: {len(derived)} demos have no 'rewards'; reward 1 on their last transition (success_at_end)",
            stacklevel=2,
        )

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
    """The registry interface (expo/data/__init__.py).

    One file per entry, or with entry.options["compose"] one count per file (module docstring);
    entry.options["missing_rewards"] is passed to the reader.
    """
    if not entry.paths():
        raise DatasetError(f"dataset {entry.key!r} has no files registered; fix: add them to expo/data/registry.py")
    recorded_in = (getattr(entry, "expected", None) or {}).get("env_name")
    if spec is not None and recorded_in not in (None, spec.env_name):  # the run's choice, not the file's fault
        from expo.protocol import TASKS  # spec.dataset is the run's choice here; the protocol row names the task's own

        own = f" (the task's own dataset: {TASKS[spec.name].dataset!r})" if spec.name in TASKS else ""
        raise DatasetError(
            f"dataset {entry.key!r} was recorded in {recorded_in!r}, task {spec.name!r} runs in {spec.env_name!r}; "
            f"fix: leave dataset.name unset{own} or name a dataset recorded in {spec.env_name!r}")
    options = getattr(entry, "options", None) or {}
    missing_rewards = options.get("missing_rewards")
    hints = {"fix_hint": entry.fix_hint(), "replace_hint": entry.replace_hint()}
    if "compose" not in options:
        data = load_robomimic_hdf5(entry.path(), entry.obs_keys, num_demos=num_demos, seed=seed, spec=spec,
                                   missing_rewards=missing_rewards, **hints)
    else:
        data = load_composed(entry.paths(), options["compose"], entry.obs_keys, num_demos=num_demos, seed=seed,
                             spec=spec, missing_rewards=missing_rewards, **hints)
    # The run's env comes from the last file's env_args (expo/robomimic_format.py dataset_env_kwargs); the
    # others are only checked to be well-formed (a MimicGen source file names the base env, e.g. Threading).
    paths = entry.paths()
    for i, path in enumerate(paths):
        check_env_args(path, spec.env_name if spec is not None and i == len(paths) - 1 else None,
                       entry.replace_hint(), spec.name if spec is not None else None)
    return data


def read_env_args(path) -> Optional[dict]:
    """data.attrs["env_args"] of a robomimic-format file, parsed; None when the file has none (or an
    empty one, which dataset_env_kwargs treats the same). Raises ValueError when it is not a JSON object
    with robomimic's env_kwargs mapping."""
    with h5py.File(path, "r") as f:
        raw = f["data"].attrs.get("env_args") if "data" in f else None
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    try:
        env_args = json.loads(str(raw))
    except json.JSONDecodeError as e:
        raise ValueError(f"is not valid JSON ({e})") from None
    if not isinstance(env_args, dict) or not isinstance(env_args.get("env_kwargs"), dict):
        raise ValueError("is not robomimic's env metadata, a JSON object {env_name, type, env_kwargs}")
    return env_args


def check_env_args(path, env_name: Optional[str], replace_hint: str, task: Optional[str] = None) -> None:
    """DatasetError unless `path`'s env_args would build an env as the training loop builds it: the
    same conversion (expo/robomimic_format.py env_kwargs_from_env_args) and, with env_name, that env."""
    from expo.robomimic_format import ROBOSUITE_ENV_TYPE, _import_robosuite, env_kwargs_from_env_args

    def fail(what: str) -> DatasetError:
        return DatasetError(" ".join(f"{path}: data.attrs['env_args'] {what}; fix: {replace_hint}".splitlines()))

    try:
        env_args = read_env_args(path)
    except ValueError as e:
        raise fail(str(e)) from None
    if env_args is None:
        return
    if env_args.get("type", ROBOSUITE_ENV_TYPE) != ROBOSUITE_ENV_TYPE:
        raise fail(f"has type {env_args.get('type')!r}, not a robosuite env (type {ROBOSUITE_ENV_TYPE})")
    recorded = env_args.get("env_name")
    if env_name is not None and recorded not in (None, env_name):
        raise fail(f"says it was recorded in {recorded!r}, task {task!r} runs in {env_name!r} "
                   f"(a file of another task at this path?)")
    if "controller_configs" in env_args["env_kwargs"]:  # the conversion imports robosuite
        try:  # through the suite's import, which filters robosuite's import-time log lines out of the
            _import_robosuite()  # one-line error a failing run prints
        except ImportError:
            pass  # without robosuite the conversion leaves the config as it is
    try:
        env_kwargs_from_env_args(env_args, env_name=env_name)
    except Exception as e:  # noqa: BLE001 - whatever the conversion rejects, the run would too
        reason = str(e).split("; fix:")[0]  # its own fix is addressed to a caller, not to the user
        raise fail(f"cannot be turned into robosuite.make arguments ({type(e).__name__}: {reason})") from None


def file_facts(entry) -> dict:
    """What expo/data/verify.py compares with entry.expected besides the loaded arrays: the demos each
    file holds (a composed entry loads only some of them) and the env the run's env is built from (the
    last file's env_args). Called after load_dataset succeeded on the same files."""
    counts = []
    for path in entry.paths():
        with h5py.File(path, "r") as f:
            counts.append(len(demo_names(f["data"])))
    env_args = read_env_args(entry.paths()[-1])
    return {"file_demos": tuple(counts), "env_name": None if env_args is None else env_args.get("env_name")}


def load_composed(
    paths: Sequence,
    counts: Sequence[int],
    obs_keys: Sequence[str],
    num_demos: Optional[int] = None,
    seed: int = 0,
    spec: Optional[TaskSpec] = None,
    fix_hint: str = DEFAULT_FIX,
    missing_rewards: Optional[str] = None,
    replace_hint: Optional[str] = None,
) -> dict[str, np.ndarray]:
    """counts[i] demos from paths[i] (seeded draw, stream i of `seed`), concatenated in file order.

    Same arrays as load_robomimic_hdf5, plus file_ids [N] (int32, i of the file a transition came from;
    demo_ids stay each file's own demo_<k>). `num_demos`, when given, must equal sum(counts): a run's
    demo count is the composition's, and a silent mismatch would hide a protocol error.
    """
    if len(paths) != len(counts):
        raise ValueError(f"compose has {len(counts)} counts for {len(paths)} files")
    total = int(sum(counts))
    if num_demos is not None and num_demos != total:
        raise DatasetError(
            f"the composed dataset has {total} demos ({' + '.join(map(str, counts))}), {num_demos} were asked for; "
            f"fix: use num_demos={total} or change the registry entry's compose counts"
        )
    parts = []
    for i, (path, k) in enumerate(zip(paths, counts)):
        file_seed = int(np.random.SeedSequence([int(seed), i]).generate_state(1)[0])
        part = load_robomimic_hdf5(path, obs_keys, num_demos=int(k), seed=file_seed, spec=spec,
                                   fix_hint=fix_hint, missing_rewards=missing_rewards, replace_hint=replace_hint,
                                   demos_source=None)  # the registry's compose counts (Table 2)
        part["file_ids"] = np.full(len(part["rewards"]), i, np.int32)
        parts.append(part)
    widths = {p["observations"].shape[1] for p in parts}
    if len(widths) != 1:
        raise DatasetError(f"composed files disagree on observation width: {sorted(widths)}; "
                           f"fix: {fix_hint if replace_hint is None else replace_hint}")
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def _filtered(f: h5py.File, names: list[str], filter_key: str, fail) -> list[str]:
    if f"mask/{filter_key}" not in f:
        raise fail(f"no filter key mask/{filter_key}")
    wanted = {x.decode() if isinstance(x, bytes) else str(x) for x in f[f"mask/{filter_key}"][()]}
    missing = wanted - set(names)
    if missing:
        raise fail(f"mask/{filter_key} lists demos that do not exist: {sorted(missing)[:5]}")
    return [n for n in names if n in wanted]


def _read_demo(g: h5py.Group, where: str, obs_keys: Sequence[str], fail, missing_rewards=None) -> dict:
    """One demo's arrays, validated: obs/next_obs [T, D] concatenated, actions [T, A], rewards [T]."""
    required = ("actions", "obs") if missing_rewards else ("actions", "rewards", "obs")
    for key in required:
        if key not in g:
            raise fail(f"{where} has no '{key}'")
    actions = _array(g, "actions", where, 2, fail)
    horizon = actions.shape[0]
    if horizon == 0:
        raise fail(f"{where} is empty (0 transitions)")
    derived = "rewards" not in g
    if derived:  # missing_rewards == "success_at_end": the demo's final state is its success
        rewards = np.zeros(horizon)
        rewards[-1] = 1.0
    else:
        rewards = _array(g, "rewards", where, 1, fail, horizon)

    obs_parts, next_parts, derived_next = [], [], []
    for key in obs_keys:
        if key not in g["obs"]:
            raise fail(f"{where}/obs has no key '{key}' (has: {', '.join(sorted(g['obs'].keys()))})")
        obs = _array(g["obs"], key, f"{where}/obs", 2, fail, horizon)
        if "next_obs" in g and key in g["next_obs"]:
            nxt = _array(g["next_obs"], key, f"{where}/next_obs", 2, fail, horizon)
            if nxt.shape[1] != obs.shape[1]:
                raise fail(f"{where}/next_obs/{key} has width {nxt.shape[1]}, obs/{key} has {obs.shape[1]}")
        else:
            # Old robomimic files lack next_obs for some keys, MimicGen's files have none: s'_t = s_{t+1},
            # and the last one repeats (load_robomimic_hdf5 warns once per file).
            nxt = np.concatenate([obs[1:], obs[-1:]])
            derived_next.append(key)
        obs_parts.append(obs)
        next_parts.append(nxt)
    return {
        "obs": np.concatenate(obs_parts, axis=1),
        "next_obs": np.concatenate(next_parts, axis=1),
        "actions": actions,
        "rewards": rewards,
        "derived_rewards": derived,
        "derived_next": derived_next,
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
