"""PA-RL (baselines/parl.py): action optimization (global top-m, local ascent that never keeps a
Q-lowering step, best-action choice), TD target, Cal-QL term, distillation target and step, MC
returns, compile-once, and tiny end-to-end runs.

Stubs: the critic stub makes every head Q_h(s, a) = f(a) + offset_h with f known, and the base
policy's samples are replaced by a fixed candidate table (monkeypatching parl.base_samples), so
every expected value below is written by hand.
"""
import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from baselines import parl
from expo import config as config_lib, protocol
from expo.config import ConfigError
from tests.conftest import loop_batch, tiny_train_run, with_hp

OBS, ACT = 3, 1
GAMMA = 0.99
TINY = dict(hidden_dims=(8, 8), num_qs=4, num_min_qs=4, T=2, N=4, num_keep=2, diffusion_width=8,
            diffusion_blocks=1, time_dim=4, cql_alpha=1.0, cql_n_actions=3, utd=2, batch_size=4)


# The end-to-end runs' size (lift, setting given per test); the compile test uses it too.
E2E = {"method": "parl", "scale": "mini", "steps": 8, "pretrain_steps": 4, "pretrain_chunk": 2,
       "eval_interval": 8, "eval_episodes": 1, "log_interval": 4, "progress": False,
       "dataset.num_demos": 3, "agent.hidden_dims": (16, 16), "agent.diffusion_width": 16,
       "agent.time_dim": 8, "agent.N": 3, "agent.num_keep": 2, "agent.ascent_steps": 2,
       "agent.T": 2, "agent.utd": 1, "agent.batch_size": 8, "agent.cql_n_actions": 2}


@pytest.fixture(scope="module", autouse=True)
def compiled_program_cache(tmp_path_factory):
    """Agents built separately get separate jit traces, but equal configurations lower to the same
    XLA program: a persistent compilation cache (this module only) compiles each program once, so
    the compile test and both end-to-end runs share one compilation of update / pretrain_update."""
    from jax._src import compilation_cache

    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
             "jax_persistent_cache_min_entry_size_bytes")
    saved = {n: getattr(jax.config, n) for n in names}
    jax.config.update(names[0], str(tmp_path_factory.mktemp("xla_cache")))
    jax.config.update(names[1], 0.0)
    jax.config.update(names[2], -1)
    compilation_cache.reset_cache()
    yield
    for n, v in saved.items():
        jax.config.update(n, v)
    compilation_cache.reset_cache()


def tiny_cfg(**kw):
    cfg = parl.get_config()
    cfg.update(TINY)
    cfg.update(kw)
    return cfg


@pytest.fixture(scope="module")
def agent():
    cfg = tiny_cfg()
    return jax.jit(lambda: parl.create(0, OBS, ACT, cfg))()


def with_critic(agent, f, offsets=None):
    """Q_h(s, a) = f(a) + offsets[h] on every head, whatever parameters are passed."""
    offsets = jnp.zeros(agent.hp.num_qs) if offsets is None else jnp.asarray(offsets, jnp.float32)

    def apply_fn(variables, obs, actions, training=False):
        return f(actions)[None] + offsets[:, None]

    return agent.replace(critic=agent.critic.replace(apply_fn=apply_fn))


def fixed_samples(monkeypatch, table, record=None):
    """parl.base_samples returns `table` [B, N, A] (the same for every key)."""
    def fake(ag, actor_params, key, observations, num):
        if record is not None:
            record.append((actor_params, num))
        assert observations.shape[0] == table.shape[0] and num == table.shape[1]
        return jnp.asarray(table, jnp.float32)

    monkeypatch.setattr(parl, "base_samples", fake)


def quad(target, k=1.0):
    return lambda a: -k * jnp.sum((a - target) ** 2, axis=-1)


# ============================================================== global top-m

def test_global_top_m_keeps_the_m_highest_q_per_row():
    cands = jnp.arange(10.0).reshape(2, 5, 1)      # candidate i of row b is 5b + i
    q = jnp.array([[0.3, 2.0, -1.0, 1.5, 0.9],      # top 3: i = 1, 3, 4
                   [5.0, -2.0, 4.0, 6.0, -7.0]])   # top 3: i = 3, 0, 2
    kept, q_kept = parl.global_top_m(cands, q, 3)
    np.testing.assert_array_equal(kept[..., 0], [[1.0, 3.0, 4.0], [8.0, 5.0, 7.0]])
    np.testing.assert_allclose(q_kept, [[2.0, 1.5, 0.9], [6.0, 5.0, 4.0]], rtol=1e-6)


# ============================================================== local ascent

def test_local_ascent_rejects_a_step_that_overshoots_the_peak():
    # Q(a) = -|a - 0.5|: gradient +1 left of the peak. Steps of 0.3 from 0.1: 0.4 (Q -0.1, kept),
    # then 0.7 (Q -0.2, overshoot: rejected), then back to 0.4, ... The answer is 0.4, not the
    # last iterate.
    best, best_q, q0 = parl.local_ascent(lambda a: -jnp.abs(a[:, 0] - 0.5), jnp.array([[0.1]]), 4, 0.3)
    np.testing.assert_allclose(best, [[0.4]], atol=1e-6)
    np.testing.assert_allclose(best_q, [-0.1], atol=1e-6)
    np.testing.assert_allclose(q0, [-0.4], atol=1e-6)


def test_local_ascent_keeps_the_start_when_every_step_is_worse_and_is_per_row():
    # Q_i(a) = -k_i (a - 0.2)^2 with step 0.25: one step maps a - 0.2 to (1 - 0.5 k_i)(a - 0.2).
    # Row 0 (k = 5): factor -1.5, every step overshoots further -> the start is returned exactly.
    # Row 1 (k = 1): factor 0.5, every step improves -> 0.2 + 0.5^3 (a0 - 0.2) after 3 steps.
    k = jnp.array([5.0, 1.0])
    a0 = jnp.array([[0.3], [0.6]])
    best, best_q, q0 = parl.local_ascent(lambda a: -k * (a[:, 0] - 0.2) ** 2, a0, 3, 0.25)
    np.testing.assert_array_equal(best[0], a0[0])
    np.testing.assert_allclose(best_q[0], q0[0])
    np.testing.assert_allclose(best[1], [0.2 + 0.125 * 0.4], atol=1e-6)
    np.testing.assert_allclose(best_q[1], -(0.125 * 0.4) ** 2, atol=1e-7)


def test_local_ascent_clips_to_the_action_box():
    best, best_q, _ = parl.local_ascent(lambda a: a.sum(-1), jnp.array([[0.95, -0.3]]), 2, 0.1)
    np.testing.assert_allclose(best, [[1.0, -0.1]], atol=1e-6)   # 0.95 + 0.2 clipped to 1
    np.testing.assert_allclose(best_q, [0.9], atol=1e-6)


def test_local_ascent_step_size_zero_or_no_steps_returns_the_input():
    a = jnp.array([[0.1], [-0.7]])
    for steps, size in [(0, 0.3), (5, 0.0)]:
        best, _, _ = parl.local_ascent(lambda x: -jnp.abs(x[:, 0]), a, steps, size)
        np.testing.assert_array_equal(best, a)


# ============================================================== best action, full optimization

def test_select_best_takes_the_argmax_candidate():
    cands = jnp.array([[[0.1], [0.2], [0.3]], [[-0.1], [-0.2], [-0.3]]])
    q = jnp.array([[1.0, 3.0, 2.0], [0.0, -1.0, 5.0]])
    np.testing.assert_array_equal(parl.select_best(cands, q), np.float32([[0.2], [-0.3]]))


# Candidates for Q = -(a - 0.5)^2: Q = -1.96, -0.25, -0.04, -0.2025 -> top 2 are 0.3 and 0.95.
# Step 0.25 halves the distance to 0.5 per step: after 2 steps 0.3 -> 0.45 and 0.95 -> 0.6125.
TABLE = np.array([[[-0.9], [0.0], [0.3], [0.95]],
                  [[0.95], [0.3], [0.0], [-0.9]]], np.float32)


def test_optimize_actions_global_then_local_then_best(agent, monkeypatch):
    rec = []
    fixed_samples(monkeypatch, TABLE, rec)
    ag = with_hp(with_critic(agent, quad(0.5), offsets=[0.0, 1.0, -2.0, 3.0]),
                 ascent_steps=2, ascent_step_size=0.25)
    cands, q, info = parl.optimized_candidates(ag, ag.actor.params, ag.critic.params,
                                               jax.random.PRNGKey(0), jnp.zeros((2, OBS)))
    # top 2 by Q (best first), each moved two halving steps towards 0.5; Q = ensemble mean
    np.testing.assert_allclose(cands[..., 0], [[0.45, 0.6125]] * 2, atol=1e-6)
    np.testing.assert_allclose(q, np.array([[-0.0025, -0.01265625]] * 2) + 0.5, atol=1e-6)
    assert float(info["ascent_gain"]) > 0
    best = parl.optimize_actions(ag, ag.actor.params, ag.critic.params, jax.random.PRNGKey(0),
                                 jnp.zeros((2, OBS)))
    np.testing.assert_allclose(best, [[0.45], [0.45]], atol=1e-6)
    assert rec[0][0] is ag.actor.params and rec[0][1] == 4
    # without ascent: the best raw sample
    ag0 = with_hp(ag, ascent_steps=0)
    best0 = parl.optimize_actions(ag0, ag0.actor.params, ag0.critic.params, jax.random.PRNGKey(0),
                                  jnp.zeros((2, OBS)))
    np.testing.assert_allclose(best0, [[0.3], [0.3]], atol=1e-6)


def test_sample_actions_real_networks_shape_range_determinism(agent):
    obs = jax.random.normal(jax.random.PRNGKey(0), (5, OBS))
    a = parl.sample_actions(agent, obs, jax.random.PRNGKey(1))
    assert a.shape == (5, ACT) and np.all(np.isfinite(a)) and np.all(np.abs(a) <= 1.0)
    np.testing.assert_array_equal(a, parl.sample_actions(agent, obs, jax.random.PRNGKey(1)))


# ============================================================== distillation

def test_distillation_target_is_best_optimized_action_with_dataset_candidate(agent, monkeypatch):
    fixed_samples(monkeypatch, TABLE)
    ag = with_hp(with_critic(agent, quad(0.5)), ascent_steps=0)
    obs = jnp.zeros((2, OBS))
    # dataset action replaces the worse of the top 2 (0.95): row 0's 0.6 beats 0.3, row 1's does not
    data = jnp.array([[0.6], [-0.5]])
    target, _ = parl.distillation_targets(ag, jax.random.PRNGKey(0), obs, data)
    np.testing.assert_allclose(target, [[0.6], [0.3]], atol=1e-6)
    # with ascent the dataset action is optimized too: 0.6 -> 0.55 after one halving step
    ag1 = with_hp(ag, ascent_steps=1, ascent_step_size=0.25)
    target, _ = parl.distillation_targets(ag1, jax.random.PRNGKey(0), obs, data)
    np.testing.assert_allclose(target, [[0.55], [0.4]], atol=1e-6)
    # without the dataset candidate: the best of the top 2 base samples
    ag2 = with_hp(ag, distill_dataset_action=False)
    target, _ = parl.distillation_targets(ag2, jax.random.PRNGKey(0), obs, data)
    np.testing.assert_allclose(target, [[0.3], [0.3]], atol=1e-6)


def test_distillation_softmax_option_samples_among_candidates(agent, monkeypatch):
    fixed_samples(monkeypatch, TABLE)
    flat = with_hp(with_critic(agent, lambda a: jnp.zeros(a.shape[0])), ascent_steps=0,
                   distill_argmax=False, distill_dataset_action=False)
    seen = set()
    for i in range(16):
        t, _ = parl.distillation_targets(flat, jax.random.PRNGKey(i), jnp.zeros((2, OBS)), None)
        seen.add(round(float(t[0, 0]), 4))
    assert seen <= {-0.9, 0.0, 0.3, 0.95} and len(seen) > 1  # equal Q: several candidates drawn
    sharp = with_hp(with_critic(agent, lambda a: 1e4 * quad(0.5)(a)), ascent_steps=0,
                    distill_argmax=False, distill_dataset_action=False)
    for i in range(4):
        t, _ = parl.distillation_targets(sharp, jax.random.PRNGKey(i), jnp.zeros((2, OBS)), None)
        np.testing.assert_allclose(t, [[0.3], [0.3]], atol=1e-6)


def test_distill_step_imitates_the_targets_with_adam_at_distill_lr(agent, monkeypatch):
    fixed_samples(monkeypatch, TABLE)
    ag = with_hp(with_critic(agent, quad(0.5)), ascent_steps=0, distill_dataset_action=False)
    obs = jnp.zeros((2, OBS))
    batch = {"observations": obs, "actions": jnp.array([[0.9], [-0.9]])}
    new, info = jax.jit(parl.distill_step)(ag, batch)
    # the loss is the base policy's epsilon-MSE on the optimized action 0.3, with the step's keys
    _, _, key, dropout_key = jax.random.split(ag.rng, 4)

    def loss_on(actions):
        return parl.diffusion.ddpm_loss(ag.actor.apply_fn, ag.actor.params, ag.schedule, key, obs,
                                        actions, dropout_key)

    np.testing.assert_allclose(info["distill_loss"], loss_on(jnp.full((2, 1), 0.3)), rtol=1e-5)
    assert abs(float(info["distill_loss"]) - float(loss_on(batch["actions"]))) > 1e-3
    np.testing.assert_allclose(info["distill_shift"], (0.6 + 1.2) / 2, atol=1e-6)
    # Adam's first step moves each parameter by at most lr (= lr where the gradient is not tiny)
    deltas = np.concatenate([np.abs(np.asarray(a) - np.asarray(b)).ravel() for a, b in zip(
        jax.tree_util.tree_leaves(new.actor.params), jax.tree_util.tree_leaves(ag.actor.params))])
    lr = ag.hp.distill_lr
    assert lr == 5e-5 and deltas.max() <= lr * 1.001 and deltas.max() > 0.9 * lr
    # the offline optimizer's state and step are untouched; the critic too
    assert int(new.actor.step) == int(ag.actor.step)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(new.critic.params),
                                                     jax.tree_util.tree_leaves(ag.critic.params)))


# ============================================================== critic: TD target and Cal-QL term

def test_policy_actions_one_call_for_next_and_current_states_with_online_critic(agent, monkeypatch):
    calls = []

    def fake_opt(ag, actor_params, critic_params, key, observations):
        calls.append((actor_params, critic_params, observations))
        return observations[:, :ACT] * 0.1

    monkeypatch.setattr(parl, "optimize_actions", fake_opt)
    batch = {"observations": jnp.array([[1.0, 0, 0], [2.0, 0, 0]]),
             "next_observations": jnp.array([[3.0, 0, 0], [4.0, 0, 0]])}
    nxt, cur = parl.policy_actions(agent, jax.random.PRNGKey(0), batch, True)
    np.testing.assert_allclose(nxt, [[0.3], [0.4]], rtol=1e-6)
    np.testing.assert_allclose(cur, [[0.1], [0.2]], rtol=1e-6)
    assert len(calls) == 1 and calls[0][2].shape == (4, OBS)
    assert calls[0][0] is agent.actor.params and calls[0][1] is agent.critic.params  # ONLINE critic
    nxt, cur = parl.policy_actions(agent, jax.random.PRNGKey(0), batch, False)
    assert cur is None and calls[1][2].shape == (2, OBS)


def test_td_target_is_r_plus_gamma_mask_target_subset_min(agent):
    ag = with_critic(agent, lambda a: a[:, 0], offsets=[0.0, -1.0, 2.0, 0.5])
    batch = {"rewards": jnp.array([1.0, 2.0, 3.0]), "masks": jnp.array([1.0, 0.0, 1.0]),
             "next_observations": jnp.ones((3, OBS))}
    next_a = jnp.array([[0.2], [-0.4], [0.7]])
    y = parl.td_target(ag, jax.random.PRNGKey(0), batch, next_a)  # num_min_qs = num_qs: min = -1
    np.testing.assert_allclose(y, [1.0 + GAMMA * (0.2 - 1.0), 2.0, 3.0 + GAMMA * (0.7 - 1.0)], rtol=1e-6)
    # a subset of 2 of the 4 heads: the offset is the min of two distinct heads, never head 2's +2
    for i in range(6):
        y = parl.td_target(with_hp(ag, num_min_qs=2), jax.random.PRNGKey(i), batch, next_a)
        off = (float(y[0]) - 1.0) / GAMMA - 0.2
        assert min(abs(off - o) for o in (0.0, -1.0, 0.5)) < 1e-5


def test_cql_gap_hand_values():
    q_data = jnp.array([[0.0]])
    q_random = jnp.array([[[1.0, 2.0]]])
    q_next, q_cur, mc = jnp.array([[0.5]]), jnp.array([[-1.0]]), jnp.array([0.0])
    # set: 2 random, next x2, current x2, data; averaged over its 7 members
    plain = np.log((np.e ** 1 + np.e ** 2 + 2 * np.e ** 0.5 + 2 * np.e ** -1.0 + 1.0) / 7.0)
    np.testing.assert_allclose(parl.cql_gap(q_data, q_random, q_next, q_cur, mc, 2, False),
                               [[plain]], rtol=1e-5)
    # Cal-QL: the current-state policy value -1 is lifted to the MC return 0; random ones are not
    calql = np.log((np.e ** 1 + np.e ** 2 + 2 * np.e ** 0.5 + 2 * 1.0 + 1.0) / 7.0)
    np.testing.assert_allclose(parl.cql_gap(q_data, q_random, q_next, q_cur, mc, 2, True),
                               [[calql]], rtol=1e-5)
    # all values equal to Q(data): the gap is exactly 0
    np.testing.assert_allclose(parl.cql_gap(jnp.ones((1, 1)), jnp.ones((1, 1, 2)), jnp.ones((1, 1)),
                                            jnp.ones((1, 1)), jnp.array([-5.0]), 2, True), [[0.0]],
                               atol=1e-6)


# ============================================================== Monte-Carlo returns

def test_monte_carlo_returns_by_hand():
    # episode 1 terminates at success (mask 0); episode 2 is cut by the time limit (mask 1)
    r = [-1.0, -1.0, 0.0, -1.0, -1.0]
    m = [1.0, 1.0, 0.0, 1.0, 1.0]
    d = [0.0, 0.0, 1.0, 0.0, 1.0]
    g = parl.monte_carlo_returns(r, m, d, 0.5)
    np.testing.assert_allclose(g, [-1.5, -1.0, 0.0, -2.0, -2.0])
    cfg = {"discount": 0.5}
    np.testing.assert_allclose(parl.episode_extras(np.array([-1.0, 0.0]), True, cfg)["mc_returns"],
                               [-1.0, 0.0])
    np.testing.assert_allclose(parl.episode_extras(np.array([-1.0, -1.0]), False, cfg)["mc_returns"],
                               [-2.0, -2.0])


# ============================================================== updates

def lift_batch(rng, k, b):
    """A batch as expo.buffers samples it for the E2E config below (lift: obs 19, action 7)."""
    return loop_batch(rng, k, b, 19, 7, rewards=-1.0, mc_returns=-50.0)


@pytest.mark.slow  # heavy end-to-end check: make test-heavy (CI runs it)
def test_update_and_pretrain_compile_once_and_move_the_right_parts():
    """create()'s leaves have the types update()/pretrain_update() return: no recompilation over
    several calls. Same config and shapes as the end-to-end runs below (they reuse the compiled
    programs through the persistent cache)."""
    cfg = config_lib.build_config(E2E)["agent"]
    rng = np.random.default_rng(0)
    pre0, upd0 = parl.pretrain_update._cache_size(), parl.update._cache_size()
    ag = parl.create(0, 19, 7, cfg)
    start = ag
    for _ in range(2):
        ag, info = parl.pretrain_update(ag, lift_batch(rng, 2, 8))
    assert parl.pretrain_update._cache_size() == pre0 + 1
    assert int(ag.actor.step) == 4 and int(ag.critic.step) == 4
    assert {"bc_loss", "td_loss", "cql_loss", "critic_loss"} <= set(info)
    assert all(np.isfinite(float(v)) for v in info.values())
    mid = ag
    for _ in range(3):
        ag, info = parl.update(ag, lift_batch(rng, 1, 8))
    assert parl.update._cache_size() == upd0 + 1
    # online: utd (1) critic steps per call; distillation through its own optimizer (actor.step fixed)
    assert int(ag.critic.step) == 4 + 3 and int(ag.actor.step) == 4
    assert {"distill_loss", "ascent_gain", "cql_loss", "td_loss"} <= set(info)
    assert all(np.isfinite(float(v)) for v in info.values())
    changed = [not np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(ag.actor.params),
                                                        jax.tree_util.tree_leaves(mid.actor.params))]
    assert all(changed)
    assert not np.array_equal(jax.tree_util.tree_leaves(start.target_critic)[0],
                              jax.tree_util.tree_leaves(ag.target_critic)[0])


# ============================================================== config

def test_config_resolves_per_domain_and_mini_scale():
    lift = config_lib.build_config({"method": "parl", "task": "lift"})["agent"]
    assert lift["hidden_dims"] == (256, 256) and lift["cql_alpha"] == 1.0
    assert lift["num_min_qs"] == 2 and lift["N"] == 32 and lift["num_keep"] == 10
    assert lift["utd"] == 1 and lift["distill_lr"] == 5e-5 and lift["ascent_step_size"] == 3e-4
    ant = config_lib.build_config({"method": "parl", "task": "antmaze-large-diverse-v2"})["agent"]
    assert ant["hidden_dims"] == (256,) * 4 and ant["cql_alpha"] == 5.0 and ant["num_min_qs"] == 1
    mini = config_lib.build_config({"method": "parl", "task": "lift", "scale": "mini"})["agent"]
    # the mini scale only shrinks a method's counts: N 32 -> 4, UTD stays the code's 1
    assert mini["N"] == 4 and mini["num_keep"] == 4 and mini["T"] == 5 and mini["utd"] == 1
    over = config_lib.build_config({"method": "parl", "task": "lift", "agent.cql_alpha": 0.5})
    assert over["agent"]["cql_alpha"] == 0.5


@pytest.mark.parametrize("kw", [dict(num_keep=5), dict(num_keep=0), dict(N=0), dict(num_min_qs=5),
                                dict(batch_size=3), dict(cql_alpha=-1.0), dict(ascent_steps=-1)])
def test_create_rejects_bad_configs(kw):
    with pytest.raises(ConfigError) as e:
        parl.create(0, OBS, ACT, tiny_cfg(**kw))
    assert "\n" not in str(e.value)


# ============================================================== end to end


@pytest.fixture
def tiny_world(tiny_world, monkeypatch):
    """The shared tiny world (tests/conftest.py) with a 6-step horizon instead of 15."""
    monkeypatch.setitem(protocol.TASKS, "lift", dataclasses.replace(protocol.TASKS["lift"], horizon=6))


@pytest.mark.parametrize("setting", [pytest.param("offline_to_online", marks=pytest.mark.slow), "online"])
def test_tiny_run_writes_eval_csv(tiny_world, tmp_path, setting):
    before = [f._cache_size() for f in (parl.pretrain_update, parl.update, parl.sample_actions)]
    run_dir, rows, train_rows = tiny_train_run(tmp_path, {**E2E, "setting": setting, "start_training": 2})
    after = [f._cache_size() for f in (parl.pretrain_update, parl.update, parl.sample_actions)]
    # the loop traces each jitted function once (pretrain_update only with pretraining)
    assert np.subtract(after, before).tolist() == [int(setting == "offline_to_online"), 1, 1]
    assert [int(r["env_step"]) for r in rows] == [0, 8]
    phases = {r["phase"] for r in train_rows}
    assert phases == ({"pretrain", "online"} if setting == "offline_to_online" else {"online"})
    pre = [r for r in train_rows if r["phase"] == "pretrain"]
    assert all(r["bc_loss"] and r["cql_loss"] and r["td_loss"] for r in pre)
    online = [r for r in train_rows if r["phase"] == "online"]
    assert online and all(r["distill_loss"] and r["critic_loss"] for r in online)
    saved = json.loads((run_dir / "config.json").read_text())["agent"]
    assert "distributional" in saved["deviations"] and saved["num_keep"] == 2
