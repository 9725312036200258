"""Benchmark: EXPO's jitted per-environment-step update at the paper's and the mini sizes.

    python -m expo.bench [--repeats 5] [--only paper|mini]
    python -m expo.bench --envs [--env-steps 1000] [--tasks lift,can]

Prints, per scale, the time to the first finished update (compilation included), the steady time
per update call (= per environment step: one call does the utd critic steps, one base-policy and
one edit-policy update) and env-steps/s of learning; one acting call (the OTF policy for one
state); and this machine's fp32 matmul GFLOP/s for context. With --envs: every task's simulator
speed (uniform random actions in one env, resets included), and its construction time.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from expo.agents import expo
from expo.config import build_config
from expo.protocol import get_task

_LIFT = get_task("lift")
OBS_DIM, ACT_DIM = _LIFT.obs_dim, _LIFT.act_dim  # sizes of the embedded task


def random_batch(rng, utd, batch):
    return {
        "observations": rng.normal(size=(utd, batch, OBS_DIM)).astype(np.float32),
        "actions": rng.uniform(-1, 1, (utd, batch, ACT_DIM)).astype(np.float32),
        "rewards": rng.integers(0, 2, (utd, batch)).astype(np.float32),
        "next_observations": rng.normal(size=(utd, batch, OBS_DIM)).astype(np.float32),
        "masks": np.ones((utd, batch), np.float32),
    }


def bench_scale(scale: str, repeats: int) -> dict:
    cfg = build_config({"scale": scale, "task": "lift"})["agent"]
    agent = expo.create(0, OBS_DIM, ACT_DIM, cfg)
    # A fresh batch per call, as in training (repeating one batch drives the values to extremes).
    rng = np.random.default_rng(0)
    batches = [random_batch(rng, cfg["utd"], cfg["batch_size"]) for _ in range(repeats + 1)]
    t0 = time.perf_counter()
    agent, _ = expo.update(agent, batches[0])
    jax.block_until_ready(agent)
    first = time.perf_counter() - t0
    times = []
    for batch in batches[1:]:
        t0 = time.perf_counter()
        agent, info = expo.update(agent, batch)
        jax.block_until_ready(info)
        times.append(time.perf_counter() - t0)
    obs = jnp.zeros((1, OBS_DIM))
    jax.block_until_ready(expo.sample_actions(agent, obs, jax.random.PRNGKey(0)))
    act_times = []
    for i in range(50):
        t0 = time.perf_counter()
        np.asarray(expo.sample_actions(agent, obs, jax.random.PRNGKey(i)))
        act_times.append(time.perf_counter() - t0)
    step = float(np.median(times))
    return {"scale": scale, "utd": cfg["utd"], "batch": cfg["batch_size"], "N": cfg["N"],
            "T": cfg["T"], "width": cfg["hidden_dims"][0], "first_update_s": first,
            "update_s": step, "update_min_s": min(times), "env_steps_per_s": 1.0 / step,
            "act_ms": 1000 * float(np.median(act_times))}


def bench_env(task: str, steps: int) -> dict:
    """Env steps/s of one environment under uniform random actions (resets included)."""
    from expo.envs import make_env

    spec = get_task(task)
    t0 = time.perf_counter()
    env = make_env(spec, seed=0)
    make_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    episodes = 0
    t0 = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, spec.act_dim).astype(np.float32))
        if terminated or truncated:
            episodes += 1
            env.reset(seed=episodes)
    seconds = time.perf_counter() - t0
    env.close()
    return {"task": task, "backend": spec.env_backend, "obs": spec.obs_dim, "act": spec.act_dim,
            "make_s": make_s, "steps_per_s": steps / seconds}


def bench_envs(tasks: list[str], steps: int) -> None:
    print(f"{'task':28} {'obs':>4} {'act':>4} {'make s':>7} {'steps/s':>8}  backend")
    for task in tasks:
        try:
            r = bench_env(task, steps)
        except ImportError as e:  # an optional simulator (MimicGen) that is not installed
            print(f"{task:28} unavailable: {' '.join(str(e).split())[:100]}", flush=True)
            continue
        print(f"{r['task']:28} {r['obs']:>4} {r['act']:>4} {r['make_s']:>7.2f} {r['steps_per_s']:>8.0f}  "
              f"{r['backend']}", flush=True)


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    t0 = time.perf_counter()
    for _ in range(repeats):
        f(a).block_until_ready()
    return 2 * n**3 * repeats / (time.perf_counter() - t0) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", choices=["paper", "mini"])
    parser.add_argument("--envs", action="store_true", help="simulator speed of every task instead")
    parser.add_argument("--env-steps", type=int, default=1000)
    parser.add_argument("--tasks", help="comma-separated tasks for --envs (default: all)")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"jax {jax.__version__} on {jax.devices()[0].platform}")
    if args.envs:
        from expo.protocol import TASKS

        bench_envs(args.tasks.split(",") if args.tasks else list(TASKS), args.env_steps)
        return
    print(f"matmul 2048^3 fp32: {matmul_gflops():.0f} GFLOP/s")
    print(f"{'scale':6} {'utd':>4} {'batch':>5} {'N':>3} {'T':>3} {'width':>5} "
          f"{'first update s':>14} {'update s/env-step':>17} {'env-steps/s':>11} {'act ms':>7}")
    for scale in [args.only] if args.only else ["mini", "paper"]:
        r = bench_scale(scale, args.repeats)
        print(f"{r['scale']:6} {r['utd']:>4} {r['batch']:>5} {r['N']:>3} {r['T']:>3} {r['width']:>5} "
              f"{r['first_update_s']:>14.1f} {r['update_s']:>17.4f} {r['env_steps_per_s']:>11.2f} "
              f"{r['act_ms']:>7.2f}", flush=True)


if __name__ == "__main__":
    main()
