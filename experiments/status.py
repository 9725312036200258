"""Where each run of a grid stands: done / running / pending / diverged / failed / missing.

- done: status.json says finished with the run's number of steps (launch.is_finished);
- running / pending: its job.json names a job that is alive: a SLURM job in squeue (running, or
  pending / requeued), or a local process that still exists (a queued local run: its launcher);
- diverged: status.json records a divergence (expo/divergence.py) of a run with the grid's settings;
  its reason is the detail. A relaunch skips it unless retry_diverged=true;
- failed: status.json says failed (the traceback is in it and in log.txt), or SLURM ended the job
  some other way (cancelled, time limit without requeue, out of memory, node failure);
- missing: none of these (never launched, or stopped without a record; a partial run resumes
  from its checkpoint when launched again).
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Callable

from experiments.executors import JOB_RECORD, LOG, STATUS, process_alive, read_json
from expo.checkpoint import comparable_config

STATES = ("done", "running", "pending", "diverged", "failed", "missing")
SLURM_RUNNING = {"RUNNING", "COMPLETING", "CONFIGURING", "STAGE_OUT", "SIGNALING", "RESIZING"}
SLURM_PENDING = {"PENDING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "SUSPENDED", "STOPPED",
                 "RESV_DEL_HOLD", "SPECIAL_EXIT"}
SLURM_FAILED = {"FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED",
                "BOOT_FAIL", "DEADLINE", "REVOKED"}
TRACEBACK_LINES = 4


@dataclasses.dataclass
class RunState:
    run_dir: Path
    state: str
    detail: str = ""                      # job id, progress, or why it failed
    log: Path | None = None               # for failures: where to look
    error_tail: tuple[str, ...] = ()      # for failures: the last lines of the traceback
    queue_unknown: bool = False           # a SLURM run whose liveness squeue could not tell


def _run(args: list[str]) -> str | None:
    if shutil.which(args[0]) is None:
        return None
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def slurm_states(array_ids: set[str]) -> dict[str, str] | None:
    """SLURM state per job id ("123_4") of these arrays: squeue for live jobs, sacct for ended ones
    (when accounting is available; without it, ended jobs are simply absent). None when squeue does
    not answer: then nothing is known about which jobs are alive."""
    if not array_ids:
        return {}
    states: dict[str, str] = {}
    ids = ",".join(sorted(array_ids))
    acct = _run(["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", ids])
    for line in (acct or "").splitlines():
        job_id, _, state = line.partition("|")
        if job_id and state:
            states[job_id.strip()] = state.split()[0]  # "CANCELLED by 0" -> CANCELLED
    # squeue last: it is the live truth (sacct lags behind a little)
    # (--me, not -j: squeue fails as a whole when one of the ids has left the controller)
    queue = _run(["squeue", "-h", "-r", "--me", "-o", "%i|%T"])
    if queue is None:
        return None
    for line in queue.splitlines():
        job_id, _, state = line.partition("|")
        if job_id.split("_")[0] in array_ids and state:
            states[job_id.strip()] = state.strip()
    return states


def _progress(run_dir: Path) -> str:
    try:
        lines = (run_dir / "eval.csv").read_text().strip().splitlines()
    except OSError:
        return ""
    if len(lines) < 2:
        return ""
    row = lines[-1].split(",")
    return f"last eval at env step {row[0]}: success {float(row[1]):.2f}"


def _failure(run_dir: Path, record: dict | None, reason: str) -> RunState:
    status = read_json(run_dir / STATUS) or {}
    error = status.get("error", "")
    # the last lines that say something (not Python's ^^^ position markers)
    meaningful = [line for line in error.strip().splitlines() if line.strip().strip("^~")]
    tail = tuple(meaningful[-TRACEBACK_LINES:])
    log = run_dir / LOG
    if not tail and record and record.get("stderr"):
        # no traceback of ours (e.g. killed by SLURM): the scheduler-side log says more
        tail = _tail(Path(record["stderr"]), TRACEBACK_LINES)
    return RunState(run_dir, "failed", reason, log, tail)


def _tail(path: Path, n: int) -> tuple[str, ...]:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ()
    return tuple(line for line in lines[-n:] if line.strip())


def collect(run_dirs: list[tuple[dict, Path]], is_finished: Callable[[Path, dict], bool]
            ) -> list[RunState]:
    """The state of each (cfg, run_dir), in the given order."""
    records = {run_dir: read_json(run_dir / JOB_RECORD) for _, run_dir in run_dirs}
    array_ids = {r["array_job_id"] for r in records.values()
                 if r and r.get("cluster") == "slurm" and r.get("array_job_id")}
    slurm = slurm_states(array_ids)
    queue_answered = slurm is not None
    slurm = slurm or {}
    out = []
    for cfg, run_dir in run_dirs:
        record = records[run_dir]
        status = read_json(run_dir / STATUS) or {}
        if is_finished(run_dir, cfg):
            out.append(RunState(run_dir, "done", _progress(run_dir)))
            continue
        live = _live_state(record, slurm)
        if live:
            out.append(RunState(run_dir, live[0], " ".join(x for x in (live[1], _progress(run_dir)) if x)))
        elif status.get("diverged"):
            if _same_settings(status.get("config"), cfg):
                out.append(RunState(run_dir, "diverged", str(status.get("reason", "")), run_dir / LOG))
            else:
                out.append(RunState(run_dir, "missing", "diverged with other settings; starts again "
                                                        "from the beginning when launched"))
        elif status.get("failed"):
            out.append(_failure(run_dir, record, "raised an exception"))
        elif record and record.get("cluster") == "slurm" and slurm.get(record["job_id"]) in SLURM_FAILED:
            out.append(_failure(run_dir, record, f"SLURM job {record['job_id']} ended "
                                                 f"{slurm[record['job_id']]}"))
        elif status.get("finished"):
            out.append(RunState(run_dir, "missing", f"finished with {status.get('env_steps')} steps, "
                                                    f"the grid asks for {cfg['steps']}"))
        elif record and record.get("cluster") == "slurm" and not queue_answered:
            out.append(RunState(run_dir, "missing", f"SLURM job {record['job_id']}: squeue did not "
                                                    f"answer, so whether it is alive is unknown",
                                queue_unknown=True))
        else:
            progress = _progress(run_dir)
            out.append(RunState(run_dir, "missing", f"stopped ({progress}); resumes when launched"
                                if progress else "not started"))
    return out


def _same_settings(recorded, cfg: dict) -> bool:
    return json.loads(json.dumps(recorded)) == comparable_config(cfg)


def _live_state(record: dict | None, slurm: dict[str, str]) -> tuple[str, str] | None:
    """(running | pending, job description) when the run's recorded job is alive, else None."""
    if not record:
        return None
    if record.get("cluster") == "slurm":
        state = slurm.get(str(record.get("job_id")))
        if state in SLURM_RUNNING:
            return "running", f"SLURM job {record['job_id']}"
        if state in SLURM_PENDING:
            return "pending", f"SLURM job {record['job_id']} ({state.lower()})"
        return None
    if record.get("cluster") == "local":
        if record.get("host", socket.gethostname()) != socket.gethostname():
            return None  # another machine's processes cannot be checked from here
        if record.get("pid") is not None and process_alive(record["pid"], record.get("pid_start")):
            return "running", f"local pid {record['pid']}"
        launcher = record.get("launcher") or {}
        if (record.get("pid") is None and launcher.get("host") == socket.gethostname()
                and process_alive(launcher.get("pid"), launcher.get("pid_start"))):
            return "pending", f"queued by launcher pid {launcher['pid']}"
    return None


def format_table(states: list[RunState], root: Path) -> str:
    """One line per run (failures add their log path and the last lines of the traceback), then a
    line of counts."""
    lines = []
    for s in states:
        try:
            name = s.run_dir.relative_to(root)
        except ValueError:
            name = s.run_dir
        lines.append(f"  {s.state:<8} {name}" + (f"  {s.detail}" if s.detail else ""))
        if s.state in ("failed", "diverged"):
            lines.append(f"           log: {s.log}")
            lines.extend(f"           | {line}" for line in s.error_tail)
    counts = {state: sum(s.state == state for s in states) for state in STATES}
    lines.append(", ".join(f"{state} {n}" for state, n in counts.items()))
    return "\n".join(lines)
