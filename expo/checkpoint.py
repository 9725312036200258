"""Exact checkpoint and resume of a training run (pre-empted or timed-out jobs, restarts).

A checkpoint holds everything the rest of a run depends on, so that a killed run, started again,
writes the same CSV rows as an uninterrupted run with the same seed:
- the agent pytree: every leaf (parameters, EMA and target copies, optimizer states, its PRNG key),
  saved with orbax and restored into the structure of a freshly created agent;
- the online replay buffer: its filled rows of every field (per-method extra fields included) and
  its write position;
- the states of the loop's numpy Generators (minibatch sampler, random actions);
- the loop position (LoopState) and the logger position (rows and column order of each CSV);
- the run config, checked on resume: a run with other settings cannot continue these files.
Everything else is rebuilt deterministically from the config: the offline dataset, the envs, and
the jax keys of acting and evaluation (fold_in of the step).

Checkpoints are taken between jitted pretraining chunks, at the start of the online phase, and
after any online step. The simulator's state is not saved: a resumed run resets the env with the
unfinished episode's seed and replays that episode's actions from the online buffer (mujoco is
deterministic), checking that every observation comes back bit for bit (expo/train.py).

Layout: run_dir/checkpoint/ is an orbax CheckpointManager directory that keeps the newest `keep`
checkpoints (1 for a run alone). orbax writes each checkpoint into a temporary directory, renames it
when complete, and only then deletes the oldest, so a kill at any moment leaves complete checkpoints
or none. Seeds trained in one process (expo/seed_group.py) save one after the other and keep 2: a
kill between two seeds' saves leaves the previous checkpoint of the group complete in every seed,
and the group resumes from the newest one all its seeds have.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from expo.config import flatten

CHECKPOINT_DIR = "checkpoint"
# Config keys that do not change what a run computes: a resume may change them.
OPERATIONAL_KEYS = ("progress", "results_dir", "checkpoint_interval_s", "eval_envs",
                    "eval_workers", "retry_diverged", "device")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be resumed: the message is one line naming the path and the fix."""


@dataclasses.dataclass
class LoopState:
    """Where the training loop is; JSON-ready."""
    phase: str = "pretrain"        # "pretrain" until eval 0 and the warm start are done, then "online"
    pretrain_steps_done: int = 0
    online_step: int = 0           # online env steps done
    episode: int = 0               # training episodes finished: the current one is episode_seed(.., episode)
    episode_steps: int = 0         # steps of that episode so far: its last rows of the online buffer
    ep_returns: list[float] = dataclasses.field(default_factory=list)
    last_eval: dict[str, Any] | None = None
    wall_time_s: float = 0.0       # wall time of the work the checkpoint keeps
    resumes: int = 0               # how often the run was resumed


def comparable_config(cfg: dict) -> dict:
    """The config as JSON data, without the keys that do not change results."""
    data = json.loads(json.dumps(cfg, default=list))
    for key in OPERATIONAL_KEYS:
        data.pop(key, None)
    return data


def config_without_seed(cfg: dict) -> dict:
    """comparable_config without the run seed (and the data seed it defaults to): equal for the runs
    that one process may train together (expo/seed_group.py)."""
    data = comparable_config(cfg)
    data.pop("seed")
    data["dataset"] = {k: v for k, v in data["dataset"].items() if k != "seed"}
    return data


class RunCheckpointer:
    """Saves and restores one run's checkpoint under run_dir/checkpoint/."""

    def __init__(self, run_dir: Path, cfg: dict, keep: int = 1):
        self.directory = Path(run_dir).resolve() / CHECKPOINT_DIR
        self.keep = keep
        self.interval_s = float(cfg["checkpoint_interval_s"])
        self.config = comparable_config(cfg)
        self._last_save = time.monotonic()

    def _manager(self):
        """An orbax CheckpointManager for one operation (used as a context manager, so that its
        threads are closed whatever happens next, a failed run included)."""
        import orbax.checkpoint as ocp

        # Synchronous saves: a checkpoint is complete on disk before the loop moves on.
        # cleanup_tmp_directories: drop what a save cut short by a kill left behind.
        options = ocp.CheckpointManagerOptions(max_to_keep=self.keep, create=True,
                                               enable_async_checkpointing=False,
                                               cleanup_tmp_directories=True)
        return ocp.CheckpointManager(self.directory, options=options)

    def unreadable(self, error: Exception) -> CheckpointError:
        detail = " ".join(f"{type(error).__name__}: {error}".split())[:300]
        return CheckpointError(f"checkpoint {self.directory} cannot be resumed ({detail}); delete "
                               f"{self.directory} to restart the run from the beginning")

    def steps(self) -> list[int]:
        """The numbers of the complete checkpoints there (orbax lists only finished ones)."""
        if not self.directory.is_dir():
            return []
        try:
            with self._manager() as manager:
                return sorted(manager.all_steps())
        except Exception as e:  # noqa: BLE001 - whatever orbax raises, the message names the fix
            raise self.unreadable(e) from e

    def complete(self) -> bool:
        """Whether a complete checkpoint is there."""
        return bool(self.steps())

    def due(self) -> bool:
        return time.monotonic() - self._last_save >= self.interval_s

    def save(self, agent, loop: LoopState, online, rngs: dict[str, np.random.Generator],
             logger_position: dict) -> None:
        import orbax.checkpoint as ocp

        rows, position = online.contents()
        state = {"loop": dataclasses.asdict(loop), "buffer": position, "logger": logger_position,
                 "rngs": {name: rng.bit_generator.state for name, rng in rngs.items()},
                 "config": self.config}
        items = {"agent": ocp.args.StandardSave(agent), "state": ocp.args.JsonSave(state)}
        if position["size"]:  # orbax cannot store zero-size arrays; an empty buffer needs none
            items["replay_buffer"] = ocp.args.StandardSave(rows)
        with self._manager() as manager:
            step = manager.latest_step()
            manager.save(0 if step is None else step + 1, args=ocp.args.Composite(**items))
            manager.wait_until_finished()
        self._last_save = time.monotonic()

    def restore(self, agent_template, online, rngs: dict[str, np.random.Generator],
                step: int | None = None):
        """(agent, LoopState, logger position) of checkpoint `step` (default: the latest); fills
        `online` and sets the Generators in `rngs`. agent_template is a freshly created agent of the
        run's config. Newer checkpoints are deleted: the run continues from this one."""
        import orbax.checkpoint as ocp

        with self._manager() as manager:
            try:
                step = manager.latest_step() if step is None else step
                state = manager.restore(step, args=ocp.args.Composite(state=ocp.args.JsonRestore()))
                state = state["state"]
                now, then = flatten(self.config), flatten(state["config"])
                changed = sorted(k for k in set(now) | set(then) if now.get(k) != then.get(k))
            except Exception as e:  # noqa: BLE001 - whatever orbax raises, the message names the fix
                raise self.unreadable(e) from e
            if changed:
                raise CheckpointError(
                    f"checkpoint {self.directory} belongs to a run with other settings (changed: "
                    f"{', '.join(changed[:8])}); run with the same settings, or delete "
                    f"{self.directory} to restart the run from the beginning")
            try:
                size = int(state["buffer"]["size"])
                items = {"agent": ocp.args.StandardRestore(agent_template)}
                if size:
                    template = {f: np.empty((size,) + online.data[f].shape[1:], np.float32)
                                for f in online.fields}
                    items["replay_buffer"] = ocp.args.StandardRestore(template)
                restored = manager.restore(step, args=ocp.args.Composite(**items))
                rows = restored["replay_buffer"] if size else {f: online.data[f][:0] for f in online.fields}
                online.restore(rows, size, int(state["buffer"]["next"]))
                for name, rng in rngs.items():
                    rng.bit_generator.state = state["rngs"][name]
                loop = LoopState(**state["loop"])
                for newer in [n for n in manager.all_steps() if n > step]:
                    manager.delete(newer)
            except Exception as e:  # noqa: BLE001
                raise self.unreadable(e) from e
        self._last_save = time.monotonic()
        return restored["agent"], loop, state["logger"]

    def discard(self) -> None:
        """Delete the checkpoint (a finished run, or the leftovers of a first save that never
        completed)."""
        shutil.rmtree(self.directory, ignore_errors=True)
