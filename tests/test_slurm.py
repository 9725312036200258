"""The launcher against a REAL single-node SLURM on localhost (tests/slurm/start_slurm.sh: munge,
MariaDB + slurmdbd, slurmctld, slurmd from Debian's packages), started once for these tests and
stopped by PID afterwards. Jobs run the tiny world (tests/tiny_world_site) with the repository's
interpreter, as submitted by `experiments/launch.py cluster=slurm`.

Needs root and apt (or the packages installed); otherwise every test here is skipped with the reason.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.subprocess_world import ROOT, launch, rows_without_wall_time, tiny_keys, tiny_world_env

pytestmark = pytest.mark.slurm

SCRIPTS = ROOT / "tests" / "slurm"
PACKAGE_BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "slurmdbd", "mariadbd")


def _unavailable() -> str | None:
    if not sys.platform.startswith("linux"):
        return "the local SLURM cluster needs Linux"
    if os.geteuid() != 0:
        return "the local SLURM cluster needs root (slurmd runs jobs as their users)"
    if shutil.which("apt-get") is None and not all(
            shutil.which(b) or Path("/usr/sbin", b).exists() for b in PACKAGE_BINARIES):
        return "no apt-get to install munge/slurm/mariadb, and they are not installed"
    return None


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.fixture(scope="module")
def slurm_conf():
    """Start the cluster (installing the packages if needed) and always stop it; yields SLURM_CONF.
    With EXPO_REQUIRE_SLURM=1 (CI: .ci/run) a machine that cannot run it fails instead of skipping."""
    reason = _unavailable()
    if reason:
        if os.environ.get("EXPO_REQUIRE_SLURM") == "1":
            pytest.fail(f"EXPO_REQUIRE_SLURM=1 but {reason}")
        pytest.skip(reason)
    # Not under pytest's 0700 tmp tree: munged and mariadbd run as their own users and must reach it.
    base = Path(tempfile.mkdtemp(prefix="expo-slurm-"))
    ports = dict(zip(("SLURMCTLD_PORT", "SLURMD_PORT", "SLURMDBD_PORT", "MARIADB_PORT"), map(str, _free_ports(4))))
    env = dict(os.environ, **ports)
    started = subprocess.run(["bash", str(SCRIPTS / "start_slurm.sh"), str(base)], env=env,
                             capture_output=True, text=True, timeout=900)
    previous_conf = os.environ.get("SLURM_CONF")
    try:
        assert started.returncode == 0, f"start_slurm.sh failed:\n{started.stdout}\n{started.stderr}"
        # every SLURM client call of this process (submitit's scancel, sacct) needs it too
        os.environ["SLURM_CONF"] = str(base / "etc" / "slurm.conf")
        yield os.environ["SLURM_CONF"]
    finally:
        if previous_conf is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous_conf
        stopped = subprocess.run(["bash", str(SCRIPTS / "stop_slurm.sh"), str(base)],
                                 capture_output=True, text=True, timeout=300)
        assert stopped.returncode == 0, f"stop_slurm.sh failed:\n{stopped.stdout}\n{stopped.stderr}"
        left = [p for p in base.rglob("*.pid") if p.read_text().strip()]
        assert not left, f"daemons whose pid files remain: {left}"
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def slurm_env(slurm_conf, tmp_path, tmp_path_factory):
    """The environment of a launcher submitting to the local cluster: the tiny world, SLURM_CONF,
    and a cluster profile (cluster=slurm on partition debug) that the command line can override."""
    profile = tmp_path / "cluster.toml"
    profile.write_text('cluster = "slurm"\npartition = "debug"\ncpus = 1\ntime_min = 60\n'
                       'array_parallelism = 1\n')
    env = tiny_world_env(tmp_path_factory.getbasetemp() / "data_root", profile)
    env["SLURM_CONF"] = slurm_conf
    return env


def sacct_state(env, job_id: str, want: str, timeout_s: float = 60) -> str:
    """The job's accounting state once it is `want` (sacct lags the job's end a little), or the last
    state seen after timeout_s."""
    state, deadline = "", time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        out = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", job_id.split("_")[0]],
                             env=env, capture_output=True, text=True, timeout=60).stdout
        state = dict(line.split("|", 1) for line in out.splitlines() if "|" in line).get(job_id, "")
        if state.split(" ")[0] == want:
            break
        time.sleep(1)
    return state


def test_tiny_grid_completes_as_one_array(slurm_env, tmp_path):
    results = f"results_dir={tmp_path / 'results'}"
    out = launch(slurm_env, "figure=demo", "seeds=1", results, "wait=true", "array_parallelism=2",
                 *tiny_keys(), timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    assert "submitted job array" in out.stdout
    assert "lift expo seed 0: success" in out.stdout and "lift bc seed 0: success" in out.stdout

    figure_dir = tmp_path / "results" / "demo"
    records = {}
    for method, eval_steps in (("expo", ["0", "12", "24"]), ("bc", ["0"])):
        run_dir = figure_dir / "lift" / method / "seed_0"
        assert json.loads((run_dir / "status.json").read_text())["finished"]
        assert [r["env_step"] for r in rows_without_wall_time(run_dir / "eval.csv")] == eval_steps
        log = (run_dir / "log.txt").read_text()
        assert "attempt on" in log and "finished" in log  # the job's own output, next to its CSVs
        records[method] = json.loads((run_dir / "job.json").read_text())
        assert records[method]["cluster"] == "slurm"
    # one array for the grid, one task per run; the profile's partition and time limit, the command
    # line's cap on concurrent tasks (it overrides the profile's 1)
    assert records["expo"]["array_job_id"] == records["bc"]["array_job_id"]
    assert records["expo"]["job_id"] != records["bc"]["job_id"]
    array_id = records["expo"]["array_job_id"]
    script = (figure_dir / "_submitit" / array_id / f"{array_id}_submission.sh").read_text()
    assert "#SBATCH --array=0-1%2" in script
    assert "#SBATCH --partition=debug" in script and "#SBATCH --time=60" in script
    for record in records.values():
        assert sacct_state(slurm_env, record["job_id"], "COMPLETED").startswith("COMPLETED")

    status = launch(slurm_env, "figure=demo", "seeds=1", results, "status", *tiny_keys())
    assert status.returncode == 0, status.stderr
    assert "done 2, running 0, pending 0, diverged 0, failed 0, missing 0" in status.stdout
    again = launch(slurm_env, "figure=demo", "seeds=1", results, *tiny_keys())  # finished: skipped
    assert again.returncode == 0, again.stderr
    assert "2 runs, 2 finished, 0 to run" in again.stdout and "submitted" not in again.stdout


def _wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _online_rows(run_dir: Path) -> bool:
    try:
        return any(r["phase"] == "online" for r in rows_without_wall_time(run_dir / "train.csv"))
    except (OSError, KeyError):
        return False


def _finished(run_dir: Path) -> bool:
    try:
        return json.loads((run_dir / "status.json").read_text()).get("finished", False)
    except (OSError, ValueError):
        return False


def test_preempted_run_is_requeued_and_continues_the_same_csv(slurm_env, tmp_path):
    import submitit

    # A run that checkpoints at every episode end (15 env steps here) and lasts 20 episodes.
    keys = ["figure=demo", "methods=expo", "seeds=1", "checkpoint_interval_s=0",
            *tiny_keys(steps=300, eval_interval=100, log_interval=20)]
    # The uninterrupted run with the same seed, on this machine, while the SLURM one runs.
    reference = subprocess.Popen([sys.executable, "experiments/launch.py", "cluster=local",
                                  f"results_dir={tmp_path / 'reference'}", *keys], cwd=ROOT,
                                 env=slurm_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out = launch(slurm_env, f"results_dir={tmp_path / 'slurm'}", *keys)
        assert out.returncode == 0, out.stdout + out.stderr[-3000:]
        run_dir = tmp_path / "slurm" / "demo" / "lift" / "expo" / "seed_0"
        record = json.loads((run_dir / "job.json").read_text())

        # Pre-empt it once it is in the online phase (checkpoints behind it, steps ahead of it):
        # SIGTERM then USR2, as SLURM does; submitit checkpoints and requeues the job.
        _wait_for(lambda: _online_rows(run_dir), 600, "the SLURM run's first online rows")
        assert not _finished(run_dir), "the run finished before it could be interrupted"
        submitit.SlurmJob(folder=Path(record["stdout"]).parent, job_id=record["job_id"])._interrupt()
        _wait_for(lambda: _finished(run_dir), 900, "the requeued run to finish")
        reference_out, reference_err = reference.communicate(timeout=900)
    finally:
        if reference.poll() is None:
            reference.kill()
            reference.wait()
    assert reference.returncode == 0, reference_out + reference_err[-3000:]

    log = (run_dir / "log.txt").read_text()
    assert "interrupted (preemption or time limit): requeued" in log
    assert log.count("attempt on") == 2  # the same job, started again by SLURM
    assert json.loads((run_dir / "status.json").read_text())["resumes"] == 1
    reference_dir = tmp_path / "reference" / "demo" / "lift" / "expo" / "seed_0"
    for name in ("eval.csv", "train.csv"):  # no row lost, none twice, same values
        assert rows_without_wall_time(run_dir / name) == rows_without_wall_time(reference_dir / name), name
    assert [r["env_step"] for r in rows_without_wall_time(run_dir / "eval.csv")] == ["0", "100", "200", "300"]
    assert sacct_state(slurm_env, record["job_id"], "COMPLETED").startswith("COMPLETED")


def test_failing_run_is_reported_by_status_with_its_traceback(slurm_env, tmp_path):
    # The config accepts 100 demos; the run finds 4 in the file and raises.
    keys = ["figure=demo", "methods=expo", "seeds=1", f"results_dir={tmp_path}",
            *tiny_keys(dataset__num_demos=100)]
    out = launch(slurm_env, "wait=true", *keys, timeout=900)
    assert out.returncode != 0
    assert "lift expo seed 0: FAILED" in out.stdout and "asked for 100 demos" in out.stdout
    assert "1 run(s) failed or diverged" in out.stderr

    run_dir = tmp_path / "demo" / "lift" / "expo" / "seed_0"
    status = launch(slurm_env, "status", *keys)
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    failed = next(i for i, line in enumerate(lines) if line.split()[:1] == ["failed"])
    assert "lift/expo/seed_0" in lines[failed]
    assert lines[failed + 1].strip() == f"log: {run_dir / 'log.txt'}"
    assert any("DatasetError" in line and "asked for 100 demos" in line for line in lines[failed + 2:])
    assert "failed 1, missing 0" in lines[-1]
    assert "Traceback (most recent call last)" in (run_dir / "log.txt").read_text()
    record = json.loads((run_dir / "job.json").read_text())
    assert sacct_state(slurm_env, record["job_id"], "FAILED").startswith("FAILED")
