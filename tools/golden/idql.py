"""Golden cases for IDQL from the authors' own code (philippe-eecs/IDQL,
jaxrl5/agents/ddpm_iql_simple/ddpm_iql_learner.py, the learner jaxrl5.agents exports).

    .venv/bin/python tools/golden/idql.py --repo /tmp/ref/IDQL    # checkout at 7582571

Builds DDPMIQLLearner.create (obs 4, action 2, critic/value hidden (8, 8), 2 Q heads, T 5) and runs
its functions on fixed inputs; writes tests/golden/idql/*. Cases (tests/test_golden_idql.py compares
baselines/idql.py with each):
- expectile_loss: expectile_loss(diff, tau) elementwise, tau 0.7 and 0.9;
- forward: the 2-head critic and the value network (LayerNorm on its input) with their parameters;
- critic_update_tau07 / critic_update_tau09: one critic_update (update_v: expectile regression of
  V on min_heads Q'(s, a) of the target critic; then update_q: MSE of both heads to
  y = r + gamma * mask * V_new(s'); Polyak 0.005), with the value and critic optimisers replaced by
  plain SGD (lr 1), so new - old parameters are minus the exact loss gradients (which pin
  the expectile weights and the Q target row by row); the target critic is an independent
  initialisation so the tests can tell it from the online one;
- argmax_select: eval_actions on 3 states (N = 16): the candidates its ddpm_sampler call draws
  (the same call with the same rng, repeated here) and the action it returns, the argmax over
  candidates of min_heads Q' of the target critic.

Import shims (modules the functions used here never touch): `gym` is aliased to gymnasium (the
learner imports it for type annotations and jaxrl5.data for gym.utils.seeding), and the package
__init__ files of jaxrl5.agents, jaxrl5.agents.ddpm_iql_simple and jaxrl5.data are skipped (they
import every agent and replay buffer, some needing tensorflow_probability).
"""
from __future__ import annotations

import argparse
import inspect
import os
import sys
import types

import numpy as np

from goldens import FROM_CHECKOUT, flatten, require_commit, write_case

PINNED = "7582571"
REPOSITORY = "https://github.com/philippe-eecs/IDQL"
OBS, ACT, B, HIDDEN, T, N = 4, 2, 5, (8, 8), 5, 16
TOL = dict(rtol=1e-5, atol=1e-6)


def import_authors(repo: str):
    """jaxrl5.agents.ddpm_iql_simple.ddpm_iql_learner of the checkout, with the shims above."""
    sys.path.insert(0, repo)
    import gymnasium
    sys.modules["gym"] = gymnasium
    for name in ("jaxrl5.agents", "jaxrl5.agents.ddpm_iql_simple", "jaxrl5.data"):
        package = types.ModuleType(name)
        package.__path__ = [os.path.join(repo, *name.split("."))]
        sys.modules[name] = package
    import jaxrl5.agents.ddpm_iql_simple.ddpm_iql_learner as learner_mod
    return learner_mod


def where(repo: str, obj) -> str:
    """file:line (of the def / class line) of an imported function or class."""
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
    L = import_authors(repo)
    import gymnasium
    import jax
    import jax.numpy as jnp
    import optax

    def write(case, arrays, functions, notes=""):
        write_case("idql", case, arrays, repository=REPOSITORY, commit=commit,
                   functions=[where(repo, f) for f in functions], source=FROM_CHECKOUT + (
                       " (gym aliased to gymnasium; the __init__ of jaxrl5.agents, "
                       "jaxrl5.agents.ddpm_iql_simple and jaxrl5.data skipped)"),
                   notes=notes, **TOL)

    rng = np.random.default_rng(0)
    f32 = lambda *shape, lo=-1.0, hi=1.0: rng.uniform(lo, hi, shape).astype(np.float32)  # noqa: E731
    obs_space = gymnasium.spaces.Box(-1.0, 1.0, (OBS,), np.float32, seed=0)
    act_space = gymnasium.spaces.Box(-1.0, 1.0, (ACT,), np.float32, seed=0)

    def make(expectile):
        learner = L.DDPMIQLLearner.create(0, obs_space, act_space, critic_hidden_dims=HIDDEN, T=T,
                                          time_dim=8, N=N, actor_num_blocks=1,
                                          critic_hyperparam=expectile)
        critic_net = learner.critic.apply_fn.__self__
        # an independently initialised target critic, so the tests can tell it from the online one
        target = critic_net.init(jax.random.PRNGKey(7), jnp.zeros((1, OBS)), jnp.zeros((1, ACT)))["params"]
        return learner.replace(target_critic=learner.target_critic.replace(params=target))

    # ---- expectile loss
    diff = np.array([-2.0, -0.5, 0.0, 0.3, 1.5, -1e-3], np.float32)
    write("expectile_loss", {"diff": diff, "loss_07": L.expectile_loss(diff, 0.7),
                             "loss_09": L.expectile_loss(diff, 0.9)}, [L.expectile_loss])

    # ---- forward
    learner = make(0.7)
    obs, actions = f32(B, OBS), f32(B, ACT, lo=-0.9, hi=0.9)
    params = {**flatten(learner.critic.params, "critic", sep="."), **flatten(learner.value.params, "value", sep=".")}
    write("forward", {"obs": obs, "actions": actions, **params,
                      "q": learner.critic.apply_fn({"params": learner.critic.params}, obs, actions),
                      "v": learner.value.apply_fn({"params": learner.value.params}, obs)},
          [L.DDPMIQLLearner.create, L.StateActionValue, L.StateValue, L.Ensemble],
          notes="q: [2 heads, B]; v: [B]")

    # ---- critic update (V then Q then Polyak), SGD lr 1
    batch = {"observations": obs, "actions": actions, "rewards": f32(B),
             "masks": np.array([1.0, 0.0, 1.0, 1.0, 1.0], np.float32), "next_observations": f32(B, OBS)}
    sgd = optax.sgd(1.0)
    for case, expectile in (("critic_update_tau07", 0.7), ("critic_update_tau09", 0.9)):
        learner = make(expectile)
        learner = learner.replace(
            value=learner.value.replace(tx=sgd, opt_state=sgd.init(learner.value.params)),
            critic=learner.critic.replace(tx=sgd, opt_state=sgd.init(learner.critic.params)))
        new, info = learner.critic_update({k: jnp.asarray(v) for k, v in batch.items()})
        write(case, {**batch, "expectile": np.float32(expectile), "discount": np.float32(learner.discount),
                     "tau": np.float32(learner.tau),
                     **flatten(learner.critic.params, "critic", sep="."), **flatten(learner.target_critic.params, "target_critic", sep="."),
                     **flatten(learner.value.params, "value", sep="."), **flatten(new.critic.params, "new_critic", sep="."),
                     **flatten(new.target_critic.params, "new_target_critic", sep="."), **flatten(new.value.params, "new_value", sep="."),
                     **{k: info[k] for k in ("value_loss", "v", "critic_loss", "q")}},
              [L.DDPMIQLLearner.critic_update, L.DDPMIQLLearner.update_v, L.DDPMIQLLearner.update_q,
               L.expectile_loss],
              notes=f"critic_hyperparam (expectile) {expectile}; value and critic optimisers replaced by "
                    "optax.sgd(1.0), so new_* = old - grad; info: value_loss, v (mean V(s)), "
                    "critic_loss, q (mean over heads and batch)")

    # ---- argmax over diffusion samples (eval_actions)
    learner = make(0.7)
    states = f32(3, OBS)
    candidates, chosen = [], []
    for s in states:
        rep = jnp.expand_dims(jnp.asarray(s), 0).repeat(learner.N, axis=0)
        cands, _ = L.ddpm_sampler(learner.score_model.apply_fn, learner.target_score_model.params,
                                  learner.T, learner.rng, learner.act_dim, rep, learner.alphas,
                                  learner.alpha_hats, learner.betas, learner.ddpm_temperature,
                                  learner.M, learner.clip_sampler)
        action, learner = learner.eval_actions(s)
        assert np.any(np.all(np.asarray(cands) == action, axis=-1)), "eval_actions drew other samples"
        candidates.append(np.asarray(cands))
        chosen.append(action)
    candidates, chosen = np.stack(candidates), np.stack(chosen)
    # report whether min-vs-mean over heads, or target-vs-online critic, would choose differently
    rep_obs = np.repeat(states, N, axis=0)
    flat_c = candidates.reshape(-1, ACT)
    q_t = np.asarray(learner.target_critic.apply_fn({"params": learner.target_critic.params}, rep_obs, flat_c))
    q_o = np.asarray(learner.critic.apply_fn({"params": learner.critic.params}, rep_obs, flat_c))
    pick = lambda q: q.reshape(3, N).argmax(1)  # noqa: E731
    print("argmax_select: min-target", pick(q_t.min(0)), "mean-target", pick(q_t.mean(0)),
          "min-online", pick(q_o.min(0)))
    write("argmax_select", {"obs": states, "candidates": candidates, "chosen": chosen,
                            **flatten(learner.critic.params, "critic", sep="."),
                            **flatten(learner.target_critic.params, "target_critic", sep=".")},
          [L.DDPMIQLLearner.eval_actions, L.ddpm_sampler, L.compute_q],
          notes="candidates[i]: the N = 16 samples eval_actions draws for obs[i] (its ddpm_sampler "
                "call repeated with the same rng; the generator checks the returned action is one of "
                "them); chosen[i]: the action it returns")
    print("wrote", sorted(os.listdir(os.path.join(os.path.dirname(__file__), "..", "..", "tests",
                                                  "golden", "idql"))))


if __name__ == "__main__":
    main()
