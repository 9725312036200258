"""IDQL baseline (baselines/idql.py): expectile value loss, IQL Q target, argmax-Q selection over
EMA-policy samples, the update schedule of each setting, compile-once, and a tiny end-to-end run.

Stubs: critic apply_fn Q_h(s, a) = f(s, a)[h] + params["shift"], so the test can tell the target
critic (shift 1) from the online one (shift 0); value apply_fn V(s) = g(s).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from baselines import idql
from expo import config as config_lib
from expo.config import ConfigError
from tests.conftest import (assert_eval_rows, fresh_jit, jax_batch, loop_batch, leaves,
                            tiny_train_run, trees_equal)

OBS, ACT = 3, 2
TINY = dict(hidden_dims=(8, 8), T=3, N=3, diffusion_width=8, diffusion_blocks=1, time_dim=4,
            utd=2, batch_size=4, expectile=0.7, train_actor_online=False)
GAMMA = 0.99


def tiny_cfg(**kw):
    cfg = idql.get_config()
    cfg.update(TINY)
    cfg.update(kw)
    return cfg


@pytest.fixture(scope="module")
def agent():
    return jax.jit(lambda: idql.create(0, OBS, ACT, tiny_cfg()))()


def with_critic(agent, heads):
    """Q_h(s, a) = heads(s, a)[h] + params['shift']; online shift 0, target shift 1."""
    def apply_fn(variables, obs, actions, training=False):
        return heads(obs, actions) + variables["params"]["shift"]

    return agent.replace(critic=agent.critic.replace(apply_fn=apply_fn,
                                                     params={"shift": jnp.float32(0.0)}),
                         target_critic={"shift": jnp.float32(1.0)})


def with_value(agent, g):
    return agent.replace(value=agent.value.replace(apply_fn=lambda variables, obs: g(obs)))


def make_batch(key, utd, batch):
    return jax_batch(key, utd, batch, OBS, ACT)


# ============================================================== config

def test_config_resolves_expectile_and_actor_schedule_per_setting():
    ant = config_lib.build_config({"method": "idql", "task": "antmaze-medium-play-v2"})["agent"]
    lift = config_lib.build_config({"method": "idql", "task": "lift", "setting": "online"})["agent"]
    assert ant["expectile"] == 0.9 and lift["expectile"] == 0.7
    assert ant["train_actor_online"] is False   # offline_to_online: critic-only fine-tuning
    assert lift["train_actor_online"] is True   # online from scratch: the actor must learn too
    assert ant["N"] == 128 and ant["num_qs"] == 2 and ant["T"] == 5 and ant["utd"] == 1
    assert ant["diffusion_dropout"] == 0.1 and ant["deviations"]
    # user overrides win over the per-domain default
    assert config_lib.build_config({"method": "idql", "agent.expectile": 0.8})["agent"]["expectile"] == 0.8


@pytest.mark.parametrize("kw", [dict(N=0), dict(expectile=1.0), dict(expectile=0.0),
                                dict(batch_size=3), dict(T=0), dict(train_actor_online=None)])
def test_create_rejects_bad_configs(kw):
    with pytest.raises(ConfigError) as e:
        idql.create(0, OBS, ACT, tiny_cfg(**kw))
    assert "\n" not in str(e.value) and "agent." in str(e.value)


# ============================================================== losses and targets

def test_expectile_loss_hand_values():
    diff = jnp.array([2.0, -1.0, 0.5, -3.0, 0.0])
    np.testing.assert_allclose(idql.expectile_loss(diff, 0.7), [2.8, 0.3, 0.175, 2.7, 0.0], rtol=1e-6)
    np.testing.assert_allclose(idql.expectile_loss(diff, 0.9), [3.6, 0.1, 0.225, 0.9, 0.0], rtol=1e-6)


def test_expectile_regression_minimiser_is_the_expectile():
    # samples {0, 1}: the tau-expectile v solves tau (1 - v) = (1 - tau) v, so v = tau
    q = jnp.array([0.0, 1.0])
    grad = jax.grad(lambda v: idql.expectile_loss(q - v, 0.9).mean())
    np.testing.assert_allclose(grad(0.9), 0.0, atol=1e-6)
    assert grad(0.8) < 0 < grad(0.95)


def test_value_loss_uses_min_of_target_heads_at_batch_action(agent):
    # heads at the batch action: [[1, 2], [3, 0]] + target shift 1 -> min [2, 1]; V = [1.5, 1.5]
    ag = with_value(with_critic(agent, lambda s, a: jnp.array([[1.0, 2.0], [3.0, 0.0]])),
                    lambda s: jnp.array([1.5, 1.5]))
    batch = {"observations": jnp.zeros((2, OBS)), "actions": jnp.zeros((2, ACT))}
    loss, info = idql.value_loss_fn(ag.value.params, ag, batch)
    # diffs [0.5, -0.5] -> (0.7 * 0.25 + 0.3 * 0.25) / 2
    np.testing.assert_allclose(loss, 0.125, rtol=1e-6)
    np.testing.assert_allclose(info["v_mean"], 1.5)


def test_q_target_is_r_plus_gamma_mask_v_next(agent):
    ag = with_value(agent, lambda s: s[:, 0])
    batch = {"rewards": jnp.array([1.0, -1.0, 0.5]), "masks": jnp.array([1.0, 0.0, 1.0]),
             "next_observations": jnp.array([[2.0, 0, 0], [5.0, 0, 0], [-4.0, 0, 0]])}
    y = idql.q_target(ag, ag.value.params, batch)
    np.testing.assert_allclose(y, [1.0 + GAMMA * 2.0, -1.0, 0.5 - GAMMA * 4.0], rtol=1e-6)


def test_critic_step_backs_up_through_the_freshly_updated_value(agent):
    batch = jax.tree_util.tree_map(lambda x: x[0], make_batch(jax.random.PRNGKey(0), 1, 4))
    new, info = jax.jit(idql.critic_step)(agent, batch)
    assert not trees_equal(new.value.params, agent.value.params)
    with_new_v = idql.q_target(agent, new.value.params, batch).mean()
    with_old_v = idql.q_target(agent, agent.value.params, batch).mean()
    np.testing.assert_allclose(info["target_mean"], with_new_v, rtol=1e-5)
    assert abs(float(with_new_v) - float(with_old_v)) > 1e-6  # the check can tell them apart
    tau = agent.hp.tau
    expected = jax.tree_util.tree_map(lambda t, c: (1 - tau) * t + tau * c, agent.target_critic,
                                      new.critic.params)
    for x, y in zip(leaves(new.target_critic), leaves(expected)):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)


# ============================================================== argmax selection

CANDS = jnp.array([[[0.9, 0.0], [0.3, 0.4], [0.1, 0.2]],
                   [[-0.5, -0.5], [0.2, -0.9], [0.0, 0.1]]])


def test_select_argmax_is_argmax_of_min_over_target_heads(agent):
    # two heads: Q_0 = a_0, Q_1 = a_1. Row 0: min [0.0, 0.3, 0.1] -> index 1 (the mean would pick 0);
    # row 1: min [-0.5, -0.9, 0.0] -> index 2.
    ag = with_critic(agent, lambda s, a: jnp.stack([a[:, 0], a[:, 1]]))
    out = idql.select_argmax(ag, jnp.zeros((2, OBS)), CANDS)
    np.testing.assert_allclose(out, [[0.3, 0.4], [0.0, 0.1]])


def test_select_argmax_reads_the_target_critic(agent):
    # Q = shift * a_0 - a_1: the target (shift 1) prefers a_0 up, the online (shift 0) a_1 down
    def heads(s, a):
        return jnp.stack([-a[:, 1], -a[:, 1]])

    def apply_fn(variables, obs, actions, training=False):
        return heads(obs, actions) + variables["params"]["shift"] * actions[:, 0][None]

    ag = agent.replace(critic=agent.critic.replace(apply_fn=apply_fn, params={"shift": jnp.float32(0.0)}),
                       target_critic={"shift": jnp.float32(10.0)})
    cands = jnp.array([[[0.9, 0.5], [-0.9, -0.5]]])
    np.testing.assert_allclose(idql.select_argmax(ag, jnp.zeros((1, OBS)), cands), [[0.9, 0.5]])


def test_sample_actions_takes_N_ema_samples_and_the_best(agent):
    ag = with_critic(agent, lambda s, a: jnp.stack([a.sum(-1), a.sum(-1)]))
    obs = jax.random.normal(jax.random.PRNGKey(0), (5, OBS))
    key = jax.random.PRNGKey(1)
    out = np.asarray(idql.sample_actions(ag, obs, key))
    # the same N draws of the EMA policy (same key), then the best by Q = sum(a) per state
    samples = np.asarray(jax.jit(idql.policy_samples)(ag, key, obs))
    assert samples.shape == (5, ag.hp.N, ACT)
    assert len(np.unique(samples[0].round(6), axis=0)) == ag.hp.N  # N distinct draws per state
    best = samples[np.arange(5), samples.sum(-1).argmax(1)]
    np.testing.assert_allclose(out, best, rtol=1e-6)
    assert np.all(np.abs(out) <= 1.0)


def test_sample_actions_ignores_online_actor_weights(agent):
    obs = jax.random.normal(jax.random.PRNGKey(0), (4, OBS))
    a = idql.sample_actions(agent, obs, jax.random.PRNGKey(1))
    nan_online = agent.replace(actor=agent.actor.replace(
        params=jax.tree_util.tree_map(lambda p: p * jnp.nan, agent.actor.params)))
    np.testing.assert_array_equal(a, idql.sample_actions(nan_online, obs, jax.random.PRNGKey(1)))


# ============================================================== update schedules

@pytest.fixture(scope="module")
def perturbed(agent):
    return agent.replace(target_critic=jax.tree_util.tree_map(lambda p: p + 0.1, agent.critic.params),
                         actor_ema=jax.tree_util.tree_map(lambda p: 0.5 * p, agent.actor.params))


def test_finetune_update_trains_only_the_critic(perturbed):
    new, info = idql.update(perturbed, make_batch(jax.random.PRNGKey(0), 2, 4))
    assert {"critic_loss", "value_loss", "q_mean", "v_mean"} <= set(info) and "bc_loss" not in info
    assert all(np.isfinite(np.asarray(v)) for v in info.values())
    assert int(new.critic.step) == 2 and int(new.value.step) == 2 and int(new.actor.step) == 0
    assert trees_equal(new.actor.params, perturbed.actor.params)
    assert trees_equal(new.actor_ema, perturbed.actor_ema)
    assert not trees_equal(new.critic.params, perturbed.critic.params)
    assert not trees_equal(new.value.params, perturbed.value.params)


def test_pretrain_update_trains_actor_value_and_q(perturbed):
    new, info = idql.pretrain_update(perturbed, make_batch(jax.random.PRNGKey(1), 2, 4))
    assert {"bc_loss", "critic_loss", "value_loss"} <= set(info)
    assert int(new.actor.step) == 2 and int(new.critic.step) == 2 and int(new.value.step) == 2
    assert not trees_equal(new.actor.params, perturbed.actor.params)
    assert not trees_equal(new.actor_ema, perturbed.actor_ema)
    assert not trees_equal(new.value.params, perturbed.value.params)


def test_online_update_trains_the_actor_and_compiles_once():
    """The online-setting update (train_actor_online) BC-trains the actor with the critic; the
    agent is built eagerly, as the loop builds it, and update() compiles once over several calls."""
    update = fresh_jit(idql.update)
    rng = np.random.default_rng(0)
    ag0 = ag = idql.create(0, OBS, ACT, tiny_cfg(train_actor_online=True))
    for _ in range(3):
        ag, info = update(ag, loop_batch(rng, 2, 4, OBS, ACT))
    assert update._cache_size() == 1
    assert {"bc_loss", "critic_loss", "value_loss"} <= set(info)
    assert int(ag.actor.step) == 6 and int(ag.critic.step) == 6 and int(ag.value.step) == 6
    assert not trees_equal(ag.actor.params, ag0.actor.params)
    assert not trees_equal(ag.actor_ema, ag0.actor_ema)


# ============================================================== end to end

E2E = {
    "method": "idql", "scale": "mini", "steps": 16, "pretrain_steps": 20, "pretrain_chunk": 10,
    "eval_interval": 8, "eval_episodes": 1, "log_interval": 8, "progress": False,
    "dataset.num_demos": 3, "agent.hidden_dims": (16, 16), "agent.diffusion_width": 16,
    "agent.time_dim": 8, "agent.N": 2, "agent.T": 2, "agent.utd": 1, "agent.batch_size": 8,
}



@pytest.mark.parametrize("setting", [pytest.param("offline_to_online", marks=pytest.mark.slow), "online"])
def test_tiny_run_writes_eval_csv(tiny_world, tmp_path, setting):
    _, rows, train_rows = tiny_train_run(tmp_path, {**E2E, "setting": setting})
    assert_eval_rows(rows, [0, 8, 16])
    phases = {r["phase"] for r in train_rows}
    online = [r for r in train_rows if r["phase"] == "online"]
    assert online and all(r["critic_loss"] and r["value_loss"] for r in online)
    if setting == "online":
        assert phases == {"online"} and all(r["bc_loss"] for r in online)
    else:
        assert phases == {"pretrain", "online"}
        assert all(r["bc_loss"] for r in train_rows if r["phase"] == "pretrain")
        assert not any(r.get("bc_loss") for r in online)
