"""QSM against golden values from the authors' JAX code (tools/golden/qsm.py,
Alescontrela/score_matching_rl at the commit in each case's JSON). The authors' parameter trees
(one StateActionValue per critic, DDPM score model) map onto the suite's: the two critics are
stacked on the QEnsemble's head axis; the score model's tree has the same names as the suite's
MLPNoisePredictor (FourierFeatures_0, MLP_0 time MLP, MLP_1 trunk over [a_t, s, cond]).

- schedules: vp_schedule / cosine_schedule vs vp_beta_schedule / cosine_beta_schedule and
  create()'s alpha_hats, T = 5.
- actor_loss: baselines.qsm.score_matching_loss (M = 50) at the authors' t and noise vs
  update_actor's loss, and mean_action_gradient / eps_theta vs its metric statistics.
- td_target: baselines.qsm.td_target with the authors' next actions vs update_q's target; the
  suite's critic_step (sum of the heads' MSE, Adam, Polyak) vs update_q's new critics and targets.
"""
import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from baselines import qsm
from expo.nets import diffusion
from tests import golden_files
from tests.golden_files import assert_close, load

OBS, ACT = 4, 2
CFG = dict(hidden_dims=(16, 16), diffusion_width=16, diffusion_layers=2, time_dim=8,
           time_hidden_dims=(128, 128), T=5, M=50.0, batch_size=4)
STATS = ("mean", "std", "min", "max", "mag")


@pytest.fixture(scope="module")
def agent():
    cfg = {**qsm.get_config(), **CFG}
    return jax.jit(lambda: qsm.create(0, OBS, ACT, cfg))()


def tree(g, prefix):
    """The parameter tree saved as <prefix>/<module path>/<leaf> arrays."""
    flat = {tuple(k.split("/")[1:]): jnp.asarray(v) for k, v in g.items()
            if k.startswith(prefix + "/")}
    return flax.traverse_util.unflatten_dict(flat)


def heads(g, first, second):
    """Two StateActionValue trees -> the suite's QEnsemble tree (heads on axis 0)."""
    return jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b]), tree(g, first), tree(g, second))


def batch_of(g):
    return {k: jnp.asarray(g[k]) for k in
            ("observations", "actions", "rewards", "masks", "next_observations")}


def stats(x):
    x = np.asarray(x)
    return {"mean": x.mean(), "std": x.std(), "min": x.min(), "max": x.max(), "mag": np.abs(x).max()}


def test_schedules():
    g, meta = load("qsm", "schedules")
    vp = diffusion.vp_schedule(5)
    assert_close(vp.betas, g["vp_betas"], meta, "vp betas")
    assert_close(vp.alphas, g["vp_alphas"], meta, "vp alphas")
    assert_close(vp.alpha_bars, g["vp_alpha_hats"], meta, "vp alpha_hats")
    cos = diffusion.cosine_schedule(5)
    assert_close(cos.betas, g["cosine_betas"], meta, "cosine betas")
    assert_close(cos.alpha_bars, g["cosine_alpha_hats"], meta, "cosine alpha_hats")


def test_actor_loss(agent):
    g, meta = load("qsm", "actor_loss")
    ag = agent.replace(critic=agent.critic.replace(params=heads(g, "critic_1", "critic_2")))
    actor_params = tree(g, "actor")
    obs, actions, t = jnp.asarray(g["observations"]), jnp.asarray(g["actions"]), jnp.asarray(g["t"])
    noise = jnp.asarray(g["noise"])
    a_t = diffusion.noisy_actions_at(ag.schedule, actions, t, noise)
    assert_close(a_t, g["noisy_actions"], meta, "a_t")
    loss, _ = jax.jit(qsm.score_matching_loss)(actor_params, ag, obs, actions, t, noise)
    assert_close(loss, g["actor_loss_mean"], meta, "actor loss")
    gbar = jax.jit(qsm.mean_action_gradient)(ag, ag.critic.params, obs, a_t)
    eps = ag.actor.apply_fn({"params": actor_params}, obs, a_t, t[:, None])
    for name, value in (("critic_jacobian", gbar), ("eps_pred", eps)):
        for stat, v in stats(value).items():
            assert_close(v, g[f"{name}_{stat}"], meta, f"{name} {stat}")


def test_td_target(agent, monkeypatch):
    g, meta = load("qsm", "td_target")
    ag = agent.replace(critic=agent.critic.replace(params=heads(g, "critic_1", "critic_2")),
                       target_critic=heads(g, "target_1", "target_2"))
    batch = batch_of(g)
    next_actions = jnp.asarray(g["next_actions"])

    def authors_next_actions(agent_, key, observations, std):
        assert std == pytest.approx(0.1)
        return next_actions

    monkeypatch.setattr(qsm, "noisy_sample", authors_next_actions)
    y, a2 = qsm.td_target(ag, jax.random.PRNGKey(0), batch)
    assert_close(y, g["target_q"], meta, "target")
    for stat in ("mean", "min", "max", "std"):
        assert_close(getattr(np.asarray(y), stat)(), g[f"target_q_{stat}"], meta, f"target {stat}")
    new, info = jax.jit(qsm.critic_step)(ag, batch)  # jit only for speed; same code
    # the suite sums the heads' MSEs; the code steps each critic on its own MSE (same gradients)
    assert_close(info["critic_loss"], g["c_loss_mean_1"] + g["c_loss_mean_2"], meta, "critic loss")
    expected = heads(g, "new_critic_1", "new_critic_2")
    for (path, x), y_ in zip(jax.tree_util.tree_leaves_with_path(new.critic.params),
                             jax.tree_util.tree_leaves(expected)):
        assert_close(x, y_, meta, f"new critic {jax.tree_util.keystr(path)}")
    expected = heads(g, "new_target_1", "new_target_2")
    for (path, x), y_ in zip(jax.tree_util.tree_leaves_with_path(new.target_critic),
                             jax.tree_util.tree_leaves(expected)):
        assert_close(x, y_, meta, f"new target {jax.tree_util.keystr(path)}")


def test_every_case_names_its_provenance():
    golden_files.assert_provenance("qsm", "2e77893", "Alescontrela/score_matching_rl", {"schedules", "actor_loss", "td_target"})