"""DAC baseline (baselines/dac.py): the Q-gradient guidance term on a quadratic critic, the actor
loss by hand, its sign (a guided step raises Q), the LCB target, the argmax of the mean Q, the
actor EMA schedule and eta's dual ascent, compile-once, and a tiny end-to-end run.

Stubs: critic apply_fn Q_h(s, a) = f(s, a) + offsets[h] (+ params["shift"] to tell the target
critic from the online one); actor apply_fn whose DDPM samples land on clip(s[:, :A] + shift),
shift read from the parameters given to the sampler (so EMA and online weights are told apart).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from baselines import dac
from expo import config as config_lib
from expo.config import ConfigError
from expo.nets.ensemble import QEnsemble
from tests.conftest import (assert_eval_rows, fresh_jit, jax_batch, loop_batch, leaves,
                            tiny_train_run, trees_equal, with_hp)

OBS, ACT = 3, 2
TINY = dict(hidden_dims=(8, 8), num_qs=4, T=3, N=3, num_target_samples=2, diffusion_width=8,
            diffusion_blocks=1, time_dim=4, utd=2, batch_size=4, critic_lr=3e-4, eta=1.0,
            eta_lr=0.0, rho=1.0, max_q_backup=False)
GAMMA = 0.99


def tiny_cfg(**kw):
    cfg = dac.get_config()
    cfg.update(TINY)
    cfg.update(kw)
    return cfg


@pytest.fixture(scope="module")
def agent():
    return jax.jit(lambda: dac.create(0, OBS, ACT, tiny_cfg()))()


def with_critic(agent, f, offsets, target_shift=0.0):
    offsets = jnp.asarray(offsets, jnp.float32)

    def apply_fn(variables, obs, actions, training=False):
        return f(obs, actions)[None] + offsets[:, None] + variables["params"]["shift"]

    return agent.replace(critic=agent.critic.replace(apply_fn=apply_fn,
                                                     params={"shift": jnp.float32(0.0)}),
                         target_critic={"shift": jnp.float32(target_shift)})


def with_shift_actor(agent, online_shift, ema_shift):
    """DDPM samples become clip(s[:, :A] + shift) exactly: the eps that makes each posterior mean
    land on that point (the last step adds no noise)."""
    s = agent.schedule

    def apply_fn(variables, obs, a_t, t, training=False, rngs=None):
        t = t[:, 0]
        alpha, abar, beta = s.alphas[t][:, None], s.alpha_bars[t][:, None], s.betas[t][:, None]
        target = obs[:, :ACT] + variables["params"]["shift"]
        return (a_t - jnp.sqrt(alpha) * target) * jnp.sqrt(1.0 - abar) / beta

    return agent.replace(actor=agent.actor.replace(apply_fn=apply_fn,
                                                   params={"shift": jnp.float32(online_shift)}),
                         actor_ema={"shift": jnp.float32(ema_shift)})


def make_batch(key, utd, batch):
    return jax_batch(key, utd, batch, OBS, ACT)


# ============================================================== config

def test_config_per_domain_defaults():
    big = config_lib.build_config({"method": "dac", "task": "antmaze-large-play-v2"})["agent"]
    med = config_lib.build_config({"method": "dac", "task": "antmaze-medium-diverse-v2"})["agent"]
    lift = config_lib.build_config({"method": "dac", "task": "lift", "setting": "online"})["agent"]
    assert (big["eta"], big["rho"], big["critic_lr"], big["max_q_backup"]) == (0.1, 1.1, 1e-3, True)
    assert (med["eta"], med["rho"], med["critic_lr"], med["max_q_backup"]) == (0.1, 1.0, 3e-4, True)
    assert (lift["eta"], lift["rho"], lift["critic_lr"], lift["max_q_backup"]) == (1.0, 1.0, 3e-4, False)
    assert lift["num_qs"] == 10 and lift["T"] == 5 and lift["N"] == 10 and lift["eta_lr"] == 0.0
    assert "online" in lift["deviations"]
    assert config_lib.build_config({"method": "dac", "agent.rho": 2.0})["agent"]["rho"] == 2.0


@pytest.mark.parametrize("kw", [dict(num_qs=1), dict(N=0), dict(rho=-1.0), dict(eta=-0.1),
                                dict(critic_activation="tanh"), dict(eta_min=2.0, eta_max=1.0),
                                dict(max_q_backup=None)])
def test_create_rejects_bad_configs(kw):
    with pytest.raises(ConfigError) as e:
        dac.create(0, OBS, ACT, tiny_cfg(**kw))
    assert "\n" not in str(e.value) and "agent." in str(e.value)


def test_q_ensemble_activation_option_is_used():
    """The shared QEnsemble's activation field (added for DAC's mish critic) reaches every layer."""
    obs, act = jnp.array([[0.3, -1.2, 0.5]]), jnp.array([[0.7, -0.4]])
    mish = QEnsemble((5, 4), num_qs=2, use_layer_norm=False, activation=jax.nn.mish)
    params = mish.init(jax.random.PRNGKey(0), obs, act)["params"]
    got = mish.apply({"params": params}, obs, act)

    def by_hand(p):
        x = jnp.concatenate([obs, act], -1)
        x = jax.nn.mish(x @ p["MLP_0"]["Dense_0"]["kernel"] + p["MLP_0"]["Dense_0"]["bias"])
        x = jax.nn.mish(x @ p["MLP_0"]["Dense_1"]["kernel"] + p["MLP_0"]["Dense_1"]["bias"])
        return (x @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"])[:, 0]

    expected = jnp.stack([by_hand(jax.tree_util.tree_map(lambda v: v[h], params)) for h in range(2)])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    relu = QEnsemble((5, 4), num_qs=2, use_layer_norm=False)  # default stays relu
    assert not np.allclose(relu.apply({"params": params}, obs, act), got)


# ============================================================== the Q-gradient guidance

C = np.array([0.2, -0.3], np.float32)
OFFSETS = [-4.0, -2.0, 0.0, 1.0]


def quadratic(s, a):
    return -jnp.sum((a - C) ** 2, -1)


def test_guidance_weights_on_a_quadratic_critic(agent):
    # Q_h = -||a - c||^2 + o_h: grad of the head mean at a_t is -2 (a_t - c); the norm is the mean
    # over heads and batch of |Q_h(s, a_batch)|; the weight is sqrt(1 - abar_t) grad / norm.
    ag = with_critic(agent, quadratic, OFFSETS)
    obs = jnp.zeros((3, OBS))
    actions = jnp.array([[0.5, 0.5], [-1.0, 0.0], [0.2, -0.3]])
    noisy = jnp.array([[1.0, -1.0], [0.0, 0.5], [-0.6, 0.2]])
    t = jnp.array([0, 2, 1])
    w, q_norm = dac.guidance_weights(ag, ag.target_critic, obs, actions, noisy, t)
    q_batch = -((np.asarray(actions) - C) ** 2).sum(-1)[None] + np.array(OFFSETS)[:, None]
    norm = np.abs(q_batch).mean()
    abar = np.asarray(ag.schedule.alpha_bars)[np.asarray(t)]
    expected = np.sqrt(1 - abar)[:, None] * (-2.0 * (np.asarray(noisy) - C)) / (norm + 1e-6)
    np.testing.assert_allclose(q_norm, norm, rtol=1e-6)
    np.testing.assert_allclose(w, expected, rtol=1e-5)


def test_actor_loss_hand_values():
    eps_pred = jnp.array([[0.5, -1.0], [2.0, 0.0]])
    noise = jnp.array([[0.0, -1.0], [1.0, 1.0]])
    w = jnp.array([[0.2, 0.4], [-0.1, 3.0]])
    loss, bc, guid = dac.actor_loss(eps_pred, noise, w, 0.5)
    np.testing.assert_allclose(bc, (0.25 + 0 + 1 + 1) / 4)           # mean over batch AND dims
    np.testing.assert_allclose(guid, (0.1 - 0.4 - 0.2 + 0.0) / 4)
    np.testing.assert_allclose(loss, 0.5 * 0.5625 - 0.125)


def test_guided_step_moves_the_denoised_action_up_the_q_gradient(agent):
    """The sign: one gradient step on the guidance term (eta = 0) changes eps_theta so that the
    DDPM posterior mean (a_t - beta / sqrt(1 - abar) eps) / sqrt(alpha) gets a higher Q."""
    ag = with_critic(agent, quadratic, [0.0, 0.0, 0.0, 0.0])
    s = ag.schedule
    noisy = jnp.array([[0.9, 0.8], [-0.7, -0.9]])
    t = jnp.array([2, 1])
    w, _ = dac.guidance_weights(ag, ag.target_critic, jnp.zeros((2, OBS)), noisy, noisy, t)
    eps0 = jnp.zeros((2, ACT))
    g = jax.grad(lambda e: dac.actor_loss(e, jnp.zeros_like(e), w, 0.0)[0])(eps0)
    eps1 = eps0 - 0.5 * g

    def posterior_mean(e):
        alpha, abar, beta = s.alphas[t][:, None], s.alpha_bars[t][:, None], s.betas[t][:, None]
        return (noisy - beta / jnp.sqrt(1 - abar) * e) / jnp.sqrt(alpha)

    q0 = quadratic(None, posterior_mean(eps0))
    q1 = quadratic(None, posterior_mean(eps1))
    assert np.all(np.asarray(q1) > np.asarray(q0))


def test_actor_step_eta_dual_ascent_and_ema_schedule(agent):
    batch = jax.tree_util.tree_map(lambda x: x[0], make_batch(jax.random.PRNGKey(0), 1, 4))
    step = jax.jit(dac.actor_step)
    # BC far below the threshold: eta - eta_lr (the excess is clipped to -1), then clipped to eta_min
    below = with_hp(agent, eta_lr=0.5, bc_threshold=100.0, eta_min=0.3)
    for eta, expected in ((1.0, 0.5), (0.6, 0.3)):
        new, info = step(below.replace(eta=jnp.float32(eta)), batch)
        np.testing.assert_allclose(new.eta, expected, rtol=1e-6)
    assert np.isfinite(info["actor_loss"]) and np.isfinite(info["guidance_loss"])
    # far above: eta + eta_lr, clipped to eta_max
    above = with_hp(agent, eta_lr=0.5, bc_threshold=-100.0, eta_max=1.2)
    for eta, expected in ((0.5, 1.0), (1.0, 1.2)):
        new, _ = step(above.replace(eta=jnp.float32(eta)), batch)
        np.testing.assert_allclose(new.eta, expected, rtol=1e-6)

    # EMA: only when the update count n (before this update) is a multiple of 5 and above 1000
    def at(n):
        return above.replace(actor=above.actor.replace(step=jnp.asarray(n, above.actor.step.dtype)),
                             actor_ema=jax.tree_util.tree_map(lambda p: p + 1.0, above.actor.params))

    for n, moves in ((0, False), (1000, False), (1005, True), (1006, False)):
        old = at(n)
        new, _ = step(old, batch)
        if moves:
            tau = agent.hp.tau
            expected = jax.tree_util.tree_map(lambda m, p: (1 - tau) * m + tau * p, old.actor_ema,
                                              new.actor.params)
            for x, y in zip(leaves(new.actor_ema), leaves(expected)):
                np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-6)
        else:
            assert trees_equal(new.actor_ema, old.actor_ema), n


# ============================================================== LCB target

def test_lcb_value_hand_values():
    # [heads 3, batch 2, samples 2]
    q = jnp.array([[[1.0, 3.0], [0.0, 0.0]],
                   [[2.0, 2.0], [1.0, 1.0]],
                   [[0.0, 4.0], [2.0, 2.0]]])
    sd = np.sqrt(2.0 / 3.0)  # population std of (0, 1, 2) and of (3, 2, 4)
    # mean over samples: row 0 -> (2, 2, 2): no spread; row 1 -> (0, 1, 2)
    np.testing.assert_allclose(dac.lcb_value(q, 1.0, False), [2.0, 1.0 - sd], rtol=1e-6)
    np.testing.assert_allclose(dac.lcb_value(q, 0.5, False), [2.0, 1.0 - 0.5 * sd], rtol=1e-6)
    # max over samples (antmaze): row 0 -> (3, 2, 4)
    np.testing.assert_allclose(dac.lcb_value(q, 1.0, True), [3.0 - sd, 1.0 - sd], rtol=1e-6)


def test_td_target_lcb_over_heads_with_ema_next_actions(agent):
    # next actions = clip(s'[:, :2] + 0.1) from the EMA (the online actor would add -0.5);
    # Q'_h = sum(a) + o_h + 1 (target shift): LCB = sum(a') + mean(o) + 1 - rho std(o)
    ag = with_shift_actor(with_critic(agent, lambda s, a: a.sum(-1), OFFSETS, target_shift=1.0),
                          online_shift=-0.5, ema_shift=0.1)
    batch = {"rewards": jnp.array([1.0, 0.0, -1.0]), "masks": jnp.array([1.0, 0.0, 1.0]),
             "next_observations": jnp.array([[0.2, 0.3, 5.0], [0.0, 0.0, 0.0], [0.95, -0.4, 1.0]])}
    y = jax.jit(dac.td_target)(ag, jax.random.PRNGKey(0), batch)
    a_next = np.clip(np.asarray(batch["next_observations"])[:, :2] + 0.1, -1, 1)
    o = np.array(OFFSETS)
    v = a_next.sum(-1) + o.mean() + 1.0 - o.std()
    np.testing.assert_allclose(y, [1.0 + GAMMA * v[0], 0.0, -1.0 + GAMMA * v[2]], rtol=1e-5)


# ============================================================== argmax selection

CANDS = jnp.array([[[0.9, 0.0], [0.3, 0.4], [0.1, 0.2]],
                   [[-0.5, -0.5], [0.2, -0.9], [0.0, 0.1]]])


def test_select_argmax_is_argmax_of_mean_over_target_heads(agent):
    # heads Q_0 = a_0, Q_1 = a_1 (others copies): row 0 means (0.45, 0.35, 0.15) -> index 0
    # (the min would pick index 1); row 1 means (-0.5, -0.35, 0.05) -> index 2
    def heads(s, a):
        return jnp.stack([a[:, 0], a[:, 1], a[:, 0], a[:, 1]])

    def apply_fn(variables, obs, actions, training=False):
        return heads(obs, actions) * variables["params"]["scale"]

    # online critic has scale -1 (it would pick the worst), target +1
    ag = agent.replace(critic=agent.critic.replace(apply_fn=apply_fn, params={"scale": jnp.float32(-1.0)}),
                       target_critic={"scale": jnp.float32(1.0)})
    out = dac.select_argmax(ag, jnp.zeros((2, OBS)), CANDS)
    np.testing.assert_allclose(out, [[0.9, 0.0], [0.0, 0.1]])


def test_sample_actions_uses_the_online_policy(agent):
    # every sample of the online policy lands on clip(s[:, :2] - 0.5); the EMA one would add 0.1
    ag = with_shift_actor(with_critic(agent, lambda s, a: a.sum(-1), OFFSETS), -0.5, 0.1)
    obs = jnp.array([[0.2, 0.3, 5.0], [-0.9, 0.4, 0.0]])
    out = dac.sample_actions(ag, obs, jax.random.PRNGKey(0))
    np.testing.assert_allclose(out, np.clip(np.asarray(obs)[:, :2] - 0.5, -1, 1), atol=1e-5)


def test_sample_actions_real_networks_shape_and_range(agent):
    obs = jax.random.normal(jax.random.PRNGKey(0), (5, OBS))
    a = dac.sample_actions(agent, obs, jax.random.PRNGKey(1))
    assert a.shape == (5, ACT) and np.all(np.isfinite(a)) and np.all(np.abs(a) <= 1.0)


# ============================================================== updates

def test_update_trains_critic_and_actor_and_compiles_once():
    """utd full updates (critic, then actor) per call; the agent is built eagerly, as the loop
    builds it, and update() compiles once over several calls."""
    update = fresh_jit(dac.update)
    rng = np.random.default_rng(0)
    ag0 = ag = dac.create(0, OBS, ACT, tiny_cfg(eta_lr=0.001))
    for _ in range(3):
        ag, info = update(ag, loop_batch(rng, 2, 4, OBS, ACT))
    assert update._cache_size() == 1
    assert {"critic_loss", "actor_loss", "bc_loss", "guidance_loss", "eta", "q_mean"} <= set(info)
    assert all(np.isfinite(np.asarray(v)) for v in info.values())
    assert int(ag.critic.step) == 6 and int(ag.actor.step) == 6
    assert not trees_equal(ag.critic.params, ag0.critic.params)
    assert not trees_equal(ag.target_critic, ag0.target_critic)
    assert not trees_equal(ag.actor.params, ag0.actor.params)
    assert trees_equal(ag.actor_ema, ag0.actor_ema)  # no EMA step before 1000 updates (authors)
    assert float(ag.eta) != 1.0  # dual ascent moved eta


# ============================================================== end to end

E2E = {
    "method": "dac", "scale": "mini", "steps": 16, "pretrain_steps": 20, "pretrain_chunk": 10,
    "eval_interval": 8, "eval_episodes": 1, "log_interval": 8, "progress": False,
    "dataset.num_demos": 3, "agent.hidden_dims": (16, 16), "agent.diffusion_width": 16,
    "agent.time_dim": 8, "agent.N": 2, "agent.num_target_samples": 2, "agent.num_qs": 3,
    "agent.T": 2, "agent.utd": 1, "agent.batch_size": 8,
}



@pytest.mark.parametrize("setting", [pytest.param("offline_to_online", marks=pytest.mark.slow), "online"])
def test_tiny_run_writes_eval_csv(tiny_world, tmp_path, setting):
    _, rows, train_rows = tiny_train_run(tmp_path, {**E2E, "setting": setting})
    assert_eval_rows(rows, [0, 8, 16])
    expected = {"online"} if setting == "online" else {"pretrain", "online"}
    # pretraining and fine-tuning log the same objective; eta_lr = 0 keeps eta at its default 1
    assert {r["phase"] for r in train_rows} == expected
    assert all(r["critic_loss"] and r["guidance_loss"] and r["bc_loss"] for r in train_rows)
    assert all(float(r["eta"]) == 1.0 for r in train_rows)
