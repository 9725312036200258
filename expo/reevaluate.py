"""Re-evaluate a finished run from the policy it kept (expo/policy_store.py).

    python -m expo.evaluate <run_dir> [episodes=N] [seed=S] [video=true] [video_episodes=K]

The run's own settings are rebuilt from its config.json: the task's protocol row as the run recorded
it, the env kwargs of its dataset (robosuite tasks: the dataset file must be on disk), the agent of
its config with the saved parameters, and the evaluation environments and keys of the training
loop's last evaluation (expo/train.py): min(eval_envs, episodes) envs made with seed S + 1, episode
i reset from episode_seed(S, "eval", i), keys from fold_in(jax_key(S, "eval"), env_step) with the
env_step of the run's last eval.csv row, and the method's evaluation policy. With the defaults (the
run's seed and eval_episodes) the result is that row again, on the machine that wrote it.

Each invocation appends one row to run_dir/reeval.csv (rewritten whole, atomically; see
analysis/SCHEMA.md); eval.csv and train.csv are never touched. video=true also renders the first
video_episodes (default 1) of those episodes offscreen (expo/render.py: MUJOCO_GL=egl or osmesa) into
run_dir/reeval_<row>.mp4: the same episodes, seeds and keys as the evaluation's.
"""
from __future__ import annotations

import csv
import dataclasses
import datetime
import functools
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

REEVAL_FILE = "reeval.csv"
REEVAL_COLUMNS = ("env_step", "seed", "success", "return", "episodes", "episode_length",
                  "eval_time_s", "evaluated_at", "video")
COMPARED = ("success", "return", "episodes", "episode_length")  # eval.csv's columns but wall time
KEYS = {"episodes": int, "seed": int, "video": bool, "video_episodes": int}

USAGE = """usage: python -m expo.evaluate <run_dir> [episodes=N] [seed=S] [video=true] [video_episodes=K]

Re-evaluate a finished run from the policy it saved (<run_dir>/policy/), with the evaluation of its
last eval.csv row: the same environments, initial states and keys. Appends one row to
<run_dir>/reeval.csv and prints whether it matches that row.

  episodes=N        evaluation episodes (default: the run's eval_episodes)
  seed=S            the seed of the initial states and keys (default: the run's seed)
  video=true        also write <run_dir>/reeval_<row>.mp4 of the first episodes, rendered offscreen
                    (MuJoCo with MUJOCO_GL=egl or osmesa; egl is picked where libEGL is installed)
  video_episodes=K  episodes in the video (default 1, at most N)"""


class ReevalError(Exception):
    """The run cannot be re-evaluated: the message is one line saying why and what to do."""


def parse_args(argv: list[str]) -> tuple[Path, dict[str, Any]]:
    from expo.config import parse_value

    paths = [a for a in argv if "=" not in a]
    if len(paths) != 1:
        raise ReevalError(f"expected one run directory, got {len(paths)} ({' '.join(paths) or 'none'}); "
                          f"see python -m expo.evaluate --help")
    options: dict[str, Any] = {}
    for item in argv:
        if "=" not in item:
            continue
        key, text = item.split("=", 1)
        key = key.strip()
        if key not in KEYS:
            raise ReevalError(f"unknown key {key!r}; valid keys: {', '.join(KEYS)}")
        value = parse_value(text)
        kind = KEYS[key]
        if kind is bool and not isinstance(value, bool):
            raise ReevalError(f"{key} must be true or false, got {text!r}")
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise ReevalError(f"{key} must be an integer, got {text!r}")
        options[key] = value
    for key in ("episodes", "video_episodes"):
        if key in options and options[key] < 1:
            raise ReevalError(f"{key} must be >= 1, got {options[key]}")
    return Path(paths[0]), options


def _tuples(value):
    """JSON lists back to the tuples the config had (config.json writes tuples as lists)."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value


def read_run(run_dir: Path) -> tuple[dict, dict]:
    """(config, last eval.csv row) of a finished run that kept its policy; ReevalError otherwise."""
    from expo.policy_store import POLICY_DIR, has_policy

    if not run_dir.is_dir():
        raise ReevalError(f"{run_dir} is not a directory")
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise ReevalError(f"{run_dir} is not a run directory (no config.json)")
    try:
        cfg = json.loads(config_path.read_text())
    except ValueError as e:
        raise ReevalError(f"{config_path} is unreadable ({' '.join(str(e).split())})") from e
    status_path = run_dir / "status.json"
    try:
        status = json.loads(status_path.read_text()) if status_path.is_file() else {}
    except ValueError:
        status = {}
    if status.get("diverged"):
        raise ReevalError(f"{run_dir} diverged ({status.get('reason', 'see its status.json')}); a "
                          f"diverged run keeps no policy")
    if status.get("finished") is not True:
        raise ReevalError(f"{run_dir} has not finished (no finished status.json); a run saves its "
                          f"policy when it finishes")
    if not has_policy(run_dir):
        raise ReevalError(f"{run_dir} has no saved policy ({POLICY_DIR}/): it finished before runs "
                          f"kept their final policy; train it again to re-evaluate it")
    rows = []
    if (run_dir / "eval.csv").is_file():
        with open(run_dir / "eval.csv", newline="") as f:
            rows = list(csv.DictReader(f))
    if not rows:
        raise ReevalError(f"{run_dir}/eval.csv has no evaluation row")
    return cfg, rows[-1]


def run_spec(cfg: dict):
    """The task's protocol row as the run recorded it (config.json `protocol`), over the current
    table's row for fields the run did not record."""
    from expo import protocol

    fields = {f.name for f in dataclasses.fields(protocol.TaskSpec)}
    recorded = {k: v for k, v in (cfg.get("protocol") or {}).items() if k in fields}
    try:
        if cfg["task"] in protocol.TASKS:
            return dataclasses.replace(protocol.TASKS[cfg["task"]], **recorded)
        return protocol.TaskSpec(**recorded)
    except (TypeError, ValueError) as e:
        raise ReevalError(f"task {cfg['task']!r}: the protocol row of config.json is unusable "
                          f"({' '.join(str(e).split())})") from e


def maker_kwargs(spec, cfg: dict) -> dict:
    """The env kwargs that come from the run's dataset (robosuite tasks: read from its file)."""
    from expo.data import get_dataset
    from expo.envs import dataset_maker_kwargs

    try:
        entry = get_dataset(cfg["dataset"]["name"])
    except KeyError as e:
        raise ReevalError(f"the run's dataset {cfg['dataset']['name']!r} is not in the registry "
                          f"(expo/data/registry.py)") from e
    try:
        return dataset_maker_kwargs(spec, entry)
    except FileNotFoundError as e:  # the message names the file and the command that brings it
        raise ReevalError(f"the run's dataset is needed for its env kwargs: {' '.join(str(e).split())}") from e


def reevaluate(run_dir, episodes: int | None = None, seed: int | None = None, video: bool = False,
               video_episodes: int = 1, video_size: int = 256) -> dict[str, Any]:
    """Re-evaluate run_dir's saved policy (see the module docstring); returns the reeval.csv row
    written, with "compared_with" (the last eval.csv row) and "matches" (None when the seed or the
    episodes differ from that row's)."""
    import jax

    from expo import compilation, config as config_lib
    from expo.env_pool import LocalEnvs, make_eval_envs
    from expo.envs import make_env
    from expo.evaluate import as_numpy_policy, evaluate, per_row_policy
    from expo.logger import format_value
    from expo.policy_store import load_policy, policy_fields
    from expo.seeding import jax_key

    run_dir = Path(run_dir)
    cfg, last = read_run(run_dir)
    episodes = cfg["eval_episodes"] if episodes is None else episodes
    seed = cfg["seed"] if seed is None else seed
    if video and video_episodes > episodes:
        raise ReevalError(f"video_episodes={video_episodes} is more than episodes={episodes}")
    try:
        env_step = int(last["env_step"])
    except (KeyError, ValueError) as e:
        raise ReevalError(f"{run_dir}/eval.csv: its last row has no env_step") from e
    spec = run_spec(cfg)
    kwargs = maker_kwargs(spec, cfg)
    compilation.enable_persistent_cache()
    try:
        module = config_lib.agent_module(cfg["method"])
    except config_lib.ConfigError as e:
        raise ReevalError(str(e)) from e
    template = config_lib.build_agent(module, cfg["seed"], spec.obs_dim, spec.act_dim, _tuples(cfg["agent"]))
    agent = load_policy(run_dir, template, policy_fields(module))
    act = as_numpy_policy(per_row_policy(getattr(module, "eval_actions", module.sample_actions)), agent)
    key = jax.random.fold_in(jax_key(seed, "eval"), env_step)
    make = functools.partial(make_env, spec, seed + 1, **kwargs)

    start = time.perf_counter()
    # eval_envs and eval_workers change speed only (expo/evaluate.py): the run's, as its loop had them
    envs = make_eval_envs(make, min(cfg.get("eval_envs", 10), episodes), cfg.get("eval_workers", 0))
    try:
        result = evaluate(envs, act, key, episodes, seed, spec.metric)
    finally:
        envs.close()
    eval_time = time.perf_counter() - start

    rows = _read_reeval(run_dir)
    video_name = ""
    if video:
        from expo.render import FrameRecorder, frames_per_second, write_mp4

        recorder = FrameRecorder(make(), size=video_size)
        try:
            # The first video_episodes of the evaluation again: the same seeds and keys.
            shown = evaluate(LocalEnvs([recorder]), act, key, video_episodes, seed, spec.metric)
            video_name = f"reeval_{len(rows) + 1}.mp4"
            write_mp4(run_dir / video_name, recorder.frames, frames_per_second(recorder.env))
        finally:
            recorder.close()
        result["video_success"] = shown["success"]
        result["video_frames"] = len(recorder.frames)

    row = {"env_step": env_step, "seed": seed, "success": result["success"], "return": result["return"],
           "episodes": result["episodes"], "episode_length": result["episode_length"],
           "eval_time_s": round(eval_time, 1),
           "evaluated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "video": video_name}
    text_row = {c: format_value(row[c]) for c in REEVAL_COLUMNS}
    _write_reeval(run_dir, rows + [text_row])
    comparable = seed == cfg["seed"] and str(episodes) == last.get("episodes")
    matches = all(text_row[c] == last.get(c) for c in COMPARED) if comparable else None
    return {**row, "row": len(rows) + 1, "compared_with": last, "run_seed": cfg["seed"], "matches": matches,
            **{k: v for k, v in result.items() if k.startswith("video_")}}


def _read_reeval(run_dir: Path) -> list[dict[str, str]]:
    path = run_dir / REEVAL_FILE
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{c: r.get(c) or "" for c in REEVAL_COLUMNS} for r in csv.DictReader(f)]


def _write_reeval(run_dir: Path, rows: list[dict[str, str]]) -> None:
    from expo.logger import atomic_write_text

    buf = io.StringIO()
    writer = csv.DictWriter(buf, REEVAL_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(run_dir / REEVAL_FILE, buf.getvalue())


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help", "help") for a in argv):
        print(USAGE)
        return
    from expo.data import DatasetError
    from expo.policy_store import PolicyError
    from expo.render import RenderUnavailable

    try:
        run_dir, options = parse_args(argv)
        if options.get("video"):
            from expo.render import use_headless_gl

            use_headless_gl()  # before the simulators import mujoco
        result = reevaluate(run_dir, **options)
    except (ReevalError, PolicyError, RenderUnavailable, DatasetError) as e:
        sys.exit(f"error: {' '.join(str(e).split())}")
    last = result["compared_with"]
    print(f"re-evaluated {run_dir}: policy of env step {result['env_step']}, seed {result['seed']}, "
          f"{result['episodes']} episodes: success {result['success']:.6g}, return "
          f"{result['return']:.6g}, episode length {result['episode_length']:.6g}")
    summary = ", ".join(f"{c} {last.get(c)}" for c in COMPARED)
    if result["matches"] is True:
        print(f"same as its last evaluation (eval.csv, env step {last['env_step']}: {summary})")
    elif result["matches"] is False:
        print(f"differs from its last evaluation (eval.csv, env step {last['env_step']}: {summary})")
    else:
        print(f"not compared with its last evaluation (seed {result['run_seed']}, {last.get('episodes')} "
              f"episodes)")
    print(f"wrote {run_dir / REEVAL_FILE} (row {result['row']})")
    if result["video"]:
        print(f"wrote {run_dir / result['video']} ({result['video_frames']} frames of "
              f"{options.get('video_episodes', 1)} episode(s), success {result['video_success']:.6g})")
