"""Cal-QL baseline (baselines/calql.py): the CQL logsumexp term with its importance corrections,
the calibration clamp, the Lagrange multiplier's direction, the max-target backup and the
Monte-Carlo return-to-go (sparse rule, trajectory boundaries) against hand-computed values; the
per-domain reward map; the update schedule (CQL on / off online), compile-once, and tiny
end-to-end runs through expo.train.train.
"""
import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from baselines import calql
from expo import config as config_lib, protocol
from expo.config import ConfigError
from tests.conftest import assert_eval_rows, fresh_jit, loop_batch, tiny_train_run

OBS, ACT = 3, 2
LOG_HALF_A = ACT * math.log(0.5)  # log density of U[-1, 1]^2


def tiny_cfg(**kw):
    cfg = calql.get_config()
    cfg.update(hidden_dims=(8, 8), actor_hidden_dims=(8, 8), cql_lagrange=True, cql_min_q_weight=5.0,
               reward_bias=5.0, failure_reward=-5.0, cql_n_actions=3, utd=1, batch_size=4)
    cfg.update(kw)
    return cfg


@pytest.fixture(scope="module")
def agent():
    # jit only to keep the suite fast (one compile instead of hundreds of eager ops); same code
    return jax.jit(lambda: calql.create(0, OBS, ACT, tiny_cfg()))()


def hp(**kw):
    return dataclasses.replace(calql.Hyper(
        action_dim=ACT, num_qs=1, discount=0.99, tau=0.005, target_entropy=-2.0, backup_entropy=False,
        cql_n_actions=1, cql_importance_sample=True, cql_temp=1.0, cql_max_target_backup=True,
        cql_lagrange=False, cql_min_q_weight=1.0, cql_target_action_gap=0.8, enable_calql=True,
        online_cql=True, reward_scale=10.0, reward_bias=5.0), **kw)


def lse(*values):
    return math.log(sum(math.exp(v) for v in values))


# ============================================================== CQL term and calibration

# one head, one state, one action per set: Q(s, a_rand) = 1, Q(s, a'_next) = 0.5 with
# log pi = -1, Q(s, a_cur) = 2 with log pi = 0.5, Q(s, a_data) = 1.5
Q_RAND, Q_NEXT, LP_NEXT, Q_CUR, LP_CUR, Q_DATA = 1.0, 0.5, -1.0, 2.0, 0.5, 1.5


def ood(mc, **kw):
    a = lambda v: jnp.full((1, 1, 1), v, jnp.float32)  # noqa: E731  [H, B, K]
    return float(calql.cql_ood_values(a(Q_RAND), a(Q_NEXT), jnp.full((1, 1), LP_NEXT), a(Q_CUR),
                                      jnp.full((1, 1), LP_CUR), jnp.full((1, 1), Q_DATA),
                                      jnp.array([mc], jnp.float32), hp(**kw))[0, 0])


def test_cql_logsumexp_with_importance_corrections_and_no_bound():
    # mc = -inf is "no bound": log(e^(1 - log 0.25) + e^(0.5 + 1) + e^(2 - 0.5))
    expected = lse(Q_RAND - LOG_HALF_A, Q_NEXT - LP_NEXT, Q_CUR - LP_CUR)
    assert ood(-np.inf) == pytest.approx(expected, rel=1e-6)
    # a bound below every policy-action Q changes nothing; plain CQL ignores the bound
    assert ood(-3.0) == pytest.approx(expected, rel=1e-6)
    assert ood(3.0, enable_calql=False) == pytest.approx(expected, rel=1e-6)


def test_calibration_clamps_policy_actions_before_the_log_pi_correction():
    # mc = 3 lifts both policy-action Q values to 3, the random action's Q (1) stays
    expected = lse(Q_RAND - LOG_HALF_A, 3.0 - LP_NEXT, 3.0 - LP_CUR)
    assert ood(3.0) == pytest.approx(expected, rel=1e-6)
    # mc = 1 lifts only Q(s, a'_next) = 0.5 (Q(s, a_cur) = 2 is already above it)
    assert ood(1.0) == pytest.approx(lse(Q_RAND - LOG_HALF_A, 1.0 - LP_NEXT, Q_CUR - LP_CUR), rel=1e-6)
    np.testing.assert_array_equal(calql.calibrate(jnp.array([[[0.5, 2.0]]]), jnp.array([1.0])),
                                  [[[1.0, 2.0]]])


def test_cql_temperature_and_no_importance_sampling_variant():
    expected = 2.0 * lse((Q_RAND - LOG_HALF_A) / 2, (Q_NEXT - LP_NEXT) / 2, (Q_CUR - LP_CUR) / 2)
    assert ood(-np.inf, cql_temp=2.0) == pytest.approx(expected, rel=1e-6)
    # without importance sampling the data action joins the set and no log-pi correction is made
    assert ood(-np.inf, cql_importance_sample=False) == pytest.approx(
        lse(Q_RAND, Q_DATA, Q_NEXT, Q_CUR), rel=1e-6)


def test_cql_penalty_fixed_weight_and_lagrange():
    ood_v = jnp.array([[3.0, 1.0], [2.0, 2.0]])      # [H=2, B=2]
    q_data = jnp.array([[1.0, 0.0], [2.5, 1.5]])
    penalty, gap = calql.cql_penalty(ood_v, q_data, 2.0, hp(cql_min_q_weight=5.0))
    np.testing.assert_allclose(gap, [1.5, 0.0])      # mean(2, 1), mean(-0.5, 0.5)
    np.testing.assert_allclose(penalty, [7.5, 0.0])  # w * gap
    penalty, _ = calql.cql_penalty(ood_v, q_data, 2.0, hp(cql_min_q_weight=5.0, cql_lagrange=True))
    np.testing.assert_allclose(penalty, [2 * 5 * (1.5 - 0.8), 2 * 5 * (0.0 - 0.8)], rtol=1e-6)


def test_lagrange_multiplier_rises_while_the_gap_exceeds_its_target(agent):
    h = hp(cql_min_q_weight=5.0, cql_lagrange=True)
    params, apply_fn = agent.lagrange.params, agent.lagrange.apply_fn
    alpha_prime = float(apply_fn({"params": params}))
    assert alpha_prime == pytest.approx(math.e)  # log alpha' starts at 1.0 (code)
    loss = calql.lagrange_loss(params, apply_fn, jnp.array([1.2, 1.0]), h)
    assert float(loss) == pytest.approx(-alpha_prime * 5 * ((0.4 + 0.2) / 2), rel=1e-6)
    for gap, rises in ((jnp.array([1.2, 1.0]), True), (jnp.array([0.5, 0.3]), False)):
        grad = jax.grad(calql.lagrange_loss)(params, apply_fn, gap, h)
        g = float(jax.tree_util.tree_leaves(grad)[0])
        # d loss / d log alpha' = -alpha' * w * mean(gap - 0.8): gradient descent raises log alpha'
        # exactly when the gap is above target
        assert g == pytest.approx(-alpha_prime * 5 * float(jnp.mean(gap - 0.8)), rel=1e-5)
        assert (g < 0) == rises


# ============================================================== TD target

def test_td_target_max_over_policy_samples_of_min_over_target_heads(agent):
    def apply_fn(variables, obs, actions, training=False):
        return variables["params"]["offset"][:, None] + actions.sum(-1)[None]

    ag = agent.replace(critic=agent.critic.replace(apply_fn=apply_fn),
                       target_critic={"offset": jnp.array([0.0, -1.0])})
    batch = {"next_observations": jnp.zeros((2, OBS)), "masks": jnp.array([1.0, 0.0])}
    # sums of the 3 sampled next actions: row 0 (0.2, 0.7, -0.3), row 1 (0.1, 0.1, 0.1)
    nxt = jnp.array([[[0.1, 0.1], [0.3, 0.4], [-0.3, 0.0]], [[0.1, 0.0]] * 3])
    y = calql.td_target(ag, batch, jnp.array([5.0, -5.0]), nxt, jnp.zeros((2, 3)), 1.0)
    # row 0: min over heads = sum - 1, max over samples = 0.7 - 1 -> 5 + 0.99 * (-0.3)
    np.testing.assert_allclose(y, [5.0 + 0.99 * -0.3, -5.0], rtol=1e-6)


# ============================================================== Monte-Carlo returns

CFG = {"reward_scale": 10.0, "reward_bias": -5.0, "failure_reward": -5.0, "discount": 0.9}


def test_return_to_go_by_hand_and_the_sparse_rule():
    np.testing.assert_allclose(calql.return_to_go([-5, -5, 5], [1, 1, 0], 0.9, -5.0),
                               [-5 + 0.9 * (-5 + 0.9 * 5), -5 + 0.9 * 5, 5], rtol=1e-6)
    # never succeeds: r_fail / (1 - gamma) at every step, not the truncated sum
    np.testing.assert_allclose(calql.return_to_go([-5, -5, -5], [1, 1, 1], 0.9, -5.0), [-50.0] * 3)
    # a mask of 0 stops the discounting (the code's (1 - done) factor)
    np.testing.assert_allclose(calql.return_to_go([5, -5, 5], [0, 1, 1], 0.9, -5.0),
                               [5, -5 + 0.9 * 5, 5], rtol=1e-6)


def test_offline_extras_scales_rewards_and_respects_episode_boundaries():
    # three trajectories of learner rewards r' in {0, 1} (robomimic map 10 r' - 5):
    # success at the end (terminal), never succeeds (sparse rule), success then failure (truncated)
    data = {"rewards": np.array([0, 1, 0, 0, 0, 1, 0], np.float32),
            "masks": np.array([1, 0, 1, 1, 1, 1, 1], np.float32),
            "dones": np.array([0, 1, 0, 0, 1, 0, 1], np.float32),
            "episode_starts": np.array([1, 0, 1, 0, 0, 1, 0], bool)}
    out = calql.offline_extras(data, CFG)["mc_returns"]
    np.testing.assert_allclose(out, [-5 + 0.9 * 5, 5, -50, -50, -50, 5 + 0.9 * -5, -5], rtol=1e-6)
    # episode_starts alone also splits (a trajectory cut without a done flag)
    data2 = dict(data, dones=np.array([0, 1, 0, 0, 0, 0, 1], np.float32))
    np.testing.assert_allclose(calql.offline_extras(data2, CFG)["mc_returns"], out, rtol=1e-6)


def test_episode_extras_for_online_episodes():
    # terminated at success: [-5, 5] -> [-0.5, 5]; truncated failure: the sparse rule
    np.testing.assert_allclose(calql.episode_extras(np.array([0.0, 1.0]), True, CFG)["mc_returns"],
                               [-0.5, 5.0], rtol=1e-6)
    np.testing.assert_allclose(calql.episode_extras(np.zeros(4), False, CFG)["mc_returns"], [-50.0] * 4)
    assert calql.EXTRA_FIELDS == {"mc_returns": -np.inf}


@pytest.mark.parametrize("task, bias, lagrange, weight, dims", [
    ("antmaze-large-diverse-v2", 5.0, True, 5.0, (256,) * 4),  # r' = r - 1: 10 r - 5 = 10 r' + 5
    ("pen-binary-v0", 5.0, False, 1.0, (512,) * 3),            # r' = r in {-1, 0}: 10 r + 5
    ("lift", -5.0, False, 1.0, (512,) * 3),                    # r' in {0, 1}: failure -5, success 5
])
def test_domain_defaults_map_failure_to_minus_5_and_success_to_plus_5(task, bias, lagrange, weight, dims,
                                                                     agent):
    a = config_lib.build_config({"method": "calql", "task": task})["agent"]
    assert (a["reward_bias"], a["cql_lagrange"], a["cql_min_q_weight"], a["hidden_dims"]) == (bias, lagrange, weight, dims)
    assert a["actor_hidden_dims"] == dims[:1] * 2 and a["failure_reward"] == -5.0
    spec = protocol.get_task(task)
    r_fail = calql.learner_failure_reward(spec)
    assert 10 * r_fail + a["reward_bias"] == -5.0 and 10 * (r_fail + 1) + a["reward_bias"] == 5.0
    assert a["utd"] == 1 and a["num_qs"] == 2 and a["cql_n_actions"] == 10
    assert agent.hp.target_entropy == -ACT


def test_config_rejects_bad_values_and_calql_sac_turns_off_online_cql():
    assert config_lib.build_config({"method": "calql_sac"})["agent"]["online_cql"] is False
    assert config_lib.build_config({"method": "calql"})["agent"]["online_cql"] is True
    with pytest.raises(ConfigError, match="agent.discount"):
        config_lib.build_config({"method": "calql", "agent.discount": 1.0})
    with pytest.raises(ConfigError, match="agent.cql_n_actions"):
        config_lib.build_config({"method": "calql", "agent.cql_n_actions": 0})


# ============================================================== updates

def make_batch(rng, k, b, mc=0.0):
    return loop_batch(rng, k, b, OBS, ACT, rewards=-1.0, mc_returns=mc)


def lagrange_value(agent):
    return float(agent.lagrange.apply_fn({"params": agent.lagrange.params}))


def test_update_compiles_once_and_runs_the_joint_step():
    update = fresh_jit(calql.update)
    rng = np.random.default_rng(0)
    ag = calql.create(0, OBS, ACT, tiny_cfg())  # eagerly, as the training loop builds it
    for i in range(3):
        # online rows hold -inf until their episode ends: the update must stay finite
        ag, info = update(ag, make_batch(rng, 1, 4, mc=-np.inf if i == 1 else 0.0))
        assert all(np.isfinite(float(v)) for v in info.values())
    assert update._cache_size() == 1
    assert int(ag.critic.step) == int(ag.actor.step) == int(ag.temp.step) == int(ag.lagrange.step) == 3
    for k in ("critic_loss", "bellman_loss", "cql_gap", "alpha_prime", "actor_loss", "temperature"):
        assert k in info


def test_calql_sac_drops_the_cql_term_online_but_pretraining_keeps_it(agent):
    rng = np.random.default_rng(1)
    sac_agent = agent.replace(hp=dataclasses.replace(agent.hp, online_cql=False))
    new, info = calql.update(sac_agent, make_batch(rng, 1, 4))
    assert "cql_gap" not in info and int(new.lagrange.step) == 0
    assert lagrange_value(new) == pytest.approx(lagrange_value(agent))
    assert float(info["critic_loss"]) == pytest.approx(2 * float(info["bellman_loss"]), rel=1e-5)
    new, info = calql.pretrain_update(sac_agent, make_batch(rng, 2, 4))
    assert "cql_gap" in info and int(new.lagrange.step) == 2 and int(new.critic.step) == 2


# ============================================================== end to end


TINY = {"scale": "mini", "steps": 24, "pretrain_steps": 20, "pretrain_chunk": 10, "eval_interval": 12,
        "eval_episodes": 2, "log_interval": 8, "progress": False, "dataset.num_demos": 3,
        "start_training": 10, "agent.hidden_dims": (16, 16), "agent.cql_n_actions": 2,
        "agent.utd": 1, "agent.batch_size": 8}


# calql online; calql_sac offline-to-online (Fig. 8: Cal-QL pretraining, SAC fine-tuning), which also
# runs Cal-QL's pretraining path
@pytest.mark.parametrize("method, setting", [("calql", "online"), ("calql_sac", "offline_to_online")])
def test_tiny_run_writes_eval_csv(tiny_world, tmp_path, method, setting):
    _, rows, train_rows = tiny_train_run(tmp_path, {**TINY, "method": method, "setting": setting})
    assert_eval_rows(rows, [0, 12, 24])
    phases = {r["phase"] for r in train_rows}
    assert phases == ({"pretrain", "online"} if setting == "offline_to_online" else {"online"})
    for r in train_rows:
        assert np.isfinite(float(r["critic_loss"]))
        # the CQL term is on in pretraining always, online only for calql (not calql_sac)
        assert bool(r.get("cql_gap")) == (r["phase"] == "pretrain" or method == "calql")
