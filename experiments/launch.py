"""Run a figure's grid (tasks x methods x seeds).

    python experiments/launch.py figure=quickstart [seeds=3] [methods=expo,bc] [tasks=lift]
                                 [scale=mini] [workers=2] [dry_run=true] [any run key, e.g. agent.N=4]

Each run is `python -m expo.train` in its own process, writing
results/<figure>/<task>/<method>/seed_<k>/{eval.csv, train.csv, config.json, log.txt}.
Finished runs (status.json says finished) are skipped, so a re-launch completes a partial grid.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from experiments import grids  # noqa: E402
from expo import config as config_lib  # noqa: E402
from expo.logger import run_dir_for  # noqa: E402

LAUNCHER_KEYS = {
    "figure": "the grid to run (experiments/grids/<name>.py)",
    "seeds": "number of seeds (0..k-1)",
    "tasks": "comma-separated tasks",
    "methods": "comma-separated methods",
    "workers": "runs at once on this machine (default: number of cores)",
    "dry_run": "print the grid and what is finished, run nothing",
    "cluster": "local (SLURM comes with the cluster launcher)",
}


def fail(message: str) -> None:
    sys.exit(f"error: {message}")


def expand(spec: dict, launcher: dict, run_overrides: dict) -> list[dict]:
    """One resolved run config per (task, method, seed).

    A run key `task=X` / `method=X` means the same as `tasks=X` / `methods=X`: it selects from the
    grid instead of being overwritten by the grid's own list."""
    run_overrides = dict(run_overrides)
    for single, plural in (("task", "tasks"), ("method", "methods")):
        if single in run_overrides:
            if plural in launcher:
                raise config_lib.ConfigError(f"give either {single}= or {plural}=, not both")
            launcher = {**launcher, plural: str(run_overrides.pop(single))}
    tasks = launcher.get("tasks", spec["tasks"])
    methods = launcher.get("methods", spec["methods"])
    tasks = tasks.split(",") if isinstance(tasks, str) else list(tasks)
    methods = methods.split(",") if isinstance(methods, str) else list(methods)
    seeds = int(launcher.get("seeds", spec["seeds"]))
    runs = []
    for task in tasks:
        for method in methods:
            for seed in range(seeds):
                overrides = {"setting": spec["setting"], "scale": spec["scale"], **spec["overrides"],
                             **run_overrides, "task": task, "method": method, "seed": seed,
                             "figure": launcher["figure"]}
                runs.append(config_lib.build_config(overrides))
    return runs


def is_finished(run_dir: Path, cfg: dict) -> bool:
    """Finished with this run's number of steps (a run of another length is redone)."""
    try:
        status = json.loads((run_dir / "status.json").read_text())
    except (OSError, ValueError):
        return False
    return bool(status.get("finished")) and status.get("env_steps") == cfg["steps"]


def missing_data(runs: list[dict]) -> str | None:
    """One line naming the first downloadable dataset the runs need that is not on disk, or None.

    Checked before anything starts, so a grid never launches runs that can only fail. (Generated
    datasets are written by the first run that needs them; each loader still checks the content.)"""
    from expo.data.registry import ExternalDataset, get_dataset

    for name in dict.fromkeys(cfg["dataset"]["name"] for cfg in runs):
        entry = get_dataset(name)
        if not isinstance(entry, ExternalDataset) or entry.format == "minari":
            continue
        absent = [p for p in entry.paths() if not p.is_file()] if entry.files else ["(no files registered)"]
        if absent:
            return f"dataset {name!r} is not on disk: {absent[0]}; fix: {entry.fix_hint()}"
    return None


def run_one(cfg: dict, threads: int) -> tuple[dict, int, Path]:
    run_dir = run_dir_for(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "expo.train"]
    skip = {"protocol"}
    for key, value in config_lib.flatten({k: v for k, v in cfg.items() if k not in skip}).items():
        if key == "agent.deviations":
            continue
        args.append(f"{key}={value!r}" if isinstance(value, str) else f"{key}={value}")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if threads == 1:  # several runs share the cores: one thread each avoids oversubscription
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                            " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    with open(run_dir / "log.txt", "w") as log:
        code = subprocess.call(args, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    return cfg, code, run_dir


def _last_row(path: Path) -> list[str] | None:
    try:
        lines = path.read_text().strip().splitlines()
    except OSError:
        return None
    return lines[-1].split(",") if len(lines) > 1 else None


def steps_done(run_dir: Path, cfg: dict) -> int:
    """Imitation plus online steps a run has logged (train.csv: phase, step, ...)."""
    if is_finished(run_dir, cfg):
        return cfg["pretrain_steps"] + cfg["steps"]
    row = _last_row(run_dir / "train.csv")
    if row is None:
        return 0
    step = int(row[1])
    return step if row[0] == "pretrain" else cfg["pretrain_steps"] + step


def latest_success(run_dir: Path) -> str:
    row = _last_row(run_dir / "eval.csv")
    return f"success {float(row[1]):.2f}" if row else "starting"


def final_success(run_dir: Path) -> str:
    try:
        last = (run_dir / "eval.csv").read_text().strip().splitlines()[-1].split(",")
        return f"success {float(last[1]):.2f} at step {last[0]}"
    except (OSError, IndexError, ValueError):
        return "no evaluation"


def main(argv: list[str]) -> None:
    try:
        items = config_lib.parse_overrides(argv)
    except config_lib.ConfigError as e:
        fail(str(e))
    launcher = {k: v for k, v in items.items() if k in LAUNCHER_KEYS}
    run_overrides = {k: v for k, v in items.items() if k not in LAUNCHER_KEYS}
    if "figure" not in launcher:
        fail(f"figure=<name> is required; valid figures: {', '.join(grids.available())}")
    if launcher.get("cluster", "local") != "local":
        fail(f"cluster={launcher['cluster']!r} is not available; valid: local")
    try:
        spec = grids.load(str(launcher["figure"]))
        runs = expand(spec, launcher, run_overrides)
    except (KeyError, config_lib.ConfigError) as e:
        message = e.args[0] if e.args else str(e)
        if isinstance(e, config_lib.ConfigError) and message.startswith("unknown key"):
            message += f"; launcher keys: {', '.join(sorted(LAUNCHER_KEYS))}"
        fail(message)

    todo = [cfg for cfg in runs if not is_finished(run_dir_for(cfg), cfg)]
    # Longest runs first, so the short ones fill the gaps at the end.
    todo.sort(key=lambda c: -(c["steps"] * c["agent"]["utd"] + c["pretrain_steps"]))
    print(f"figure={launcher['figure']}: {len(runs)} runs, {len(runs) - len(todo)} finished, "
          f"{len(todo)} to run")
    if launcher.get("dry_run"):
        for cfg in runs:
            state = "done" if cfg not in todo else "todo"
            print(f"  [{state}] {run_dir_for(cfg)}  steps={cfg['steps']} "
                  f"pretrain={cfg['pretrain_steps']}")
        return

    missing = missing_data(todo)
    if missing:
        fail(missing)
    workers = int(launcher.get("workers", os.cpu_count() or 1))
    threads = 1 if workers > 1 else 0
    start = time.time()
    failed = []
    total = sum(cfg["pretrain_steps"] + cfg["steps"] for cfg in todo)
    with ThreadPoolExecutor(max_workers=workers) as pool, \
            tqdm(total=total, unit="step", desc=f"{len(todo)} runs", file=sys.stderr) as bar:
        futures = {pool.submit(run_one, cfg, threads): cfg for cfg in todo}
        pending, done_count = set(futures), 0
        while pending:
            finished, pending = wait(pending, timeout=5, return_when=FIRST_COMPLETED)
            for future in finished:
                cfg, code, run_dir = future.result()
                done_count += 1
                status = (final_success(run_dir) if code == 0
                          else f"FAILED (exit {code}), see {run_dir / 'log.txt'}")
                bar.write(f"[{done_count}/{len(todo)} {time.time() - start:6.0f}s] {cfg['task']} "
                          f"{cfg['method']} seed {cfg['seed']}: {status}")
                if code != 0:
                    failed.append(run_dir)
            # Steps done so far (imitation + online, from each run's train.csv) and the latest
            # evaluation of the runs in flight.
            bar.n = sum(steps_done(run_dir_for(cfg), cfg) for cfg in todo)
            running = [cfg for f, cfg in futures.items() if f in pending and f.running()]
            bar.set_postfix_str(" | ".join(f"{c['method']} s{c['seed']} {latest_success(run_dir_for(c))}"
                                           for c in running))
    if failed:
        fail(f"{len(failed)} run(s) failed: " + ", ".join(str(p / "log.txt") for p in failed))


if __name__ == "__main__":
    main(sys.argv[1:])
