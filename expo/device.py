"""Where a run runs, and what data it trains on: recorded in each run's status.json.

- `describe()`: the JAX backend, the kind and count of its devices, the host, the CPU model and the
  jax/jaxlib versions (and jax's CUDA plugin, when installed);
- `fingerprint(arrays)`: sha256 over the named arrays (name, dtype, shape and bytes of each), so two
  runs can be told to have trained on the same offline transitions whatever machine loaded them;
- `require(device)`: the run key `device` (expo/config.py). "gpu": a run that was given GPUs stops
  before any work, with one line naming the GPU install, when JAX sees none (the CPU wheel of jaxlib
  alone runs everything on the CPU, silently, hundreds of times slower at paper scale); "cpu": the
  run uses the CPU even where JAX sees a GPU; "auto": JAX's default device.
"""
from __future__ import annotations

import hashlib
import os
import platform
import socket
from importlib import metadata
from typing import Any, Mapping

import numpy as np

DEVICES = ("auto", "cpu", "gpu")
GPU_INSTALL = 'pip install -e ".[cuda12]" (or: make setup EXTRAS=cuda12)'
CUDA_PLUGINS = ("jax-cuda12-plugin", "jax-cuda13-plugin")


class DeviceUnavailable(RuntimeError):
    """The device a run asked for is not there: one line naming the fix (`python -m expo.train`
    prints it as its error; a launched job records it as the run's failure)."""


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _devices() -> list:
    """The devices a run's computations use: the default device when one is set (device=cpu on a GPU
    machine), else the default backend's."""
    import jax

    default = jax.config.jax_default_device
    if isinstance(default, str):
        return jax.devices(default)[:1]
    return [default] if default is not None else jax.devices()


def describe() -> dict[str, Any]:
    """This process's device, host and jax versions (JSON-ready)."""
    import jax
    import jaxlib

    devices = _devices()
    plugins = {}
    for name in CUDA_PLUGINS:
        try:
            plugins[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return {"backend": devices[0].platform, "device_kind": devices[0].device_kind,
            "device_count": len(devices), "host": socket.gethostname(), "cpu": cpu_model(),
            "cpu_count": os.cpu_count(), "jax": jax.__version__, "jaxlib": jaxlib.__version__,
            **({"plugins": plugins} if plugins else {})}


def fingerprint(arrays: Mapping[str, np.ndarray]) -> str:
    """"sha256:<hex>" of the arrays in name order: each one's name, dtype, shape and C-order bytes."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{a.dtype.str}:{a.shape};".encode())
        digest.update(a.data if a.size else b"")
    return f"sha256:{digest.hexdigest()}"


def gpus() -> list:
    """The GPUs JAX sees (none without jax's CUDA plugin, a driver or a visible device)."""
    import jax

    try:
        return jax.devices("gpu")
    except RuntimeError:  # no GPU platform at all
        return []


def require(device: str) -> None:
    """Check the run key `device` before any work (see the module docstring); raises
    DeviceUnavailable with one line when device=gpu and JAX sees no GPU."""
    import jax

    if device == "gpu" and not gpus():
        import jaxlib

        raise DeviceUnavailable(
            f"device=gpu but JAX sees no GPU (backend {jax.default_backend()}, jax "
            f"{jax.__version__}, jaxlib {jaxlib.__version__}, host {socket.gethostname()}); install "
            f"jax's CUDA plugin with {GPU_INSTALL}, check that nvidia-smi lists a GPU on this node, "
            f"or run with device=auto")
    if device == "cpu" and jax.default_backend() != "cpu":
        jax.config.update("jax_default_device", jax.devices("cpu")[0])
