"""Run a figure's grid (tasks x methods x seeds) on this machine or on SLURM, and report on it.

    python experiments/launch.py figure=quickstart [seeds=3] [methods=expo,bc] [tasks=lift]
                                 [scale=mini] [workers=2] [dry_run=true] [any run key, e.g. agent.N=4]
    python experiments/launch.py figure=4 cluster=slurm partition=gpu gpus=1 cpus=8 time_min=720
    python experiments/launch.py figure=4 status

`figure=N` is the grid figN (experiments/grids/figN.py); `figure=<name>` any grid by its name.
`--help` (or `help`) prints every key with its default, type and description (expo/config_help.py).

Launcher keys:
    figure, seeds, tasks, methods   which runs (a run key task=X / method=X selects the same way)
    workers   runs at once on this machine (cluster=local; default: the number of cores)
    dry_run   list the runs, what is finished and whether each task's dataset is on disk (with the
              fetch command of each missing one); run nothing
    step_costs  a TOML file of per-step costs measured on your machines (format: experiments/cost.py)
              for the hours estimate; default: the costs measured on this repository's 2-core CPU
    wait      cluster=slurm: stay and follow the array with a progress bar (default: submit, exit)
Cluster keys (defaults < the per-user profile < key=value; experiments/cluster.py):
    cluster=local|slurm, partition, gpus, cpus, mem_gb, time_min, array_parallelism, account, qos,
    constraint, setup, max_timeouts. The profile is a TOML file of these keys:
    $EXPO_CLUSTER_PROFILE, else ~/.config/expo-suite/cluster.toml (example:
    experiments/cluster_profile.example.toml).
Commands:
    status    one line per run: done / running / pending / diverged / failed / missing; failures
              with their log path and the last lines of the traceback, divergences with their
              reason; then the counts.
Every other key is a run key (expo/config.py), applied to every run of the grid; seeds_per_process=k
runs the seeds of each setting k at a time in one process, with one vmapped update
(expo/seed_group.py): a job (SLURM array task) per group.

Every run executes the same entry point, TrainJob (experiments/executors.py), through submitit:
locally `workers` processes at once, on SLURM one job array per grid with at most array_parallelism
tasks at once. A run writes results/<figure>/<task>/<method>/seed_<k>/{eval.csv, train.csv,
config.json, log.txt, job.json, status.json}. Finished runs are skipped and runs still queued or
running are left alone, so a re-launch completes a partial grid; a run that was stopped resumes from
its checkpoint. On SLURM a preempted or timed-out run checkpoints, is requeued and continues the
same CSVs. While runs work, the progress bar counts their imitation and online steps (100% only
once every run has finished) and says what each running one does: preparing its dataset (the
embedded one is generated on first use), pretraining k/n, online k/n, evaluating, with its latest
success rate. A run that diverged (expo/divergence.py) is not launched again with the same settings
unless retry_diverged=true, which restarts it from its last finite checkpoint.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from experiments import cluster, cost, executors, grids, status as status_lib  # noqa: E402
from expo import config as config_lib, config_help  # noqa: E402
from expo.logger import PROGRESS_FILE, resolve_results_dir, run_dir_for, run_label  # noqa: E402

# key: (default, type, description); --help prints them (expo/config_help.py).
LAUNCHER_KEYS = {
    "figure": ("required", "str", "the grid to run: N for experiments/grids/figN.py, or a grid's name"),
    "seeds": ("the grid's", "int", "number of seeds k: runs seeds 0..k-1"),
    "tasks": ("the grid's", "str", "comma-separated tasks of the grid (task=X: the same)"),
    "methods": ("the grid's", "str",
                "comma-separated methods or arm labels such as expo-N16 (method=X: the same)"),
    "workers": ("cores", "int", "cluster=local: runs at once on this machine (default: number of cores)"),
    "dry_run": ("false", "bool",
                "list the runs, what is finished and whether each task's data is on disk; run nothing"),
    "step_costs": ("built-in", "str",
                   "TOML file of per-step costs measured on your machines, for the hours estimate"),
    "wait": ("false", "bool", "cluster=slurm: follow the submitted array until every run ended"),
}
COMMANDS = {"status": "print done / running / pending / failed / missing for every run"}
POLL_S = 5.0


def fail(message: str) -> None:
    sys.exit(f"error: {message}")


def check_launcher_keys(launcher: dict, raw: dict[str, str]) -> None:
    """One line naming the fix for a launcher key with a value it cannot take (before anything runs)."""
    for key, (_, kind, _) in LAUNCHER_KEYS.items():
        if key in launcher and kind == "bool" and not isinstance(launcher[key], bool):
            fail(f"{key} must be true or false, got {raw[key]!r} (write {key}=true or {key}=false)")
    for key, example, what in (("seeds", 3, "runs seeds 0..k-1; one other seed alone: "
                                              "python -m expo.train seed=<k>"),
                               ("workers", 2, "runs at once on this machine")):
        value = launcher.get(key, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            fail(f"{key} takes a whole number k >= 1 ({what}), got {raw[key]!r}; e.g. {key}={example}")


def print_help(argv: list[str]) -> None:
    """Every key with its default, type and description: the launcher's, the cluster keys, the run
    keys and the agent keys of the method named by method= / methods= (default expo)."""
    def rows(items):
        return config_help.table([(k, config_help.show_value(d), t, text) for k, d, t, text in items])

    defaults = cluster.ClusterSettings()
    kinds = {f.name: str(f.type).split(" |")[0].replace("tuple[str, ...]", "tuple")
             for f in dataclasses.fields(cluster.ClusterSettings)}
    print(f"usage: python experiments/launch.py figure=<grid> [status] [key=value ...]; "
          f"--help [method=<name>]\n"
          f"  python experiments/launch.py figure=4 dry_run=true\n"
          f"  python experiments/launch.py figure=quickstart scale=mini seeds=1 {config_help.SHORT_RUN}\n"
          f"Grids (figure=): {', '.join(grids.available())}. figure= names a grid of runs to launch; "
          f"`make figures` draws the figures from results/.\n{config_help.VALUES}\n\n"
          f"Launcher keys:\n{rows((k, d, t, text) for k, (d, t, text) in LAUNCHER_KEYS.items())}\n\n"
          f"Commands:\n" + "".join(f"  {k}  {text}\n" for k, text in COMMANDS.items()) + "\n"
          f"Cluster keys (experiments/cluster.py; defaults < the profile ${cluster.PROFILE_ENV} or "
          f"~/.config/expo-suite/cluster.toml < key=value):\n"
          f"{rows((k, getattr(defaults, k), kinds[k], text) for k, text in cluster.KEY_HELP.items())}\n\n"
          f"Every other key is a run key, applied to every run of the grid (the grid sets task, "
          f"method, seed, figure and variant itself).\n"
          f"{config_help.run_sections(config_help.method_of(argv))}")


def grid_name(figure) -> str:
    """figure=4 (or "4") means the grid fig4; any other value is a grid's own name."""
    text = str(figure)
    return f"fig{text}" if text.isdigit() else text


def is_finished(run_dir: Path, cfg: dict) -> bool:
    """Finished with this run's number of steps (a run of another length is redone)."""
    try:
        status = json.loads((run_dir / "status.json").read_text())
    except (OSError, ValueError):
        return False
    return bool(status.get("finished")) and status.get("env_steps") == cfg["steps"]


def dataset_absent(name: str):
    """(the registry entry, its first file not on disk) for a downloadable dataset that is not on
    disk; None when it is on disk, or when a run writes or checks it itself (generated datasets,
    Minari's store)."""
    from expo.data.registry import ExternalDataset, get_dataset

    entry = get_dataset(name)
    if not isinstance(entry, ExternalDataset) or entry.format == "minari":
        return None
    absent = [p for p in entry.paths() if not p.is_file()] if entry.files else ["(no files registered)"]
    return (entry, absent[0]) if absent else None


def missing_data(runs: list[dict]) -> str | None:
    """One line naming the first downloadable dataset the runs need that is not on disk, or None.

    Checked before anything starts, so a grid never launches runs that can only fail. (Generated
    datasets are written by the first run that needs them; each loader still checks the content.)"""
    for name in dict.fromkeys(cfg["dataset"]["name"] for cfg in runs):
        absent = dataset_absent(name)
        if absent:
            return f"dataset {name!r} is not on disk: {absent[1]}; fix: {absent[0].fix_hint()}"
    return None


def data_lines(runs: list[dict]) -> list[str]:
    """The dry run's data check, per task of the grid: whether each dataset it needs is on disk (the
    check a real launch stops on: dataset_absent), with the fetch command of each missing one."""
    from expo.data.paths import data_root
    from expo.data.registry import GeneratedDataset, get_dataset

    lines, missing = [], 0
    for task, name in dict.fromkeys((cfg["task"], cfg["dataset"]["name"]) for cfg in runs):
        entry, absent = get_dataset(name), dataset_absent(name)
        if absent:
            missing += 1
            command = entry.fix_hint().split("`")[1]  # the hint is `command` (where it writes)
            text = f"MISSING ({absent[1]}); fetch it: {command}"
        elif isinstance(entry, GeneratedDataset):
            text = ("on disk" if entry.path().is_file()
                    else "generated by its first run (embedded, no download)")
        elif entry.format == "minari":
            text = f"in Minari's store, checked when its runs start (fetch: {entry.fix_hint().split('`')[1]})"
        else:
            text = "on disk"
        lines.append(f"  data {task}: {name} {text}")
    if missing:
        lines.append(f"  data: {missing} dataset(s) missing under the data root {data_root()} "
                     f"(EXPO_DATA_ROOT moves it); a launch stops until they are fetched")
    return lines


def _last_row(path: Path) -> list[str] | None:
    try:
        lines = path.read_text().strip().splitlines()
    except OSError:
        return None
    return lines[-1].split(",") if len(lines) > 1 else None


def steps_done(run_dir: Path, cfg: dict) -> int:
    """Imitation plus online steps a run has done (its progress.json, expo/logger.py). A run that
    has not finished counts at most its total minus one, so the overall bar reaches 100% only when
    every run has finished, its last evaluation included."""
    total = cfg["pretrain_steps"] + cfg["steps"]
    if is_finished(run_dir, cfg):
        return total
    progress = executors.read_json(run_dir / PROGRESS_FILE) or {}
    done = {"pretrain": progress.get("done", 0),
            "online": cfg["pretrain_steps"] + progress.get("done", 0),
            "evaluating": cfg["pretrain_steps"] + progress.get("env_step", 0)}.get(progress.get("phase"), 0)
    return max(0, min(int(done), total - 1))


def activity(run_dir: Path) -> str:
    """What a running run is doing, from its progress.json, and its latest success rate."""
    progress = executors.read_json(run_dir / PROGRESS_FILE) or {}
    phase, done, total = progress.get("phase"), progress.get("done", 0), progress.get("total", 0)
    text = {"data": "preparing its dataset (generated on first use)",
            "pretrain": f"pretraining {done}/{total}", "online": f"online {done}/{total}",
            "evaluating": f"evaluating at step {progress.get('env_step', 0)}"}.get(phase, "starting")
    row = _last_row(run_dir / "eval.csv")
    return text + (f", success {float(row[1]):.2f}" if row and phase != "data" else "")


def final_success(run_dir: Path) -> str:
    """The last evaluation's score: success, or the return where that is the task's metric (the canary)."""
    try:
        lines = (run_dir / "eval.csv").read_text().strip().splitlines()
        row = dict(zip(lines[0].split(","), lines[-1].split(",")))
        metric = json.loads((run_dir / "config.json").read_text()).get("protocol", {}).get("metric")
        if metric == "return":
            return f"return {float(row['return']):.1f} at step {row['env_step']}"
        return f"success {float(row['success']):.2f} at step {row['env_step']}"
    except (OSError, IndexError, KeyError, ValueError):
        return "no evaluation"


def describe(cfg: dict) -> str:
    return f"{cfg['task']} {run_label(cfg)} seed {cfg['seed']}"


class Progress:
    """The progress bar (imitation + online steps of every run, from each run's train.csv) and one
    summary line per run as it ends; remembers the failures."""

    def __init__(self, calls: list[tuple[dict, Path]]):
        self.calls = calls
        self.start = time.time()
        self.ended = 0
        self.failed: list[Path] = []
        total = sum(cfg["pretrain_steps"] + cfg["steps"] for cfg, _ in calls)
        self.bar = tqdm(total=total, unit="step", desc=f"{len(calls)} runs", file=sys.stderr)

    def run_ended(self, cfg: dict, run_dir: Path, why_not_finished: str | None = None) -> None:
        self.ended += 1
        if is_finished(run_dir, cfg):
            outcome = final_success(run_dir)
        elif (executors.read_json(run_dir / executors.STATUS) or {}).get("diverged"):
            outcome = f"DIVERGED ({why_not_finished}), see {run_dir / 'log.txt'}"
            self.failed.append(run_dir)
        else:
            outcome = f"FAILED ({why_not_finished or 'ended without finishing'}), see {run_dir / 'log.txt'}"
            self.failed.append(run_dir)
        self.bar.write(f"[{self.ended}/{len(self.calls)} {time.time() - self.start:6.0f}s] "
                       f"{describe(cfg)}: {outcome}")

    def update(self, in_flight: list[tuple[dict, Path]]) -> None:
        self.bar.n = sum(steps_done(run_dir, cfg) for cfg, run_dir in self.calls)
        self.bar.set_postfix_str(" | ".join(f"{run_label(c)} s{c['seed']} {activity(d)}"
                                            for c, d in in_flight))

    def close(self) -> None:
        self.bar.close()
        if self.failed:
            fail(f"{len(self.failed)} run(s) failed or diverged: "
                 + ", ".join(str(p / "log.txt") for p in self.failed))


def job_environment(workers: int | None) -> dict[str, str]:
    """What the jobs need in their environment: the repository on PYTHONPATH (submitit starts them
    with this interpreter, sys.executable) and, when several local runs share the cores, one XLA
    thread each (avoids oversubscription)."""
    env = {"PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    if workers is not None and workers > 1:
        env["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                            " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()
    return env


def run_local(calls: list[tuple[dict, Path]], workers: int, folder: Path) -> None:
    pool = executors.LocalPool(executors.group_seeds(calls), workers, folder, job_environment(workers))
    progress = Progress(calls)
    try:
        while pool.pending():
            for cfg, run_dir, job in pool.poll(timeout_s=POLL_S):
                progress.run_ended(cfg, run_dir, None if is_finished(run_dir, cfg)
                                   else executors.failure_summary(run_dir, job))
            progress.update(pool.in_flight())
    finally:
        progress.bar.close()
    progress.close()


def run_slurm(calls: list[tuple[dict, Path]], settings: cluster.ClusterSettings, figure: str,
              folder: Path, wait: bool) -> None:
    if shutil.which("sbatch") is None:
        fail("cluster=slurm needs SLURM's sbatch on PATH (launch from a cluster's login node)")
    params = cluster.slurm_parameters(settings, job_name=f"expo-{figure}")
    try:
        with executors.environment(**job_environment(None)):
            jobs = executors.submit_slurm(executors.group_seeds(calls), params, folder,
                                          settings.max_timeouts)
    except subprocess.CalledProcessError as e:
        detail = (e.stderr or e.output or b"")
        detail = detail.decode(errors="replace") if isinstance(detail, bytes) else str(detail)
        fail(f"sbatch refused the job array: {' '.join(detail.split()) or e}")
    array_id = str(jobs[0].job_id).split("_")[0]
    print(f"submitted job array {array_id}: {len(calls)} runs in {len(jobs)} tasks, at most {settings.array_parallelism} at "
          f"once; submitit logs in {folder / array_id}")
    print(f"check on it with: python experiments/launch.py figure={figure} status")
    if wait:
        follow(calls)


def follow(calls: list[tuple[dict, Path]]) -> None:
    """Poll the runs' states until each one is done, failed, or gone from the queue."""
    progress = Progress(calls)
    open_runs = {run_dir: cfg for cfg, run_dir in calls}
    gone_once: set[Path] = set()  # neither live nor ended: counts only when seen twice (requeues)
    try:
        while open_runs:
            states = status_lib.collect([(cfg, d) for d, cfg in open_runs.items()], is_finished)
            running = [(open_runs[s.run_dir], s.run_dir) for s in states if s.state == "running"]
            for s in states:
                if s.state in ("done", "failed") or (s.state == "missing" and s.run_dir in gone_once):
                    why = s.error_tail[-1] if s.error_tail else s.detail
                    progress.run_ended(open_runs.pop(s.run_dir), s.run_dir, why)
                elif s.state == "missing" and not s.queue_unknown:
                    gone_once.add(s.run_dir)
                else:
                    gone_once.discard(s.run_dir)
            progress.update(running)
            if open_runs:
                time.sleep(POLL_S)
    finally:
        progress.bar.close()
    progress.close()


def print_status(figure: str, calls: list[tuple[dict, Path]]) -> None:
    states = status_lib.collect(calls, is_finished)
    # names relative to results/<figure>, or to results/ when the grid spans figures (derived ones)
    figure_dirs = {run_dir.parents[2] for _, run_dir in calls}
    root = figure_dirs.pop() if len(figure_dirs) == 1 else calls[0][1].parents[3]
    print(f"figure={figure}: {len(calls)} runs in {root}")
    print(status_lib.format_table(states, root))


def main(argv: list[str]) -> None:
    if config_help.wants_help(argv):
        try:
            print_help(argv)
        except config_lib.ConfigError as e:
            fail(str(e))
        return
    commands = [a for a in argv if "=" not in a]
    for word in commands:
        if word not in COMMANDS:
            fail(f"unknown command {word!r}; valid commands: {', '.join(COMMANDS)} "
                 f"(everything else is key=value)")
    try:
        items = config_lib.parse_overrides([a for a in argv if "=" in a])
    except config_lib.ConfigError as e:
        fail(str(e))
    launcher = {k: v for k, v in items.items() if k in LAUNCHER_KEYS}
    cluster_keys = {k: v for k, v in items.items() if k in cluster.KEY_HELP}
    run_overrides = {k: v for k, v in items.items() if k not in LAUNCHER_KEYS and k not in cluster.KEY_HELP}
    if "figure" not in launcher:
        fail(f"figure=<name> is required; valid figures: {', '.join(grids.available())}")
    check_launcher_keys(launcher, {k.strip(): v for k, v in (a.split("=", 1) for a in argv if "=" in a)})
    # resolved once: the default is the checkout's results/, a relative results_dir= the working directory's
    run_overrides["results_dir"] = resolve_results_dir(run_overrides)
    launcher["figure"] = grid_name(launcher["figure"])
    try:
        spec = grids.load(launcher["figure"])
        runs = grids.expand(spec, launcher, run_overrides)
    except (KeyError, config_lib.ConfigError) as e:
        message = e.args[0] if e.args else str(e)
        if isinstance(e, config_lib.ConfigError) and message.startswith("unknown key"):
            message += (f"; launcher keys: {', '.join(sorted(LAUNCHER_KEYS))}; "
                        f"cluster keys: {', '.join(cluster.KEY_HELP)}")
        fail(message)
    figure = launcher["figure"]
    calls = [(cfg, run_dir_for(cfg).resolve()) for cfg in runs]
    if "status" in commands:
        print_status(figure, calls)
        return
    try:
        settings = cluster.resolve(cluster_keys)
    except cluster.ClusterError as e:
        fail(str(e))
    for cfg, _ in calls:  # runs given GPUs check on their node that JAX sees one
        cfg["device"] = cluster.run_device(settings, cfg["device"])
    try:
        costs = (cost.load_step_costs(str(launcher["step_costs"])) if "step_costs" in launcher
                 else cost.BUILT_IN)
        cost.check_covers([cfg for cfg, _ in calls], costs)
    except cost.CostError as e:
        fail(str(e))

    states = {s.run_dir: s.state for s in status_lib.collect(calls, is_finished)}
    skip = ("done", "running", "pending") + (() if calls and calls[0][0]["retry_diverged"]
                                             else ("diverged",))
    todo = [(cfg, d) for cfg, d in calls if states[d] not in skip]
    diverged = sum(states[d] == "diverged" for _, d in calls) if "diverged" in skip else 0
    live = sum(states[d] in ("running", "pending") for _, d in calls)
    # Longest runs first, so the short ones fill the gaps at the end.
    todo.sort(key=lambda c: -cost.run_seconds(c[0], costs))
    processes = len(executors.group_seeds(todo))
    print(f"figure={figure}: {len(runs)} runs, {len(runs) - len(todo) - live - diverged} finished, "
          + (f"{live} already queued or running, " if live else "")
          + (f"{diverged} diverged (not run again: see status; retry_diverged=true restarts them "
             f"from their last finite checkpoint), " if diverged else "") + f"{len(todo)} to run"
          + (f" in {processes} processes (seeds_per_process)" if processes < len(todo) else "")
          + f"; results_dir={run_overrides['results_dir']}")
    if launcher.get("dry_run"):
        print(grids.count_line(figure, spec, runs))
        print("\n".join(data_lines(runs)))
        todo_dirs = {d for _, d in todo}
        for cfg, run_dir in calls:
            state = "todo" if run_dir in todo_dirs else states[run_dir]
            print(f"  [{state}] {run_dir}  steps={cfg['steps']} pretrain={cfg['pretrain_steps']} "
                  f"~{cost.format_hours(cost.run_seconds(cfg, costs))}")
        print(cost.describe([cfg for cfg, _ in todo], costs))
        return
    if not todo:
        return
    missing = missing_data([cfg for cfg, _ in todo])
    if missing:
        fail(missing)
    for _, run_dir in todo:  # launched again: an earlier failure is history (its log.txt keeps it)
        executors.clear_failure(run_dir)
    folder = executors.submitit_folder(todo[0][0]["results_dir"], todo[0][0]["figure"])
    if settings.cluster == "slurm":
        run_slurm(todo, settings, figure, folder, bool(launcher.get("wait")))
    else:
        workers = int(launcher.get("workers", os.cpu_count() or 1))
        run_local(todo, workers, folder / f"local-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")


if __name__ == "__main__":
    main(sys.argv[1:])
