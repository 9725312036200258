"""baselines/idql.py against golden values from the authors' code (tests/golden/idql, written by
tools/golden/idql.py from philippe-eecs/IDQL at 7582571, ddpm_iql_simple learner).

The authors' parameters are saved as they lay them out and mapped onto the suite's trees:
critic  {VmapStateActionValue_0: {MLP_0: {Dense_0, Dense_1}, Dense_0}} -> {MLP_0: {...}, Dense_0};
value   {MLP_0: {LayerNorm_0, Dense_0, Dense_1}, OutputVDense}
        -> {LayerNorm_0, MLP_0: {Dense_0, Dense_1}, Dense_0}.
"""
import dataclasses

import jax
import jax.numpy as jnp
import optax
import pytest

from baselines import idql
from tests import golden_files
from tests.golden_files import assert_close

OBS, ACT, B, N = 4, 2, 5, 16
CFG = dict(hidden_dims=(8, 8), num_qs=2, T=5, N=N, diffusion_width=8, diffusion_blocks=1, time_dim=4,
           utd=1, batch_size=4, expectile=0.7, train_actor_online=False, value_layer_norm=True)


def load(case):
    return golden_files.load("idql", case)


def suite_critic(arrays, prefix):
    return golden_files.unflatten(arrays, prefix, sep=".")["VmapStateActionValue_0"]


def suite_value(arrays, prefix):
    v = golden_files.unflatten(arrays, prefix, sep=".")
    mlp = dict(v["MLP_0"])
    return {"LayerNorm_0": mlp.pop("LayerNorm_0"), "MLP_0": mlp, "Dense_0": v["OutputVDense"]}


@pytest.fixture(scope="module")
def agent():
    cfg = idql.get_config()
    cfg.update(CFG)
    return jax.jit(lambda: idql.create(0, OBS, ACT, cfg))()


@pytest.mark.parametrize("tau", ["07", "09"])
def test_expectile_loss(tau):
    """|tau - 1(diff < 0)| diff^2 elementwise (diff = 0 and a tiny negative diff included)."""
    a, meta = load("expectile_loss")
    assert_close(idql.expectile_loss(jnp.asarray(a["diff"]), float(tau) / 10), a[f"loss_{tau}"], meta, tau)


def test_forward_critic_and_value(agent):
    """The 2-head relu critic (no LayerNorm) and V with a LayerNorm on its input."""
    a, meta = load("forward")
    q = agent.critic.apply_fn({"params": suite_critic(a, "critic")}, a["obs"], a["actions"])
    v = agent.value.apply_fn({"params": suite_value(a, "value")}, a["obs"])
    assert q.shape == (2, B) and v.shape == (B,)
    assert_close(q, a["q"], meta, "q")
    assert_close(v, a["v"], meta, "v")


@pytest.mark.parametrize("case", ["critic_update_tau07", "critic_update_tau09"])
def test_critic_step_expectile_value_and_q_target(agent, case):
    """One critic step on SGD(lr 1) on both sides: V's change is minus the gradient of the
    expectile loss of min_heads Q'(s, a) - V(s) (target critic); the critic's change is minus the
    gradient of the MSE of both heads to y = r + gamma * mask * V_new(s') (V after its step), which
    pins y row by row; then Polyak 0.005 of the target critic. Also the logged losses and means."""
    a, meta = load(case)
    sgd = optax.sgd(1.0)
    value, critic = suite_value(a, "value"), suite_critic(a, "critic")
    ag = agent.replace(value=agent.value.replace(params=value, tx=sgd, opt_state=sgd.init(value)),
                       critic=agent.critic.replace(params=critic, tx=sgd, opt_state=sgd.init(critic)),
                       target_critic=suite_critic(a, "target_critic"),
                       hp=dataclasses.replace(agent.hp, expectile=float(a["expectile"]),
                                              discount=float(a["discount"]), tau=float(a["tau"])))
    batch = {k: jnp.asarray(a[k]) for k in ("observations", "actions", "rewards", "masks",
                                            "next_observations")}
    new, info = jax.jit(idql.critic_step)(ag, batch)
    for ours, theirs in (("value_loss", "value_loss"), ("v_mean", "v"), ("critic_loss", "critic_loss"),
                         ("q_mean", "q")):
        assert_close(info[ours], a[theirs], meta, ours)
    minus = lambda x, y: x - y  # noqa: E731
    golden_files.assert_trees_close(jax.tree_util.tree_map(minus, value, new.value.params),
                       jax.tree_util.tree_map(minus, value, suite_value(a, "new_value")), meta, "value grad")
    golden_files.assert_trees_close(jax.tree_util.tree_map(minus, critic, new.critic.params),
                       jax.tree_util.tree_map(minus, critic, suite_critic(a, "new_critic")), meta,
                       "critic grad")
    golden_files.assert_trees_close(new.target_critic, suite_critic(a, "new_target_critic"), meta, "new target")


def test_argmax_over_fixed_candidates(agent):
    """The authors' eval_actions picks, among its diffusion samples, the argmax of the min over
    heads of the TARGET critic; select_argmax on the same candidates must pick the same ones (with
    these parameters the online critic, or the mean over heads, would pick differently)."""
    a, meta = load("argmax_select")
    ag = agent.replace(critic=agent.critic.replace(params=suite_critic(a, "critic")),
                       target_critic=suite_critic(a, "target_critic"))
    got = idql.select_argmax(ag, jnp.asarray(a["obs"]), jnp.asarray(a["candidates"]))
    assert_close(got, a["chosen"], meta, "chosen action")


def test_every_case_names_its_provenance():
    golden_files.assert_provenance("idql", "7582571", "philippe-eecs/IDQL", {"expectile_loss", "forward", "critic_update_tau07", "critic_update_tau09",
                                        "argmax_select"})