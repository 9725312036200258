"""RLPD baseline (baselines/rlpd.py): TD target with the REDQ subset min, actor and temperature
losses against hand-computed values on stubbed networks, the update schedule, compile-once, and a
tiny end-to-end run through expo.train.train.

Stubs: a toy critic whose "parameters" are one offset per head, Q_h(s, a) = offset_h + sum(a), so
that the subset of heads the target draws is visible in the value; a toy actor with a fixed mean
and log-std, so the reparameterised sample is known from the key.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from baselines import rlpd
from expo import config as config_lib
from expo.config import ConfigError
from expo.nets import ensemble
from tests.conftest import (assert_eval_rows, fresh_jit, jax_batch, loop_batch, tiny_train_run,
                            with_hp)

OBS, ACT = 3, 2
GAMMA = 0.99


def tiny_cfg(**kw):
    cfg = rlpd.get_config()
    cfg.update(hidden_dims=(8, 8), num_qs=3, num_min_qs=2, backup_entropy=False, utd=2, batch_size=4)
    cfg.update(kw)
    return cfg


@pytest.fixture(scope="module")
def agent():
    # jit only to keep the suite fast (one compile instead of hundreds of eager ops); same code
    return jax.jit(lambda: rlpd.create(0, OBS, ACT, tiny_cfg()))()


def offset_critic(offsets):
    """Q_h(s, a) = offset_h + sum(a); params = {"offset": [H]} so head subsets stay visible."""
    def apply_fn(variables, obs, actions, training=False):
        return variables["params"]["offset"][:, None] + actions.sum(-1)[None]
    return apply_fn, {"offset": jnp.asarray(offsets, jnp.float32)}


def with_offset_critic(agent, offsets, target_offsets=None):
    apply_fn, params = offset_critic(offsets)
    target = offset_critic(offsets if target_offsets is None else target_offsets)[1]
    return agent.replace(critic=agent.critic.replace(apply_fn=apply_fn, params=params),
                         target_critic=target)


def with_fixed_actor(agent, mean, log_std):
    def apply_fn(variables, obs):
        shape = (obs.shape[0], ACT)
        return jnp.full(shape, mean, jnp.float32), jnp.full(shape, log_std, jnp.float32)
    return agent.replace(actor=agent.actor.replace(apply_fn=apply_fn))


BATCH = {"rewards": jnp.array([0.5, -1.0]), "masks": jnp.array([1.0, 0.0]),
         "next_observations": jnp.zeros((2, OBS)), "observations": jnp.zeros((2, OBS)),
         "actions": jnp.zeros((2, ACT))}
NEXT_ACTIONS = jnp.array([[0.1, 0.2], [0.3, -0.4]])  # sum(a') = 0.3 and -0.1


# ============================================================== TD target

def test_td_target_is_min_over_the_drawn_subset_of_target_heads(agent):
    # target heads' offsets 1, -2, 4: pairs {0,1} -> -2, {0,2} -> 1, {1,2} -> -2; 4 never wins
    ag = with_offset_critic(agent, [0.0, 0.0, 0.0], target_offsets=[1.0, -2.0, 4.0])
    seen = set()
    for i in range(24):
        key = jax.random.PRNGKey(i)
        idx = [int(j) for j in ensemble.subset_indices(key, 3, 2)]
        pair_min = {frozenset({0, 1}): -2.0, frozenset({0, 2}): 1.0, frozenset({1, 2}): -2.0}[frozenset(idx)]
        y = rlpd.td_target(ag, BATCH, NEXT_ACTIONS, jnp.zeros(2), key, 1.0)
        # row 0: 0.5 + 0.99 * (0.3 + pair_min); row 1: mask 0 -> the reward alone
        np.testing.assert_allclose(y, [0.5 + GAMMA * (0.3 + pair_min), -1.0], rtol=1e-6)
        seen.add(pair_min)
    assert seen == {-2.0, 1.0}  # both kinds of subset were drawn; the online critic is not used


def test_td_target_one_head_and_all_heads(agent):
    ag = with_offset_critic(agent, [0.0] * 3, target_offsets=[1.0, -2.0, 4.0])
    values = {float(rlpd.td_target(with_hp(ag, num_min_qs=1), BATCH, NEXT_ACTIONS, jnp.zeros(2),
                                   jax.random.PRNGKey(i), 1.0)[0]) for i in range(30)}
    np.testing.assert_allclose(sorted(values), [0.5 + GAMMA * (0.3 + o) for o in (-2.0, 1.0, 4.0)], rtol=1e-6)
    y = rlpd.td_target(with_hp(ag, num_min_qs=3), BATCH, NEXT_ACTIONS, jnp.zeros(2), jax.random.PRNGKey(0), 1.0)
    np.testing.assert_allclose(y[0], 0.5 + GAMMA * (0.3 - 2.0), rtol=1e-6)


def test_td_target_entropy_backup_subtracts_alpha_log_pi(agent):
    ag = with_hp(with_offset_critic(agent, [0.0] * 3, target_offsets=[1.0, 1.0, 1.0]), backup_entropy=True)
    log_probs = jnp.array([1.5, 2.0])
    y = rlpd.td_target(ag, BATCH, NEXT_ACTIONS, log_probs, jax.random.PRNGKey(0), 0.4)
    # 0.5 + 0.99 * (0.3 + 1 - 0.4 * 1.5) = 0.5 + 0.99 * 0.7
    np.testing.assert_allclose(y, [0.5 + GAMMA * 0.7, -1.0], rtol=1e-6)
    y_off = rlpd.td_target(with_hp(ag, backup_entropy=False), BATCH, NEXT_ACTIONS, log_probs,
                           jax.random.PRNGKey(0), 0.4)
    np.testing.assert_allclose(y_off, [0.5 + GAMMA * 1.3, -1.0], rtol=1e-6)


def test_critic_loss_is_mse_over_all_heads():
    apply_fn, params = offset_critic([0.0, 1.0, 3.0])
    batch = {"observations": jnp.zeros((2, OBS)), "actions": jnp.zeros((2, ACT))}
    loss, _ = rlpd.critic_loss_fn(params, apply_fn, batch, jnp.array([1.0, 0.0]))
    # errors per head/row: (-1, 0), (0, 1), (2, 3) -> (1 + 0 + 0 + 1 + 4 + 9) / 6
    assert float(loss) == pytest.approx(15 / 6)


# ============================================================== actor and temperature

def test_actor_loss_is_alpha_log_pi_minus_mean_head_q(agent):
    mean, log_std, alpha = 0.2, math.log(0.5), 0.3
    ag = with_fixed_actor(with_offset_critic(agent, [1.0, -2.0, 4.0]), mean, log_std)
    key = jax.random.PRNGKey(7)
    obs = jnp.zeros((4, OBS))
    loss, info = rlpd.actor_loss_fn(ag.actor.params, ag, obs, key, alpha)
    # by hand: x = mean + std * eps, a = tanh(x), log pi = sum N(x; mean, std) - log(1 - tanh(x)^2)
    eps = np.asarray(jax.random.normal(key, (4, ACT)), np.float64)
    x = mean + 0.5 * eps
    log_pi = np.sum(-0.5 * eps ** 2 - math.log(0.5) - 0.5 * math.log(2 * math.pi)
                    - np.log(1 - np.tanh(x) ** 2), axis=-1)
    q = 1.0 + np.tanh(x).sum(-1)  # mean of the offsets 1, -2, 4 is 1 (the min would be -2)
    assert float(loss) == pytest.approx(np.mean(alpha * log_pi - q), rel=1e-5)
    assert float(info["entropy"]) == pytest.approx(-log_pi.mean(), rel=1e-5)


def test_temperature_step_moves_alpha_towards_the_target_entropy(agent):
    """loss = alpha * (entropy - target): with the entropy above -|A|/2 alpha must fall, below it
    alpha must rise; the reported loss is the hand value at alpha = 1."""
    batch = jax.tree_util.tree_map(lambda x: x, BATCH)
    for log_std, falls in ((0.0, True), (-6.0, False)):
        ag = with_fixed_actor(with_offset_critic(agent, [0.0] * 3), 0.0, log_std)
        new, info = rlpd.actor_temperature_step(ag, batch)
        t_old = float(ag.temp.apply_fn({"params": ag.temp.params}))
        t_new = float(new.temp.apply_fn({"params": new.temp.params}))
        assert t_old == pytest.approx(1.0)
        assert (t_new < t_old) == falls and t_new != t_old
        assert float(info["temperature_loss"]) == pytest.approx(
            1.0 * (float(info["entropy"]) - (-ACT / 2)), rel=1e-5)


# ============================================================== update schedule, policies, config

def test_critic_step_moves_the_target_by_polyak_tau(agent):
    perturbed = agent.replace(target_critic=jax.tree_util.tree_map(lambda p: p + 0.1, agent.critic.params))
    batch = jax.tree_util.tree_map(lambda x: x[0], jax_batch(jax.random.PRNGKey(1), 1, 4, OBS, ACT))
    new, info = jax.jit(rlpd.critic_step)(perturbed, batch)
    assert int(new.critic.step) == 1 and np.isfinite(float(info["critic_loss"]))
    expected = jax.tree_util.tree_map(lambda t, c: 0.995 * t + 0.005 * c, perturbed.target_critic,
                                      new.critic.params)
    for x, y in zip(jax.tree_util.tree_leaves(new.target_critic), jax.tree_util.tree_leaves(expected)):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)


def test_eval_is_deterministic_tanh_mean_and_acting_samples(agent):
    obs = jax.random.normal(jax.random.PRNGKey(0), (5, OBS))
    mean, _ = agent.actor.apply_fn({"params": agent.actor.params}, obs)
    e1 = rlpd.eval_actions(agent, obs, jax.random.PRNGKey(1))
    e2 = rlpd.eval_actions(agent, obs, jax.random.PRNGKey(2))
    np.testing.assert_allclose(e1, np.tanh(mean), rtol=1e-6)
    np.testing.assert_array_equal(e1, e2)
    s1 = rlpd.sample_actions(agent, obs, jax.random.PRNGKey(1))
    s2 = rlpd.sample_actions(agent, obs, jax.random.PRNGKey(2))
    assert s1.shape == (5, ACT) and np.all(np.abs(s1) < 1) and not np.allclose(s1, s2)


def test_update_compiles_once_over_several_calls():
    update = fresh_jit(rlpd.update)
    rng = np.random.default_rng(0)
    ag = rlpd.create(0, OBS, ACT, tiny_cfg())  # eagerly, as the training loop builds it
    for _ in range(3):
        ag, info = update(ag, loop_batch(rng, 2, 4, OBS, ACT))
    assert update._cache_size() == 1
    # the schedule: utd = 2 critic steps, then one actor and one temperature step, per call
    assert int(ag.critic.step) == 6 and int(ag.actor.step) == 3 and int(ag.temp.step) == 3
    for k in ("critic_loss", "q_mean", "actor_loss", "entropy", "temperature", "temperature_loss"):
        assert np.isfinite(float(info[k]))


def test_config_defaults_and_protocol_resolution():
    lift = config_lib.build_config({"method": "rlpd"})["agent"]
    ant = config_lib.build_config({"method": "rlpd", "task": "antmaze-large-diverse-v2"})["agent"]
    assert lift["num_min_qs"] == 2 and ant["num_min_qs"] == 1
    assert lift["num_qs"] == 10 and lift["utd"] == 20 and lift["critic_layer_norm"] is True
    assert lift["backup_entropy"] is False and lift["hidden_dims"] == (256, 256, 256)
    assert rlpd.create(0, OBS, ACT, tiny_cfg()).hp.target_entropy == -ACT / 2
    assert config_lib.build_config({"method": "rlpd", "agent.backup_entropy": True})["agent"]["backup_entropy"]
    # RLPD never pretrains, in either setting
    assert config_lib.build_config({"method": "rlpd", "setting": "offline_to_online"})["pretrain_steps"] == 0
    with pytest.raises(ConfigError, match="agent.num_min_qs"):
        config_lib.build_config({"method": "rlpd", "agent.num_min_qs": 11})


# ============================================================== end to end


TINY = {"method": "rlpd", "scale": "mini", "steps": 24, "eval_interval": 12, "eval_episodes": 2,
        "log_interval": 8, "progress": False, "dataset.num_demos": 3, "start_training": 10,
        "agent.hidden_dims": (16, 16), "agent.utd": 2, "agent.batch_size": 8}


def test_tiny_run_writes_eval_csv(tiny_world, tmp_path):
    """offline_to_online: RLPD runs exactly as online (pretrain_steps 0), with the offline buffer."""
    _, rows, train_rows = tiny_train_run(tmp_path, {**TINY, "setting": "offline_to_online"})
    assert_eval_rows(rows, [0, 12, 24])
    assert {r["phase"] for r in train_rows} == {"online"}  # no pretraining in either setting
    assert all(np.isfinite(float(r["critic_loss"])) and r["temperature"] for r in train_rows)
