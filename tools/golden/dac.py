"""Golden cases for DAC from the authors' own code (Fang-Lin93/DAC, agents/dac.py).

    .venv/bin/python tools/golden/dac.py --repo /tmp/ref/DAC    # checkout at e254357

Runs the authors' DACLearner constructor, jit_update_actor and _jit_update_critic on small fixed
inputs (obs 4, action 2, batch 4, 4 critic heads of width 8) and writes tests/golden/dac/*.
Cases (tests/test_golden_dac.py compares baselines/dac.py with each):
- forward: the 4-head mish critic EnsembleQ on fixed (s, a), with its parameters;
- actor_loss: one jit_update_actor call (soft Q guidance, eta 0.7) with the authors' DDPM actor:
  the loss terms it reports, and the t, noise and predicted noise it used;
- guidance_weights: the same call with a probe actor whose predicted noise is a free [B, A]
  parameter P = 0, eta = 0 and plain SGD (lr 1): the updated P is -grad_P mean(w * P) = -w / (B A),
  so it reads out the per-element guidance weight w = sqrt(1 - abar_t) grad_a Q / (|Q| + 1e-6);
- lcb_mean / lcb_max: one _jit_update_critic call (q_tar 'lcb') whose action decoder returns fixed
  next actions, with plain SGD (lr 1) on the critic, so new - old parameters are minus the exact
  critic-loss gradient (which pins the TD target row by row); rho 1 with the mean over the target
  samples, and rho 1.1 with the max over them (maxQ, the authors' antmaze setting).

Import shims (modules the functions used here never touch, which do not import on this machine):
tensorflow_probability (networks/critics.py imports it for NormalQNet only), the `datasets`
package (d4rl/gym loaders; only its re-export of networks.types.Batch is used) and the `agents`
package __init__ (it imports every agent, some needing tfp): agents.dac is loaded directly.
"""
from __future__ import annotations

import argparse
import inspect
import os
import sys
import types

import numpy as np

from goldens import FROM_CHECKOUT, flatten, require_commit, write_case

PINNED = "e254357"
REPOSITORY = "https://github.com/Fang-Lin93/DAC"
OBS, ACT, B, H, HIDDEN, T, N_NEXT = 4, 2, 4, 4, (8, 8, 8), 5, 3
TOL = dict(rtol=1e-5, atol=1e-6)


def import_authors(repo: str):
    """agents.dac of the checkout, with the shims described in the module docstring."""
    sys.path.insert(0, repo)
    tfp = types.ModuleType("tensorflow_probability")
    tfp.substrates = types.ModuleType("tensorflow_probability.substrates")
    tfp.substrates.jax = types.SimpleNamespace(distributions=None)
    sys.modules.update({"tensorflow_probability": tfp,
                        "tensorflow_probability.substrates": tfp.substrates})
    from networks.types import Batch
    datasets = types.ModuleType("datasets")
    datasets.Batch = Batch
    sys.modules["datasets"] = datasets
    agents = types.ModuleType("agents")
    agents.__path__ = [os.path.join(repo, "agents")]
    sys.modules["agents"] = agents
    import agents.dac as dac_mod
    return dac_mod


def where(repo: str, obj) -> str:
    """file:line of an imported function or class (jitted ones are unwrapped)."""
    obj = getattr(obj, "__wrapped__", obj)
    path = os.path.relpath(inspect.getsourcefile(obj), repo)
    lines, start = inspect.getsourcelines(obj)
    start += next(i for i, line in enumerate(lines) if line.lstrip().startswith(("def ", "class ")))
    return f"{path}:{start} {obj.__qualname__}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", required=True)
    repo = os.path.abspath(parser.parse_args().repo)
    commit = require_commit(repo, PINNED)
    D = import_authors(repo)
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import optax

    def write(case, arrays, functions, notes=""):
        write_case("dac", case, arrays, repository=REPOSITORY, commit=commit,
                   functions=[where(repo, f) for f in functions], source=FROM_CHECKOUT + (
                       " (agents.dac loaded with import shims for tensorflow_probability, the "
                       "`datasets` package and agents/__init__, which the functions do not use)"),
                   notes=notes, **TOL)

    rng = np.random.default_rng(0)
    f32 = lambda *shape, lo=-1.0, hi=1.0: rng.uniform(lo, hi, shape).astype(np.float32)  # noqa: E731
    obs, actions, next_obs = f32(B, OBS), f32(B, ACT, lo=-0.9, hi=0.9), f32(B, OBS)
    rewards, masks = f32(B), np.array([1.0, 0.0, 1.0, 1.0], np.float32)
    batch = D.Batch(observations=jnp.asarray(obs), actions=jnp.asarray(actions),
                    rewards=jnp.asarray(rewards), masks=jnp.asarray(masks),
                    next_observations=jnp.asarray(next_obs))
    learner = D.DACLearner(obs[:1], actions[:1], seed=0, hidden_dims=HIDDEN, num_qs=H, T=T,
                           time_dim=8, num_q_samples=N_NEXT, dropout_rate=None)
    critic_net = learner.critic.network
    # an independently initialised target critic, so the tests can tell target from online
    target_params = critic_net.init(jax.random.PRNGKey(7), obs[:1], actions[:1])
    critic_tar = learner.critic_tar.replace(params=target_params)
    critic_params = learner.critic.params

    # ---- forward
    write("forward", {"obs": obs, "actions": actions, "q": learner.critic(obs, actions),
                      **flatten(critic_params["params"], "critic", sep=".")},
          [D.DACLearner, D.EnsembleQ],
          notes="EnsembleQ(hidden (8, 8, 8), mish, 4 heads) as DACLearner builds it; q is [heads, B]")

    # ---- actor loss (the authors' DDPM actor) and guidance weights (probe actor)
    actor_rng = jax.random.PRNGKey(3)
    _, t_key, noise_key, dropout_key = jax.random.split(actor_rng, 4)   # jit_update_actor's draws
    t = jax.random.randint(t_key, (B,), 1, T + 1)[:, None]
    noise = jax.random.normal(noise_key, actions.shape)
    noisy = jnp.sqrt(learner.alpha_hats[t]) * actions + jnp.sqrt(1 - learner.alpha_hats[t]) * noise

    def update_actor(actor, eta):
        return D.jit_update_actor(actor_rng, actor, learner.actor_tar, critic_tar, T, learner.alpha_hats,
                                  jnp.float32(eta), learner.eta_min, learner.eta_max, 0.0, 1.0, "soft",
                                  True, learner.ema_tau, False, batch, learner.action_decoder)

    eta = 0.7
    _, _, _, _, info = update_actor(learner.actor, eta)
    pred_eps = learner.actor.apply(learner.actor.params, obs, noisy, t, rngs={"dropout": dropout_key},
                                   training=True)
    # the reproduced draws are those the function used: its BC loss is recovered exactly
    np.testing.assert_allclose(np.mean((pred_eps - noise) ** 2), info["bc_loss"], rtol=1e-6)
    common = {"obs": obs, "actions": actions, "t": np.asarray(t[:, 0]), "noise": noise,
              "noisy_actions": noisy, "alpha_hats": learner.alpha_hats,
              **flatten(target_params["params"], "target_critic", sep=".")}
    write("actor_loss", {**common, "eta": np.float32(eta), "pred_eps": pred_eps,
                         **{k: info[k] for k in ("actor_loss", "bc_loss", "guidance_loss", "Q_norm",
                                                 "Q_grad", "Q_grad_abs")}},
          [D.jit_update_actor, D.DACLearner],
          notes="t is the authors' step in 1..T (alpha_hats[0] = 1 is prepended): the suite's step "
                "is t - 1. Q_grad / Q_grad_abs: mean and mean |.| of grad_a mean_heads Q'(s, a_t) / "
                "(mean |Q'(s, a)| + 1e-6), without the sqrt(1 - abar_t) factor")

    class ProbeEps(nn.Module):
        """eps_theta(s, a_t, t) = P, a free [B, A] parameter (inputs ignored)."""
        @nn.compact
        def __call__(self, s, a, time, training=False):
            return self.param("p", nn.initializers.zeros, (B, ACT))

    sgd = optax.sgd(1.0)
    probe = D.Model.create(ProbeEps(), inputs=[jax.random.PRNGKey(0), obs, actions, t], optimizer=sgd)
    _, _, new_probe, _, probe_info = update_actor(probe, 0.0)
    weights = -B * ACT * new_probe.params["params"]["p"]
    np.testing.assert_allclose(np.mean(weights / jnp.sqrt(1 - learner.alpha_hats[t])),
                               probe_info["Q_grad"], rtol=1e-4, atol=1e-7)
    write("guidance_weights", {**common, "weights": weights}, [D.jit_update_actor, D.Model],
          notes="weights = -B * A * (P after one SGD(lr 1) step of jit_update_actor from P = 0, eta = 0) "
                "= sqrt(1 - abar_t) * grad_a mean_heads Q'(s, a_t) / (mean |Q'(s, a)| + 1e-6), per element")

    # ---- LCB target, fixed next actions, SGD critic
    next_actions = f32(B * N_NEXT, ACT, lo=-0.9, hi=0.9)   # row b * N_NEXT + j: state b, sample j

    def fixed_decoder(key, apply_fn, params, observations, prior, temperature, clip_sampler):
        assert observations.shape[0] == next_actions.shape[0]
        return jnp.asarray(next_actions), key

    critic = learner.critic.replace(optimizer=sgd, opt_state=sgd.init(critic_params))
    for case, rho, max_q in (("lcb_mean", 1.0, False), ("lcb_max", 1.1, True)):
        _, new_critic, new_target, cinfo = D._jit_update_critic(
            jax.random.PRNGKey(5), critic, critic_tar, learner.actor_tar, ACT, 0.99, 0.005,
            fixed_decoder, rho, 1, N_NEXT, True, batch, "lcb", max_q)
        write(case, {"obs": obs, "actions": actions, "rewards": rewards, "masks": masks,
                     "next_obs": next_obs, "next_actions": next_actions, "rho": np.float32(rho),
                     "max_q": np.bool_(max_q), "discount": np.float32(0.99), "tau": np.float32(0.005),
                     "critic_loss": cinfo["critic_loss"],
                     **flatten(critic_params["params"], "critic", sep="."),
                     **flatten(target_params["params"], "target_critic", sep="."),
                     **flatten(new_critic.params["params"], "new_critic", sep="."),
                     **flatten(new_target.params["params"], "new_target_critic", sep=".")},
              [D._jit_update_critic, D.ema_update],
              notes=f"q_tar 'lcb', rho {rho}, maxQ {max_q}; critic optimiser replaced by optax.sgd(1.0) "
                    "without clipping, so new_critic = critic - grad(critic loss); next actions from a "
                    "decoder returning next_actions (row b * 3 + j = sample j of state b)")
    print("wrote", sorted(os.listdir(os.path.join(os.path.dirname(__file__), "..", "..", "tests",
                                                  "golden", "dac"))))


if __name__ == "__main__":
    main()
