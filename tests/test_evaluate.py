"""Batched evaluation (expo/evaluate.py): W environments side by side give the same result as one
environment stepping the episodes one after another, each episode seeded and keyed by its index."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from expo.agents import expo
from expo.config import build_agent
from expo.env_pool import LocalEnvs, ProcessEnvs
from expo.evaluate import as_numpy_policy, episode_step_keys, evaluate, per_row_policy
from expo.seeding import episode_seed
from tests.test_expo_agent import ACT, OBS, tiny_cfg


class CountingEnv:
    """x starts at (reset seed mod 7) / 10 and moves by the action; reward x; the episode ends
    after 3 + (seed mod 4) steps (episodes of different lengths, so environments change episodes
    at different times); success when x > 0.5."""

    def reset(self, seed):
        self.x, self.t, self.length = (seed % 7) / 10, 0, 3 + seed % 4
        return np.array([self.x, 0.0], np.float32), {}

    def step(self, action):
        self.x += float(action[0])
        self.t += 1
        obs = np.array([self.x, self.t], np.float32)
        return obs, self.x, False, self.t >= self.length, {"success": self.x > 0.5}


def key_policy(observations, keys):
    """An action drawn from each row's key, plus the row's observation: the result depends on
    every key and every observation being the right one."""
    noise = jax.vmap(lambda k: jax.random.uniform(k, (2,), minval=-0.2, maxval=0.2))(keys)
    return np.asarray(noise) + 0.05 * observations


@pytest.mark.parametrize("width", [2, 3, 5, 9])
def test_batched_equals_sequential_on_a_toy_env(width):
    key = jax.random.PRNGKey(4)
    sequential = evaluate(LocalEnvs([CountingEnv()]), key_policy, key, 9, run_seed=3)
    batched = evaluate(LocalEnvs.make(CountingEnv, width), key_policy, key, 9, run_seed=3)
    assert batched == sequential
    assert sequential["episodes"] == 9
    seeds = [episode_seed(3, "eval", i) for i in range(9)]
    assert sequential["episode_length"] == pytest.approx(np.mean([3 + s % 4 for s in seeds]))


def test_percent_solved_steps_metric_and_each_episode_keyed_by_its_index():
    key = jax.random.PRNGKey(0)
    a = evaluate(LocalEnvs.make(CountingEnv, 3), key_policy, key, 6, 1, "percent_solved_steps")
    b = evaluate(LocalEnvs([CountingEnv()]), key_policy, key, 6, 1, "percent_solved_steps")
    assert a == b and 0.0 <= a["success"] <= 1.0
    # a different key gives different actions
    other = evaluate(LocalEnvs([CountingEnv()]), key_policy, jax.random.PRNGKey(1), 6, 1)
    assert other["return"] != b["return"]
    keys = episode_step_keys(key, jnp.array([0, 2]), jnp.array([5, 1]))
    expected = jax.random.fold_in(jax.random.fold_in(key, 2), 1)
    np.testing.assert_array_equal(keys[1], expected)


def test_per_row_policy_is_the_policy_on_each_row():
    """The vmapped EXPO OTF policy, row r, equals sample_actions on that row alone with its key."""
    agent = build_agent(expo, 0, OBS, ACT, tiny_cfg())
    obs = jax.random.normal(jax.random.PRNGKey(1), (4, OBS))
    keys = jax.random.split(jax.random.PRNGKey(2), 4)
    batched = np.asarray(per_row_policy(expo.sample_actions)(agent, obs, keys))
    for r in range(4):
        alone = np.asarray(expo.sample_actions(agent, obs[r:r + 1], keys[r]))[0]
        np.testing.assert_allclose(batched[r], alone, rtol=1e-6, atol=1e-6)


@pytest.mark.slow  # heavy end-to-end check: make test-heavy (CI runs it)
@pytest.mark.usefixtures("tiny_world")
def test_batched_equals_sequential_with_the_real_policy_and_simulator():
    """EXPO's OTF policy in robosuite Lift (15-step episodes): 4 episodes in 1, 2 or 4 envs."""
    from expo.envs import make_env
    from expo.protocol import get_task

    spec = get_task("lift")
    agent = build_agent(expo, 0, spec.obs_dim, spec.act_dim, tiny_cfg())
    act = as_numpy_policy(per_row_policy(expo.sample_actions), agent)
    envs = [make_env(spec, seed=1) for _ in range(4)]
    key = jax.random.PRNGKey(7)
    results = [evaluate(LocalEnvs(envs[:w]), act, key, 4, run_seed=0) for w in (1, 2, 4)]
    assert results[0]["episodes"] == 4 and results[0]["episode_length"] == 15
    assert results[1] == results[0] and results[2] == results[0]  # to the last bit, on this CPU
    # the same 4 environments stepped by 2 worker processes
    pool = ProcessEnvs(functools.partial(make_env, spec, 1), 4, workers=2)
    try:
        assert evaluate(pool, act, key, 4, run_seed=0) == results[0]
    finally:
        pool.close()
    assert all(not p.is_alive() for p in pool.procs)


def test_bench_eval_counts_one_batched_call_per_step():
    """expo.bench --eval on Adroit pen (no data needed): 4 episodes in 2 environments that run to
    the horizon take 2 x horizon policy calls, not 4 x horizon; the parts add up to the wall time."""
    from expo.bench import bench_eval
    from expo.protocol import get_task

    horizon = get_task("pen-binary-v0").horizon
    r = bench_eval("pen-binary-v0", episodes=4, width=2, scale="mini")
    assert r["env_steps"] == 4 * horizon
    assert r["policy_calls"] == 2 * horizon
    assert r["sim_s"] > 0 and r["policy_s"] > 0
    assert r["sim_s"] + r["policy_s"] == pytest.approx(r["wall_s"])
    # step at a time: every env step at the per-call time of a real one-environment evaluation
    # (3 episodes run to the horizon, one single-row call per step)
    assert r["single_calls"] == 3 * horizon and r["single_call_ms"] > 0
    assert r["step_at_a_time_policy_s"] == pytest.approx(r["env_steps"] * r["single_call_ms"] / 1e3)


def test_process_envs_step_their_slots_in_order():
    """5 toy environments over 2 processes: the same outcomes as in this process, slot by slot."""
    local, pool = LocalEnvs.make(CountingEnv, 5), ProcessEnvs(CountingEnv, 5, workers=2)
    try:
        assert len(pool) == 5 and pool.workers == 2
        for slot in range(5):
            np.testing.assert_array_equal(pool.reset(slot, 10 + slot), local.reset(slot, 10 + slot))
        slots = [4, 0, 3]
        actions = [np.array([0.1 * s, 0.0]) for s in slots]
        for got, want in zip(pool.step(slots, actions), local.step(slots, actions)):
            np.testing.assert_array_equal(got[0], want[0])
            assert got[1:] == want[1:]
    finally:
        pool.close()
