"""Where a run runs (expo/device.py): the GPU install pins, the device=gpu guard, the launcher's
device for runs given GPUs, the device and dataset fingerprint in status.json, and REPORT.md's
devices per results folder."""
import json
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest

from experiments import cluster
from expo import buffers, device, protocol
from tests.conftest import tiny_train_run

ROOT = Path(__file__).resolve().parents[1]
# tests/test_train.py's tiny run, imitation only (method bc: no online update to compile)
TINY = {
    "method": "bc", "scale": "mini", "pretrain_steps": 40, "pretrain_chunk": 20, "eval_episodes": 2,
    "log_interval": 8, "progress": False, "dataset.num_demos": 3, "agent.hidden_dims": (16, 16),
    "agent.diffusion_width": 16, "agent.time_dim": 8, "agent.T": 2, "agent.batch_size": 8,
}
CUDA_PACKAGES = ("jax", "jaxlib", "jax-cuda12-plugin", "jax-cuda12-pjrt")


def pinned(requirements: list[str], name: str) -> str | None:
    """The version `name==X` (or `name[extras]==X`) pins in `requirements`, else None."""
    for req in requirements:
        head, _, version = req.partition("==")
        if head.split("[")[0].strip().lower() == name:
            return version.strip()
    return None


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


# ---- the GPU install


def test_the_cuda12_extra_pins_the_plugin_to_the_pinned_jax():
    deps, extra = project()["dependencies"], project()["optional-dependencies"]["cuda12"]
    version = pinned(deps, "jax")
    assert version and pinned(deps, "jaxlib") == version
    for name in CUDA_PACKAGES:
        assert pinned(extra, name) in (None, version), name
    assert {pinned(extra, n) for n in ("jax", "jax-cuda12-plugin", "jax-cuda12-pjrt")} == {version}
    assert "jax[cuda12]" in "".join(extra).replace(" ", "")


def test_make_setup_installs_the_extras_it_is_given():
    def dry(*args):
        return subprocess.run(["make", "-n", "-B", "setup", *args], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout
    if shutil.which("make") is None:
        pytest.skip("no make on PATH")
    assert '-e ".[test]"' in dry() and "touch .venv/installed\n" in dry()
    gpu = dry("EXTRAS=cuda12")
    assert '-e ".[test,cuda12]"' in gpu and "touch .venv/installed-cuda12\n" in gpu


@pytest.mark.slow
def test_pips_resolver_puts_jax_jaxlib_and_the_cuda12_plugin_at_one_version(tmp_path):
    """pip's resolver (dry run: nothing installed) on the project with its cuda12 extra, from a copy
    of pyproject.toml (so the checkout's build files stay as they are). Needs the package index:
    20-35 s on the 2-core development machine."""
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, tmp_path / name)
    report = tmp_path / "report.json"
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
                          "--quiet", "--report", str(report), "-e", f"{tmp_path}[cuda12]"],
                         capture_output=True, text=True, timeout=900)
    if out.returncode and any(s in out.stderr for s in ("NewConnectionError", "Max retries exceeded",
                                                        "Temporary failure in name resolution")):
        pytest.skip(f"the package index cannot be reached: {out.stderr.strip().splitlines()[-1]}")
    assert out.returncode == 0, out.stderr
    resolved = {item["metadata"]["name"].lower(): item["metadata"]["version"]
                for item in json.loads(report.read_text())["install"]}
    version = pinned(project()["dependencies"], "jax")
    assert {name: resolved.get(name) for name in CUDA_PACKAGES} == dict.fromkeys(CUDA_PACKAGES, version)
    assert any(name.startswith("nvidia-") for name in resolved)  # the plugin's with-cuda wheels
    print(f"resolved {len(resolved)} packages in {time.monotonic() - start:.0f} s")


# ---- what a run records


def test_describe_names_backend_device_host_cpu_and_versions():
    import jax

    d = device.describe()
    assert d["backend"] == jax.default_backend() and d["device_count"] == len(jax.devices())
    assert d["device_kind"] and d["host"] and d["cpu"] and d["jax"] == jax.__version__
    assert d["jaxlib"] and json.loads(json.dumps(d)) == d


def test_the_fingerprint_is_of_the_content():
    a = {"observations": np.arange(6, dtype=np.float32).reshape(3, 2), "rewards": np.zeros(3, np.float32)}
    same = {k: a[k].copy() for k in reversed(list(a))}
    assert device.fingerprint(a) == device.fingerprint(same) and device.fingerprint(a).startswith("sha256:")
    changed = {**a, "rewards": np.array([0, 0, 1], np.float32)}
    reshaped = {**a, "observations": a["observations"].reshape(2, 3)}
    as_float64 = {**a, "rewards": a["rewards"].astype(np.float64)}
    assert len({device.fingerprint(x) for x in (a, changed, reshaped, as_float64)}) == 4


def test_a_run_asked_for_a_gpu_where_jax_sees_none_stops_with_one_line_before_any_work(tmp_path):
    if device.gpus():
        pytest.skip("JAX sees a GPU here")
    out = subprocess.run([sys.executable, "-m", "expo.train", "task=lift", "method=expo", "scale=mini",
                          "device=gpu", f"results_dir={tmp_path / 'results'}", "progress=false"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: device=gpu but JAX sees no GPU")
    assert 'pip install -e ".[cuda12]"' in lines[0] and "make setup EXTRAS=cuda12" in lines[0]
    assert not (tmp_path / "results").exists()


def test_a_launched_gpu_run_records_the_missing_gpu_as_its_failure(tmp_path):
    """Through the job entry point the guard is an ordinary failure: status.json and log.txt say it."""
    from expo import config as config_lib
    from experiments import executors

    if device.gpus():
        pytest.skip("JAX sees a GPU here")
    cfg = config_lib.build_config({"scale": "mini", "device": "gpu", "results_dir": str(tmp_path)})
    with pytest.raises(device.DeviceUnavailable):
        executors.TrainJob()([cfg], [str(tmp_path / "run")])
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["failed"] and "JAX sees no GPU" in executors.failure_summary(tmp_path / "run")


def test_a_bad_device_value_names_the_valid_ones():
    from expo import config as config_lib

    with pytest.raises(config_lib.ConfigError, match="device must be auto, cpu or gpu, got 'tpu'"):
        config_lib.build_config({"device": "tpu"})


@pytest.mark.usefixtures("tiny_world")
def test_status_json_records_the_device_and_the_datasets_fingerprint(tmp_path):
    from expo.data import load_task_dataset

    run_dir = tiny_train_run(tmp_path, {**TINY, "seed": 1})[0]
    status = json.loads((run_dir / "status.json").read_text())
    assert status["finished"] and status["device"]["backend"] == device.describe()["backend"]
    assert set(status["device"]) >= {"device_kind", "device_count", "host", "cpu", "jax", "jaxlib"}
    store = buffers.TransitionStore(load_task_dataset(protocol.get_task("lift"), 3, seed=1))
    assert status["dataset_sha256"] == device.fingerprint({f: store.data[f] for f in buffers.FIELDS})
    assert "device" not in json.loads((run_dir / "config.json").read_text()).get("environment", {})


# ---- the launcher


def test_runs_given_gpus_are_asked_for_a_gpu():
    with_gpu, without = cluster.ClusterSettings(gpus=1), cluster.ClusterSettings()
    assert cluster.run_device(with_gpu, "auto") == "gpu"
    assert cluster.run_device(with_gpu, "cpu") == "cpu"  # an explicit choice stays
    assert cluster.run_device(without, "auto") == "auto"
    assert cluster.run_device(cluster.ClusterSettings(cluster="slurm", gpus=2), "auto") == "gpu"


@pytest.mark.parametrize("keys, expected", [(["gpus=1"], "gpu"), ([], "auto"),
                                            (["gpus=1", "device=cpu"], "cpu")])
def test_a_launch_passes_the_device_to_its_runs(tmp_path, monkeypatch, keys, expected):
    from experiments import executors, launch

    monkeypatch.setenv("EXPO_CLUSTER_PROFILE", "")
    submitted = []

    class Submitted(Exception):
        pass

    def local_pool(groups, *args):
        submitted.extend(cfg for group in groups for cfg, _ in group)
        raise Submitted

    monkeypatch.setattr(executors, "LocalPool", local_pool)
    with pytest.raises(Submitted):
        launch.main(["figure=demo", "seeds=1", "methods=expo", f"results_dir={tmp_path}", *keys])
    assert [cfg["device"] for cfg in submitted] == [expected]


# ---- the report


def test_the_report_lists_each_folders_devices(tmp_path):
    from analysis import report
    from analysis.runs import load_runs

    gpu = {"backend": "gpu", "device_kind": "NVIDIA H100 80GB HBM3", "device_count": 1, "cpu": "x"}
    cpu = {"backend": "cpu", "device_kind": "cpu", "device_count": 1, "cpu": "AMD EPYC 7B13"}
    for folder, seed, where in (("figA", 0, gpu), ("figA", 1, gpu), ("figA", 2, None), ("figB", 0, cpu)):
        run_dir = tmp_path / folder / "lift" / "expo" / f"seed_{seed}"
        run_dir.mkdir(parents=True)
        (run_dir / "eval.csv").write_text("env_step,success\n0,0.5\n")
        status = {"finished": True, "env_steps": 0, **({"device": where} if where else {})}
        (run_dir / "status.json").write_text(json.dumps(status))
    data = load_runs(tmp_path).data
    assert list(data.sort_values(["figure", "seed"])["device"]) == [
        "gpu: NVIDIA H100 80GB HBM3", "gpu: NVIDIA H100 80GB HBM3", "", "cpu: AMD EPYC 7B13"]
    lines = report.devices_section(tmp_path)
    assert "| figA | gpu: NVIDIA H100 80GB HBM3 (2 runs); not recorded (1 run) |" in lines
    assert "| figB | cpu: AMD EPYC 7B13 (1 run) |" in lines
    assert report.devices_section(tmp_path) == lines  # the same text every time
