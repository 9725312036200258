"""The launcher on this machine: figure numbers, cluster keys and the per-user profile, `status`,
the job entry point (TrainJob) and a tiny grid run locally through it.

The SLURM side, against a real local cluster, is tests/test_slurm.py."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from experiments import cluster, executors, status as status_lib
from experiments.launch import activity, is_finished, steps_done
from expo import config as config_lib
from tests.subprocess_world import ROOT, launch, rows_without_wall_time, tiny_keys, tiny_world_env

NO_PROFILE = {"EXPO_CLUSTER_PROFILE": ""}


def plain_launch(*args, env_changes=None):
    """The launcher with this environment (no cluster profile), plus env_changes."""
    return subprocess.run([sys.executable, "experiments/launch.py", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env={**os.environ, **NO_PROFILE, **(env_changes or {})})


# ---- figure names and command words

def test_a_figure_number_names_its_fig_grid(tmp_path):
    out = plain_launch("figure=4", "dry_run=true", "seeds=1", f"results_dir={tmp_path}")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("figure=fig4: ")
    assert f"{tmp_path}/fig4/lift/expo/seed_0" in out.stdout
    out = plain_launch("figure=99", "dry_run=true")
    assert out.returncode != 0 and "unknown figure 'fig99'; valid figures: " in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_an_unknown_command_word_is_a_one_line_error():
    out = plain_launch("figure=demo", "stats")
    assert out.returncode != 0
    assert out.stderr.strip() == ("error: unknown command 'stats'; valid commands: status "
                                  "(everything else is key=value)")


# ---- cluster keys: defaults < profile < key=value

def test_profile_values_apply_and_the_command_line_overrides_them(tmp_path, monkeypatch):
    profile = tmp_path / "cluster.toml"
    profile.write_text('cluster = "slurm"\npartition = "gpu"\ngpus = 1\ncpus = 8\nmem_gb = 32\n'
                       'time_min = 720\naccount = "rl"\nsetup = ["module load cuda"]\n')
    monkeypatch.setenv("EXPO_CLUSTER_PROFILE", str(profile))
    settings = cluster.resolve({"partition": "long", "array_parallelism": 16})
    assert (settings.cluster, settings.partition, settings.gpus, settings.cpus) == ("slurm", "long", 1, 8)
    assert (settings.mem_gb, settings.time_min, settings.array_parallelism) == (32.0, 720, 16)
    assert cluster.slurm_parameters(settings, "expo-fig4") == {
        "name": "expo-fig4", "timeout_min": 720, "cpus_per_task": 8, "tasks_per_node": 1, "nodes": 1,
        "slurm_array_parallelism": 16, "gpus_per_node": 1, "mem_gb": 32.0, "slurm_partition": "long",
        "slurm_account": "rl", "slurm_setup": ["module load cuda"],
    }
    # no profile: the defaults (this machine)
    monkeypatch.setenv("EXPO_CLUSTER_PROFILE", "")
    assert cluster.resolve({}) == cluster.ClusterSettings()
    assert cluster.resolve({}).cluster == "local"


def test_the_example_profile_is_a_valid_profile(monkeypatch):
    monkeypatch.setenv("EXPO_CLUSTER_PROFILE", str(ROOT / "experiments" / "cluster_profile.example.toml"))
    settings = cluster.resolve({})
    assert (settings.cluster, settings.partition, settings.gpus, settings.time_min) == ("slurm", "gpu", 1, 720)


def test_the_default_profile_lives_in_the_user_config_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("EXPO_CLUSTER_PROFILE", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert cluster.resolve({}).partition is None
    (tmp_path / "expo-suite").mkdir()
    (tmp_path / "expo-suite" / "cluster.toml").write_text('partition = "debug"\n')
    assert cluster.resolve({}).partition == "debug"


@pytest.mark.parametrize("text, message", [
    ('partitions = "gpu"\n', "unknown cluster key 'partitions'; valid keys: cluster, partition, gpus"),
    ('gpus = "two"\n', "gpus must be an integer >= 0, got 'two'"),
    ('cluster = "pbs"\n', "cluster must be one of local, slurm, got 'pbs'"),
    ('time_min = 0\n', "time_min must be an integer >= 1, got 0"),
    ('partition = \n', "not valid TOML"),
])
def test_a_bad_profile_stops_the_launcher_with_one_line(tmp_path, text, message):
    profile = tmp_path / "cluster.toml"
    profile.write_text(text)
    out = plain_launch("figure=demo", f"results_dir={tmp_path}", env_changes={"EXPO_CLUSTER_PROFILE": str(profile)})
    assert out.returncode != 0
    assert len(out.stderr.strip().splitlines()) == 1 and message in out.stderr, out.stderr
    assert str(profile) in out.stderr


def test_cluster_key_errors_name_the_fix(tmp_path):
    out = plain_launch("figure=demo", "gpus=-1", f"results_dir={tmp_path}")
    assert out.returncode != 0 and "command line: gpus must be an integer >= 0, got -1" in out.stderr
    out = plain_launch("figure=demo", f"results_dir={tmp_path}",
                       env_changes={"EXPO_CLUSTER_PROFILE": str(tmp_path / "nope.toml")})
    assert out.returncode != 0 and "nope.toml: no such file" in out.stderr
    out = plain_launch("figure=demo", "bogus=1")  # neither a launcher, cluster nor run key
    assert out.returncode != 0 and "unknown key 'bogus'" in out.stderr and "cluster keys: cluster," in out.stderr


def test_slurm_without_sbatch_is_a_one_line_error(tmp_path):
    # PATH with only this interpreter's directory: no SLURM client on it
    out = plain_launch("figure=demo", "cluster=slurm", f"results_dir={tmp_path}",
                       env_changes={"PATH": str(Path(sys.executable).parent)})
    assert out.returncode != 0
    assert out.stderr.strip().splitlines()[-1] == ("error: cluster=slurm needs SLURM's sbatch on PATH "
                                                   "(launch from a cluster's login node)")


# ---- status

def _run_dir(root: Path, method: str, seed: int = 0) -> Path:
    run_dir = root / "fig" / "lift" / method / f"seed_{seed}"
    run_dir.mkdir(parents=True)
    return run_dir


def _write(path: Path, value) -> None:
    path.write_text(value if isinstance(value, str) else json.dumps(value))


def test_status_tells_done_running_pending_diverged_failed_missing(tmp_path, monkeypatch):
    cfg = {"steps": 100}
    done = _run_dir(tmp_path, "done")
    _write(done / "status.json", {"finished": True, "env_steps": 100})
    _write(done / "eval.csv", "env_step,success\n0,0.1\n100,0.75\n")
    shorter = _run_dir(tmp_path, "shorter")  # finished, but a grid of another length
    _write(shorter / "status.json", {"finished": True, "env_steps": 50})
    failed = _run_dir(tmp_path, "failed")
    error = ("Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n"
             "    train(cfg)\n    ^^^^^^^^^^\nValueError: the run rejected this value\n")
    _write(failed / "status.json", {"finished": False, "failed": True, "error": error})
    reason = "diverged at online step 4500: critic_loss = nan"
    diverged = _run_dir(tmp_path, "diverged")  # with the grid's settings: not run again
    _write(diverged / "status.json", {"finished": False, "failed": True, "diverged": True,
                                      "reason": reason, "error": reason, "config": cfg})
    changed = _run_dir(tmp_path, "changed")  # diverged with other settings: runs again
    _write(changed / "status.json", {"finished": False, "failed": True, "diverged": True,
                                     "reason": reason, "error": reason, "config": {"steps": 50}})
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        running = _run_dir(tmp_path, "running")
        _write(running / "job.json", {"cluster": "local", "job_id": str(sleeper.pid), "pid": sleeper.pid,
                                      "pid_start": executors.process_start(sleeper.pid)})
        _write(running / "eval.csv", "env_step,success\n0,0.2\n")
        reused = _run_dir(tmp_path, "reused")  # same PID, another process start: not our run
        _write(reused / "job.json", {"cluster": "local", "job_id": str(sleeper.pid), "pid": sleeper.pid,
                                     "pid_start": executors.process_start(sleeper.pid) - 1})
        queued = _run_dir(tmp_path, "queued")  # waiting for a worker of a live launcher
        _write(queued / "job.json", {"cluster": "local", "job_id": None, "launcher": executors.this_process()})
        on_slurm = {state: _run_dir(tmp_path, f"slurm{state.lower()}") for state in
                    ("RUNNING", "PENDING", "TIMEOUT", "COMPLETED")}
        for i, run_dir in enumerate(on_slurm.values()):
            _write(run_dir / "job.json", {"cluster": "slurm", "job_id": f"7_{i}", "array_job_id": "7",
                                          "stderr": str(run_dir / "slurm.err")})
        _write(on_slurm["TIMEOUT"] / "slurm.err", "slurmstepd: error: *** JOB 7_2 CANCELLED DUE TO TIME LIMIT ***\n")
        asked = []

        def fake_slurm_states(array_ids):
            asked.append(array_ids)
            return {f"7_{i}": state for i, state in enumerate(on_slurm)}

        monkeypatch.setattr(status_lib, "slurm_states", fake_slurm_states)
        never = _run_dir(tmp_path, "never")
        dirs = [done, shorter, failed, diverged, changed, running, reused, queued, *on_slurm.values(), never]
        states = status_lib.collect([(cfg, d) for d in dirs], is_finished)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert asked == [{"7"}]  # one scheduler query for the whole grid
    by_name = {s.run_dir.parent.name: s for s in states}
    assert {name: s.state for name, s in by_name.items()} == {
        "done": "done", "shorter": "missing", "failed": "failed", "diverged": "diverged",
        "changed": "missing", "running": "running", "reused": "missing",
        "queued": "pending", "slurmrunning": "running", "slurmpending": "pending", "slurmtimeout": "failed",
        "slurmcompleted": "missing", "never": "missing"}
    assert by_name["failed"].log == failed / "log.txt"
    assert by_name["diverged"].detail == reason and "other settings" in by_name["changed"].detail
    assert by_name["failed"].error_tail[-1] == "ValueError: the run rejected this value"
    assert "TIMEOUT" in by_name["slurmtimeout"].detail
    assert "TIME LIMIT" in by_name["slurmtimeout"].error_tail[-1]  # SLURM's own log says why
    assert "SLURM job 7_1 (pending)" in by_name["slurmpending"].detail

    table = status_lib.format_table(states, tmp_path / "fig").splitlines()
    row = next(i for i, line in enumerate(table) if "lift/failed/seed_0" in line)
    assert table[row].split()[0] == "failed"
    assert table[row + 1].strip() == f"log: {failed / 'log.txt'}"
    assert table[row + 5].strip() == "| ValueError: the run rejected this value"
    assert "lift/done/seed_0  last eval at env step 100: success 0.75" in "\n".join(table)
    assert f"lift/diverged/seed_0  {reason}" in "\n".join(table)
    assert table[-1] == "done 1, running 2, pending 2, diverged 1, failed 2, missing 5"


def test_progress_says_what_each_run_does_and_the_bar_waits_for_the_last_evaluation(tmp_path):
    cfg = {"steps": 100, "pretrain_steps": 50}
    run_dir = _run_dir(tmp_path, "expo")
    assert (steps_done(run_dir, cfg), activity(run_dir)) == (0, "starting")
    cases = [({"phase": "data"}, 0, "preparing its dataset (generated on first use)"),
             ({"phase": "pretrain", "done": 20, "total": 50}, 20, "pretraining 20/50"),
             ({"phase": "evaluating", "env_step": 0}, 50, "evaluating at step 0"),
             ({"phase": "online", "done": 60, "total": 100}, 110, "online 60/100"),
             ({"phase": "evaluating", "env_step": 100}, 149, "evaluating at step 100")]  # not yet 150
    for progress, steps, text in cases:
        _write(run_dir / "progress.json", progress)
        assert (steps_done(run_dir, cfg), activity(run_dir)) == (steps, text)
    _write(run_dir / "eval.csv", "env_step,success\n0,0.25\n")
    assert activity(run_dir) == "evaluating at step 100, success 0.25"
    _write(run_dir / "status.json", {"finished": True, "env_steps": 100})
    assert steps_done(run_dir, cfg) == 150


def test_a_slurm_run_is_not_called_gone_when_squeue_does_not_answer(tmp_path, monkeypatch):
    run_dir = _run_dir(tmp_path, "expo")
    _write(run_dir / "job.json", {"cluster": "slurm", "job_id": "8_0", "array_job_id": "8"})
    monkeypatch.setattr(status_lib, "slurm_states", lambda array_ids: None)
    [state] = status_lib.collect([({"steps": 10}, run_dir)], is_finished)
    assert state.state == "missing" and state.queue_unknown and "squeue did not answer" in state.detail


def test_a_relaunch_clears_only_a_recorded_failure(tmp_path):
    failed, finished = _run_dir(tmp_path, "failed"), _run_dir(tmp_path, "finished")
    _write(failed / "status.json", {"finished": False, "failed": True, "error": "Traceback ..."})
    _write(finished / "status.json", {"finished": True, "env_steps": 10})
    diverged = _run_dir(tmp_path, "diverged")  # the run itself decides (retry_diverged)
    _write(diverged / "status.json", {"finished": False, "failed": True, "diverged": True})
    for run_dir in (failed, finished, diverged):
        executors.clear_failure(run_dir)
    assert not (failed / "status.json").exists() and (finished / "status.json").exists()
    assert (diverged / "status.json").exists()


# ---- the job entry point

@pytest.mark.usefixtures("tiny_world")
def test_train_job_records_a_failure_and_its_traceback(tmp_path, capfd):
    cfg = config_lib.build_config({**{k: config_lib.parse_value(v) for k, v in
                                      (kv.split("=", 1) for kv in tiny_keys(dataset__num_demos=100))},
                                   "results_dir": str(tmp_path)})
    run_dir = tmp_path / "run"
    with pytest.raises(Exception, match="asked for 100 demos"):
        executors.TrainJob()([cfg], [str(run_dir)])
    status = json.loads((run_dir / "status.json").read_text())
    assert status["failed"] and not status["finished"]
    assert "Traceback (most recent call last)" in status["error"]
    assert "DatasetError" in status["error"].strip().splitlines()[-1]
    assert "asked for 100 demos, the file has 4" in status["error"].strip().splitlines()[-1]
    log = (run_dir / "log.txt").read_text()
    assert "attempt on" in log and "asked for 100 demos" in log
    # this process's output goes back where it was
    print("after the job")
    assert "after the job" in capfd.readouterr().out
    assert "after the job" not in (run_dir / "log.txt").read_text()


def test_train_job_checkpoint_resubmits_the_same_call(tmp_path):
    job = executors.TrainJob()
    cfg = {"seed": 3}
    delayed = job.checkpoint([cfg], [str(tmp_path)])
    assert delayed.function is job and delayed.args == ([cfg], [str(tmp_path)]) and not delayed.kwargs
    assert "requeued, resumes from" in (tmp_path / "log.txt").read_text()


@pytest.mark.usefixtures("tiny_world")
def test_a_seed_group_is_one_job_and_each_run_records_its_failure(tmp_path, capfd):
    keys = {**{k: config_lib.parse_value(v) for k, v in
               (kv.split("=", 1) for kv in tiny_keys(dataset__num_demos=100))},
            "results_dir": str(tmp_path), "seeds_per_process": 2}
    cfgs = [config_lib.build_config({**keys, "seed": seed}) for seed in (0, 1)]
    run_dirs = [tmp_path / "seed_0", tmp_path / "seed_1"]
    with pytest.raises(Exception, match="asked for 100 demos"):
        executors.TrainJob()(cfgs, [str(d) for d in run_dirs])
    for run_dir in run_dirs:
        status = json.loads((run_dir / "status.json").read_text())
        assert status["failed"] and "asked for 100 demos" in status["error"]
    assert "seeds 0, 1 in one process" in (run_dirs[0] / "log.txt").read_text()
    assert f"the output is in {run_dirs[0] / 'log.txt'}" in (run_dirs[1] / "log.txt").read_text()


def test_runs_that_differ_only_in_seed_share_a_process_k_at_a_time(tmp_path):
    def call(seed, k=2, **keys):
        cfg = config_lib.build_config({"scale": "mini", "seed": seed, "seeds_per_process": k, **keys,
                                       "results_dir": str(tmp_path)})
        return cfg, tmp_path / f"{cfg['method']}_{seed}"

    calls = [call(s) for s in range(5)] + [call(0, method="bc"), call(1, method="bc"),
                                           call(5, **{"agent.N": 8})]
    groups = executors.group_seeds(calls)
    assert [[cfg["seed"] for cfg, _ in g] for g in groups] == [[0, 1], [2, 3], [4], [0, 1], [5]]
    assert [g[0][0]["method"] for g in groups] == ["expo", "expo", "expo", "bc", "expo"]
    # k = 1 (the default): a process per run
    assert len(executors.group_seeds([call(s, k=1) for s in range(3)])) == 3


def _attempt_times(run_dir: Path) -> tuple[str, str]:
    """(start, end) of a run's one attempt, from the lines TrainJob writes into log.txt."""
    marks = [line.split()[1] for line in (run_dir / "log.txt").read_text().splitlines()
             if line.startswith("==== ")]
    assert len(marks) == 2, marks
    return marks[0], marks[1]


# ---- a grid on this machine, end to end (same TrainJob, through submitit's local executor)

@pytest.mark.slow
def test_local_grid_runs_and_status_reports_it(tmp_path, tmp_path_factory):
    env = tiny_world_env(tmp_path_factory.getbasetemp() / "data_root")
    grid = ["figure=demo", "seeds=1", f"results_dir={tmp_path}"]
    out = launch(env, *grid, "workers=2", *tiny_keys())
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    assert "2 runs, 0 finished, 2 to run" in out.stdout
    assert "lift expo seed 0: success" in out.stdout and "lift bc seed 0: success" in out.stdout
    for method, eval_steps in (("expo", ["0", "12", "24"]), ("bc", ["0"])):
        run_dir = tmp_path / "demo" / "lift" / method / "seed_0"
        assert [r["env_step"] for r in rows_without_wall_time(run_dir / "eval.csv")] == eval_steps
        record = json.loads((run_dir / "job.json").read_text())
        assert record["cluster"] == "local" and record["pid"] > 0
        assert not executors.process_alive(record["pid"], record["pid_start"])  # ended with the grid
        assert "attempt on" in (run_dir / "log.txt").read_text()
    # the two ran at once: each started before the other finished
    (expo_start, expo_end), (bc_start, bc_end) = (_attempt_times(tmp_path / "demo/lift" / m / "seed_0")
                                                  for m in ("expo", "bc"))
    assert expo_start <= bc_end and bc_start <= expo_end

    status = launch(env, *grid, "status", *tiny_keys())
    assert "done 2, running 0, pending 0, diverged 0, failed 0, missing 0" in status.stdout, status.stdout
    again = launch(env, *grid, *tiny_keys())
    assert again.returncode == 0 and "2 runs, 2 finished, 0 to run" in again.stdout

    failing = ["figure=demo", "methods=expo", "seeds=1", f"results_dir={tmp_path / 'failing'}",
               *tiny_keys(dataset__num_demos=100)]
    out = launch(env, *failing)
    assert out.returncode != 0 and "lift expo seed 0: FAILED" in out.stdout
    status = launch(env, *failing, "status")
    assert "failed 1" in status.stdout and "asked for 100 demos" in status.stdout
    assert f"log: {tmp_path / 'failing/demo/lift/expo/seed_0/log.txt'}" in status.stdout


@pytest.mark.slow
def test_a_diverged_run_is_reported_and_not_relaunched_unless_retried(tmp_path, tmp_path_factory):
    env = tiny_world_env(tmp_path_factory.getbasetemp() / "data_root")
    reason = "diverged at pretraining step 20: bc_loss = nan"
    grid = ["figure=demo", "methods=expo", "seeds=1", f"results_dir={tmp_path}", *tiny_keys(),
            "agent.actor_lr=1e15"]
    out = launch(env, *grid)
    assert out.returncode != 0 and f"lift expo seed 0: DIVERGED ({reason})" in out.stdout, out.stdout
    status = launch(env, *grid, "status")
    assert f"  diverged lift/expo/seed_0  {reason}" in status.stdout, status.stdout
    assert "diverged 1, failed 0" in status.stdout
    again = launch(env, *grid)
    assert again.returncode == 0 and "1 diverged (not run again" in again.stdout and "0 to run" in again.stdout
    retry = launch(env, *grid, "retry_diverged=true")
    assert retry.returncode != 0 and f"DIVERGED ({reason})" in retry.stdout and "1 to run" in retry.stdout


# ---- results where the checkout is, --help, bad values, the dry run's data check

def launch_from(cwd, *args, env_changes=None):
    """The launcher started from another working directory (by its absolute path)."""
    return subprocess.run([sys.executable, str(ROOT / "experiments" / "launch.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, **NO_PROFILE, **(env_changes or {})})


def test_the_default_results_dir_is_the_checkouts_from_any_working_directory(tmp_path):
    at_root = plain_launch("figure=cpu4", "dry_run=true")
    elsewhere = launch_from(tmp_path, "figure=cpu4", "dry_run=true")
    assert at_root.returncode == 0 and elsewhere.returncode == 0, elsewhere.stderr
    first = elsewhere.stdout.splitlines()[0]
    # the committed results/cpu4 runs are found, and counted the same, from both places
    assert first == at_root.stdout.splitlines()[0]
    assert first.endswith(f"; results_dir={ROOT / 'results'}")
    finished = int(first.split(" runs, ")[1].split(" finished")[0])
    assert finished > 0 and f"[done] {ROOT / 'results' / 'cpu4'}" in elsewhere.stdout
    # a relative results_dir= is the working directory's, printed absolute; a dry run writes nothing
    out = launch_from(tmp_path, "figure=cpu4", "dry_run=true", "results_dir=mine")
    assert out.stdout.splitlines()[0].endswith(f"0 finished, 48 to run; results_dir={tmp_path / 'mine'}")
    assert f"[todo] {tmp_path / 'mine' / 'cpu4' / 'lift' / 'expo' / 'seed_0'}" in out.stdout
    assert not (tmp_path / "mine").exists() and not (tmp_path / "results").exists()


def test_help_lists_every_key_with_its_default_type_and_description(capsys):
    from experiments import launch
    from expo import config_help

    for word in ("--help", "help"):
        launch.main([word])
        text = capsys.readouterr().out
        lines = {line.split()[0]: line for line in text.splitlines() if line.startswith("  ")}
        for key in [*launch.LAUNCHER_KEYS, *cluster.KEY_HELP, *config_lib.flatten(config_lib.RUN_DEFAULTS),
                    *(f"agent.{k}" for k in config_lib.agent_module("expo").get_config())]:
            assert key in lines, key
        assert lines["dry_run"].split()[1:3] == ["false", "bool"]
        assert lines["time_min"].split()[1:3] == ["1440", "int"]
        assert lines["steps"].split()[1:4] == ["none", "int", "online"]
        assert lines["agent.beta"].split()[1:5] == ["none", "any", "edit", "scale;"]
        assert "`make figures` draws the figures from results/" in text
    launch.main(["--help", "method=rlpd"])
    text = capsys.readouterr().out
    assert "Agent keys of method rlpd (baselines.rlpd.get_config())" in text and "agent.n_edit" not in text
    assert config_help.SHORT_RUN in text
    out = plain_launch("--help", "figure=4")  # as a program: exit status 0
    assert out.returncode == 0 and out.stdout.startswith("usage: python experiments/launch.py")


@pytest.mark.parametrize("arg, message", [
    ("seeds=abc", "error: seeds takes a whole number k >= 1 (runs seeds 0..k-1; one other seed alone: "
                  "python -m expo.train seed=<k>), got 'abc'; e.g. seeds=3"),
    ("seeds=0,2", "error: seeds takes a whole number k >= 1 (runs seeds 0..k-1; one other seed alone: "
                  "python -m expo.train seed=<k>), got '0,2'; e.g. seeds=3"),
    ("workers=abc", "error: workers takes a whole number k >= 1 (runs at once on this machine), got 'abc'; "
                    "e.g. workers=2"),
    ("dry_run=maybe", "error: dry_run must be true or false, got 'maybe' (write dry_run=true or dry_run=false)"),
    ("wait=maybe", "error: wait must be true or false, got 'maybe' (write wait=true or wait=false)"),
    ("progress=maybe", "error: progress must be true or false, got 'maybe' (write progress=true or "
                       "progress=false)"),
    ("figure=11", "error: unknown figure 'fig11'; valid figures: baselines, canary, cpu3, cpu4, cpu_mimicgen, demo, "
                  "fig1, fig3, fig4, fig5, fig6, fig7, fig8, fig9, fig10, quickstart (figure= names a grid of "
                  "runs to launch; `make figures` draws the figures from results/)"),
])
def test_a_bad_launcher_value_is_one_line_that_names_the_fix_and_writes_nothing(tmp_path, arg, message):
    args = ["figure=demo", arg] if not arg.startswith("figure=") else [arg]
    out = launch_from(tmp_path, *args, "results_dir=r")
    assert out.returncode != 0 and out.stderr.strip() == message, out.stderr
    assert out.stdout == "" and list(tmp_path.iterdir()) == []


def test_a_bad_run_value_of_expo_train_is_one_line_and_writes_nothing(tmp_path, capsys):
    from expo import train as train_module

    for arg in ("progress=maybe", "agent.otf_backup=1"):
        with pytest.raises(SystemExit) as info:
            train_module.main([arg, f"results_dir={tmp_path / 'r'}"])
        key, value = arg.split("=")
        assert str(info.value) == (f"error: {key} must be true or false, got {config_lib.parse_value(value)!r} "
                                   f"(write {key}=true or {key}=false)")
    assert list(tmp_path.iterdir()) == []
    train_module.main(["help", "method=dac"])  # help: no run, no error
    text = capsys.readouterr().out
    assert text.startswith("usage: python -m expo.train") and "agent.grad_clip_norm" in text


def test_the_dry_run_says_which_datasets_are_missing_and_how_to_fetch_them(tmp_path):
    from experiments import grids

    empty = {"EXPO_DATA_ROOT": str(tmp_path / "data")}
    out = plain_launch("figure=4", "dry_run=true", "seeds=1", f"results_dir={tmp_path / 'r'}", env_changes=empty)
    assert out.returncode == 0, out.stderr  # a preview: it still lists the runs
    runs = grids.expand(grids.load("fig4"), {"figure": "fig4", "seeds": 1}, {})
    data = [line for line in out.stdout.splitlines() if line.startswith("  data")]
    for task, name in dict.fromkeys((c["task"], c["dataset"]["name"]) for c in runs):
        assert any(line.startswith(f"  data {task}: {name} MISSING (") and
                   line.endswith(f"fetch it: python -m expo.data fetch {name}") for line in data), (task, data)
    assert data[-1].startswith(f"  data: 12 dataset(s) missing under the data root {tmp_path / 'data'}")
    assert out.stdout.count("[todo] ") == len(runs) and not (tmp_path / "r").exists()
    # an embedded task's data are generated by its first run: nothing to fetch
    out = plain_launch("figure=demo", "dry_run=true", f"results_dir={tmp_path / 'r'}", env_changes=empty)
    assert "  data lift: lift_scripted generated by its first run (embedded, no download)" in out.stdout
    assert "MISSING" not in out.stdout
