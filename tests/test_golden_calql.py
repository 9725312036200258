"""Cal-QL against the authors' own code (golden files from tools/golden/calql.py, nakamotoo/Cal-QL
at ac6eafe): Monte-Carlo returns-to-go (with the all-failure rule), the max-target TD backup, the
CQL soft maximum with the Monte-Carlo floor on the policy actions, the critic loss, and the
policy's log-probability, computed by the suite (baselines/calql.py, expo/nets/) on the authors'
parameters, inputs and policy samples.

The authors' Q network (FullyConnectedNetwork Dense_0..2) and policy (one Dense to 2|A| split into
mean and raw log-std, log_std = multiplier * raw + offset) are mapped onto the suite's trees by
`critic_tree` / `actor_tree`.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax.training.train_state import TrainState

from baselines import calql
from expo.nets.distributions import TanhGaussian, tanh_gaussian_log_prob_pre_tanh
from expo.nets.ensemble import QEnsemble
from tests import golden_files
from tests.golden_files import assert_close, load

OBS, ACT, K = 4, 2, 3
MC_CASES = ["mc_returns_antmaze_success_terminal", "mc_returns_antmaze_all_failure",
            "mc_returns_adroit_success_no_terminal", "mc_returns_adroit_all_failure"]
CQL_CASES = ["cql_calql_fixed_weight", "cql_calql_lagrange"]
FAILURE = -5.0  # the scaled failure reward of both scripts


def critic_tree(arrays, prefix):
    """Authors' qf1 / qf2 (FullyConnectedNetwork_0: Dense_0, Dense_1 hidden, Dense_2 output) ->
    the suite's QEnsemble without LayerNorm (MLP_0/Dense_0, MLP_0/Dense_1, Dense_0), heads stacked."""
    def one(name):
        net = golden_files.unflatten(arrays, f"{prefix}{name}")["params"]["FullyConnectedNetwork_0"]
        return {"MLP_0": {"Dense_0": net["Dense_0"], "Dense_1": net["Dense_1"]}, "Dense_0": net["Dense_2"]}
    return jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b]), one("qf1"), one("qf2"))


def actor_tree(arrays):
    """Authors' TanhGaussianPolicy -> the suite's TanhGaussian: the output Dense's first |A|
    columns are the mean head; the raw log-std columns times the multiplier, plus the offset in
    the bias, are the log-std head (exact at fixed parameters)."""
    p = golden_files.unflatten(arrays, "policy")["params"]
    net, out = p["base_network"], p["base_network"]["Dense_2"]
    mult, offset = p["log_std_multiplier_module"]["value"], p["log_std_offset_module"]["value"]
    return {"MLP_0": {"Dense_0": net["Dense_0"], "Dense_1": net["Dense_1"]},
            "Dense_0": {"kernel": out["kernel"][:, :ACT], "bias": out["bias"][:ACT]},
            "Dense_1": {"kernel": mult * out["kernel"][:, ACT:], "bias": mult * out["bias"][ACT:] + offset}}


def suite_agent(arrays, lagrange: bool):
    """A suite CalQLAgent (2 heads of 8-8, no LayerNorm, as calql.create builds them) holding the
    authors' critic and target critic; the hyperparameters of the authors' run."""
    critic_def = QEnsemble((8, 8), 2, use_layer_norm=False)
    critic = TrainState.create(apply_fn=critic_def.apply, params=critic_tree(arrays, ""),
                               tx=optax.identity())
    hp = calql.Hyper(
        action_dim=ACT, num_qs=2, discount=0.99, tau=5e-3, target_entropy=-float(ACT),
        backup_entropy=False, cql_n_actions=K, cql_importance_sample=True, cql_temp=1.0,
        cql_max_target_backup=True, cql_lagrange=lagrange,
        cql_min_q_weight=float(arrays["cql_min_q_weight"]), cql_target_action_gap=0.8,
        enable_calql=True, online_cql=True, reward_scale=10.0, reward_bias=5.0)
    return calql.CalQLAgent(rng=jax.random.PRNGKey(0), actor=None, critic=critic,
                            target_critic=critic_tree(arrays, "target_"), temp=None, lagrange=None, hp=hp)


def batch_of(arrays):
    return {"observations": jnp.asarray(arrays["observations"]), "actions": jnp.asarray(arrays["actions"]),
            "next_observations": jnp.asarray(arrays["next_observations"]),
            "masks": 1.0 - jnp.asarray(arrays["dones"]), "mc_returns": jnp.asarray(arrays["mc_returns"])}


# ============================================================== Monte-Carlo returns

@pytest.mark.parametrize("case", MC_CASES)
def test_return_to_go(case):
    """calc_return_to_go: G_t = r_t + gamma (1 - terminal_t) G_{t+1}; all-failure -> r_fail/(1-gamma)."""
    arrays, meta = load("calql", case)
    mc = calql.return_to_go(arrays["rewards"], 1.0 - arrays["terminals"], float(arrays["discount"]), FAILURE)
    assert_close(mc, arrays["mc_returns"], meta, "mc_returns")


@pytest.mark.parametrize("first,second", [MC_CASES[:2], MC_CASES[2:]])
def test_offline_extras_splits_trajectories_like_the_authors(first, second):
    """Two trajectories back to back (raw rewards, the suite scales them with the authors' map):
    the first ends with done = 1 (antmaze) or before an episode start (adroit, no terminal)."""
    (a, meta), (b, _) = load("calql", first), load("calql", second)
    data = {"rewards": np.concatenate([a["raw_rewards"], b["raw_rewards"]]),
            "dones": np.concatenate([a["terminals"], b["terminals"]]),
            "masks": 1.0 - np.concatenate([a["terminals"], b["terminals"]]),
            "episode_starts": np.r_[1, np.zeros(len(a["rewards"]) - 1), 1, np.zeros(len(b["rewards"]) - 1)]}
    cfg = {"reward_scale": float(a["reward_scale"]), "reward_bias": float(a["reward_bias"]),
           "discount": float(a["discount"]), "failure_reward": FAILURE}
    mc = calql.offline_extras(data, cfg)["mc_returns"]
    assert_close(mc, np.concatenate([a["mc_returns"], b["mc_returns"]]), meta, "mc_returns")


# ============================================================== one CQL / Cal-QL step

@pytest.mark.parametrize("case", CQL_CASES)
def test_max_target_backup(case):
    """y = r + gamma (1 - done) max_j min_h Q'_h(s', a'_j) over the authors' 3 next-state samples."""
    arrays, meta = load("calql", case)
    agent = suite_agent(arrays, case.endswith("lagrange"))
    target = jax.jit(calql.td_target)(agent, batch_of(arrays), jnp.asarray(arrays["rewards"]),
                                      jnp.asarray(arrays["new_next_actions"]), jnp.zeros((4, K)), 1.0)
    assert_close(target, arrays["td_target"], meta, "td_target")


@jax.jit
def _cql_pieces(agent, arrays):
    """The suite's Q(s, a_data), CQL soft maximum per head and critic loss on the authors' samples."""
    params, obs = agent.critic.params, arrays["observations"]
    batch = batch_of(arrays)
    q_data = agent.critic.apply_fn({"params": params}, obs, arrays["actions"])
    q_rand, q_cur, q_next = (calql.q_at(agent, params, obs, arrays[k]) for k in
                             ("cql_random_actions", "cql_current_actions", "cql_next_actions"))
    ood = calql.cql_ood_values(q_rand, q_next, arrays["cql_next_log_pis"], q_cur,
                               arrays["cql_current_log_pis"], q_data, batch["mc_returns"], agent.hp)
    samples = (arrays["cql_random_actions"], arrays["cql_current_actions"], arrays["cql_current_log_pis"],
               arrays["cql_next_actions"], arrays["cql_next_log_pis"])
    loss, (info, gap) = calql.critic_loss_fn(params, agent, batch, arrays["td_target"], samples,
                                             arrays["alpha_prime"], True)
    return q_data, ood, loss, info["bellman_loss"], gap


@pytest.mark.parametrize("case", CQL_CASES)
def test_cql_term_with_the_monte_carlo_floor_and_critic_loss(case):
    """Per head: logsumexp of [Q(s,a_rand) - log 0.5^|A|, max(Q(s,a'_next), mc) - log pi,
    max(Q(s,a_cur), mc) - log pi] (cql_qf*_ood), the gap mean(ood - Q(s,a)) (cql_qf*_diff), and
    the critic loss sum_h (Bellman MSE + w [alpha'] (gap [- 0.8])) (qf1_loss + qf2_loss)."""
    arrays, meta = load("calql", case)
    lagrange = case.endswith("lagrange")
    agent = suite_agent(arrays, lagrange)
    inputs = {k: jnp.asarray(v) for k, v in arrays.items() if "/" not in k}
    if not lagrange:
        inputs["alpha_prime"] = jnp.float32(1.0)  # unused with a fixed weight (the code logs 0.0)
    q_data, ood, loss, bellman, gap = _cql_pieces(agent, inputs)
    assert_close(q_data, np.stack([arrays["q1_pred"], arrays["q2_pred"]]), meta, "q_data")
    assert_close(ood, np.stack([arrays["cql_qf1_ood"], arrays["cql_qf2_ood"]]), meta, "ood")
    assert_close(gap, [arrays["cql_qf1_diff"], arrays["cql_qf2_diff"]], meta, "gap")
    assert_close(bellman, (arrays["qf1_bellman_loss"] + arrays["qf2_bellman_loss"]) / 2, meta, "bellman")
    assert_close(loss, arrays["qf1_loss"] + arrays["qf2_loss"], meta, "critic_loss")
    # the case exercises the floor: without it the soft maximum would differ
    unfloored = jax.jit(calql.cql_ood_values, static_argnums=7)(
        *[calql.q_at(agent, agent.critic.params, inputs["observations"], inputs[k]) for k in
          ("cql_random_actions", "cql_next_actions")], inputs["cql_next_log_pis"],
        calql.q_at(agent, agent.critic.params, inputs["observations"], inputs["cql_current_actions"]),
        inputs["cql_current_log_pis"], q_data, jnp.full((4,), -jnp.inf), agent.hp)
    assert not np.allclose(unfloored, ood, rtol=1e-3)


def test_policy_log_prob_of_data_actions():
    """The authors' TanhGaussianPolicy.log_prob(s, a_data) (distrax) == the suite's TanhGaussian +
    tanh_gaussian_log_prob_pre_tanh at atanh(a), with the mapped parameters."""
    arrays, meta = load("calql", "cql_calql_fixed_weight")
    mean, log_std = TanhGaussian((8, 8), ACT).apply({"params": actor_tree(arrays)}, arrays["observations"])
    log_prob = tanh_gaussian_log_prob_pre_tanh(jnp.arctanh(jnp.asarray(arrays["actions"])), mean, log_std)
    assert_close(log_prob, arrays["log_pi_data"], meta, "log_pi_data")


def test_every_case_names_its_provenance():
    golden_files.assert_provenance("calql", "ac6eafe", "nakamotoo/Cal-QL", MC_CASES + CQL_CASES)