"""RLPD against the authors' own code (golden files from tools/golden/rlpd.py, ikostrikov/rlpd
at c90fd4b): the suite's critic ensemble, TD target, critic loss, actor loss and temperature loss
(baselines/rlpd.py, expo/nets/) on the authors' parameters, inputs and noise.

The authors' parameters are stored flat under their flax names; `critic_tree` / `actor_tree`
map them onto the suite's trees (same stacked-head layout, different module names).
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax.training.train_state import TrainState

from baselines import rlpd
from expo.nets import ensemble
from expo.nets.distributions import TanhGaussian
from expo.nets.temperature import temperature_loss
from tests import golden_files
from tests.golden_files import assert_close, load

OBS, ACT, H, M = 4, 2, 4, 2
BATCH_KEYS = ("observations", "actions", "next_observations", "rewards", "masks")


def critic_tree(arrays, prefix):
    """Authors' Ensemble(StateActionValue(MLP)) -> suite QEnsemble: the same leaves, stacked on the
    head axis, without the vmapped module's name (VmapStateActionValue_0)."""
    return golden_files.unflatten(arrays, prefix)["VmapStateActionValue_0"]


def actor_tree(arrays, prefix):
    """Authors' TanhNormal -> suite TanhGaussian: MLP_0 as is, OutputDenseMean -> Dense_0,
    OutputDenseLogStd -> Dense_1."""
    t = golden_files.unflatten(arrays, prefix)
    return {"MLP_0": t["MLP_0"], "Dense_0": t["OutputDenseMean"], "Dense_1": t["OutputDenseLogStd"]}


def suite_agent(arrays, backup_entropy=False):
    """A suite RLPDAgent holding the authors' critic, target critic (and actor) parameters: the
    modules rlpd.create builds (QEnsemble with the config's LayerNorm, TanhGaussian), hidden (8, 8),
    4 heads, subsets of 2. Built directly: rlpd.create's initialisation would cost seconds here."""
    cfg = rlpd.get_config()
    critic_def = ensemble.QEnsemble((8, 8), H, cfg["critic_layer_norm"])
    critic = TrainState.create(apply_fn=critic_def.apply, params=critic_tree(arrays, "critic"),
                               tx=optax.identity())
    actor_params = actor_tree(arrays, "actor") if "actor/MLP_0/Dense_0/kernel" in arrays else {}
    actor = TrainState.create(apply_fn=TanhGaussian((8, 8), ACT).apply, params=actor_params,
                              tx=optax.identity())
    hp = rlpd.Hyper(action_dim=ACT, num_qs=H, num_min_qs=M, discount=0.99, tau=0.005,
                    target_entropy=-ACT / 2, backup_entropy=backup_entropy)
    return rlpd.RLPDAgent(rng=jax.random.PRNGKey(0), actor=actor, critic=critic,
                          target_critic=critic_tree(arrays, "target"), temp=None, hp=hp)


def batch_of(arrays):
    return {k: jnp.asarray(arrays[k]) for k in BATCH_KEYS}


def old_threefry():
    """jax < 0.5 bits for a key (the authors' jax 0.4.13): since jax 0.5 the default
    jax_threefry_partitionable=True draws other bits from the same key."""
    return jax.threefry_partitionable(False)


def test_critic_forward():
    """Q of every head of the authors' LayerNorm ensemble == the suite's QEnsemble, mapped params."""
    arrays, meta = load("rlpd", "critic_forward")
    agent = suite_agent(arrays)
    qs = jax.jit(agent.critic.apply_fn)({"params": agent.critic.params}, arrays["observations"],
                                        arrays["actions"])
    assert_close(qs, arrays["qs"], meta, "qs")


def test_subset_draw_matches_the_authors_for_the_same_key():
    """Same key, same jax.random.choice(replace=False) -> the same heads (REDQ subset), with the
    authors' jax's random bits."""
    for case in ("critic_target_backup_entropy", "critic_target_no_backup_entropy"):
        arrays, _ = load("rlpd", case)
        with old_threefry():
            drawn = ensemble.subset_indices(jnp.asarray(arrays["subset_key"], jnp.uint32), H, M)
        np.testing.assert_array_equal(np.asarray(drawn), arrays["subset"])


@pytest.mark.parametrize("case,backup_entropy", [("critic_target_backup_entropy", True),
                                                  ("critic_target_no_backup_entropy", False)])
def test_critic_target_and_loss(case, backup_entropy):
    """update_critic's target (min over the authors' subset of target heads at the fixed next
    actions, with/without - alpha log pi), then the MSE over all heads and its gradient."""
    arrays, meta = load("rlpd", case)
    agent = suite_agent(arrays, backup_entropy)
    with old_threefry():  # the authors' subset_key draws the authors' subset of heads
        target = jax.jit(rlpd.td_target)(agent, batch_of(arrays), jnp.asarray(arrays["next_actions"]),
                                         jnp.asarray(arrays["next_log_probs"]),
                                         jnp.asarray(arrays["subset_key"], jnp.uint32),
                                         float(arrays["temperature"]))
    assert_close(target, arrays["target"], meta, "target")

    loss_and_grad = jax.jit(jax.value_and_grad(rlpd.critic_loss_fn, has_aux=True), static_argnums=1)
    (loss, _), grads = loss_and_grad(agent.critic.params, agent.critic.apply_fn, batch_of(arrays),
                                     jnp.asarray(arrays["target"]))
    assert_close(loss, arrays["critic_loss"], meta, "critic_loss")
    golden_files.assert_trees_close(grads, critic_tree(arrays, "critic_grad"), meta, "critic_grad")


def test_actor_and_temperature_losses(monkeypatch):
    """update_actor: mean(alpha log pi - mean_heads Q) with the authors' noise eps, its gradient
    and entropy; update_temperature: alpha (entropy - target_entropy)."""
    arrays, meta = load("rlpd", "actor_temperature")
    agent = suite_agent(arrays)
    eps = jnp.asarray(arrays["eps"])
    # the suite draws eps = jax.random.normal(key, shape) in tanh_gaussian_sample: hand it the
    # authors' noise (tfp draws differently from the same key)
    monkeypatch.setattr(jax.random, "normal", lambda key, shape, *a, **kw: eps)
    temperature = float(arrays["temperature"])
    (loss, info), grads = jax.jit(jax.value_and_grad(rlpd.actor_loss_fn, has_aux=True))(
        agent.actor.params, agent, jnp.asarray(arrays["observations"]), jax.random.PRNGKey(0),
        temperature)
    assert_close(loss, arrays["actor_loss"], meta, "actor_loss")
    assert_close(info["entropy"], arrays["entropy"], meta, "entropy")
    golden_files.assert_trees_close(grads, actor_tree(arrays, "actor_grad"), meta, "actor_grad")
    t_loss = temperature_loss(temperature, arrays["entropy"], float(arrays["target_entropy"]))
    assert_close(t_loss, arrays["temperature_loss"], meta, "temperature_loss")


def test_every_case_names_its_provenance():
    golden_files.assert_provenance("rlpd", "c90fd4b", "ikostrikov/rlpd", {"critic_forward", "critic_target_backup_entropy", "critic_target_no_backup_entropy",
                                        "actor_temperature"})