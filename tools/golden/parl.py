"""Golden cases for PA-RL's action optimization from the authors' code
(MaxSobolMark/PolicyAgnosticRL, jaxrl_m/agents/continuous/action_optimization.py).

The authors pin jax 0.4.24 / flax 0.8.0 / chex / distrax (requirements.txt); their code uses APIs
the suite's jax no longer has (jax.tree_map) and packages the suite does not install. Run it in a
throwaway venv with their pins:

    python3 -m venv /tmp/parlvenv && /tmp/parlvenv/bin/pip install jax==0.4.24 jaxlib==0.4.24 \
        flax==0.8.0 chex==0.1.86 distrax==0.1.5 optax==0.2.2 numpy==1.26.4 \
        tensorflow-probability==0.23.0 ml_collections einops "scipy<1.13"
    /tmp/parlvenv/bin/python tools/golden/parl.py --repo /tmp/ref/PolicyAgnosticRL

Import shims (none replaces an authors' function): `tensorflow` is a stub module (jaxrl_m uses
tf.Tensor in type aliases and tf.io.gfile in functions not called here), and the package
jaxrl_m.agents is registered without its __init__ (which imports every agent).

The critic is built from the authors' classes as their CQL/Cal-QL agent builds it (cql.py create):
ModuleDict({"critic": Critic(encoder=EncodingWrapper(state encoder), network=ensemblize(MLP,
H))}), MLP hidden (16, 16), LayerNorm, activate_final; relu activations (the suite's critic; the
authors' default is swish, and the critic architecture is a documented deviation of the suite, not
what these cases test). The Critic's final Dense is shared by the heads. `forward_critic` is the
authors' SACAgent.forward_critic, called on a small object holding the critic state and config.

Cases (tests/test_golden_parl.py runs the suite's functions on the same inputs):
- top_m: action_optimization_sample_actions with N = 8 base actions per state, keep m = 3, no
  local steps: the kept candidates and their ensemble-mean Q.
- ascent_small: local_optimization_steps, 10 steps of 3e-4 (the authors' defaults) on the mean.
- ascent_large: local_optimization_steps, 6 steps of 1.5 on the ensemble MIN, so some steps
  overshoot (the best iterate is not the last) and the box clip binds.
- pipeline: action_optimization_sample_actions with N = 8, m = 3, 5 steps of 0.05: the optimized
  candidates, their Q (the categorical logits), the argmax action; and the distillation set
  (dataset_actions_to_consider: the worst kept action replaced by the data action).
"""
from __future__ import annotations

import argparse
import inspect
import sys
import types
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import goldens  # noqa: E402

REPOSITORY = "https://github.com/MaxSobolMark/PolicyAgnosticRL"
PINNED = "a26a192"
OBS, ACT, B, H, N, M = 4, 2, 3, 4, 8, 3


def import_authors(repo: Path):
    tf = types.ModuleType("tensorflow")
    tf.Tensor = type("Tensor", (), {})
    sys.modules["tensorflow"] = tf
    sys.path.insert(0, str(repo))
    pkg = types.ModuleType("jaxrl_m.agents")
    pkg.__path__ = [str(repo / "jaxrl_m" / "agents")]
    sys.modules["jaxrl_m.agents"] = pkg
    from jaxrl_m.agents.continuous import action_optimization
    return action_optimization


def where(obj, repo: Path) -> str:
    obj = inspect.unwrap(obj)
    path = Path(inspect.getsourcefile(obj)).resolve().relative_to(repo.resolve())
    return f"{path}:{inspect.getsourcelines(obj)[1]}"


class CriticAgent:
    """What action optimization needs of an agent: .state, .config and forward_critic (the
    authors' SACAgent.forward_critic). A plain object: hashable, as the static jit argument."""

    def __init__(self, state, forward_critic):
        self.state = state
        self.config = {"critic_ensemble_size": H, "distributional_critic": False}
        self._forward = forward_critic

    def forward_critic(self, *args, **kwargs):
        return self._forward(self, *args, **kwargs)


def make_critic():
    import flax
    import flax.linen as nn
    import jax
    from jaxrl_m.agents.continuous.sac import SACAgent
    from jaxrl_m.common.common import JaxRLTrainState, ModuleDict
    from jaxrl_m.common.encoding import EncodingWrapper
    from jaxrl_m.networks.actor_critic_nets import Critic, ensemblize
    from jaxrl_m.networks.mlp import MLP

    def state_encoder(x, **kwargs):  # train.py's encoder for state observations
        return x["state"] if isinstance(x, dict) else x

    encoder = EncodingWrapper(state_encoder, use_proprio=False, stop_gradient=False)
    backbone = ensemblize(partial(MLP, hidden_dims=(16, 16), activations=nn.relu,
                                  activate_final=True, use_layer_norm=True), H)(name="critic_ensemble")
    model_def = ModuleDict({"critic": partial(Critic, encoder=encoder, network=backbone)(name="critic")})
    obs = {"state": np.zeros((1, OBS), np.float32)}
    params = model_def.init(jax.random.PRNGKey(0), critic=[obs, np.zeros((1, ACT), np.float32)])["params"]
    # larger final weights: Q differences of order 1, so ranking and ascent are well separated
    # and LayerNorm scales / biases away from their 1 / 0 initialisation, so the mapping is tested
    params = flax.core.unfreeze(params)
    critic = params["modules_critic"]
    critic["Dense_0"]["kernel"] = critic["Dense_0"]["kernel"] * 3.0
    keys = iter(jax.random.split(jax.random.PRNGKey(3), 4))
    for ln in ("LayerNorm_0", "LayerNorm_1"):
        for leaf, base in (("scale", 1.0), ("bias", 0.0)):
            x = critic["network"][ln][leaf]
            critic["network"][ln][leaf] = base + 0.3 * jax.random.normal(next(keys), x.shape)
    state = JaxRLTrainState.create(apply_fn=model_def.apply, params=params, txs=None,
                                   target_params=params, rng=jax.random.PRNGKey(1))
    return CriticAgent(state, SACAgent.forward_critic), params


def inputs():
    rng = np.random.default_rng(0)
    obs = rng.uniform(-1, 1, (B, OBS)).astype(np.float32)
    cands = rng.uniform(-1, 1, (B, N, ACT)).astype(np.float32)
    cands[0, 0] = [0.995, -0.4]   # near the box edge
    cands[1, 1] = [-0.3, 0.995]
    dataset_actions = rng.uniform(-1, 1, (B, ACT)).astype(np.float32)
    return obs, cands, dataset_actions


def authors_q(critic, obs, actions, use_min=False):
    """Q of each row by the authors' SACAgent.forward_critic, reduced over heads: [n]."""
    import jax
    import jax.numpy as jnp
    qs = critic.forward_critic({"state": jnp.asarray(obs)}, jnp.asarray(actions),
                               jax.random.PRNGKey(0), train=False)
    return np.asarray(qs.min(axis=0) if use_min else qs.mean(axis=0))


def sample_actions(ao, critic, obs, cands, steps, step_size, argmax, dataset_actions=None):
    import jax
    import jax.numpy as jnp
    observations = {"state": jnp.asarray(obs), "base_policy_actions": jnp.asarray(cands)}
    return ao.action_optimization_sample_actions(
        observations, critic, critic.state, num_base_policy_actions=N, num_actions_to_keep=M,
        num_steps=steps, step_size=step_size, optimize_critic_ensemble_min=False,
        rng=jax.random.PRNGKey(2), action_space_low=-jnp.ones(ACT), action_space_high=jnp.ones(ACT),
        argmax=argmax, dataset_actions_to_consider=dataset_actions)


def case_top_m(ao, repo, commit, critic, params):
    obs, cands, _ = inputs()
    dist, info = sample_actions(ao, critic, obs, cands, 0, 3e-4, argmax=False)
    kept = np.asarray(dist.components_distribution.distribution.loc)  # [B, M, A], best LAST
    q = np.asarray(info["base_policy_actions_q_values"]).reshape(B, M)
    assert np.all(np.diff(q, axis=1) > 0)
    goldens.write_case(
        "parl", "top_m", {"observations": obs, "candidates": cands, "kept": kept, "kept_q": q,
                          **goldens.flatten(params, "critic")},
        repository=REPOSITORY, commit=commit,
        functions=[where(ao.action_optimization_sample_actions, repo)],
        source=goldens.FROM_CHECKOUT + ": action_optimization_sample_actions (num_steps 0)",
        rtol=1e-5, atol=1e-6,
        notes=f"N = {N}, m = {M}, {H} heads, ranking by the ensemble mean; kept sorted by Q "
              "ascending (the code's argsort order: best last)")


def ascent_case(ao, repo, commit, critic, params, name, steps, step_size, use_min):
    import jax.numpy as jnp
    obs, cands, _ = inputs()
    actions = cands.reshape(B * N, ACT)
    res = ao.local_optimization_steps(
        {"state": jnp.repeat(jnp.asarray(obs), N, axis=0)}, jnp.asarray(actions), critic,
        critic.state, num_steps=steps, step_size=step_size, optimize_critic_ensemble_min=use_min,
        action_space_low=-jnp.ones(ACT), action_space_high=jnp.ones(ACT))
    index = np.asarray(res.action_with_max_value_index)
    # Q of the returned actions. (The returned max_value misses the last iterate: the final
    # comparison after the loop updates the actions but not the max_value field.)
    obs_rep = np.repeat(obs, N, axis=0)
    best_q = authors_q(critic, obs_rep, res.actions, use_min)
    assert np.all(best_q >= np.asarray(res.max_value) - 1e-6)
    if name == "ascent_large":  # the case exists to cover these
        assert np.any((index > 0) & (index < steps)), index  # a step that lowered Q was rejected
        assert np.any(index == 0), index                   # every step worse: the start is kept
        assert np.any(index == steps), index
    goldens.write_case(
        "parl", name, {"observations": obs, "actions": actions, "best": np.asarray(res.actions),
                       "best_q": best_q, "best_index": index,
                       "steps": np.int32(steps), "step_size": np.float32(step_size),
                       "use_min": np.bool_(use_min), **goldens.flatten(params, "critic")},
        repository=REPOSITORY, commit=commit,
        functions=[where(ao.local_optimization_steps, repo)],
        source=goldens.FROM_CHECKOUT + ": local_optimization_steps",
        rtol=1e-5, atol=1e-6,
        notes=(f"{steps} steps of {step_size} on the ensemble {'min' if use_min else 'mean'}, "
               "actions clipped to [-1, 1]; best = the highest-Q iterate (start included), "
               "best_index its step; best_q = the authors' critic at best (forward_critic)"))


def case_pipeline(ao, repo, commit, critic, params):
    obs, cands, dataset_actions = inputs()
    steps, step_size = 5, 0.05
    dist, _ = sample_actions(ao, critic, obs, cands, steps, step_size, argmax=False)
    optimized = np.asarray(dist.components_distribution.distribution.loc)
    log_probs = np.asarray(dist.mixture_distribution.logits)  # distrax normalizes the logits
    obs_rep = np.repeat(obs, M, axis=0)
    q = authors_q(critic, obs_rep, optimized.reshape(B * M, ACT)).reshape(B, M)
    best, _ = sample_actions(ao, critic, obs, cands, steps, step_size, argmax=True)
    distill, _ = sample_actions(ao, critic, obs, cands, steps, step_size, argmax=False,
                                dataset_actions=dataset_actions)
    distill_optimized = np.asarray(distill.components_distribution.distribution.loc)
    distill_q = authors_q(critic, obs_rep, distill_optimized.reshape(B * M, ACT)).reshape(B, M)
    goldens.write_case(
        "parl", "pipeline",
        {"observations": obs, "candidates": cands, "dataset_actions": dataset_actions,
         "optimized": optimized, "optimized_q": q, "optimized_log_probs": log_probs,
         "action": np.asarray(best.mode()), "distill_optimized": distill_optimized,
         "distill_q": distill_q, "distill_log_probs": np.asarray(distill.mixture_distribution.logits),
         **goldens.flatten(params, "critic")},
        repository=REPOSITORY, commit=commit,
        functions=[where(ao.action_optimization_sample_actions, repo),
                   where(ao.local_optimization_steps, repo)],
        source=goldens.FROM_CHECKOUT + ": action_optimization_sample_actions (argmax and mixture)",
        rtol=1e-5, atol=1e-6,
        notes=(f"N = {N}, m = {M}, {steps} steps of {step_size} on the ensemble mean; optimized "
               "[B, m, A] in the code's order (kept ascending by the pre-ascent Q); optimized_log_probs "
               "= the mixture's log-probabilities (log softmax of the ensemble-mean Q after the "
               "ascent: distrax stores normalized logits); optimized_q = that Q itself, by the "
               "authors' forward_critic at the optimized actions; action = the argmax "
               "(Deterministic) action; distill_* = the same with dataset_actions_to_consider"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", required=True, help="checkout of MaxSobolMark/PolicyAgnosticRL")
    repo = Path(parser.parse_args().repo)
    commit = goldens.require_commit(repo, PINNED)
    ao = import_authors(repo)
    critic, params = make_critic()
    case_top_m(ao, repo, commit, critic, params)
    ascent_case(ao, repo, commit, critic, params, "ascent_small", 10, 3e-4, use_min=False)
    ascent_case(ao, repo, commit, critic, params, "ascent_large", 6, 1.5, use_min=True)
    case_pipeline(ao, repo, commit, critic, params)
    print("wrote", sorted(p.name for p in (goldens.GOLDEN_ROOT / "parl").glob("*.json")))


if __name__ == "__main__":
    main()
