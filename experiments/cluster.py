"""Where and with what resources a grid runs: the cluster keys, from a per-user profile and key=value.

Precedence, later winning: the defaults below < the profile file < key=value on the command line.
The profile is a TOML file of the same keys (see experiments/cluster_profile.example.toml), read from
$EXPO_CLUSTER_PROFILE if set (set it empty for none), else ~/.config/expo-suite/cluster.toml
($XDG_CONFIG_HOME is honoured) when that file exists.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

PROFILE_ENV = "EXPO_CLUSTER_PROFILE"

CLUSTERS = ("local", "slurm")


@dataclasses.dataclass(frozen=True)
class ClusterSettings:
    cluster: str = "local"
    partition: str | None = None
    gpus: int = 0
    cpus: int = 1
    mem_gb: float | None = None
    time_min: int = 24 * 60
    array_parallelism: int = 256
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    setup: tuple[str, ...] = ()
    max_timeouts: int = 20


KEY_HELP: dict[str, str] = {
    "cluster": "local (this machine) or slurm (one job array per grid through submitit)",
    "partition": "SLURM partition",
    "gpus": "GPUs per run (SLURM gpus per node)",
    "cpus": "CPU cores per run (SLURM cpus per task)",
    "mem_gb": "memory per run in GB (SLURM --mem)",
    "time_min": "time limit per job in minutes; a run that reaches it checkpoints and is requeued",
    "array_parallelism": "most runs of a grid's job array running at once",
    "account": "SLURM account",
    "qos": "SLURM quality of service",
    "constraint": "SLURM node constraint (features)",
    "setup": "shell lines run before each job, e.g. module loads (profile: a list; key=value: one line)",
    "max_timeouts": "how many times one run may hit the time limit and be requeued",
}

_FIELDS = {f.name: f for f in dataclasses.fields(ClusterSettings)}
assert set(_FIELDS) == set(KEY_HELP)


class ClusterError(ValueError):
    """A bad cluster setting: the message is one line that names the fix."""


def profile_path() -> Path | None:
    """The profile file to read, or None when there is none."""
    if PROFILE_ENV in os.environ:
        value = os.environ[PROFILE_ENV].strip()
        if not value:
            return None
        path = Path(value).expanduser()
        if not path.is_file():
            raise ClusterError(f"{PROFILE_ENV}={value}: no such file; point it at a cluster profile "
                               f"(see experiments/cluster_profile.example.toml) or set it empty")
        return path
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    path = config_home / "expo-suite" / "cluster.toml"
    return path if path.is_file() else None


def _coerce(key: str, value: Any, where: str) -> Any:
    default = getattr(ClusterSettings, key)
    if key == "setup":
        if isinstance(value, str):
            return (value,) if value else ()
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ClusterError(f"{where}: setup must be a list of shell lines, got {value!r}")
    if key in ("partition", "account", "qos", "constraint"):
        if value is None or value == "":
            return None
        return str(value)
    if key == "cluster":
        if value not in CLUSTERS:
            raise ClusterError(f"{where}: cluster must be one of {', '.join(CLUSTERS)}, got {value!r}")
        return value
    if key == "mem_gb":
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ClusterError(f"{where}: mem_gb must be a positive number, got {value!r}")
        return float(value)
    assert isinstance(default, int)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if key == "gpus" else 1):
        bound = ">= 0" if key == "gpus" else ">= 1"
        raise ClusterError(f"{where}: {key} must be an integer {bound}, got {value!r}")
    return value


def _apply(values: dict[str, Any], where: str) -> dict[str, Any]:
    unknown = sorted(set(values) - set(_FIELDS))
    if unknown:
        raise ClusterError(f"{where}: unknown cluster key {unknown[0]!r}; valid keys: "
                           f"{', '.join(_FIELDS)}")
    return {k: _coerce(k, v, where) for k, v in values.items()}


def read_profile(path: Path) -> dict[str, Any]:
    import tomllib  # Python 3.11+

    try:
        with open(path, "rb") as f:
            values = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ClusterError(f"cluster profile {path}: not valid TOML ({e})") from None
    return _apply(values, f"cluster profile {path}")


def resolve(overrides: dict[str, Any]) -> ClusterSettings:
    """The settings for this launch: defaults, then the profile, then key=value overrides."""
    values: dict[str, Any] = {}
    path = profile_path()
    if path is not None:
        values.update(read_profile(path))
    values.update(_apply(overrides, "command line"))
    return ClusterSettings(**values)


def run_device(settings: ClusterSettings, device: str) -> str:
    """The run key `device` (expo/config.py) of a run launched with these settings: a run given GPUs
    (gpus >= 1, local or SLURM) gets device=gpu, so that on its node it stops with one line naming the
    GPU install when JAX sees no GPU, instead of training on the CPU; an explicit cpu or gpu stays."""
    return "gpu" if settings.gpus >= 1 and device == "auto" else device


def slurm_parameters(settings: ClusterSettings, job_name: str) -> dict[str, Any]:
    """submitit.AutoExecutor parameters for one grid's job array."""
    params: dict[str, Any] = {
        "name": job_name,
        "timeout_min": settings.time_min,
        "cpus_per_task": settings.cpus,
        "tasks_per_node": 1,
        "nodes": 1,
        "slurm_array_parallelism": settings.array_parallelism,
    }
    if settings.gpus:
        params["gpus_per_node"] = settings.gpus
    if settings.mem_gb is not None:
        params["mem_gb"] = settings.mem_gb
    for key in ("partition", "account", "qos", "constraint"):
        if getattr(settings, key) is not None:
            params[f"slurm_{key}"] = getattr(settings, key)
    if settings.setup:
        params["slurm_setup"] = list(settings.setup)
    return params
