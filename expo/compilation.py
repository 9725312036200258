"""XLA compilation: jax's persistent compilation cache under the data root, and a counter of the
compilations a piece of code triggers.

A figure's grid starts hundreds of runs of the same few programs (one update and one acting
function per method and size), and at paper size compiling the EXPO update takes ~13 s on a CPU.
With the persistent cache the first run of a configuration compiles and every later run start on
the same machine type loads the executable from disk instead.

    $EXPO_COMPILATION_CACHE   unset: <data root>/jax-compilation-cache ($EXPO_DATA_ROOT or
                              ~/.cache/expo-suite); a path: that folder; off: no persistent cache.

Only programs that took at least MIN_COMPILE_S to compile are written (the tiny eager operations
are not worth a file each). The cache does not change what is computed: jax keys it by the program,
the compiler options and the jax/XLA versions, so a changed program or version compiles afresh.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path

import jax
from jax import monitoring

from expo.data.paths import data_root

MIN_COMPILE_S = 0.5
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"  # every compile, cache hit or not
CACHE_HIT_EVENT = "/jax/compilation_cache/cache_hits"
_OFF = {"0", "off", "false", "no", "none"}


def cache_dir() -> Path | None:
    """The persistent cache folder from $EXPO_COMPILATION_CACHE (None: switched off)."""
    value = os.environ.get("EXPO_COMPILATION_CACHE", "").strip()
    if value.lower() in _OFF:
        return None
    return Path(value).expanduser() if value else data_root() / "jax-compilation-cache"


def enable_persistent_cache() -> Path | None:
    """Point jax's persistent compilation cache at cache_dir(). jax decides whether to use the
    cache at its first compilation in the process, so call this before anything is compiled (the
    training entry points do). Returns the folder, or None when switched off.

    Nothing is created here: jax makes the folder itself at the process's first compilation (its
    LRUCache, jax 0.10), which in a run comes after the dataset is loaded and checked. So a run that
    stops on a bad dataset leaves nothing behind, not even an empty cache folder."""
    path = cache_dir()
    if path is None:
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_S)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path


@dataclasses.dataclass
class Compilations:
    """What was compiled while a `counting()` block ran: one (function name, seconds) per XLA
    compilation (loaded from the persistent cache or not), and how many came from the cache."""
    compiled: list[tuple[str, float]] = dataclasses.field(default_factory=list)
    cache_hits: int = 0

    @property
    def count(self) -> int:
        return len(self.compiled)

    @property
    def seconds(self) -> float:
        return sum(s for _, s in self.compiled)

    def of(self, function: str) -> int:
        """Compilations of the jitted function of that name (e.g. "update")."""
        return sum(name == f"jit({function})" for name, _ in self.compiled)

    def summary(self) -> dict:
        return {"total": self.count, "update": self.of("update"), "from_cache": self.cache_hits,
                "seconds": round(self.seconds, 1)}


_active: list[Compilations] = []
_listening = False


def _on_duration(event: str, seconds: float, **kwargs) -> None:
    if event == COMPILE_EVENT:
        for record in _active:
            record.compiled.append((str(kwargs.get("fun_name", "?")), float(seconds)))


def _on_event(event: str, **kwargs) -> None:
    if event == CACHE_HIT_EVENT:
        for record in _active:
            record.cache_hits += 1


@contextlib.contextmanager
def counting():
    """with counting() as c: ...; then c.count, c.of("update"), c.cache_hits."""
    global _listening
    if not _listening:  # jax keeps listeners for the process: register ours once
        monitoring.register_event_duration_secs_listener(_on_duration)
        monitoring.register_event_listener(_on_event)
        _listening = True
    record = Compilations()
    _active.append(record)
    try:
        yield record
    finally:
        _active.remove(record)
