"""Golden tests: the suite's EXPO pieces against the authors' code (github:Servo97/EXPO at bbd5713),
cases written by tools/golden/expo.py. The authors' parameters are mapped onto the suite's parameter
trees (the mapping is checked against the suite's own init: same paths, same shapes); the noise and
head subsets the authors' code drew are fed to the suite's functions by monkeypatching
jax.random.normal / randint and expo.agents.expo.subset_params.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from expo.agents import expo
from expo.nets import diffusion
from expo.nets.ensemble import QEnsemble, subset_indices
from expo.nets.temperature import temperature_loss
from tests import golden_files
from tests.golden_files import assert_close, load

M = "expo"
OBS, ACT, B = 4, 2, 4
CFG = dict(hidden_dims=(16, 16), num_qs=5, num_min_qs=2, critic_layer_norm=True, discount=0.99,
           T=5, N=3, n_edit=2, beta=0.3, diffusion_width=16, diffusion_blocks=2, time_dim=8,
           edit_dropout=None, init_temperature=0.7, utd=1, batch_size=4)

# authors' path -> suite's path, applied in order to "a/b/c" strings
CRITIC = [("VmapStateActionValue_0/", "")]
ACTOR = [("DiffusionMLPResNet_0/MLPResNetBlock_", "ResidualBlock_"), ("DiffusionMLPResNet_0/", ""),
         ("DiffusionMLP_0/", "MLP_0/")]
EDIT = [("OutputDenseMean/", "Dense_0/"), ("OutputDenseLogStd/", "Dense_1/")]


def mapped(arrays, prefix, renames, like):
    """The authors' parameters stored under `prefix/...` as a tree shaped like the suite's `like`."""
    tree = {}
    for name, value in arrays.items():
        if not name.startswith(prefix + "/"):
            continue
        path = name[len(prefix) + 1:]
        for old, new in renames:
            path = path.replace(old, new)
        *parents, leaf = path.split("/")
        node = tree
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = jnp.asarray(value)
    shapes = lambda t: jax.tree_util.tree_map(jnp.shape, t)  # noqa: E731
    assert shapes(tree) == shapes(jax.tree_util.tree_map(jnp.asarray, like)), prefix
    return tree


@pytest.fixture(scope="module")
def agent():
    cfg = expo.get_config()
    cfg.update(CFG)
    return jax.jit(lambda: expo.create(0, OBS, ACT, cfg))()


def with_params(agent, arrays, *, critic=False, target=False, edit=False, actor=False):
    if critic:
        agent = agent.replace(critic=agent.critic.replace(
            params=mapped(arrays, "critic", CRITIC, agent.critic.params)))
    if target:
        agent = agent.replace(target_critic=mapped(arrays, "target_critic", CRITIC,
                                                   agent.target_critic))
    if edit:
        agent = agent.replace(edit=agent.edit.replace(
            params=mapped(arrays, "edit", EDIT, agent.edit.params)))
    if actor:
        agent = agent.replace(actor=agent.actor.replace(
            params=mapped(arrays, "actor", ACTOR, agent.actor.params)))
    return agent


def batch_of(arrays):
    return {k: jnp.asarray(arrays[k]) for k in
            ("observations", "actions", "next_observations", "rewards", "masks") if k in arrays}


def fixed_normal(monkeypatch, noise):
    """jax.random.normal returns the authors' recorded draw (shape checked)."""
    def fake(key, shape=(), dtype=jnp.float32):
        assert tuple(shape) == noise.shape, (shape, noise.shape)
        return jnp.asarray(noise, dtype)
    monkeypatch.setattr(jax.random, "normal", fake)


# ----------------------------------------------------------------------------- cases

def test_provenance_of_every_case():
    golden_files.assert_provenance("expo", "bbd5713", "Servo97/EXPO", {"critic_forward", "head_subsets", "td_target", "vp_schedule", "noise_net", "eps_mse",
                                        "ddpm_sampler", "edit_loss", "temperature"})


def test_critic_forward(agent):
    """Their Ensemble of StateActionValue(MLP with LayerNorm) == QEnsemble, all 5 heads."""
    arrays, meta = load(M, "critic_forward")
    params = mapped(arrays, "critic", CRITIC, agent.critic.params)
    q = jax.jit(QEnsemble((16, 16), 5, True).apply)({"params": params}, arrays["observations"],
                                                    arrays["actions"])
    assert_close(q, arrays["q"], meta, "q")


def test_head_subsets():
    """subsample_ensemble's heads for a key == subset_indices for the same key."""
    arrays, meta = load(M, "head_subsets")
    num_qs, num_min_qs = int(arrays["num_qs"]), int(arrays["num_min_qs"])
    idx = jax.jit(jax.vmap(lambda k: subset_indices(k, num_qs, num_min_qs)))(arrays["keys"])
    np.testing.assert_array_equal(np.asarray(idx), arrays["heads"])


def test_td_target_with_independent_subsets(agent, monkeypatch):
    """td_target selects the argmax candidate by the min over the select subset and values it by
    the min over the independent value subset, with the subsets the authors' code drew."""
    arrays, meta = load(M, "td_target")
    ag = with_params(agent, arrays, critic=True, target=True)
    subsets, keys = [arrays["select_heads"], arrays["value_heads"]], []

    def authors_subset(params, key, num_qs, num_min_qs):
        assert (num_qs, num_min_qs) == (5, 2)
        idx = jnp.asarray(subsets[len(keys)])
        keys.append(key)
        return jax.tree_util.tree_map(lambda p: p[idx], params)

    monkeypatch.setattr(expo, "subset_params", authors_subset)

    def run(ag, batch, candidates):  # traced once (a fresh function), so one jit compile
        q_select = expo.candidate_values(ag, ag.target_critic, jax.random.PRNGKey(0),
                                         batch["next_observations"], candidates)
        index, _ = expo.select_candidate(ag, jax.random.PRNGKey(0), q_select)
        keys.clear()
        target, entropy = expo.td_target(ag, jax.random.PRNGKey(1), batch, candidates)
        td_keys = jnp.stack(keys)
        (loss, _), grads = jax.value_and_grad(expo.critic_loss_fn, has_aux=True)(
            ag.critic.params, ag.critic.apply_fn, batch, target)
        return q_select, index, target, entropy, td_keys, loss, grads

    q_select, index, target, entropy, td_keys, loss, grads = jax.jit(run)(
        ag, batch_of(arrays), jnp.asarray(arrays["candidates"]))
    assert_close(q_select, arrays["q_select"], meta, "q_select")
    np.testing.assert_array_equal(np.asarray(index), arrays["index"])
    assert len(td_keys) == 2 and not np.array_equal(td_keys[0], td_keys[1]), "one subset key"
    assert_close(target, arrays["target"], meta, "target")
    np.testing.assert_array_equal(np.asarray(entropy), 0.0)
    assert_close(loss, arrays["critic_loss"], meta, "critic_loss")
    golden_files.assert_trees_close(grads, mapped(arrays, "critic_grads", CRITIC, ag.critic.params), meta, "grad")


def test_vp_schedule():
    arrays, meta = load(M, "vp_schedule")
    for T in (5, 10):
        s = jax.jit(diffusion.vp_schedule, static_argnums=0)(T)
        assert_close(s.betas, arrays[f"betas_{T}"], meta, f"betas T={T}")
        assert_close(s.alphas, arrays[f"alphas_{T}"], meta, f"alphas T={T}")
        assert_close(s.alpha_bars, arrays[f"alpha_bars_{T}"], meta, f"alpha_bars T={T}")


def test_noise_net(agent):
    """Their DDPM(FourierFeatures, DiffusionMLP, DiffusionMLPResNet) == NoisePredictor."""
    arrays, meta = load(M, "noise_net")
    params = mapped(arrays, "actor", ACTOR, agent.actor.params)
    eps = jax.jit(agent.actor.apply_fn)({"params": params}, arrays["observations"],
                                        arrays["noisy_actions"], arrays["t"])
    assert_close(eps, arrays["eps"], meta, "eps")


def test_eps_mse_loss_and_gradients(agent, monkeypatch):
    """ddpm_loss with the authors' t and noise == update_actor's loss; same gradients."""
    arrays, meta = load(M, "eps_mse")
    params = mapped(arrays, "actor", ACTOR, agent.actor.params)
    t, noise = arrays["t"], arrays["noise"]
    monkeypatch.setattr(jax.random, "randint", lambda key, shape, lo, hi, *a, **k: jnp.asarray(t))
    fixed_normal(monkeypatch, noise)
    loss, grads = jax.jit(jax.value_and_grad(lambda p: diffusion.ddpm_loss(
        agent.actor.apply_fn, p, agent.schedule, jax.random.PRNGKey(0), arrays["observations"],
        arrays["actions"])))(params)
    assert_close(loss, arrays["loss"], meta, "loss")
    golden_files.assert_trees_close(grads, mapped(arrays, "grads", ACTOR, agent.actor.params), meta, "grad")


def test_ddpm_sampler(agent, monkeypatch):
    """ddpm_sample fed the authors' a_T and per-step z == their ddpm_sampler (clipped)."""
    arrays, meta = load(M, "ddpm_sampler")
    params = mapped(arrays, "actor", ACTOR, agent.actor.params)
    noise = jnp.asarray(arrays["noise"])  # a_T, then z for t = T-1, ..., 0
    key = jax.random.PRNGKey(0)
    # ddpm_sample's own keys (init_key for a_T, then one per scan step, in scan order); a draw
    # from any other key comes back NaN, so a change of its key layout fails loudly here.
    init_key, rest = jax.random.split(key)
    table = jnp.concatenate([init_key[None], jax.random.split(rest, 5)])

    def by_key(k, shape=(), dtype=jnp.float32):
        hit = jnp.all(table == k, axis=-1)
        return jnp.where(hit.any(), noise[jnp.argmax(hit)], jnp.nan).astype(dtype)

    monkeypatch.setattr(jax.random, "normal", by_key)
    sample = jax.jit(lambda p, obs: diffusion.ddpm_sample(
        agent.actor.apply_fn, p, agent.schedule, key, obs, ACT))(params, arrays["observations"])
    assert_close(sample, arrays["sample"], meta, "sample")


def test_edit_loss_and_gradients(agent, monkeypatch):
    """edit_loss_fn with the authors' noise == update_edit_actor: loss, mean Q, entropy, grads."""
    arrays, meta = load(M, "edit_loss")
    ag = with_params(agent, arrays, critic=True, edit=True)
    fixed_normal(monkeypatch, arrays["noise"])
    temperature = jnp.exp(jnp.asarray(arrays["log_temp"]))
    loss_and_grad = jax.value_and_grad(lambda p, a, b, t: expo.edit_loss_fn(
        p, a, b, jax.random.PRNGKey(0), jax.random.PRNGKey(1), t), has_aux=True)
    (loss, info), grads = jax.jit(loss_and_grad)(ag.edit.params, ag, batch_of(arrays), temperature)
    assert_close(loss, arrays["loss"], meta, "loss")
    assert_close(info["edit_q"], arrays["edit_q"], meta, "edit_q")
    assert_close(info["edit_entropy"], arrays["entropy"], meta, "entropy")
    golden_files.assert_trees_close(grads, mapped(arrays, "grads", EDIT, ag.edit.params), meta, "grad")


def test_edit_step_after_adam(agent, monkeypatch):
    """One suite edit_step (edit + temperature) == their update_edit_actor + update_temperature,
    parameters after the optimiser step (adam, lr 3e-4 at step 0)."""
    arrays, meta = load(M, "edit_loss")
    temp_arrays, temp_meta = load(M, "temperature")
    ag = with_params(agent, arrays, critic=True, edit=True)
    assert_close(ag.temp.params["log_temp"], arrays["log_temp"], meta, "initial log_temp")
    fixed_normal(monkeypatch, arrays["noise"])
    new, _ = jax.jit(lambda a, b: expo.edit_step(a, b))(ag, batch_of(arrays))
    golden_files.assert_trees_close(new.edit.params, mapped(arrays, "edit_after_adam", EDIT, ag.edit.params), meta,
                 "edit params")
    assert_close(new.temp.params["log_temp"], temp_arrays["log_temp_after_adam"], temp_meta,
                 "log_temp")


def test_temperature_loss(agent):
    """d/dlog_alpha of temperature_loss == their update_temperature gradient (also the loss)."""
    arrays, meta = load(M, "temperature")
    assert agent.hp.target_entropy == pytest.approx(float(arrays["target_entropy"]))
    def loss_of(log_temp):
        return temperature_loss(jnp.exp(log_temp), arrays["entropy"], arrays["target_entropy"])

    grad = jax.grad(loss_of)(jnp.asarray(arrays["log_temp"]))
    assert_close(grad, arrays["grad"], meta, "grad")
    assert_close(loss_of(jnp.asarray(arrays["log_temp"])), arrays["grad"], meta, "loss")
