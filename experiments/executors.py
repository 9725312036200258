"""How a grid's runs execute: ONE job entry point, TrainJob, on this machine or on SLURM.

Both clusters go through submitit with the same pickled call, TrainJob()(cfg, run_dir):
- slurm: one job array per grid (submitit.AutoExecutor + map_array), at most array_parallelism
  tasks at once; SLURM signals a job before its time limit (and on preemption), submitit calls
  TrainJob.checkpoint and requeues it, and the requeued job resumes from run_dir/checkpoint/.
- local: submitit's LocalExecutor, one process per run, `workers` of them at once (LocalPool).

Each run's own output stays in its run directory (expo.logger.run_dir_for): the CSVs, log.txt
(stdout/stderr of every attempt, appended), status.json (finished, or failed with the traceback),
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
    """Remove a status.json that records a failure (the traceback stays in log.txt)."""
    status = read_json(run_dir / STATUS)
    if status and status.get("failed"):
        (run_dir / STATUS).unlink(missing_ok=True)


class TrainJob(Checkpointable):
    """One run: expo.train.train(cfg, run_dir), its output appended to run_dir/log.txt.

    On an exception, run_dir/status.json records {"finished": false, "failed": true, "error":
    <traceback>} before the exception propagates (so the scheduler sees a failed job too). A
    preemption or time limit is not a failure: submitit calls `checkpoint`, requeues the job, and
    train() resumes from the run's last checkpoint in run_dir/checkpoint/."""

    def __call__(self, cfg: dict, run_dir: str) -> str:
        from expo.train import train  # imported here: the launcher itself never loads jax

        run_dir_path = Path(run_dir)
        with output_appended_to(run_dir_path / LOG):
            print(f"==== {_now()} attempt on {socket.gethostname()}, job {_job_id()}", flush=True)
            try:
                train(cfg, run_dir_path)
            except Exception:
                error = traceback.format_exc()
                print(error, file=sys.stderr, flush=True)
                write_json(run_dir_path / STATUS, {"finished": False, "failed": True, "error": error,
                                                   "job_id": _job_id(), "time": _now()})
                raise
            print(f"==== {_now()} finished", flush=True)
        return str(run_dir_path)

    def checkpoint(self, cfg: dict, run_dir: str) -> DelayedSubmission:
        """Called by submitit on preemption / time limit: the requeued job makes the same call, and
        train() continues from the checkpoint it keeps in run_dir/checkpoint/."""
        with open(Path(run_dir) / LOG, "a") as log:
            log.write(f"==== {_now()} interrupted (preemption or time limit): requeued, resumes "
                      f"from {Path(run_dir) / 'checkpoint'}\n")
        return DelayedSubmission(self, cfg, run_dir)


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


def submit_slurm(calls: list[tuple[dict, Path]], parameters: dict[str, Any], folder: Path,
                 max_timeouts: int) -> list[submitit.Job]:
    """ONE job array for all `calls` (cfg, run_dir); each run's job.json records its task."""
    executor = submitit.AutoExecutor(folder=folder / "%A", cluster="slurm",
                                     slurm_max_num_timeout=max_timeouts)
    executor.update_parameters(**parameters)
    jobs = executor.map_array(TrainJob(), [cfg for cfg, _ in calls], [str(d) for _, d in calls])
    for job, (_, run_dir) in zip(jobs, calls):
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
    """Runs TrainJob for each (cfg, run_dir) through submitit's LocalExecutor, `workers` at once.

    Runs waiting for a worker get a job.json naming this launcher process, so that `status` shows
    them as pending while the launcher lives."""

    def __init__(self, calls: list[tuple[dict, Path]], workers: int, folder: Path,
                 env: dict[str, str]):
        self.waiting = list(calls)
        self.workers = workers
        self.env = env
        self.executor = submitit.AutoExecutor(folder=folder, cluster="local")
        self.executor.update_parameters(timeout_min=LOCAL_TIMEOUT_MIN)
        self.running: dict[submitit.Job, tuple[dict, Path]] = {}
        launcher = this_process()
        for _, run_dir in calls:
            run_dir.mkdir(parents=True, exist_ok=True)
            write_json(run_dir / JOB_RECORD, {"cluster": "local", "job_id": None, "queued": _now(),
                                              "launcher": launcher})

    def _fill(self) -> None:
        while self.waiting and len(self.running) < self.workers:
            cfg, run_dir = self.waiting.pop(0)
            with environment(**self.env):
                job = self.executor.submit(TrainJob(), cfg, str(run_dir))
            write_json(run_dir / JOB_RECORD, job_record(job, "local"))
            self.running[job] = (cfg, run_dir)

    def in_flight(self) -> list[tuple[dict, Path]]:
        return list(self.running.values())

    def poll(self, timeout_s: float) -> list[tuple[dict, Path, submitit.Job]]:
        """Start runs while workers are free; return the runs whose process ended (waiting up to
        timeout_s for one to end). Empty when nothing ended in time."""
        deadline = time.monotonic() + timeout_s
        while True:
            self._fill()
            ended = [job for job in self.running if job.done()]
            if ended or time.monotonic() >= deadline or not self.running:
                break
            time.sleep(0.2)
        out = [(*self.running.pop(job), job) for job in ended]
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
