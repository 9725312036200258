"""The evaluation environments: W environments addressed by slot, stepped together, either in this
process (LocalEnvs) or spread over worker processes (ProcessEnvs) where the simulator is the cost
(robosuite steps ~170 times/s on one core here, against ~4,000 for MuJoCo's Adroit and AntMaze).

Both give the same observations for the same resets and actions: a slot's environment is built by
the same `make` call and reset with the same seed wherever it lives.
"""
from __future__ import annotations

import multiprocessing
from typing import Callable, Sequence

import numpy as np

# One step's outcome: (observation, reward, terminated, truncated, success)
Outcome = tuple[np.ndarray, float, bool, bool, bool]


def _step(env, action) -> Outcome:
    obs, reward, terminated, truncated, info = env.step(action)
    return obs, float(reward), bool(terminated), bool(truncated), bool(info.get("success", False))


class LocalEnvs:
    """Environments in this process."""

    def __init__(self, envs: Sequence):
        self.envs = list(envs)

    @classmethod
    def make(cls, make: Callable, count: int) -> "LocalEnvs":
        return cls([make() for _ in range(count)])

    def __len__(self) -> int:
        return len(self.envs)

    def reset(self, slot: int, seed: int) -> np.ndarray:
        return self.envs[slot].reset(seed=seed)[0]

    def step(self, slots: Sequence[int], actions: Sequence[np.ndarray]) -> list[Outcome]:
        return [_step(self.envs[s], a) for s, a in zip(slots, actions)]

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _worker(conn, make: Callable, count: int) -> None:
    """A worker process: `count` environments, commands until "close"."""
    envs = [make() for _ in range(count)]
    conn.send("ready")
    while True:
        command, payload = conn.recv()
        if command == "reset":
            slot, seed = payload
            conn.send(envs[slot].reset(seed=seed)[0])
        elif command == "step":
            conn.send([_step(envs[slot], action) for slot, action in payload])
        else:
            for env in envs:
                env.close()
            conn.send("closed")
            return


class ProcessEnvs:
    """`count` environments spread over `workers` processes (slot s lives in process s mod workers);
    step() sends every process its slots' actions first and then collects, so the processes step
    their environments at the same time. Processes are started with "spawn" (a fork of a process
    that runs jax's threads is unsafe) and are daemons, so they never outlive the run."""

    def __init__(self, make: Callable, count: int, workers: int):
        self.count = count
        self.workers = max(1, min(workers, count))
        context = multiprocessing.get_context("spawn")
        self.conns, self.procs = [], []
        for w in range(self.workers):
            parent, child = context.Pipe()
            slots = len(range(w, count, self.workers))
            proc = context.Process(target=_worker, args=(child, make, slots), daemon=True)
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)
        for conn in self.conns:
            if conn.recv() != "ready":
                raise RuntimeError("an evaluation environment process failed to start")

    def __len__(self) -> int:
        return self.count

    def _where(self, slot: int) -> tuple[int, int]:
        return slot % self.workers, slot // self.workers

    def reset(self, slot: int, seed: int) -> np.ndarray:
        worker, local = self._where(slot)
        self.conns[worker].send(("reset", (local, seed)))
        return self.conns[worker].recv()

    def step(self, slots: Sequence[int], actions: Sequence[np.ndarray]) -> list[Outcome]:
        parts: dict[int, list] = {}
        for slot, action in zip(slots, actions):
            worker, local = self._where(slot)
            parts.setdefault(worker, []).append((local, np.asarray(action)))
        for worker, payload in parts.items():
            self.conns[worker].send(("step", payload))
        results = {worker: iter(self.conns[worker].recv()) for worker in parts}
        return [next(results[self._where(slot)[0]]) for slot in slots]

    def close(self) -> None:
        for conn in self.conns:
            try:
                conn.send(("close", None))
                conn.recv()
            except (BrokenPipeError, EOFError):
                pass
        for proc in self.procs:
            proc.join(timeout=10)


def make_eval_envs(make: Callable, count: int, workers: int):
    """LocalEnvs for workers <= 1, else ProcessEnvs."""
    return LocalEnvs.make(make, count) if workers <= 1 else ProcessEnvs(make, count, workers)
