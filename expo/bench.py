"""Benchmark: what a run pays for, at the paper's and the mini sizes.

    python -m expo.bench [--methods expo,rlpd] [--only paper|mini] [--repeats 5]
    python -m expo.bench --eval [--eval-tasks lift,pen-binary-v0] [--eval-episodes 100] [--eval-scale mini]
    python -m expo.bench --seeds 1,2,3 [--methods expo,rlpd] [--only paper|mini]
    python -m expo.bench --envs [--env-steps 1000] [--tasks lift,can]

Default: per method and scale, the time from building the agent to the end of its first update
(compilation included; "cache" says whether the compiled update came from the persistent
compilation cache, expo/compilation.py), the number of compilations over all update calls (1 is
right), the steady time per update call (= per environment step: EXPO's call does the utd critic
steps, one base-policy and one edit-policy update), env-steps/s of learning, one acting call, and
what the divergence checks (expo/divergence.py) add per environment step, as a share of the update:
the action check of every step plus the parameter check of every train.csv row (log_interval steps).
The update call itself carries no check.

--eval: an E-episode evaluation of the untrained EXPO policy (--eval-scale; untrained, so every
episode runs to the horizon) per task, run as training runs it (expo/evaluate.py: W environments
side by side, one batched policy call per step): wall time, the parts spent in policy calls and in
the simulator, and the policy part the same episodes would take step at a time (one call per
environment step at the policy's time per call in a one-environment evaluation of a few episodes).

--seeds 1,2,3: for each k, the update of k seeds as one vmapped call (seeds_per_process=k): seconds
per call and seed-env-steps per second, against k = 1 (the ordinary update, unvmapped).

--envs: every task's simulator speed (uniform random actions in one env, resets included).
"""
from __future__ import annotations

import argparse
import functools
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from expo import compilation
from expo.config import agent_module, build_agent, build_config
from expo.protocol import get_task

_LIFT = get_task("lift")
OBS_DIM, ACT_DIM = _LIFT.obs_dim, _LIFT.act_dim  # sizes of the embedded task


def random_batch(rng, utd, batch, extra=()):
    """A training-loop batch [utd, B, ...] of random transitions (plus the method's extra fields)."""
    out = {
        "observations": rng.normal(size=(utd, batch, OBS_DIM)).astype(np.float32),
        "actions": rng.uniform(-1, 1, (utd, batch, ACT_DIM)).astype(np.float32),
        "rewards": rng.integers(0, 2, (utd, batch)).astype(np.float32),
        "next_observations": rng.normal(size=(utd, batch, OBS_DIM)).astype(np.float32),
        "masks": np.ones((utd, batch), np.float32),
    }
    out.update({name: rng.normal(size=(utd, batch)).astype(np.float32) for name in extra})
    return out


def divergence_check_seconds(agent, act_dim: int, log_interval: int) -> float:
    """Seconds per environment step of the training loop's divergence checks: the action check of
    every step, and the parameter check of every train.csv row spread over its log_interval steps."""
    from expo.divergence import check_actions, first_non_finite_parameters

    first_non_finite_parameters(agent, 1)  # compiled before the clock
    params = []
    for _ in range(20):
        t0 = time.perf_counter()
        first_non_finite_parameters(agent, 1)
        params.append(time.perf_counter() - t0)
    action = np.zeros(act_dim, np.float32)
    t0 = time.perf_counter()
    for _ in range(1000):
        check_actions(action, "action")
    per_action = (time.perf_counter() - t0) / 1000
    return per_action + float(np.median(params)) / log_interval


def bench_update(method: str, scale: str, repeats: int) -> dict:
    run_cfg = build_config({"method": method, "scale": scale, "task": "lift"})
    cfg = run_cfg["agent"]
    module = agent_module(method)
    # A fresh batch per call, as in training (repeating one batch drives the values to extremes).
    rng = np.random.default_rng(0)
    extra = tuple(getattr(module, "EXTRA_FIELDS", {}))
    batches = [random_batch(rng, cfg["utd"], cfg["batch_size"], extra) for _ in range(repeats + 1)]
    with compilation.counting() as compiles:
        t0 = time.perf_counter()
        agent = build_agent(module, 0, OBS_DIM, ACT_DIM, cfg)  # as expo/train.py builds it
        agent, info = module.update(agent, batches[0])
        jax.block_until_ready(info)
        first = time.perf_counter() - t0
        times = []
        for batch in batches[1:]:
            t0 = time.perf_counter()
            agent, info = module.update(agent, batch)
            jax.block_until_ready(info)
            times.append(time.perf_counter() - t0)
    obs = jnp.zeros((1, OBS_DIM))
    jax.block_until_ready(module.sample_actions(agent, obs, jax.random.PRNGKey(0)))
    act_times = []
    for i in range(50):
        t0 = time.perf_counter()
        np.asarray(module.sample_actions(agent, obs, jax.random.PRNGKey(i)))
        act_times.append(time.perf_counter() - t0)
    step = float(np.median(times))
    checks = divergence_check_seconds(agent, ACT_DIM, run_cfg["log_interval"])
    return {"method": method, "scale": scale, "utd": cfg["utd"], "batch": cfg["batch_size"],
            "width": cfg["hidden_dims"][0], "first_update_s": first,
            "update_compilations": compiles.of("update"), "cache_hits": compiles.cache_hits,
            "update_s": step, "update_min_s": min(times), "env_steps_per_s": 1.0 / step,
            "act_ms": 1000 * float(np.median(act_times)), "checks_pct": 100 * checks / step}


def bench_seed_group(method: str, scale: str, k: int, repeats: int) -> dict:
    """Throughput of k seeds' updates as one vmapped call (seeds_per_process=k, expo/seed_group.py):
    seconds per call (one env step of every seed) and seed-env-steps per second."""
    from expo.seed_group import SeedGroup

    cfg = build_config({"method": method, "scale": scale, "task": "lift"})["agent"]
    module = agent_module(method)
    group = SeedGroup(module, k)
    rng = np.random.default_rng(0)
    extra = tuple(getattr(module, "EXTRA_FIELDS", {}))
    agent = group.stack([build_agent(module, seed, OBS_DIM, ACT_DIM, cfg) for seed in range(k)])
    times = []
    for i in range(repeats + 1):
        batches = [random_batch(rng, cfg["utd"], cfg["batch_size"], extra) for _ in range(k)]
        t0 = time.perf_counter()
        agent, info = group.update(agent, batches)
        jax.block_until_ready(info)
        if i:  # the first call compiles
            times.append(time.perf_counter() - t0)
    step = float(np.median(times))
    return {"method": method, "scale": scale, "k": k, "update_s": step, "seed_steps_per_s": k / step}


def bench_eval(task: str, episodes: int, width: int, scale: str = "paper",
               workers: int = 0, sequential_episodes: int = 3) -> dict:
    """One E-episode evaluation as the training loop runs it, with the untrained EXPO policy of
    that scale, timed by part; and the step-at-a-time policy cost, from the same evaluation run in
    one environment (W = 1) for a few episodes: the policy's time per call there, with the
    simulator stepping between calls as it does in a real sequential evaluation."""
    from expo.env_pool import make_eval_envs
    from expo.envs import make_env
    from expo.evaluate import as_numpy_policy, evaluate, per_row_policy

    spec = get_task(task)
    module = agent_module("expo")
    cfg = build_config({"method": "expo", "scale": scale, "task": task})["agent"]
    agent = build_agent(module, 0, spec.obs_dim, spec.act_dim, cfg)
    policy = as_numpy_policy(per_row_policy(module.sample_actions), agent)

    def timed_evaluation(envs, num_episodes):
        policy(np.zeros((len(envs), spec.obs_dim), np.float32),  # compiled before the clock
               jax.random.split(jax.random.PRNGKey(0), len(envs)))
        policy_s, calls = 0.0, 0

        def timed(observations, keys):
            nonlocal policy_s, calls
            t = time.perf_counter()
            actions = policy(observations, keys)
            policy_s += time.perf_counter() - t
            calls += 1
            return actions

        t0 = time.perf_counter()
        result = evaluate(envs, timed, jax.random.PRNGKey(1), num_episodes, run_seed=0,
                          metric=spec.metric)
        return result, time.perf_counter() - t0, policy_s, calls

    t0 = time.perf_counter()
    envs = make_eval_envs(functools.partial(make_env, spec, 1), width, workers)
    make_s = time.perf_counter() - t0
    result, wall, policy_s, calls = timed_evaluation(envs, episodes)
    envs.close()
    one_env = make_eval_envs(functools.partial(make_env, spec, 1), 1, 0)
    _, _, one_policy_s, one_calls = timed_evaluation(one_env, min(sequential_episodes, episodes))
    one_env.close()
    env_steps = result["episode_length"] * episodes
    single_call_s = one_policy_s / one_calls
    sequential_policy_s = env_steps * single_call_s
    return {"task": task, "scale": scale, "episodes": episodes, "width": width, "workers": workers,
            "env_steps": int(env_steps), "make_s": make_s, "wall_s": wall, "policy_s": policy_s,
            "policy_calls": calls, "single_calls": one_calls, "sim_s": wall - policy_s,
            "single_call_ms": 1000 * single_call_s,
            "step_at_a_time_policy_s": sequential_policy_s,
            "policy_speedup": sequential_policy_s / policy_s}


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
        except ImportError as e:  # an optional simulator not installed (e.g. EXPO_MIMICGEN=package without mimicgen)
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


# Environments side by side in --eval per simulator: each robosuite environment adds ~130 MB here.
EVAL_WIDTH = {"robomimic": 25, "mimicgen": 25}  # by task domain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", choices=["paper", "mini"])
    parser.add_argument("--methods", default="expo,rlpd", help="comma-separated methods")
    parser.add_argument("--seeds", help="comma-separated k: throughput of k seeds updated by one "
                        "vmapped call (seeds_per_process) instead, e.g. 1,2,3")
    parser.add_argument("--envs", action="store_true", help="simulator speed of every task instead")
    parser.add_argument("--env-steps", type=int, default=1000)
    parser.add_argument("--tasks", help="comma-separated tasks for --envs (default: all)")
    parser.add_argument("--eval", action="store_true", help="evaluation wall time per domain instead")
    parser.add_argument("--eval-tasks", default="antmaze-medium-play-v2,pen-binary-v0,lift")
    parser.add_argument("--eval-episodes", type=int, default=100)
    parser.add_argument("--eval-scale", choices=["paper", "mini"], default="paper",
                        help="size of the evaluated EXPO policy")
    parser.add_argument("--eval-workers", type=int, default=0,
                        help="processes stepping the environments (0: this process)")
    parser.add_argument("--eval-width", type=int,
                        help="environments side by side (default: all episodes; 25 for "
                             "robosuite tasks)")
    args = parser.parse_args()
    cache = compilation.enable_persistent_cache()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"jax {jax.__version__} on {jax.devices()[0].platform}; compilation cache: "
          f"{cache or 'off'}")
    if args.envs:
        from expo.protocol import TASKS

        bench_envs(args.tasks.split(",") if args.tasks else list(TASKS), args.env_steps)
        return
    if args.eval:
        print(f"{'task':24} {'scale':6} {'E':>4} {'W':>3} {'procs':>5} {'steps':>7} {'make s':>6} "
              f"{'wall s':>7} {'sim s':>7} {'policy s':>8} {'1-obs ms':>8} "
              f"{'step-at-a-time policy s':>23} {'speedup':>7}")
        for task in args.eval_tasks.split(","):
            width = args.eval_width or EVAL_WIDTH.get(get_task(task).domain, args.eval_episodes)
            r = bench_eval(task, args.eval_episodes, min(width, args.eval_episodes), args.eval_scale,
                           args.eval_workers)
            print(f"{r['task']:24} {r['scale']:6} {r['episodes']:>4} {r['width']:>3} "
                  f"{r['workers']:>5} {r['env_steps']:>7} {r['make_s']:>6.1f} {r['wall_s']:>7.1f} "
                  f"{r['sim_s']:>7.1f} {r['policy_s']:>8.2f} "
                  f"{r['single_call_ms']:>8.2f} {r['step_at_a_time_policy_s']:>23.1f} "
                  f"{r['policy_speedup']:>6.1f}x", flush=True)
        return
    if args.seeds:
        print(f"{'method':6} {'scale':6} {'k':>2} {'s per update call':>17} {'seed-env-steps/s':>16} "
              f"{'vs k=1':>6}")
        for method in args.methods.split(","):
            for scale in [args.only] if args.only else ["mini", "paper"]:
                single = None
                for k in [int(k) for k in args.seeds.split(",")]:
                    r = bench_seed_group(method, scale, k, args.repeats)
                    single = single or (r["seed_steps_per_s"] if k == 1 else None)
                    ratio = f"{r['seed_steps_per_s'] / single:>5.2f}x" if single else ""
                    print(f"{method:6} {scale:6} {k:>2} {r['update_s']:>17.4f} "
                          f"{r['seed_steps_per_s']:>16.2f} {ratio:>6}", flush=True)
        return
    print(f"matmul 2048^3 fp32: {matmul_gflops():.0f} GFLOP/s")
    print(f"{'method':6} {'scale':6} {'utd':>4} {'batch':>5} {'width':>5} {'first update s':>14} "
          f"{'cache':>5} {'compiles':>8} {'update s/env-step':>17} {'env-steps/s':>11} {'act ms':>7} "
          f"{'checks %':>8}")
    for method in args.methods.split(","):
        for scale in [args.only] if args.only else ["mini", "paper"]:
            r = bench_update(method, scale, args.repeats)
            print(f"{r['method']:6} {r['scale']:6} {r['utd']:>4} {r['batch']:>5} {r['width']:>5} "
                  f"{r['first_update_s']:>14.1f} {'hit' if r['cache_hits'] else 'miss':>5} "
                  f"{r['update_compilations']:>8} {r['update_s']:>17.4f} {r['env_steps_per_s']:>11.2f} "
                  f"{r['act_ms']:>7.2f} {r['checks_pct']:>8.3f}", flush=True)


if __name__ == "__main__":
    main()
