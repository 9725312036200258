"""EXPO agent (expo/agents/expo.py) and the nets it uses, with stubbed networks where the check
needs Q or the base samples to be known functions, so expected values can be written by hand.

Stubs used below:
- actor stub: an eps-network whose DDPM samples land exactly on clip(s[:, :A]) (it predicts the
  eps that makes the posterior mean equal s[:, :A]; the last step t=0 adds no noise);
- critic stub: Q_h(s, a) = f(a) + offset_h for every head h, f known;
- forced edit params: zero kernels, mean bias +-20 and log-std bias -20, so u = tanh(+-20) = +-1
  and the edit is exactly +-beta per dimension.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from expo.agents import expo
from expo.config import ConfigError
from expo.nets import ensemble
from expo.nets.distributions import tanh_gaussian_log_prob_pre_tanh, tanh_gaussian_sample
from expo.nets.temperature import temperature_loss
from tests.conftest import fresh_jit, loop_batch, with_hp

OBS, ACT = 3, 2
TINY = dict(hidden_dims=(8, 8), num_qs=4, num_min_qs=2, T=3, N=3, n_edit=3, diffusion_width=8,
            diffusion_blocks=1, time_dim=4, beta=0.1, edit_dropout=None, utd=2, batch_size=4)
GAMMA = 0.99


def tiny_cfg(**kw):
    cfg = expo.get_config()
    cfg.update(TINY)
    cfg.update(kw)
    return cfg


@pytest.fixture(scope="module")
def agent():
    cfg = tiny_cfg()
    # jit only to keep the suite fast (one compile instead of hundreds of eager ops); same code
    return jax.jit(lambda: expo.create(0, OBS, ACT, cfg))()


def with_base_actor(agent):
    """DDPM samples become clip(observations[:, :ACT]) exactly (see module docstring)."""
    s = agent.schedule

    def apply_fn(variables, obs, a_t, t, training=False, rngs=None):
        t = t[:, 0]
        alpha, abar, beta = s.alphas[t][:, None], s.alpha_bars[t][:, None], s.betas[t][:, None]
        return (a_t - jnp.sqrt(alpha) * obs[:, :ACT]) * jnp.sqrt(1.0 - abar) / beta

    return agent.replace(actor=agent.actor.replace(apply_fn=apply_fn))


def with_critic(agent, f, offsets=None, record=None):
    """Q_h(s, a) = f(s, a) + offsets[h]."""
    offsets = jnp.zeros(agent.hp.num_qs) if offsets is None else jnp.asarray(offsets, jnp.float32)

    def apply_fn(variables, obs, actions, training=False):
        if record is not None:
            record.append(np.asarray(actions) if not isinstance(actions, jax.core.Tracer)
                          else actions.shape)
        return f(obs, actions)[None] + offsets[:, None]

    return agent.replace(critic=agent.critic.replace(apply_fn=apply_fn))


def forced_edit(agent, direction):
    p = dict(agent.edit.params)
    direction = jnp.broadcast_to(jnp.asarray(direction, jnp.float32), (ACT,))
    p["Dense_0"] = {"kernel": jnp.zeros_like(p["Dense_0"]["kernel"]), "bias": 20.0 * direction}
    p["Dense_1"] = {"kernel": jnp.zeros_like(p["Dense_1"]["kernel"]), "bias": jnp.full((ACT,), -20.0)}
    return agent.replace(edit=agent.edit.replace(params=p))


def sum_q(obs, actions):
    return actions.sum(-1)


def make_batch(key, utd, batch, masks=1.0):
    k = jax.random.split(key, 4)
    return {
        "observations": jax.random.normal(k[0], (utd, batch, OBS)),
        "actions": jax.random.uniform(k[1], (utd, batch, ACT), minval=-1, maxval=1),
        "rewards": jax.random.uniform(k[2], (utd, batch)),
        "next_observations": jax.random.normal(k[3], (utd, batch, OBS)),
        "masks": jnp.full((utd, batch), masks),
    }


def leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def trees_equal(a, b):
    return all(np.array_equal(x, y) for x, y in zip(leaves(a), leaves(b)))


def assert_trees_close(a, b, **kw):
    for x, y in zip(leaves(a), leaves(b)):
        np.testing.assert_allclose(x, y, **kw)


# ============================================================== nets: tanh-Gaussian, ensemble, alpha

def test_tanh_gaussian_log_prob_hand_value():
    # x = 0.7, mean 0.2, log_std -0.5: log N(x) - log(1 - tanh(x)^2), computed by hand
    lp = tanh_gaussian_log_prob_pre_tanh(jnp.array([0.7]), jnp.array([0.2]), jnp.array([-0.5]))
    np.testing.assert_allclose(lp, -0.3041833030450417, rtol=1e-5)


def test_tanh_gaussian_log_prob_matches_direct_formula():
    x = np.array([[-1.5, -0.3, 0.7], [1.2, 0.0, -2.0]])
    mean = np.array([[0.1, -0.4, 0.9], [1.0, 0.3, -1.0]])
    log_std = np.array([[-0.5, 0.2, -1.0], [0.0, -2.0, 0.5]])
    std = np.exp(log_std)
    direct = (-0.5 * ((x - mean) / std) ** 2 - np.log(std * np.sqrt(2 * np.pi))
              - np.log(1.0 - np.tanh(x) ** 2)).sum(-1)
    lp = tanh_gaussian_log_prob_pre_tanh(jnp.asarray(x, jnp.float32), jnp.asarray(mean, jnp.float32),
                                         jnp.asarray(log_std, jnp.float32))
    np.testing.assert_allclose(lp, direct, rtol=1e-4, atol=1e-4)


def test_tanh_gaussian_density_integrates_to_one_in_u_space():
    u = np.linspace(-0.9995, 0.9995, 40001)
    x = np.arctanh(u)
    lp = tanh_gaussian_log_prob_pre_tanh(jnp.asarray(x[:, None], jnp.float32),
                                         jnp.full((len(u), 1), 0.3), jnp.full((len(u), 1), -0.7))
    mass = np.trapezoid(np.exp(np.asarray(lp, np.float64)), u)
    np.testing.assert_allclose(mass, 1.0, atol=2e-3)


def test_tanh_gaussian_sample_in_open_box_with_consistent_log_prob():
    mean = jnp.array([[0.3, -0.2]] * 64)
    log_std = jnp.array([[-1.0, -0.5]] * 64)
    u, lp = tanh_gaussian_sample(jax.random.PRNGKey(0), mean, log_std)
    assert u.shape == (64, 2) and lp.shape == (64,)
    assert np.all(np.abs(u) < 1.0)
    x = np.arctanh(np.asarray(u, np.float64))
    std = np.exp(np.asarray(log_std))
    direct = (-0.5 * ((x - np.asarray(mean)) / std) ** 2 - np.log(std * np.sqrt(2 * np.pi))
              - np.log(1.0 - np.tanh(x) ** 2)).sum(-1)
    np.testing.assert_allclose(lp, direct, rtol=1e-3, atol=1e-3)


def test_subset_indices_are_distinct_and_cover_all_heads():
    seen = set()
    for i in range(40):
        idx = np.asarray(ensemble.subset_indices(jax.random.PRNGKey(i), 5, 2))
        assert idx.shape == (2,) and len(set(idx.tolist())) == 2
        assert idx.min() >= 0 and idx.max() < 5
        seen.update(idx.tolist())
    assert seen == {0, 1, 2, 3, 4}


def test_subset_min_is_min_over_the_chosen_heads():
    q = jnp.array([[5.0, 1.0, 7.0], [3.0, 4.0, 0.0], [9.0, 2.0, 8.0], [6.0, 6.0, 6.0], [4.0, 9.0, 1.0]])
    heads_seen = set()
    for i in range(20):
        key = jax.random.PRNGKey(100 + i)
        idx = np.asarray(ensemble.subset_indices(key, 5, 2))
        heads_seen.add(tuple(sorted(idx.tolist())))
        expected = np.min(np.asarray(q)[idx], axis=0)
        np.testing.assert_array_equal(ensemble.subset_min(q, key, 2), expected)
    assert len(heads_seen) > 3  # the subset really changes with the key
    # num_min_qs == num_qs: the global min over heads, for any key
    np.testing.assert_array_equal(ensemble.subset_min(q, jax.random.PRNGKey(7), 5), [3.0, 1.0, 0.0])
    # num_min_qs == 1: one head's values, never a mix
    one = np.asarray(ensemble.subset_min(q, jax.random.PRNGKey(8), 1))
    assert any(np.array_equal(one, row) for row in np.asarray(q))


def test_subset_params_picks_the_same_heads():
    params = {"w": jnp.arange(5.0)[:, None] * jnp.ones((5, 3))}
    key = jax.random.PRNGKey(3)
    sub = ensemble.subset_params(params, key, 5, 2)
    idx = np.asarray(ensemble.subset_indices(key, 5, 2))
    np.testing.assert_array_equal(sub["w"][:, 0], idx.astype(np.float32))


def test_q_ensemble_heads_are_independent(agent):
    obs = jnp.ones((5, OBS))
    act = jnp.zeros((5, ACT))
    q = agent.critic.apply_fn({"params": agent.critic.params}, obs, act)
    assert q.shape == (4, 5)
    assert len(np.unique(np.round(np.asarray(q[:, 0]), 6))) == 4


def test_temperature_loss_gradient_sign():
    g = jax.grad(lambda log_a: temperature_loss(jnp.exp(log_a), -3.0, -1.0))(0.0)
    assert g < 0  # entropy below target: gradient descent raises alpha
    g = jax.grad(lambda log_a: temperature_loss(jnp.exp(log_a), 1.0, -1.0))(0.0)
    assert g > 0
    np.testing.assert_allclose(temperature_loss(2.0, -0.5, -1.0), 1.0)


# ============================================================== config checks through create

@pytest.mark.parametrize("kw", [dict(n_edit=4), dict(N=0, n_edit=0), dict(beta=0.0),
                                dict(beta=-0.1), dict(num_min_qs=5), dict(batch_size=3)])
def test_create_rejects_bad_configs(kw):
    with pytest.raises(ConfigError) as e:
        expo.create(0, OBS, ACT, tiny_cfg(**kw))
    assert "\n" not in str(e.value)


def test_hyper_defaults(agent):
    assert agent.hp.target_entropy == -ACT / 2
    assert agent.hp.N == 3 and agent.hp.n_edit == 3 and agent.hp.beta == pytest.approx(0.1)
    assert trees_equal(agent.target_critic, agent.critic.params)
    assert trees_equal(agent.actor_ema, agent.actor.params)


# ============================================================== edit bounded by beta

_edit = jax.jit(expo.edit_actions)


@pytest.mark.parametrize("scale", [1.0, 1e3])
@pytest.mark.parametrize("beta", [0.1, 0.7])
def test_edit_is_bounded_by_beta(agent, scale, beta):
    ag = with_hp(agent, beta=beta)
    params = jax.tree_util.tree_map(lambda p: p * scale, ag.edit.params)
    max_step = 0.0
    for i in range(3):
        k1, k2, k3 = jax.random.split(jax.random.PRNGKey(i), 3)
        obs = 5.0 * jax.random.normal(k1, (256, OBS))
        a = jax.random.uniform(k2, (256, ACT), minval=-1, maxval=1)
        edited = np.asarray(_edit(ag, params, k3, obs, a))
        step = np.abs(edited - np.asarray(a))
        assert np.all(step <= beta + 1e-6)
        assert np.all(np.abs(edited) <= 1.0)
        interior = np.abs(np.asarray(a)) < 1.0 - beta
        max_step = max(max_step, step[interior].max())
    if scale > 1:  # saturated tanh: the edit reaches the full scale beta
        assert max_step > 0.99 * beta


def test_forced_edit_is_exactly_beta_then_clipped(agent):
    ag = forced_edit(agent, [1.0, -1.0])
    a = jnp.array([[0.3, -0.2], [0.95, -0.95], [-0.5, 0.5]])
    edited = _edit(ag, ag.edit.params, jax.random.PRNGKey(0), jnp.zeros((3, OBS)), a)
    np.testing.assert_allclose(edited, [[0.4, -0.3], [1.0, -1.0], [-0.4, 0.4]], atol=1e-6)


# ============================================================== OTF candidates and selection

_candidates = jax.jit(lambda ag, k, o: expo.otf_candidates(ag, ag.actor.params, k, o))
_select = jax.jit(lambda ag, k, o: expo.otf_select(ag, ag.actor.params, k, o))

OBS_ROWS = jnp.array([[0.3, -0.2, 7.0], [0.95, -0.95, -3.0], [-1.5, 0.5, 0.0]])
BASE_ROWS = np.array([[0.3, -0.2], [0.95, -0.95], [-1.0, 0.5]])  # clip(obs[:, :2])


def test_otf_candidates_are_N_base_samples_then_n_edit_edits(agent):
    ag = forced_edit(with_base_actor(agent), [1.0, -1.0])
    c = np.asarray(_candidates(ag, jax.random.PRNGKey(0), OBS_ROWS))
    assert c.shape == (3, 3 + 3, ACT)
    for k in range(3):
        np.testing.assert_allclose(c[:, k], BASE_ROWS, atol=1e-5)
    edited = np.clip(BASE_ROWS + [0.1, -0.1], -1, 1)
    for k in range(3, 6):
        np.testing.assert_allclose(c[:, k], edited, atol=1e-5)
    # only the first n_edit base samples are edited
    ag2 = with_hp(ag, n_edit=1)
    c = np.asarray(_candidates(ag2, jax.random.PRNGKey(0), OBS_ROWS))
    assert c.shape == (3, 4, ACT)
    np.testing.assert_allclose(c[:, 3], edited, atol=1e-5)


def test_otf_select_returns_argmax_of_fixed_candidates(agent, monkeypatch):
    # candidates [B=3, K=6, A=2], Q = -||a - (0.5, 0.5)||^2 + head offset (same argmax on every head)
    C = np.zeros((3, 6, 2), np.float32)
    C[0] = [[0.0, 0.0], [0.5, 0.4], [0.9, 0.9], [-1, -1], [0.2, 0.2], [0.5, 0.0]]  # best k=1 (base)
    C[1] = [[0.0, 0.0], [0.1, 0.1], [0.2, 0.2], [0.3, 0.3], [0.55, 0.5], [0.6, 0.6]]  # best k=4 (edit)
    C[2] = [[1, 1], [-1, 1], [1, -1], [-1, -1], [0, 0], [0.45, 0.45]]  # best k=5 (edit)
    calls = []

    def fake_candidates(ag, actor_params, key, observations):
        calls.append(actor_params)
        return jnp.asarray(C)

    monkeypatch.setattr(expo, "otf_candidates", fake_candidates)
    ag = with_critic(agent, lambda s, a: -jnp.sum((a - 0.5) ** 2, -1), offsets=[0.0, 3.0, -1.0, 2.0])
    out = expo.otf_select(ag, ag.actor.params, jax.random.PRNGKey(0), jnp.zeros((3, OBS)))
    np.testing.assert_array_equal(out, C[[0, 1, 2], [1, 4, 5]])  # (0.5,0.4) (0.55,0.5) (0.45,0.45)
    assert calls[0] is ag.actor.params


@pytest.mark.parametrize("direction,expected_shift", [(1.0, 0.1), (-1.0, 0.0)])
def test_otf_select_picks_edit_only_when_it_has_higher_q(agent, direction, expected_shift):
    # Q = sum(a): an upward edit beats every base sample, a downward edit loses to them.
    ag = with_critic(forced_edit(with_base_actor(agent), direction), sum_q)
    obs = jnp.array([[0.3, -0.2, 7.0], [-0.5, 0.1, 0.0]])
    out = _select(ag, jax.random.PRNGKey(1), obs)
    np.testing.assert_allclose(out, np.asarray(obs[:, :2]) + expected_shift, atol=1e-5)


def test_sample_actions_uses_otf_policy(agent):
    ag = with_critic(forced_edit(with_base_actor(agent), 1.0), sum_q)
    obs = jnp.array([[0.3, -0.2, 7.0], [-0.5, 0.1, 0.0]])
    out = expo.sample_actions(ag, obs, jax.random.PRNGKey(2))
    np.testing.assert_allclose(out, np.asarray(obs[:, :2]) + 0.1, atol=1e-5)


def test_sample_actions_real_networks_shape_and_range(agent):
    obs = jax.random.normal(jax.random.PRNGKey(0), (5, OBS))
    a = expo.sample_actions(agent, obs, jax.random.PRNGKey(1))
    assert a.shape == (5, ACT)
    assert np.all(np.isfinite(a)) and np.all(np.abs(a) <= 1.0)
    np.testing.assert_array_equal(a, expo.sample_actions(agent, obs, jax.random.PRNGKey(1)))
    # acting uses the EMA weights: poisoning the online weights changes nothing
    nan_online = agent.replace(actor=agent.actor.replace(
        params=jax.tree_util.tree_map(lambda p: p * jnp.nan, agent.actor.params)))
    np.testing.assert_array_equal(a, expo.sample_actions(nan_online, obs, jax.random.PRNGKey(1)))


def test_candidate_values_min_over_heads(agent):
    ag = with_hp(with_critic(agent, sum_q, offsets=[0.0, -1.0, -2.0, -3.0]), num_min_qs=4)
    cands = jnp.array([[[0.1, 0.2], [0.3, 0.4]]])
    q = expo.candidate_values(ag, ag.target_critic, jax.random.PRNGKey(0), jnp.zeros((1, OBS)), cands)
    np.testing.assert_allclose(q, [[0.3 - 3.0, 0.7 - 3.0]], atol=1e-6)


def test_n_edit_zero_never_calls_the_edit_policy(agent, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("edit_actions called with n_edit = 0")

    monkeypatch.setattr(expo, "edit_actions", boom)
    ag = with_hp(with_critic(forced_edit(with_base_actor(agent), 1.0), sum_q), n_edit=0)
    c = jax.jit(lambda a, k, o: expo.otf_candidates(a, a.actor.params, k, o))(
        ag, jax.random.PRNGKey(0), OBS_ROWS)
    assert c.shape == (3, 3, ACT)
    out = jax.jit(lambda a, k, o: expo.otf_select(a, a.actor.params, k, o))(
        ag, jax.random.PRNGKey(0), OBS_ROWS)
    np.testing.assert_allclose(out, BASE_ROWS, atol=1e-5)


def test_soft_selection_entropy_by_hand():
    # probs proportional to (1, 2, 3): H = -(1/6 ln 1/6 + 1/3 ln 1/3 + 1/2 ln 1/2)
    q = jnp.log(jnp.array([[1.0, 2.0, 3.0]])) / 10.0
    soft = jax.jit(expo.soft_selection, static_argnums=2)
    index, probs, entropy = soft(jax.random.PRNGKey(0), q, 10.0)
    np.testing.assert_allclose(probs, [[1 / 6, 1 / 3, 1 / 2]], rtol=1e-5)
    np.testing.assert_allclose(entropy, [1.0114042647073518], rtol=1e-5)
    assert 0 <= int(index[0]) < 3
    _, _, h = soft(jax.random.PRNGKey(0), jnp.array([[0.0, 0.0, 100.0]]), 10.0)
    assert float(h[0]) < 1e-6
    _, _, h = soft(jax.random.PRNGKey(0), jnp.zeros((1, 3)), 10.0)
    np.testing.assert_allclose(h, [np.log(3.0)], rtol=1e-6)


# ============================================================== TD target

# Candidate table for td_target: Q(s', a) = a[0]; rows give Q of the 6 candidates (3 base + 3 edits)
QTAB = np.array([[0.1, 0.5, -0.2, 0.3, 0.0, 0.2],      # best: base k=1, 0.5
                 [0.1, 0.0, -0.2, 0.3, 0.9, 0.2],      # best: edit k=4, 0.9
                 [-0.5, -0.4, -0.3, -0.9, -0.8, -0.1],  # best: edit k=5, -0.1
                 [0.7, 0.7, 0.0, 0.0, 0.0, 0.0]], np.float32)
TD_BATCH = {"rewards": jnp.array([1.0, 2.0, 3.0, 4.0]), "masks": jnp.array([0.0, 1.0, 1.0, 0.0]),
            "next_observations": jnp.arange(12.0).reshape(4, OBS)}


def table_candidates(table):
    """Candidates [B, K, A] whose first coordinate is the table (Q(s', a) = a[0] below)."""
    table = jnp.asarray(table)
    return jnp.stack([table, jnp.zeros_like(table)], -1)


def test_td_target_is_r_plus_gamma_mask_max_q(agent):
    ag = with_critic(agent, lambda s, a: a[:, 0])
    y, entropy = expo.td_target(ag, jax.random.PRNGKey(0), TD_BATCH, table_candidates(QTAB))
    # masks 0 -> y = r; masks 1 -> r + 0.99 * max
    np.testing.assert_allclose(y, [1.0, 2.0 + GAMMA * 0.9, 3.0 - GAMMA * 0.1, 4.0], rtol=1e-6)
    np.testing.assert_array_equal(entropy, np.zeros(4))


def test_backup_candidates_use_the_online_base_policy(agent, monkeypatch):
    rec = []

    def fake(ag, actor_params, key, observations):
        rec.append((actor_params, observations))
        return table_candidates(QTAB)

    monkeypatch.setattr(expo, "otf_candidates", fake)
    # make the EMA differ from the online weights: the backup must use the ONLINE base policy
    ag = agent.replace(actor_ema=jax.tree_util.tree_map(lambda p: p + 1.0, agent.actor.params))
    expo.backup_candidates(ag, jax.random.PRNGKey(0), TD_BATCH["next_observations"])
    assert rec[0][0] is ag.actor.params
    np.testing.assert_array_equal(np.asarray(rec[0][1]), TD_BATCH["next_observations"])


def test_td_target_uses_subset_min_over_target_heads(agent):
    cands = table_candidates(QTAB)
    ag = with_critic(agent, lambda s, a: a[:, 0], offsets=[0.0, -1.0, -2.0, -3.0])
    y, _ = expo.td_target(with_hp(ag, num_min_qs=4), jax.random.PRNGKey(0), TD_BATCH, cands)
    np.testing.assert_allclose(y, [1.0, 2.0 + GAMMA * (0.9 - 3), 3.0 + GAMMA * (-0.1 - 3), 4.0],
                               rtol=1e-6)
    # two of four heads: the offset is the min of two distinct heads, so never 0 (head 0 alone)
    for i in range(10):
        y, _ = expo.td_target(ag, jax.random.PRNGKey(i), TD_BATCH, cands)
        off = (float(y[1]) - 2.0) / GAMMA - 0.9
        assert min(abs(off - o) for o in (-1.0, -2.0, -3.0)) < 1e-5


def test_td_target_no_otf_backup_uses_one_base_sample(agent, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("otf_candidates called with otf_backup=False")

    monkeypatch.setattr(expo, "otf_candidates", boom)
    rec = []
    ag = with_hp(with_critic(with_base_actor(agent), sum_q, record=rec), otf_backup=False)
    batch = {"rewards": jnp.array([1.0, 2.0, 3.0, 4.0]), "masks": jnp.array([1.0, 1.0, 0.0, 1.0]),
             "next_observations": jnp.array([[0.2, 0.1, 9.0], [-0.3, 0.4, 9.0], [0.5, 0.5, 9.0],
                                             [-1.5, 0.2, 9.0]])}
    cands = expo.backup_candidates(ag, jax.random.PRNGKey(0), batch["next_observations"])
    assert cands.shape == (4, 1, ACT)
    y, _ = expo.td_target(ag, jax.random.PRNGKey(0), batch, cands)
    # base = clip(s'[:, :2]); Q = sum -> [0.3, 0.1, 1.0, -0.8]
    np.testing.assert_allclose(y, [1.297, 2.099, 3.0, 3.208], rtol=1e-5)
    assert rec[0].shape == (4, ACT)  # the critic saw B x 1 candidates


def test_td_target_entropy_backup(agent):
    # 3 candidates at Q = ln2 / 10, 3 at Q = 0; beta_s = 10 -> p = (2/9 x3, 1/9 x3),
    # H = ln 9 - (2/3) ln 2 = 1.7351264569629228; alpha_b = 0.5; r = 0, mask = 1
    B = 3000
    hi = 0.06931471805599453
    cands = table_candidates(np.tile(np.array([[hi, 0.0, hi, 0.0, hi, 0.0]], np.float32), (B, 1)))
    ag = with_hp(with_critic(agent, lambda s, a: a[:, 0]), entropy_backup=True,
                 selection_inverse_temperature=10.0, backup_temperature=0.5)
    batch = {"rewards": jnp.zeros(B), "masks": jnp.ones(B), "next_observations": jnp.zeros((B, OBS))}
    target = jax.jit(lambda a, k, b: expo.td_target(a, k, b, cands))
    y, entropy = target(ag, jax.random.PRNGKey(0), batch)
    np.testing.assert_allclose(entropy, np.full(B, 1.7351264569629228), rtol=1e-5)
    y = np.asarray(y)
    high = np.isclose(y, 0.9275091670720813, rtol=1e-5)  # 0.99 * (ln2/10 + 0.5 H)
    low = np.isclose(y, 0.8588875961966468, rtol=1e-5)   # 0.99 * (0 + 0.5 H)
    assert np.all(high | low)
    assert abs(high.mean() - 2 / 3) < 0.04  # sampled from softmax(beta_s Q), not argmax
    # masks 0 -> y = r, entropy term dropped too
    y0, _ = target(ag, jax.random.PRNGKey(0), {**batch, "rewards": jnp.ones(B),
                                                "masks": jnp.zeros(B)})
    np.testing.assert_array_equal(y0, np.ones(B))


def with_linear_heads(agent, weights):
    """Target critic with Q_h(s, a) = a . w_h: head-dependent values, so which heads choose and
    which heads value the candidate matters. weights [num_qs, A]."""
    w = jnp.asarray(weights, jnp.float32)

    def apply_fn(variables, obs, actions, training=False):
        return variables["params"]["w"] @ actions.T

    return agent.replace(critic=agent.critic.replace(apply_fn=apply_fn), target_critic={"w": w})


HEAD_W = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.5], [0.5, -1.0]], np.float32)


def test_td_target_chooses_and_values_with_independent_head_subsets(agent):
    """The candidate is the argmax of the min over one random head subset; its value is the min
    over ANOTHER subset, drawn from an independent key (the authors' learner does the same)."""
    ag = with_linear_heads(agent, HEAD_W)
    B, K = 5, 6
    cands = jax.random.uniform(jax.random.PRNGKey(3), (B, K, ACT), minval=-1.0, maxval=1.0)
    batch = {"rewards": jnp.zeros(B), "masks": jnp.ones(B), "next_observations": jnp.zeros((B, OBS))}
    q_all = np.einsum("hd,bkd->hbk", HEAD_W, np.asarray(cands))  # [heads, B, K]
    differs = 0
    for i in range(8):
        key = jax.random.PRNGKey(100 + i)
        select_key, value_key, _ = jax.random.split(key, 3)
        chooser = np.asarray(ensemble.subset_indices(select_key, 4, 2))
        valuer = np.asarray(ensemble.subset_indices(value_key, 4, 2))
        best = q_all[chooser].min(0).argmax(1)
        expected = GAMMA * q_all[valuer].min(0)[np.arange(B), best]
        y, _ = expo.td_target(ag, key, batch, cands)
        np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
        shared = GAMMA * q_all[chooser].min(0).max(1)  # one subset choosing and valuing
        differs += not np.allclose(expected, shared)
    assert differs > 0  # the keys above do draw different subsets, so the test can tell


def test_independent_subsets_remove_the_selection_bias(agent):
    """On a noisy fitted critic (heads = truth + independent noise), valuing the argmax with the
    heads that chose it is biased upward; an independent subset is not (in expectation it values
    the chosen candidate at the subset-min of fresh heads)."""
    num_qs, B, K = 10, 500, 16
    ag = with_hp(agent, num_qs=num_qs, num_min_qs=2)
    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 0.05, (num_qs, B, K)).astype(np.float32)
    truth = np.zeros((B, K), np.float32)  # every candidate equally good

    def apply_fn(variables, obs, actions, training=False):
        """Q_h(row b, candidate k) from the table; the actions hold k in coordinate 0 and come
        as B*K rows (choosing) or B rows (valuing the chosen candidate)."""
        table = variables["params"]["q"]
        rows = jnp.arange(actions.shape[0]) // (actions.shape[0] // B)
        return table[:, rows, actions[:, 0].astype(jnp.int32)]

    # candidates carry their own index k in coordinate 0, so the chosen one can be looked up
    cands = jnp.broadcast_to(jnp.stack([jnp.arange(K, dtype=jnp.float32),
                                        jnp.zeros(K)], -1), (B, K, 2))
    ag = ag.replace(critic=ag.critic.replace(apply_fn=apply_fn),
                    target_critic={"q": jnp.asarray(truth[None] + noise)})
    batch = {"rewards": jnp.zeros(B), "masks": jnp.ones(B), "next_observations": jnp.zeros((B, OBS))}
    target = jax.jit(expo.td_target)
    independent, shared = [], []
    for i in range(20):  # one head subset per call: average over calls
        key = jax.random.PRNGKey(i)
        y, _ = target(ag, key, batch, cands)
        independent.append(float(np.mean(y)) / GAMMA)
        chooser = np.asarray(ensemble.subset_indices(jax.random.split(key, 3)[0], num_qs, 2))
        shared.append(float(np.mean((truth[None] + noise)[chooser].min(0).max(1))))
    independent, shared = np.mean(independent), np.mean(shared)
    # The truth is 0 for every candidate. The shared subset's max over 16 candidates of a min of 2
    # heads is ~ +0.045; fresh heads value the choice near E[min of 2 N(0, s^2)] = -0.028 (higher
    # only when the two subsets happen to share a head).
    assert shared > 0.035, shared
    assert independent < 0.0 and shared - independent > 0.04, (independent, shared)


def test_entropy_backup_acting_draws_from_the_soft_selection(agent, monkeypatch):
    """Sec. 4.3: with the entropy backup the OTF policy acts by the same soft selection."""
    B = 3000
    hi = 0.06931471805599453  # p = (2/9 x3, 1/9 x3) as above
    table = np.tile(np.array([[hi, 0.0, hi, 0.0, hi, 0.0]], np.float32), (B, 1))
    monkeypatch.setattr(expo, "otf_candidates", lambda ag, p, k, o: table_candidates(table))
    ag = with_critic(agent, lambda s, a: a[:, 0])
    soft = with_hp(ag, entropy_backup=True, selection_inverse_temperature=10.0)
    out = np.asarray(expo.otf_select(soft, soft.actor_ema, jax.random.PRNGKey(0), jnp.zeros((B, OBS))))
    assert abs(np.isclose(out[:, 0], hi).mean() - 2 / 3) < 0.04
    greedy = np.asarray(expo.otf_select(ag, ag.actor_ema, jax.random.PRNGKey(0), jnp.zeros((B, OBS))))
    np.testing.assert_allclose(greedy[:, 0], hi)


def test_entropy_backup_target_stays_bounded_over_a_long_run():
    """20k updates on random {0, 1} rewards with the edit temperature left to grow (beta 0.1 <= 0.3,
    the authors' target entropy): the entropy backup's target stays within
    (r_max + gamma alpha_b log K) / (1 - gamma), while log alpha of the edit policy keeps rising
    (it would have multiplied the bonus when the backup used it)."""
    cfg = tiny_cfg(entropy_backup=True, utd=1, batch_size=8, temp_lr=3e-3, T=2, N=2, n_edit=2)
    ag = jax.jit(lambda: expo.create(1, OBS, ACT, cfg))()
    steps, B = 20_000, 8
    key = jax.random.PRNGKey(5)
    obs = jax.random.normal(key, (64, OBS))
    rewards = (jax.random.uniform(jax.random.PRNGKey(6), (64,)) < 0.5).astype(jnp.float32)

    def one(carry, i):
        agent, = carry
        idx = jax.random.randint(jax.random.fold_in(key, i), (1, B), 0, 63)
        batch = {"observations": obs[idx], "actions": jnp.clip(obs[idx][..., :ACT], -1, 1),
                 "rewards": rewards[idx], "masks": jnp.ones((1, B)), "next_observations": obs[idx + 1]}
        agent, info = expo.update.__wrapped__(agent, batch)
        return (agent,), (info["target_mean"], info["q_max"], info["temperature"])

    (_,), (targets, q_max, temps) = jax.jit(lambda a: jax.lax.scan(one, (a,), jnp.arange(steps)))(ag)
    K = cfg["N"] + cfg["n_edit"]
    bound = (1.0 + GAMMA * cfg["backup_temperature"] * np.log(K)) / (1 - GAMMA)
    targets = np.asarray(targets)
    assert np.all(np.isfinite(targets)) and targets.max() <= bound * 1.05, targets.max()
    assert np.asarray(q_max).max() <= bound * 1.1
    assert float(temps[-1]) > 50 * float(temps[0])  # the edit temperature did run away


# ---- every critic step's candidates, sampled in one batched pass before the critic steps

def test_all_backup_candidates_one_pass_shapes_and_independent_noise(agent, monkeypatch):
    """One call of the sampler for all utd minibatches ([utd * B] states, one key), reshaped to
    [utd, B, K, A]; the rows get independent noise, so minibatches holding the SAME next states
    still get different candidates, and the agent's key advances."""
    calls = []
    real = expo.otf_candidates

    def counting(ag, actor_params, key, observations):
        calls.append(observations.shape)
        return real(ag, actor_params, key, observations)

    monkeypatch.setattr(expo, "otf_candidates", counting)
    utd, B = 3, 4
    same = jnp.tile(jax.random.normal(jax.random.PRNGKey(7), (1, B, OBS)), (utd, 1, 1))
    cands, advanced = expo.all_backup_candidates(agent, same)
    assert calls == [(utd * B, OBS)]
    K = agent.hp.N + agent.hp.n_edit
    assert cands.shape == (utd, B, K, ACT)
    assert np.all(np.abs(np.asarray(cands)) <= 1.0)
    c = np.asarray(cands)
    for i in range(utd):
        for j in range(i + 1, utd):
            assert not np.allclose(c[i], c[j])  # independent draws, not one draw repeated
    assert not np.array_equal(advanced.rng, agent.rng)
    # minibatch i's rows are the sampler's rows i*B ... (i+1)*B - 1 of the flat pass
    flat = np.asarray(real(agent, agent.actor.params, jax.random.split(agent.rng)[1],
                           same.reshape(utd * B, OBS)))
    np.testing.assert_allclose(c.reshape(utd * B, K, ACT), flat, rtol=1e-6, atol=1e-6)


def test_each_critic_step_selects_under_its_own_target_critic(perturbed, monkeypatch):
    """update() = one batched candidate pass, then critic step i on (minibatch i, candidates i),
    selecting under the target critic as steps < i left it (it moves by Polyak every step)."""
    seen = []
    real_td_target = expo.td_target

    def recording(ag, key, batch, candidates):
        first_leaf = jax.tree_util.tree_leaves(ag.target_critic)[0]
        jax.debug.callback(lambda c, t: seen.append((np.asarray(c), np.asarray(t))),
                           candidates, first_leaf)
        return real_td_target(ag, key, batch, candidates)

    monkeypatch.setattr(expo, "td_target", recording)
    utd, B = 3, 4
    batch = make_batch(jax.random.PRNGKey(11), utd, B)
    new, _ = jax.jit(expo.update.__wrapped__)(perturbed, batch)
    assert len(seen) == utd
    # the same steps by hand: candidates first, then the critic steps in order
    cands, ag = expo.all_backup_candidates(perturbed, batch["next_observations"])
    for i in range(utd):
        np.testing.assert_allclose(seen[i][0], np.asarray(cands[i]), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(seen[i][1], np.asarray(
            jax.tree_util.tree_leaves(ag.target_critic)[0]), rtol=1e-6, atol=1e-7)
        ag, _ = expo.critic_step(ag, (jax.tree_util.tree_map(lambda x: x[i], batch), cands[i]))
    assert not np.allclose(seen[0][1], seen[-1][1])  # the target critic did move between steps
    assert_trees_close(new.critic.params, ag.critic.params, rtol=1e-5, atol=1e-6)
    assert_trees_close(new.target_critic, ag.target_critic, rtol=1e-5, atol=1e-6)


# ============================================================== losses

def test_critic_loss_is_mse_over_all_heads():
    qs = jnp.array([[1.0, 2.0], [3.0, 4.0]])
    loss, _ = expo.critic_loss_fn({}, lambda v, o, a: qs, {"observations": None, "actions": None},
                                  jnp.array([1.0, 1.0]))
    np.testing.assert_allclose(loss, 3.5)  # (0 + 1 + 4 + 9) / 4


def test_edit_loss_mean_q_over_heads_at_edited_batch_action(agent):
    rec = []
    ag = forced_edit(with_critic(agent, lambda s, a: jnp.zeros(a.shape[0]),
                                 offsets=[1.0, 2.0, 3.0, 4.0], record=rec), 1.0)
    batch = {"observations": jnp.zeros((2, OBS)), "actions": jnp.array([[0.2, -0.3], [0.95, 0.0]])}
    k = jax.random.PRNGKey(0)
    loss, info = expo.edit_loss_fn(ag.edit.params, ag, batch, k, k, 0.0)
    np.testing.assert_allclose(loss, -2.5, rtol=1e-6)  # mean of heads (1..4), not the min (1)
    np.testing.assert_allclose(rec[0], [[0.3, -0.2], [1.0, 0.1]], atol=1e-6)  # batch a + beta u


def test_edit_loss_log_prob_corrected_by_log_beta(agent):
    ag = with_critic(agent, lambda s, a: jnp.zeros(a.shape[0]))
    batch = {"observations": jnp.ones((4, OBS)), "actions": jnp.zeros((4, ACT))}
    k = jax.random.PRNGKey(0)
    l1, i1 = expo.edit_loss_fn(ag.edit.params, with_hp(ag, beta=0.1), batch, k, k, 1.0)
    l2, i2 = expo.edit_loss_fn(ag.edit.params, with_hp(ag, beta=0.5), batch, k, k, 1.0)
    # log p(beta u) = log p(u) - |A| log beta: difference |A| ln 5
    np.testing.assert_allclose(l1 - l2, 3.2188758248682006, rtol=1e-5)
    np.testing.assert_allclose(i1["edit_entropy"] - i2["edit_entropy"], -3.2188758248682006,
                               rtol=1e-5)


# ============================================================== jitted updates

@pytest.fixture(scope="module")
def perturbed(agent):
    """Target critic and EMA that differ from the online weights, so Polyak checks can fail."""
    return agent.replace(
        target_critic=jax.tree_util.tree_map(lambda p: p + 0.1, agent.critic.params),
        actor_ema=jax.tree_util.tree_map(lambda p: 0.5 * p, agent.actor.params))


def _all_finite(info):
    return all(np.all(np.isfinite(np.asarray(v))) for v in info.values())


def test_update_default(perturbed):
    batch = make_batch(jax.random.PRNGKey(0), 2, 4)
    new, info = expo.update(perturbed, batch)
    assert _all_finite(info)
    for k in ("critic_loss", "bc_loss", "edit_loss", "temperature", "selection_entropy"):
        assert k in info
    assert float(info["selection_entropy"]) == 0.0
    assert not trees_equal(new.critic.params, perturbed.critic.params)
    assert not trees_equal(new.target_critic, perturbed.target_critic)
    assert not trees_equal(new.actor.params, perturbed.actor.params)
    assert not trees_equal(new.actor_ema, perturbed.actor_ema)
    assert not trees_equal(new.edit.params, perturbed.edit.params)
    assert not trees_equal(new.temp.params, perturbed.temp.params)
    assert int(new.critic.step) == 2 and int(new.actor.step) == 1 and int(new.edit.step) == 1
    assert not np.array_equal(new.rng, perturbed.rng)


@pytest.fixture(scope="module")
def ablation_update(perturbed):
    """One update with utd = 1 (one critic step, one actor step) of the no-edit ablation with the
    entropy backup switched on (two independent switches checked with one compile)."""
    ag = with_hp(perturbed, n_edit=0, entropy_backup=True)
    new, info = expo.update(ag, make_batch(jax.random.PRNGKey(1), 1, 4))
    return ag, new, info


def test_update_target_critic_moves_by_polyak_tau(ablation_update):
    old, new, info = ablation_update
    tau = old.hp.tau
    assert tau == 0.005
    assert int(new.critic.step) == 1
    expected = jax.tree_util.tree_map(lambda t, c: (1 - tau) * t + tau * c,
                                      old.target_critic, new.critic.params)
    assert_trees_close(new.target_critic, expected, rtol=1e-6, atol=1e-7)


def test_update_ema_moves_by_actor_ema(ablation_update):
    old, new, _ = ablation_update
    e = old.hp.actor_ema
    assert e == 0.001
    assert int(new.actor.step) == 1
    expected = jax.tree_util.tree_map(lambda m, p: (1 - e) * m + e * p, old.actor_ema,
                                      new.actor.params)
    assert_trees_close(new.actor_ema, expected, rtol=1e-6, atol=1e-7)


def test_update_no_edit_leaves_edit_policy_alone(ablation_update):
    old, new, info = ablation_update
    assert _all_finite(info)
    assert "edit_loss" not in info and "temperature" not in info and "edit_entropy" not in info
    assert trees_equal(new.edit.params, old.edit.params) and int(new.edit.step) == 0
    assert trees_equal(new.temp.params, old.temp.params)
    assert not trees_equal(new.critic.params, old.critic.params)


def test_update_entropy_backup_reports_positive_selection_entropy(ablation_update):
    _, _, info = ablation_update
    assert float(info["selection_entropy"]) > 0.0
    # at most ln(N), the entropy of a uniform choice over the 3 base candidates (no edits)
    assert float(info["selection_entropy"]) <= np.log(3) + 1e-5


def test_pretrain_update_changes_only_the_base_policy(perturbed):
    new, info = expo.pretrain_update(perturbed, make_batch(jax.random.PRNGKey(3), 2, 4))
    assert set(info) == {"bc_loss"} and np.isfinite(info["bc_loss"])
    assert not trees_equal(new.actor.params, perturbed.actor.params)
    assert not trees_equal(new.actor_ema, perturbed.actor_ema)
    assert int(new.actor.step) == 2
    assert trees_equal(new.critic.params, perturbed.critic.params)
    assert trees_equal(new.target_critic, perturbed.target_critic)
    assert trees_equal(new.edit.params, perturbed.edit.params)
    assert trees_equal(new.temp.params, perturbed.temp.params)


def test_candidate_values_evaluates_only_the_subset_heads_with_the_same_result(agent):
    """Evaluating only the sampled heads equals evaluating all heads then subset_min (same key)."""
    from expo.nets import ensemble

    obs = jax.random.normal(jax.random.PRNGKey(3), (4, OBS))
    cands = jax.random.uniform(jax.random.PRNGKey(4), (4, 3, ACT), minval=-1, maxval=1)
    key = jax.random.PRNGKey(5)
    fast = expo.candidate_values(agent, agent.critic.params, key, obs, cands)
    all_heads = agent.critic.apply_fn({"params": agent.critic.params}, jnp.repeat(obs, 3, axis=0),
                                      cands.reshape(12, ACT))
    assert all_heads.shape[0] == agent.hp.num_qs
    slow = ensemble.subset_min(all_heads, key, agent.hp.num_min_qs).reshape(4, 3)
    np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-6)


def test_update_compiles_once_over_several_calls():
    """create()'s leaves have exactly the types update() returns (no weak types), so the training
    loop's calls never recompile. The agent is built eagerly, as the training loop builds it."""
    update = fresh_jit(expo.update)  # a function of its own: its jit cache counts only these calls
    rng = np.random.default_rng(0)
    ag = expo.create(0, OBS, ACT, tiny_cfg())
    for _ in range(3):
        ag, _ = update(ag, loop_batch(rng, 1, 4, OBS, ACT))
    assert update._cache_size() == 1


def test_target_entropy_default_and_adjusted():
    plain = expo.create(0, OBS, ACT, tiny_cfg())
    assert plain.hp.target_entropy == pytest.approx(-ACT / 2)
    adjusted = expo.create(0, OBS, ACT, tiny_cfg(adjust_target_entropy=True, beta=0.1))
    assert adjusted.hp.target_entropy == pytest.approx(-1.0 + 2 * np.log(0.1))  # -|A|/2 + |A| log beta
