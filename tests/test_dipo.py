"""DIPO baseline (baselines/dipo.py) and the diffusion pieces it added to expo/nets/diffusion.py
(cosine schedule, posterior sampler, plain-MLP noise network), against hand-computed numbers.

Hand values (plain float64 arithmetic):
- cosine schedule, T = 2: f(k) = cos^2((k/2 + 0.008) / 1.008 * pi/2); beta_1 = 1 - f(1)/f(0)
  = 0.5061564095593623; beta_2 = 1 - 0/f(1) = 1, clipped to 0.999; abar = 0.49384359044063775,
  0.49384359044063775 * 0.001.
- posterior step (DIPO / Diffusion-QL): a_0 = sqrt(1/abar_t) a_t - sqrt(1/abar_t - 1) eps clipped
  to [-1, 1]; mean = (beta_t sqrt(abar_{t-1}) a_0 + (1 - abar_{t-1}) sqrt(alpha_t) a_t) / (1 - abar_t);
  std = sqrt(beta_t (1 - abar_{t-1}) / (1 - abar_t)).
- Adam, first step (bias-corrected m = g, v = g^2): a <- a - lr * g / (|g| + eps); with a constant
  gradient every step is the same. lr 0.03, eps 1e-5.

Stubs: a critic whose heads are known functions of the action (Q_h = f_h(a)); an "x0 oracle" actor
whose predicted a_0 is obs[:, :A] * params["scale"] (the last posterior step, t = 0, returns the
clipped a_0 prediction itself, so every sample equals clip(obs[:, :A] * scale)); a "noise oracle"
actor that knows a set of clean actions and returns the true noise of a_t (its eps-MSE is 0 iff the
loss was given exactly those clean actions).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from baselines import dipo
from expo import config as config_lib
from expo.config import ConfigError
from expo.nets import diffusion
from tests.conftest import assert_eval_rows, fresh_jit, jax_batch, loop_batch, tiny_train_run, with_hp

OBS, ACT = 3, 2
TINY = dict(hidden_dims=(8, 8), diffusion_width=8, diffusion_layers=2, time_dim=4, T=3, utd=1,
            batch_size=4)
GAMMA = 0.99
COS2_BETA1 = 0.5061564095593623
COS2_ABAR0 = 0.49384359044063775


def tiny_cfg(**kw):
    cfg = dipo.get_config()
    cfg.update(TINY)
    cfg.update(kw)
    return cfg


@pytest.fixture(scope="module")
def agent():
    cfg = tiny_cfg()
    return jax.jit(lambda: dipo.create(0, OBS, ACT, cfg))()  # jit only for speed; same code


def with_critic(agent, fs):
    """Head h returns fs[h](obs, actions), whatever the parameters."""
    def apply_fn(variables, obs, actions, training=False):
        return jnp.stack([f(obs, actions) for f in fs])

    return agent.replace(critic=agent.critic.replace(apply_fn=apply_fn))


def x0_oracle(schedule):
    """eps whose a_0 prediction is obs[:, :ACT] * params['scale'] (see module docstring)."""
    def apply_fn(variables, obs, a_t, t, training=False, rngs=None):
        abar = schedule.alpha_bars[t[:, 0]][:, None]
        target = obs[:, :ACT] * variables["params"]["scale"]
        return (jnp.sqrt(1.0 / abar) * a_t - target) / jnp.sqrt(1.0 / abar - 1.0)

    return apply_fn


def noise_oracle(schedule, clean):
    def apply_fn(variables, obs, a_t, t, training=False, rngs=None):
        abar = schedule.alpha_bars[t[:, 0]][:, None]
        return (a_t - jnp.sqrt(abar) * clean) / jnp.sqrt(1.0 - abar)

    return apply_fn


def make_batch(key, utd, batch, masks=1.0):
    return jax_batch(key, utd, batch, OBS, ACT, obs_bound=0.9, masks=masks)


def first(batch):
    return jax.tree_util.tree_map(lambda x: x[0], batch)


def leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def assert_trees_close(a, b, **kw):
    for x, y in zip(leaves(a), leaves(b)):
        np.testing.assert_allclose(x, y, **kw)


# ============================================================== shared diffusion additions

def test_cosine_schedule_T2_hand_values():
    s = diffusion.cosine_schedule(2)
    np.testing.assert_allclose(s.betas, [COS2_BETA1, 0.999], rtol=1e-6)
    np.testing.assert_allclose(s.alphas, [1 - COS2_BETA1, 0.001], rtol=1e-5)
    np.testing.assert_allclose(s.alpha_bars, [COS2_ABAR0, COS2_ABAR0 * 0.001], rtol=1e-5)


def test_cosine_schedule_T100_is_increasing_and_clipped():
    betas = np.asarray(diffusion.cosine_schedule(100).betas)
    assert betas.shape == (100,) and betas[-1] == pytest.approx(0.999)  # 1 - 0/f(99) clipped
    assert np.all(np.diff(betas) > 0) and betas[0] < 1e-3


def test_posterior_step_hand_values_with_a0_clipping():
    s = diffusion.cosine_schedule(2)
    # t = 1, row 0: a_0 prediction 4.502 is clipped to 1; row 1: a_0 = -0.44999 (inside the box)
    a_t, eps, z = jnp.array([0.3, -0.01]), jnp.array([0.2, 0.0]), jnp.array([0.5, -1.0])
    out = diffusion.posterior_step(s, a_t, eps, 1, z)
    np.testing.assert_allclose(out, [1.062821649857242, -1.0274943044298255], rtol=1e-5)
    # noise_scale 0 (DIPO's eval): the posterior mean, and a_{t-1} is NOT clipped per step
    out = diffusion.posterior_step(s, a_t, eps, 1, z, noise_scale=0.0)
    np.testing.assert_allclose(out, [0.7071883806507482, -0.31622776601683783], rtol=1e-5)


def test_posterior_step_at_t0_returns_the_clipped_a0_prediction_without_noise():
    s = diffusion.cosine_schedule(2)
    out = diffusion.posterior_step(s, jnp.array([0.3, 0.9]), jnp.array([0.2, -3.0]), 0,
                                   jnp.array([5.0, 5.0]))
    # row 0: 0.3 / sqrt(abar_0) - sqrt(1/abar_0 - 1) * 0.2; row 1 would be 4.3, clipped to 1
    np.testing.assert_allclose(out, [0.2244224697672373, 1.0], rtol=1e-5)


def test_posterior_sample_with_x0_oracle_lands_on_the_target():
    s = diffusion.cosine_schedule(4)
    obs = jnp.array([[0.3, -0.7, 5.0], [0.9, 0.2, 5.0]])
    out = diffusion.posterior_sample(x0_oracle(s), {"scale": 2.0}, s, jax.random.PRNGKey(0), obs, ACT)
    np.testing.assert_allclose(out, [[0.6, -1.0], [1.0, 0.4]], atol=1e-5)


def test_sinusoidal_embedding_hand_values():
    # dim 4: frequencies 10000^(-i / 1), i = 0, 1 -> 1, 1e-4
    emb = diffusion.sinusoidal_embedding(jnp.array([[2.0], [0.0]]), 4)
    np.testing.assert_allclose(emb, [[np.sin(2.0), np.sin(2e-4), np.cos(2.0), np.cos(2e-4)],
                                     [0.0, 0.0, 1.0, 1.0]], rtol=1e-6, atol=1e-7)


def test_dipo_noise_network_has_the_authors_layer_sizes():
    cfg = dipo.get_config()
    shapes = jax.eval_shape(lambda: dipo.create(0, 19, 7, cfg)).actor.params
    kernels = jax.tree_util.tree_map(lambda x: x.shape, shapes)
    # time MLP: sinusoidal 32 -> 256 -> 32; trunk: (7 + 19 + 32) -> 256 -> 256 -> 256 -> 7
    assert [kernels["MLP_0"][f"Dense_{i}"]["kernel"] for i in range(2)] == [(32, 256), (256, 32)]
    assert [kernels["MLP_1"][f"Dense_{i}"]["kernel"] for i in range(4)] == [
        (58, 256), (256, 256), (256, 256), (256, 7)]
    critic = jax.tree_util.tree_map(lambda x: x.shape, jax.eval_shape(
        lambda: dipo.create(0, 19, 7, cfg)).critic.params)
    assert critic["MLP_0"]["Dense_0"]["kernel"] == (2, 26, 256)  # two heads, 256 x 3
    assert critic["MLP_0"]["Dense_2"]["kernel"] == (2, 256, 256) and "LayerNorm_0" not in critic["MLP_0"]


# ============================================================== config

def test_defaults_are_the_authors():
    cfg = dipo.get_config()
    assert cfg["T"] == 100 and cfg["beta_schedule"] == "cosine"
    assert cfg["action_lr"] == 0.03 and cfg["action_gradient_steps"] == 20
    assert cfg["action_grad_ratio"] == 0.1 and cfg["grad_clip"] == 2.0 and cfg["adam_eps"] == 1e-5
    assert cfg["num_qs"] == 2 and cfg["utd"] == 1 and cfg["batch_size"] == 256
    assert "improved from their stored action" in cfg["deviations"]


@pytest.mark.parametrize("key,value,fragment", [
    ("T", 0, "agent.T"), ("beta_schedule", "quadratic", "agent.beta_schedule"),
    ("action_gradient_steps", -1, "agent.action_gradient_steps"),
    ("action_grad_ratio", -0.1, "agent.action_grad_ratio"), ("batch_size", 5, "agent.batch_size"),
    ("time_dim", 3, "agent.time_dim"),
])
def test_validate_config_names_the_key(key, value, fragment):
    with pytest.raises(ConfigError, match=fragment):
        dipo.validate_config(tiny_cfg(**{key: value}))


def test_mini_scale_resolves():
    cfg = config_lib.build_config({"method": "dipo", "scale": "mini", "setting": "online"})
    assert cfg["agent"]["T"] == 5 and cfg["agent"]["utd"] == 1 and cfg["agent"]["hidden_dims"] == (64, 64, 64)  # UTD 1 is not raised


# ============================================================== the action gradient

def test_clip_total_norm_uses_the_norm_of_the_whole_batch_tensor():
    g = jnp.array([[3.0, 0.0], [0.0, 4.0]])  # total norm 5 (each row alone would be 3 and 4)
    clipped, norm = dipo.clip_total_norm(g, 1.0)
    assert float(norm) == pytest.approx(5.0)
    np.testing.assert_allclose(clipped, [[0.6, 0.0], [0.0, 0.8]], rtol=1e-5)
    same, _ = dipo.clip_total_norm(g, 10.0)  # below the bound: unchanged
    np.testing.assert_array_equal(same, g)
    off, _ = dipo.clip_total_norm(g, 0.0)  # ratio 0 disables clipping (the code's `if > 0`)
    np.testing.assert_array_equal(off, g)


def quadratic(c, offset=0.0):
    c = jnp.asarray(c)
    return lambda obs, a: -jnp.sum((a - c) ** 2, axis=-1) + offset


def test_one_action_gradient_step_is_clipped_adam_on_min_q(agent):
    """Q1 = -||a - (0.5, -0.5)||^2, Q2 = -||a - (-0.9, 0.9)||^2 + 10: min is Q1 near a = 0.
    grad of -Q1 at 0 = (-1, 1), norm sqrt(2), clipped to 0.1 * |A| = 0.2: g = (-0.1414, 0.1414);
    Adam step 1: a = -0.03 * g / (|g| + 1e-5) = (+0.0299979, -0.0299979)."""
    ag = with_hp(with_critic(agent, [quadratic([0.5, -0.5]), quadratic([-0.9, 0.9], 10.0)]),
                 action_gradient_steps=1)
    assert ag.hp.action_max_norm == pytest.approx(0.2)
    improved, norm = dipo.improve_actions(ag, None, jnp.zeros((1, OBS)), jnp.zeros((1, ACT)))
    np.testing.assert_allclose(improved, [[0.029997878828146043, -0.029997878828146043]], rtol=1e-5)
    assert float(norm) == pytest.approx(np.sqrt(2), rel=1e-5)


def test_twenty_steps_move_towards_the_maximiser_of_the_min_head(agent):
    ag = with_critic(agent, [quadratic([0.5, -0.5]), quadratic([-0.9, 0.9], 10.0)])
    start = jnp.array([[0.0, 0.0], [-0.2, 0.1]])
    improved, _ = dipo.improve_actions(ag, None, jnp.zeros((2, OBS)), start)
    before = np.linalg.norm(np.asarray(start) - [0.5, -0.5], axis=1)
    after = np.linalg.norm(np.asarray(improved) - [0.5, -0.5], axis=1)
    assert np.all(after < 0.3 * before)  # ~0.03 per step and dimension for 20 steps
    assert np.all(np.asarray(improved)[:, 0] > 0.3) and np.all(np.asarray(improved)[:, 1] < -0.3)


def test_action_gradient_clipping_and_adam_eps_arithmetic(agent):
    """Linear Q = 3 a_1 + 4 a_2: constant gradient (-3, -4), norm 5. With the bound 5e-5 the
    clipped gradient is ~(3e-5, 4e-5), comparable to Adam's eps, so each step is
    0.03 * |g| / (|g| + 1e-5) = (0.0225, 0.024); unclipped it is ~0.03. Two steps each."""
    linear = lambda obs, a: a @ jnp.array([3.0, 4.0])  # noqa: E731
    start = jnp.array([[-0.5, -0.5]])
    clipped = with_hp(with_critic(agent, [linear, linear]), action_gradient_steps=2,
                      action_max_norm=5e-5)
    out, _ = dipo.improve_actions(clipped, None, jnp.zeros((1, OBS)), start)
    np.testing.assert_allclose(out, start + 2 * jnp.array([0.022499998875, 0.02399999904]), rtol=1e-5)
    free = with_hp(clipped, action_max_norm=0.0)
    out, _ = dipo.improve_actions(free, None, jnp.zeros((1, OBS)), start)
    np.testing.assert_allclose(out, start + 2 * jnp.array([0.0299999, 0.02999993]), rtol=1e-5)


def test_improved_actions_are_clamped_to_the_box(agent):
    linear = lambda obs, a: a @ jnp.array([3.0, -4.0])  # noqa: E731
    ag = with_critic(agent, [linear, linear])
    out, _ = dipo.improve_actions(ag, None, jnp.zeros((1, OBS)), jnp.array([[0.95, -0.95]]))
    np.testing.assert_array_equal(out, [[1.0, -1.0]])


# ============================================================== critic target, BC target, updates

def test_td_target_uses_the_target_actor_sample_and_target_critic_min(agent):
    batch = first(make_batch(jax.random.PRNGKey(3), 1, 4, masks=1.0))
    batch["masks"] = jnp.array([1.0, 0.0, 1.0, 1.0])
    ag = agent.replace(actor=agent.actor.replace(apply_fn=x0_oracle(agent.schedule)),
                       actor_target={"scale": jnp.array(2.0)})
    online = jax.tree_util.tree_map(lambda p: p + 0.1, ag.critic.params)
    ag = ag.replace(critic=ag.critic.replace(params=online))
    y = dipo.td_target(ag, jax.random.PRNGKey(0), batch)
    s2 = batch["next_observations"]
    a2 = jnp.clip(2.0 * s2[:, :ACT], -1.0, 1.0)  # the target actor's (scale 2) sample
    q = ag.critic.apply_fn({"params": ag.target_critic}, s2, a2)
    np.testing.assert_allclose(y, batch["rewards"] + GAMMA * batch["masks"] * q.min(0), rtol=1e-5)
    q_online = ag.critic.apply_fn({"params": online}, s2, a2)
    assert not np.allclose(y, batch["rewards"] + GAMMA * batch["masks"] * q_online.min(0))


def test_critic_loss_is_the_sum_of_the_heads_mse(agent):
    batch = first(make_batch(jax.random.PRNGKey(4), 1, 4))
    _, key = jax.random.split(agent.rng)  # critic_step's key
    y = dipo.td_target(agent, key, batch)
    qs = agent.critic.apply_fn({"params": agent.critic.params}, batch["observations"], batch["actions"])
    _, info = dipo.critic_step(agent, batch)
    expected = np.sum(np.mean((np.asarray(qs) - np.asarray(y)[None]) ** 2, axis=1))
    assert float(info["critic_loss"]) == pytest.approx(expected, rel=1e-5)


def test_bc_target_is_the_improved_action(agent):
    """dipo_step imitates the improved actions: a noise oracle that knows them gives bc_loss 0; one
    that knows the stored actions does not."""
    batch = first(make_batch(jax.random.PRNGKey(5), 1, 4))
    ag = with_critic(agent, [quadratic([0.5, -0.5]), quadratic([0.4, -0.6])])
    improved, _ = dipo.improve_actions(ag, None, batch["observations"], batch["actions"])
    assert float(jnp.abs(improved - batch["actions"]).mean()) > 0.1
    for clean, zero in ((improved, True), (batch["actions"], False)):
        stubbed = ag.replace(actor=ag.actor.replace(apply_fn=noise_oracle(ag.schedule, clean)))
        _, info = dipo.dipo_step(stubbed, batch)
        assert (float(info["bc_loss"]) < 1e-8) == zero, float(info["bc_loss"])
        assert float(info["action_q_gain"]) > 0


def test_pretraining_imitates_the_dataset_actions(agent):
    batch = first(make_batch(jax.random.PRNGKey(6), 1, 4))
    stubbed = agent.replace(actor=agent.actor.replace(
        apply_fn=noise_oracle(agent.schedule, batch["actions"])))
    _, info = dipo.pretrain_step(stubbed, batch)
    assert float(info["bc_loss"]) < 1e-8 and "action_shift" not in info


def test_bc_loss_is_the_mean_over_action_dims(agent):
    """A noise oracle offset by d per dim gives eps-MSE mean(d^2) (DIPO's F.mse_loss), not sum."""
    obs, actions = jnp.zeros((4, OBS)), jnp.full((4, ACT), 0.2)
    base = noise_oracle(agent.schedule, actions)
    off = lambda v, o, a, t, training=False, rngs=None: base(v, o, a, t) + jnp.array([1.0, 2.0])  # noqa: E731
    ag = agent.replace(actor=agent.actor.replace(apply_fn=off))
    assert float(dipo.bc_loss(ag, None, jax.random.PRNGKey(0), obs, actions)) == pytest.approx(2.5, rel=1e-5)


def test_update_moves_both_targets_by_tau(agent):
    batch = make_batch(jax.random.PRNGKey(7), 1, 4)
    new, info = dipo.update(agent, batch)
    assert all(np.isfinite(float(v)) for v in info.values())
    tau = agent.hp.tau
    assert int(new.critic.step) == 1 and int(new.actor.step) == 1
    for old_t, params, new_t in ((agent.target_critic, new.critic.params, new.target_critic),
                                 (agent.actor_target, new.actor.params, new.actor_target)):
        expected = jax.tree_util.tree_map(lambda t, p: (1 - tau) * t + tau * p, old_t, params)
        assert_trees_close(new_t, expected, rtol=1e-6, atol=1e-7)


def test_acting_is_noisy_online_policy_eval_is_noise_free(agent):
    obs = jax.random.normal(jax.random.PRNGKey(9), (16, OBS))
    key = jax.random.PRNGKey(10)
    # the actor target must not matter for acting: replace it with garbage
    ag = agent.replace(actor_target=jax.tree_util.tree_map(lambda p: p + 5.0, agent.actor_target))
    act = dipo.sample_actions(ag, obs, key)
    ev = dipo.eval_actions(ag, obs, key)
    sample = lambda r: diffusion.posterior_sample(ag.actor.apply_fn, ag.actor.params, ag.schedule,  # noqa: E731
                                                  key, obs, ACT, r)
    np.testing.assert_allclose(act, sample(1.0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ev, sample(0.0), rtol=1e-5, atol=1e-6)
    assert not np.allclose(act, ev)
    assert np.all(np.abs(np.asarray(act)) <= 1.0) and act.shape == (16, ACT)


def test_update_compiles_once_and_scans_every_minibatch():
    """create()'s leaves have update()'s types (one compile over the loop's calls), and each of the
    utd minibatches gets a full DIPO step (the code's train(iterations) loop)."""
    update = fresh_jit(dipo.update)
    rng = np.random.default_rng(0)
    ag = dipo.create(0, OBS, ACT, tiny_cfg(utd=2))
    for _ in range(3):
        ag, _ = update(ag, loop_batch(rng, 2, 4, OBS, ACT))
    assert update._cache_size() == 1
    assert int(ag.critic.step) == 6 and int(ag.actor.step) == 6


# ============================================================== end to end

RUN = {"method": "dipo", "scale": "mini", "steps": 12, "pretrain_steps": 20, "pretrain_chunk": 10,
       "eval_interval": 6, "eval_episodes": 1, "log_interval": 6, "progress": False,
       "dataset.num_demos": 3, "start_training": 4, "agent.hidden_dims": (16, 16),
       "agent.diffusion_width": 16, "agent.diffusion_layers": 2, "agent.time_dim": 8, "agent.T": 3,
       "agent.action_gradient_steps": 3, "agent.utd": 2, "agent.batch_size": 8}



@pytest.mark.parametrize("setting", ["online", "offline_to_online"])
def test_tiny_run_writes_eval_csv(tiny_world, tmp_path, setting):
    _, rows, train_rows = tiny_train_run(tmp_path, {**RUN, "setting": setting})
    assert_eval_rows(rows, [0, 6, 12])
    phases = {r["phase"] for r in train_rows}
    assert phases == ({"online"} if setting == "online" else {"pretrain", "online"})
    online = [r for r in train_rows if r["phase"] == "online"]
    assert all(np.isfinite(float(r["critic_loss"])) and r["bc_loss"] and r["action_q_gain"]
               for r in online)
