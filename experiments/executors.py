"""How a grid's runs execute: ONE job entry point, TrainJob, on this machine or on SLURM.

Both clusters go through submitit with the same pickled call, TrainJob()(cfgs, run_dirs): one run,
or the runs that seeds_per_process=k trains together in one process (group_seeds: k runs that differ
only in their seed; expo/seed_group.py).
- slurm: one job array per grid (submitit.AutoExecutor + map_array), at most array_parallelism
  tasks at once; SLURM signals a job before its time limit (and on preemption), submitit calls
  TrainJob.checkpoint and requeues it, and the requeued job resumes from run_dir/checkpoint/.
- local: submitit's LocalExecutor, one process per job, `workers` of them at once (LocalPool).

Each run's own output stays in its run directory (expo.logger.run_dir_for): the CSVs, log.txt
(stdout/stderr of every attempt, appended; a group's output goes to its first run's log.txt, and the
others' log.txt say so), status.json (finished, or failed with the traceback),
and job.json, the launcher's record of where the run was submitted (cluster, job id, submitit's
log files), which `launch.py figure=N status` reads. submitit's own files (pickles, its logs) live in
results/<figure>/_submitit/ (a name the analysis skips).
"""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Iterator

import submitit
from submitit.helpers import Checkpointable, DelayedSubmission

from expo.checkpoint import config_without_seed
from expo.logger import atomic_write_text

JOB_RECORD = "job.json"
STATUS = "status.json"
LOG = "log.txt"
# A local run's "time limit": none in practice (submitit's local executor needs one).
LOCAL_TIMEOUT_MIN = 60 * 24 * 365


@contextlib.contextmanager
def output_appended_to(path: Path) -> Iterator[None]:
    """Send this process's stdout and stderr to the end of `path`, then restore them: both the
    file descriptors 1 and 2 (output of C code such as XLA) and sys.stdout / sys.stderr (which
    may have been replaced by whoever called us)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved_fds = os.dup(1), os.dup(2)
    saved_streams = sys.stdout, sys.stderr
    try:
        with open(path, "a", buffering=1) as log:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            sys.stdout = sys.stderr = log
            try:
                yield
            finally:
                log.flush()
                sys.stdout, sys.stderr = saved_streams
                os.dup2(saved_fds[0], 1)
                os.dup2(saved_fds[1], 2)
    finally:
        os.close(saved_fds[0])
        os.close(saved_fds[1])


def read_json(path: Path) -> dict | None:
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def write_json(path: Path, value: dict) -> None:
    atomic_write_text(path, json.dumps(value, indent=2) + "\n")


def clear_failure(run_dir: Path) -> None:
    """Remove a status.json that records a failure (the traceback stays in log.txt). A divergence
    stays: the run itself decides whether it may run again (expo/train.py, retry_diverged)."""
    status = read_json(run_dir / STATUS)
    if status and status.get("failed") and not status.get("diverged"):
        (run_dir / STATUS).unlink(missing_ok=True)


Call = tuple[dict, Path]  # (a run's config, its run directory)


def group_seeds(calls: list[Call]) -> list[list[Call]]:
    """The processes that run `calls`: runs that differ only in their seed together, at most
    seeds_per_process of them, in the order of the calls; every other run alone."""
    open_groups: dict[str, list[Call]] = {}
    groups: list[list[Call]] = []
    for cfg, run_dir in calls:
        key = json.dumps(config_without_seed(cfg), sort_keys=True)
        group = open_groups.get(key)
        if group is None or len(group) >= cfg["seeds_per_process"]:
            group = open_groups[key] = []
            groups.append(group)
        group.append((cfg, run_dir))
    return groups


class TrainJob(Checkpointable):
    """One process: expo.train.train_seeds(cfgs, run_dirs), one run or a seed group, its output
    appended to the first run's log.txt.

    On an exception, each run's status.json records {"finished": false, "failed": true, "error":
    <traceback>} before the exception propagates (so the scheduler sees a failed job too); a
    divergence is recorded by the training loop itself, seed by seed (expo/divergence.py). A
    preemption or time limit is not a failure: submitit calls `checkpoint`, requeues the job, and
    training resumes from the runs' last checkpoints in run_dir/checkpoint/."""

    def __call__(self, cfgs: list[dict], run_dirs: list[str]) -> list[str]:
        from expo.divergence import Diverged  # imported here: the launcher itself never loads jax
        from expo.train import train_seeds

        paths = [Path(d) for d in run_dirs]
        for other in paths[1:]:
            other.mkdir(parents=True, exist_ok=True)
            with open(other / LOG, "a") as log:
                log.write(f"==== {_now()} trained in one process with {paths[0].name}: the output "
                          f"is in {paths[0] / LOG}\n")
        with output_appended_to(paths[0] / LOG):
            seeds = ", ".join(str(cfg["seed"]) for cfg in cfgs)
            print(f"==== {_now()} attempt on {socket.gethostname()}, job {_job_id()}"
                  + (f", seeds {seeds} in one process" if len(cfgs) > 1 else ""), flush=True)
            try:
                train_seeds(cfgs, paths)
            except Diverged as e:  # each seed's status.json already says diverged or finished
                print("\n".join(f"==== {_now()} {line}" for line in e.lines), flush=True)
                raise
            except Exception:
                error = traceback.format_exc()
                print(error, file=sys.stderr, flush=True)
                for path in paths:
                    write_json(path / STATUS, {"finished": False, "failed": True, "error": error,
                                               "job_id": _job_id(), "time": _now()})
                raise
            print(f"==== {_now()} finished", flush=True)
        return [str(path) for path in paths]

    def checkpoint(self, cfgs: list[dict], run_dirs: list[str]) -> DelayedSubmission:
        """Called by submitit on preemption / time limit: the requeued job makes the same call, and
        training continues from the checkpoints the runs keep in run_dir/checkpoint/."""
        with open(Path(run_dirs[0]) / LOG, "a") as log:
            log.write(f"==== {_now()} interrupted (preemption or time limit): requeued, resumes "
                      f"from {Path(run_dirs[0]) / 'checkpoint'}\n")
        return DelayedSubmission(self, cfgs, run_dirs)


def _now() -> str:
    return datetime.datetime.now().isoformat(timespec="seconds")


def _job_id() -> str:
    try:
        return submitit.JobEnvironment().job_id
    except RuntimeError:  # called outside a submitit job (e.g. directly)
        return f"pid {os.getpid()}"


# ---- processes on this machine -------------------------------------------------------------------

def process_start(pid: int) -> int | None:
    """The start time of process `pid` (clock ticks since boot), or None when it does not exist (or is
    a zombie). Recorded next to a PID so that a PID reused later is never taken for the same process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the command name (field 2) may hold spaces
    if fields[0] == "Z":
        return None
    return int(fields[19])


def process_alive(pid: int | None, start: int | None) -> bool:
    return pid is not None and start is not None and process_start(pid) == start


def this_process() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "pid_start": process_start(os.getpid())}


# ---- submission ----------------------------------------------------------------------------------

def submitit_folder(results_dir: str | Path, figure: str) -> Path:
    return Path(results_dir).resolve() / str(figure) / "_submitit"


def job_record(job: submitit.Job, cluster: str) -> dict[str, Any]:
    record = {"cluster": cluster, "job_id": str(job.job_id), "submitted": _now(),
              "stdout": str(job.paths.stdout), "stderr": str(job.paths.stderr)}
    if cluster == "local":
        pid = int(job.job_id)  # submitit's local job id is its controller process's PID
        record.update(host=socket.gethostname(), pid=pid, pid_start=process_start(pid))
    else:
        record["array_job_id"] = str(job.job_id).split("_")[0]
    return record


def submit_slurm(groups: list[list[Call]], parameters: dict[str, Any], folder: Path,
                 max_timeouts: int) -> list[submitit.Job]:
    """ONE job array, a task per group of calls (group_seeds); each run's job.json records its task."""
    executor = submitit.AutoExecutor(folder=folder / "%A", cluster="slurm",
                                     slurm_max_num_timeout=max_timeouts)
    executor.update_parameters(**parameters)
    jobs = executor.map_array(TrainJob(), [[cfg for cfg, _ in group] for group in groups],
                              [[str(d) for _, d in group] for group in groups])
    for job, group in zip(jobs, groups):
        for _, run_dir in group:
            write_json(run_dir / JOB_RECORD, job_record(job, "slurm"))
    return jobs


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """os.environ with `values` set (what submitit copies into the jobs it starts), then restored."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class LocalPool:
    """Runs TrainJob for each group of calls (group_seeds) through submitit's LocalExecutor,
    `workers` processes at once.

    Runs waiting for a worker get a job.json naming this launcher process, so that `status` shows
    them as pending while the launcher lives."""

    def __init__(self, groups: list[list[Call]], workers: int, folder: Path, env: dict[str, str]):
        self.waiting = list(groups)
        self.workers = workers
        self.env = env
        self.executor = submitit.AutoExecutor(folder=folder, cluster="local")
        self.executor.update_parameters(timeout_min=LOCAL_TIMEOUT_MIN)
        self.running: dict[submitit.Job, list[Call]] = {}
        launcher = this_process()
        for group in groups:
            for _, run_dir in group:
                run_dir.mkdir(parents=True, exist_ok=True)
                write_json(run_dir / JOB_RECORD, {"cluster": "local", "job_id": None, "queued": _now(),
                                                  "launcher": launcher})

    def _fill(self) -> None:
        while self.waiting and len(self.running) < self.workers:
            group = self.waiting.pop(0)
            with environment(**self.env):
                job = self.executor.submit(TrainJob(), [cfg for cfg, _ in group],
                                           [str(run_dir) for _, run_dir in group])
            for _, run_dir in group:
                write_json(run_dir / JOB_RECORD, job_record(job, "local"))
            self.running[job] = group

    def in_flight(self) -> list[Call]:
        return [call for group in self.running.values() for call in group]

    def poll(self, timeout_s: float) -> list[tuple[dict, Path, submitit.Job]]:
        """Start jobs while workers are free; return the runs whose process ended (waiting up to
        timeout_s for one to end). Empty when nothing ended in time."""
        deadline = time.monotonic() + timeout_s
        while True:
            self._fill()
            ended = [job for job in self.running if job.done()]
            if ended or time.monotonic() >= deadline or not self.running:
                break
            time.sleep(0.2)
        out = [(cfg, run_dir, job) for job in ended for cfg, run_dir in self.running.pop(job)]
        self._fill()
        return out

    def pending(self) -> bool:
        return bool(self.waiting or self.running)


def failure_summary(run_dir: Path, job: submitit.Job | None = None) -> str:
    """One line saying why a run did not finish: the last line of its recorded traceback, else what
    submitit knows about the job."""
    status = read_json(run_dir / STATUS) or {}
    if status.get("error"):
        return status["error"].strip().splitlines()[-1]
    if job is not None:
        try:
            job.result()
        except Exception as e:  # noqa: BLE001 - any failure of the job is reported as text
            lines = str(e).strip().splitlines()
            return lines[-1] if lines else type(e).__name__
    return "ended without finishing"
