"""baselines/dac.py against golden values from the authors' code (tests/golden/dac, written by
tools/golden/dac.py from Fang-Lin93/DAC at e254357).

The authors' critic parameters are saved as they lay them out (EnsembleQ: VmapQNet_0/MLP_0/Dense_0..3,
the last Dense the scalar head) and mapped onto the suite's QEnsemble tree (MLP_0/Dense_0..2 + Dense_0).
The noise network is not compared (the suite's LN-ResNet is a documented deviation): the actor cases
feed the authors' predicted noise into the suite's loss.
"""
import dataclasses

import jax
import jax.numpy as jnp
import optax
import pytest

from baselines import dac
from expo.nets import diffusion
from tests import golden_files
from tests.golden_files import assert_close

OBS, ACT, B, H, T, N_NEXT = 4, 2, 4, 4, 5, 3
CFG = dict(hidden_dims=(8, 8, 8), num_qs=H, T=T, N=3, num_target_samples=N_NEXT, diffusion_width=8,
           diffusion_blocks=1, time_dim=4, batch_size=B, critic_lr=3e-4, eta=0.7, eta_lr=0.0,
           rho=1.0, max_q_backup=False, critic_activation="mish", critic_layer_norm=False)


def load(case):
    return golden_files.load("dac", case)


def suite_critic_params(arrays, prefix):
    """Authors' EnsembleQ {VmapQNet_0: {MLP_0: {Dense_0..Dense_k}}} (Dense_k the scalar head) ->
    the suite's QEnsemble {MLP_0: {Dense_0..Dense_k-1}, Dense_0: head}; leading axis = head in both."""
    layers = golden_files.unflatten(arrays, prefix, sep=".")["VmapQNet_0"]["MLP_0"]
    k = len(layers) - 1
    return {"MLP_0": {f"Dense_{i}": layers[f"Dense_{i}"] for i in range(k)}, "Dense_0": layers[f"Dense_{k}"]}


@pytest.fixture(scope="module")
def agent():
    cfg = dac.get_config()
    cfg.update(CFG)
    return jax.jit(lambda: dac.create(0, OBS, ACT, cfg))()


def test_forward_critic_ensemble(agent):
    """The 4-head mish critic (no LayerNorm) on fixed (s, a) with the authors' parameters."""
    a, meta = load("forward")
    q = agent.critic.apply_fn({"params": suite_critic_params(a, "critic")}, a["obs"], a["actions"])
    assert q.shape == (H, B)
    assert_close(q, a["q"], meta, "q")


def test_vp_schedule_matches_the_authors_alpha_hats(agent):
    """DAC prepends alpha_hat = 1 for its step 0: its alpha_hats[1:] are the suite's alpha_bars."""
    a, meta = load("actor_loss")
    assert_close(agent.schedule.alpha_bars, a["alpha_hats"][1:], meta, "alpha_bars")
    assert a["alpha_hats"][0] == 1.0


def test_actor_loss_terms(agent):
    """eta * BC + mean(sqrt(1 - abar_t) * grad_a Q'(s, a_t) / (|Q'| + 1e-6) * eps_pred), given the
    authors' t, noise and predicted noise; their step t (1..T) is the suite's t - 1."""
    a, meta = load("actor_loss")
    t = jnp.asarray(a["t"]) - 1
    noisy = diffusion.noisy_actions_at(agent.schedule, a["actions"], t, a["noise"])
    assert_close(noisy, a["noisy_actions"], meta, "noisy actions")
    weights, q_norm = dac.guidance_weights(agent, suite_critic_params(a, "target_critic"), a["obs"],
                                           a["actions"], a["noisy_actions"], t)
    loss, bc, guidance = dac.actor_loss(a["pred_eps"], a["noise"], weights, a["eta"])
    assert_close(q_norm, a["Q_norm"], meta, "Q_norm")
    grad_q = weights / jnp.sqrt(1.0 - agent.schedule.alpha_bars[t])[:, None]
    assert_close(grad_q.mean(), a["Q_grad"], meta, "Q_grad mean")
    assert_close(jnp.abs(grad_q).mean(), a["Q_grad_abs"], meta, "Q_grad |mean|")
    assert_close(bc, a["bc_loss"], meta, "bc_loss")
    assert_close(guidance, a["guidance_loss"], meta, "guidance_loss")
    assert_close(loss, a["actor_loss"], meta, "actor_loss")


def test_guidance_weights_per_element(agent):
    """Every element of sqrt(1 - abar_t) grad_a mean_heads Q'(s, a_t) / (mean |Q'(s, a)| + 1e-6),
    read out of the authors' jit_update_actor by a probe actor (see the generator)."""
    a, meta = load("guidance_weights")
    weights, _ = dac.guidance_weights(agent, suite_critic_params(a, "target_critic"), a["obs"],
                                      a["actions"], a["noisy_actions"], jnp.asarray(a["t"]) - 1)
    assert_close(weights, a["weights"], meta, "weights")


def landing_actor(agent, next_actions):
    """An actor stub under which the suite's DDPM sampler returns next_actions (|.| < 1) exactly:
    the eps that puts each step's posterior mean on them (the last step adds no noise)."""
    s = agent.schedule

    def apply_fn(variables, obs, a_t, t, training=False, rngs=None):
        t = t[:, 0]
        alpha, abar, beta = s.alphas[t][:, None], s.alpha_bars[t][:, None], s.betas[t][:, None]
        return (a_t - jnp.sqrt(alpha) * next_actions) * jnp.sqrt(1.0 - abar) / beta

    return agent.replace(actor=agent.actor.replace(apply_fn=apply_fn))


@pytest.mark.parametrize("case", ["lcb_mean", "lcb_max"])
def test_critic_step_lcb_target(agent, case):
    """One critic step with y = r + gamma * mask * (mean_h V_h - rho std_h V_h), V_h the mean (or
    max) over the fixed next actions of Q'_h(s', a'), on SGD(lr 1) on both sides: the parameter
    change is minus the critic-loss gradient (MSE on every head), which pins y row by row; then
    Polyak tau 0.005."""
    a, meta = load(case)
    sgd = optax.sgd(1.0)
    params = suite_critic_params(a, "critic")
    ag = landing_actor(agent, jnp.asarray(a["next_actions"]))
    ag = ag.replace(critic=ag.critic.replace(params=params, tx=sgd, opt_state=sgd.init(params)),
                    target_critic=suite_critic_params(a, "target_critic"),
                    hp=dataclasses.replace(ag.hp, rho=float(a["rho"]), max_q_backup=bool(a["max_q"]),
                                           discount=float(a["discount"]), tau=float(a["tau"])))
    batch = {"observations": a["obs"], "actions": a["actions"], "rewards": a["rewards"],
             "masks": a["masks"], "next_observations": a["next_obs"]}
    new, info = dac.critic_step(ag, batch)
    assert_close(info["critic_loss"], a["critic_loss"], meta, "critic_loss")
    minus = lambda x, y: x - y  # noqa: E731
    golden_files.assert_trees_close(jax.tree_util.tree_map(minus, params, new.critic.params),
                       jax.tree_util.tree_map(minus, params, suite_critic_params(a, "new_critic")), meta,
                       "critic grad")
    golden_files.assert_trees_close(new.target_critic, suite_critic_params(a, "new_target_critic"), meta, "new target")

def test_every_case_names_its_provenance():
    golden_files.assert_provenance("dac", "e254357", "Fang-Lin93/DAC", {"forward", "actor_loss", "guidance_weights", "lcb_mean", "lcb_max"})