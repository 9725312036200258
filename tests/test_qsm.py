"""QSM baseline (baselines/qsm.py) against hand-computed numbers.

Hand values (plain float64 arithmetic) use the VP schedule with T = 2 (tests/test_diffusion.py):
abar = (0.2759598209859731, 0.00640933344625638). Score-matching example: actions
[[0.5, -0.5], [0.2, 0.1]], noise [[1, 0], [0, -1]], t = [0, 1] give the noisy actions
a_t = sqrt(abar_t) a + sqrt(1 - abar_t) noise = [[1.11356, -0.26266], [0.01601, -0.98878]]; the
critic heads Q_h = -||a - c_h||^2 with c_1 = (0.3, 0.3), c_2 = (-0.1, 0.5) have mean action
gradient gbar = -2 (a_t - (0.1, 0.4)); with eps_theta = (0.1, -0.2) everywhere and M = 50,
mean((eps + M gbar)^2) = 8480.38087457087 (at the CLEAN action it would be 2660.525).

Stubs: a critic whose heads are known functions of the action; an actor whose DDPM samples land
exactly on clip(obs[:, :A]) (it predicts the eps that puts the posterior mean there; the last step,
t = 0, adds no noise), as in tests/test_expo_agent.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from baselines import qsm
from expo import config as config_lib
from expo.config import ConfigError
from tests.conftest import assert_eval_rows, fresh_jit, jax_batch, loop_batch, tiny_train_run

OBS, ACT = 3, 2
TINY = dict(hidden_dims=(8, 8), diffusion_width=8, diffusion_layers=2, time_dim=4,
            time_hidden_dims=(8, 8), T=2, utd=1, batch_size=4)
GAMMA = 0.99


def tiny_cfg(**kw):
    cfg = qsm.get_config()
    cfg.update(TINY)
    cfg.update(kw)
    return cfg


@pytest.fixture(scope="module")
def agent():
    cfg = tiny_cfg()
    return jax.jit(lambda: qsm.create(0, OBS, ACT, cfg))()  # jit only for speed; same code


def with_critic(agent, fs):
    def apply_fn(variables, obs, actions, training=False):
        return jnp.stack([f(obs, actions) for f in fs])

    return agent.replace(critic=agent.critic.replace(apply_fn=apply_fn))


def with_base_actor(agent):
    """DDPM samples become clip(observations[:, :ACT]) exactly (see module docstring)."""
    s = agent.schedule

    def apply_fn(variables, obs, a_t, t, training=False, rngs=None):
        t = t[:, 0]
        alpha, abar, beta = s.alphas[t][:, None], s.alpha_bars[t][:, None], s.betas[t][:, None]
        return (a_t - jnp.sqrt(alpha) * obs[:, :ACT]) * jnp.sqrt(1.0 - abar) / beta

    return agent.replace(actor=agent.actor.replace(apply_fn=apply_fn))


def quadratic(c):
    c = jnp.asarray(c)
    return lambda obs, a: -jnp.sum((a - c) ** 2, axis=-1)


def make_batch(key, utd, batch, masks=1.0):
    return jax_batch(key, utd, batch, OBS, ACT, obs_bound=0.9, masks=masks)


def first(batch):
    return jax.tree_util.tree_map(lambda x: x[0], batch)


def assert_trees_close(a, b, **kw):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), **kw)


# ============================================================== config and networks

def test_defaults_are_the_authors():
    cfg = qsm.get_config()
    assert cfg["M"] == 50.0 and cfg["T"] == 5 and cfg["beta_schedule"] == "vp"
    assert cfg["hidden_dims"] == (512, 512) and cfg["diffusion_width"] == 512
    assert cfg["diffusion_layers"] == 2 and cfg["num_qs"] == 2
    assert cfg["target_noise"] == 0.1 and cfg["explore_noise"] == 0.1 and cfg["utd"] == 1


def test_networks_have_the_authors_layer_sizes():
    shapes = jax.eval_shape(lambda: qsm.create(0, 19, 7, qsm.get_config()))
    actor = jax.tree_util.tree_map(lambda x: x.shape, shapes.actor.params)
    assert actor["FourierFeatures_0"]["kernel"] == (32, 1)  # 64 learnable features
    assert [actor["MLP_0"][f"Dense_{i}"]["kernel"] for i in range(2)] == [(64, 128), (128, 128)]
    assert [actor["MLP_1"][f"Dense_{i}"]["kernel"] for i in range(3)] == [
        (7 + 19 + 128, 512), (512, 512), (512, 7)]
    critic = jax.tree_util.tree_map(lambda x: x.shape, shapes.critic.params)
    assert critic["MLP_0"]["Dense_0"]["kernel"] == (2, 26, 512)
    assert critic["MLP_0"]["Dense_1"]["kernel"] == (2, 512, 512) and "Dense_2" not in critic["MLP_0"]


@pytest.mark.parametrize("key,value,fragment", [
    ("M", 0.0, "agent.M"), ("T", 0, "agent.T"), ("beta_schedule", "x", "agent.beta_schedule"),
    ("target_noise", -0.1, "agent.target_noise"), ("batch_size", 3, "agent.batch_size"),
])
def test_validate_config_names_the_key(key, value, fragment):
    with pytest.raises(ConfigError, match=fragment):
        qsm.validate_config(tiny_cfg(**{key: value}))


def test_mini_scale_resolves():
    cfg = config_lib.build_config({"method": "qsm", "scale": "mini", "setting": "online"})
    assert cfg["agent"]["T"] == 5 and cfg["agent"]["diffusion_width"] == 64 and cfg["agent"]["utd"] == 1  # UTD 1 is not raised


# ============================================================== the score-matching target

HAND_ACTIONS = jnp.array([[0.5, -0.5], [0.2, 0.1]])
HAND_NOISE = jnp.array([[1.0, 0.0], [0.0, -1.0]])
HAND_T = jnp.array([0, 1])
HAND_A_T = [[1.1135648955115514, -0.26265939017383955], [0.016011662557344108, -0.9887843505317948]]


def hand_agent(agent, eps_fn, record=None):
    ag = with_critic(agent, [quadratic([0.3, 0.3]), quadratic([-0.1, 0.5])])

    def apply_fn(variables, obs, a_t, t, training=False, rngs=None):
        if record is not None:
            record.append((np.asarray(a_t), np.asarray(t)))
        return eps_fn(a_t)

    return ag.replace(actor=ag.actor.replace(apply_fn=apply_fn))


def test_mean_action_gradient_averages_the_heads(agent):
    ag = with_critic(agent, [quadratic([0.3, 0.3]), quadratic([-0.1, 0.5])])
    g = qsm.mean_action_gradient(ag, ag.critic.params, jnp.zeros((2, OBS)), HAND_ACTIONS)
    np.testing.assert_allclose(g, -2.0 * (HAND_ACTIONS - jnp.array([0.1, 0.4])), rtol=1e-6)


def test_score_matching_loss_hand_value_at_the_noisy_action(agent):
    record = []
    ag = hand_agent(agent, lambda a_t: jnp.broadcast_to(jnp.array([0.1, -0.2]), a_t.shape), record)
    loss, _ = qsm.score_matching_loss(None, ag, jnp.zeros((2, OBS)), HAND_ACTIONS, HAND_T, HAND_NOISE)
    np.testing.assert_allclose(loss, 8480.38087457087, rtol=1e-5)  # 2660.525 at the clean action
    a_t, t = record[0]
    np.testing.assert_allclose(a_t, HAND_A_T, rtol=1e-5)
    np.testing.assert_array_equal(t, [[0], [1]])


def test_loss_is_zero_when_eps_is_minus_M_times_the_q_gradient(agent):
    """The sign convention: eps_theta is regressed onto -M * gbar (the code's (-M g - eps)^2), so the
    implied score -eps / sqrt(1 - abar) is +M gbar / sqrt(1 - abar): uphill in Q."""
    ag = hand_agent(agent, lambda a_t: -50.0 * (-2.0 * (a_t - jnp.array([0.1, 0.4]))))
    loss, _ = qsm.score_matching_loss(None, ag, jnp.zeros((2, OBS)), HAND_ACTIONS, HAND_T, HAND_NOISE)
    assert float(loss) < 1e-8
    flipped = hand_agent(agent, lambda a_t: 50.0 * (-2.0 * (a_t - jnp.array([0.1, 0.4]))))
    loss, _ = qsm.score_matching_loss(None, flipped, jnp.zeros((2, OBS)), HAND_ACTIONS, HAND_T, HAND_NOISE)
    assert float(loss) > 1000


# ============================================================== the critic and acting

def test_noisy_next_action_is_sample_plus_01_gaussian_clipped(agent):
    ag = with_base_actor(agent)
    n = 4000
    obs = jnp.concatenate([jnp.full((n, 1), 0.2), jnp.full((n, 1), 1.0), jnp.zeros((n, 1))], axis=1)
    a = np.asarray(qsm.noisy_sample(ag, jax.random.PRNGKey(0), obs, ag.hp.target_noise))
    d = a[:, 0] - 0.2
    assert abs(d.mean()) < 0.01 and abs(d.std() - 0.1) < 0.01
    assert np.all(a[:, 1] <= 1.0) and 0.4 < np.mean(a[:, 1] == 1.0) < 0.6  # clipped at the box
    assert ag.hp.target_noise == 0.1


def test_td_target_is_min_of_target_heads_at_the_noisy_next_action(agent):
    batch = first(make_batch(jax.random.PRNGKey(3), 1, 4))
    batch["masks"] = jnp.array([1.0, 0.0, 1.0, 1.0])
    ag = with_base_actor(agent)
    online = jax.tree_util.tree_map(lambda p: p + 0.1, ag.critic.params)
    ag = ag.replace(critic=ag.critic.replace(params=online))
    y, a2 = qsm.td_target(ag, jax.random.PRNGKey(0), batch)
    s2 = batch["next_observations"]
    d = np.asarray(a2 - jnp.clip(s2[:, :ACT], -1, 1))
    assert 0 < np.abs(d).max() < 0.5  # the 0.1 noise is there
    q = ag.critic.apply_fn({"params": ag.target_critic}, s2, a2)
    np.testing.assert_allclose(y, batch["rewards"] + GAMMA * batch["masks"] * q.min(0), rtol=1e-5)
    q_online = ag.critic.apply_fn({"params": online}, s2, a2)
    assert not np.allclose(y, batch["rewards"] + GAMMA * batch["masks"] * q_online.min(0))


def test_critic_loss_is_each_heads_mse(agent):
    batch = first(make_batch(jax.random.PRNGKey(4), 1, 4))
    _, key = jax.random.split(agent.rng)  # critic_step's key
    y, _ = qsm.td_target(agent, key, batch)
    qs = agent.critic.apply_fn({"params": agent.critic.params}, batch["observations"], batch["actions"])
    _, info = qsm.critic_step(agent, batch)
    expected = np.sum(np.mean((np.asarray(qs) - np.asarray(y)[None]) ** 2, axis=1))
    assert float(info["critic_loss"]) == pytest.approx(expected, rel=1e-5)


def test_acting_adds_01_noise_eval_does_not(agent):
    ag = with_base_actor(agent)
    obs = jax.random.uniform(jax.random.PRNGKey(5), (2000, OBS), minval=-0.8, maxval=0.8)
    ev = np.asarray(qsm.eval_actions(ag, obs, jax.random.PRNGKey(6)))
    np.testing.assert_allclose(ev, np.asarray(obs[:, :ACT]), atol=1e-5)
    act = np.asarray(qsm.sample_actions(ag, obs, jax.random.PRNGKey(6)))
    d = act - np.asarray(obs[:, :ACT])
    assert abs(d.std() - 0.1) < 0.01 and np.all(np.abs(act) <= 1.0)


# ============================================================== updates

def test_update_moves_target_by_tau_and_trains_actor(agent):
    batch = make_batch(jax.random.PRNGKey(7), 1, 4)
    new, info = qsm.update(agent, batch)
    assert all(np.isfinite(float(v)) for v in info.values())
    assert {"actor_loss", "critic_loss", "q_grad_norm"} <= set(info)
    assert int(new.critic.step) == 1 and int(new.actor.step) == 1
    tau = agent.hp.tau
    expected = jax.tree_util.tree_map(lambda t, p: (1 - tau) * t + tau * p, agent.target_critic,
                                      new.critic.params)
    assert_trees_close(new.target_critic, expected, rtol=1e-6, atol=1e-7)


def test_pretraining_imitates_the_dataset_actions(agent):
    batch = first(make_batch(jax.random.PRNGKey(8), 1, 4))
    s, clean = agent.schedule, batch["actions"]

    def oracle(variables, obs, a_t, t, training=False, rngs=None):
        abar = s.alpha_bars[t[:, 0]][:, None]
        return (a_t - jnp.sqrt(abar) * clean) / jnp.sqrt(1.0 - abar)

    stubbed = agent.replace(actor=agent.actor.replace(apply_fn=oracle))
    _, info = qsm.pretrain_step(stubbed, batch)
    assert float(info["bc_loss"]) < 1e-8 and "actor_loss" not in info


def test_update_compiles_once_and_scans_every_minibatch():
    update = fresh_jit(qsm.update)
    rng = np.random.default_rng(0)
    ag = qsm.create(0, OBS, ACT, tiny_cfg(utd=2))
    for _ in range(3):
        ag, _ = update(ag, loop_batch(rng, 2, 4, OBS, ACT))
    assert update._cache_size() == 1
    assert int(ag.critic.step) == 6 and int(ag.actor.step) == 6


# ============================================================== end to end

RUN = {"method": "qsm", "scale": "mini", "steps": 12, "pretrain_steps": 20, "pretrain_chunk": 10,
       "eval_interval": 6, "eval_episodes": 1, "log_interval": 6, "progress": False,
       "dataset.num_demos": 3, "start_training": 4, "agent.hidden_dims": (16, 16),
       "agent.diffusion_width": 16, "agent.diffusion_layers": 2, "agent.time_dim": 8,
       "agent.time_hidden_dims": (16, 16), "agent.T": 3, "agent.utd": 2, "agent.batch_size": 8}



@pytest.mark.parametrize("setting", ["online", "offline_to_online"])
def test_tiny_run_writes_eval_csv(tiny_world, tmp_path, setting):
    _, rows, train_rows = tiny_train_run(tmp_path, {**RUN, "setting": setting})
    assert_eval_rows(rows, [0, 6, 12])
    assert {r["phase"] for r in train_rows} == ({"online"} if setting == "online"
                                                else {"pretrain", "online"})
    online = [r for r in train_rows if r["phase"] == "online"]
    assert all(np.isfinite(float(r["actor_loss"])) and r["critic_loss"] for r in online)
