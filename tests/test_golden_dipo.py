"""DIPO against golden values from the authors' PyTorch code (tools/golden/dipo.py, BellmanTimeHut/DIPO
at the commit in each case's JSON). The torch weights stored in the golden files are mapped onto
the suite's parameter trees (torch Linear weight [out, in] = flax kernel.T); torch is not needed.

- cosine_schedule: expo.nets.diffusion.cosine_schedule vs cosine_beta_schedule + Diffusion's
  alphas_cumprod, T = 100 and T = 5.
- action_gradient: baselines.dipo.improve_actions vs DiPo.action_gradient (6 Adam steps with the
  0.1 * |A| grad-norm clip active and the [-1, 1] clamp binding on one entry).
- noise_network: the suite's MLPNoisePredictor (sinusoidal time) vs agent.model.Model.
- posterior_sampler: the suite's posterior_step chain vs Diffusion.sample with the same Gaussian
  draws, noise ratio 1 and 0 (eval).
"""
import jax
import jax.numpy as jnp
import pytest

from baselines import dipo
from expo.nets import diffusion
from tests.conftest import with_hp
from tests import golden_files
from tests.golden_files import assert_close, load

OBS, ACT, B = 4, 2, 5
CFG = dict(hidden_dims=(16, 16, 16), diffusion_width=16, diffusion_layers=3, time_dim=8, T=5,
           batch_size=4)


@pytest.fixture(scope="module")
def agent():
    cfg = {**dipo.get_config(), **CFG}
    return jax.jit(lambda: dipo.create(0, OBS, ACT, cfg))()


def dense(g, name):
    return {"kernel": jnp.asarray(g[f"{name}_w"].T), "bias": jnp.asarray(g[f"{name}_b"])}


def critic_params(g):
    """agent.model.Critic (q1_model / q2_model Sequentials, Linear at indices 0, 2, 4, 6) -> the
    suite's two-head QEnsemble tree (heads stacked on axis 0)."""
    def head(q):
        return {"MLP_0": {f"Dense_{i}": dense(g, f"{q}_{2 * i}") for i in range(3)},
                "Dense_0": dense(g, f"{q}_6")}

    return jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b]), head("q1"), head("q2"))


def noise_params(g):
    """agent.model.Model -> MLPNoisePredictor(learnable_time=False). The authors' trunk input is
    [x, t_emb, state]; the suite's is (a_t, s, cond): the first kernel's rows are reordered."""
    first = dense(g, "layer_0")
    k = first["kernel"]
    first["kernel"] = jnp.concatenate([k[:ACT], k[ACT + 8:], k[ACT:ACT + 8]])  # time_dim 8
    return {"MLP_0": {"Dense_0": dense(g, "time_1"), "Dense_1": dense(g, "time_3")},
            "MLP_1": {"Dense_0": first, **{f"Dense_{i}": dense(g, f"layer_{2 * i}") for i in (1, 2, 3)}}}


def test_cosine_schedule():
    g, meta = load("dipo", "cosine_schedule")
    for T in (100, 5):
        s = diffusion.cosine_schedule(T)
        assert_close(s.betas, g[f"betas_T{T}"], meta, f"betas T={T}")
        assert_close(s.alpha_bars, g[f"alpha_bars_T{T}"], meta, f"alpha_bars T={T}")


def test_action_gradient(agent):
    g, meta = load("dipo", "action_gradient")
    ag = with_hp(agent, action_gradient_steps=len(g["grad_norms"]))
    assert ag.hp.action_lr == 0.03 and ag.hp.action_max_norm == pytest.approx(0.2)
    improved, first_norm = jax.jit(dipo.improve_actions)(
        ag, critic_params(g), jnp.asarray(g["observations"]), jnp.asarray(g["actions"]))
    assert_close(improved, g["improved"], meta, "improved actions")
    assert_close(first_norm, g["grad_norms"][0], meta, "first gradient norm")


def test_noise_network(agent):
    g, meta = load("dipo", "noise_network")
    eps = agent.actor.apply_fn({"params": noise_params(g)}, jnp.asarray(g["observations"]),
                               jnp.asarray(g["noisy_actions"]), jnp.asarray(g["t"])[:, None])
    assert_close(eps, g["eps"], meta, "eps")


@pytest.mark.parametrize("name,ratio", [("sample", 1.0), ("eval", 0.0)])
def test_posterior_sampler(agent, name, ratio):
    """expo.nets.diffusion.posterior_sample is ddpm_sample's scan of posterior_step then a clip;
    here the same chain runs with the authors' recorded a_T and z (z[i] at t = T - 1 - i)."""
    g, meta = load("dipo", "posterior_sampler")
    params, obs = noise_params(g), jnp.asarray(g["observations"])
    T = g[f"{name}_z"].shape[0]
    assert agent.schedule.betas.shape == (T,)
    a = jnp.asarray(g[f"{name}_a_T"])
    for i, t in enumerate(range(T - 1, -1, -1)):
        eps = agent.actor.apply_fn({"params": params}, obs, a, jnp.full((1, 1), t))
        a = diffusion.posterior_step(agent.schedule, a, eps, t, jnp.asarray(g[f"{name}_z"][i]), ratio)
    assert_close(jnp.clip(a, -1.0, 1.0), g[f"{name}_actions"], meta, f"{name} actions")


def test_every_case_names_its_provenance():
    golden_files.assert_provenance("dipo", "c6d8d1b", "BellmanTimeHut/DIPO", {"cosine_schedule", "action_gradient", "noise_network", "posterior_sampler"})