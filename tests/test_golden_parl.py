"""PA-RL's action optimization against golden values from the authors' code (tools/golden/parl.py,
MaxSobolMark/PolicyAgnosticRL at the commit in each case's JSON; generated under the authors' pinned
jax 0.4.24 / flax 0.8.0). The critic golden is the authors' ModuleDict critic (ensemblized
LayerNorm MLP backbone, ONE final Dense shared by the heads); critic_params maps it onto the
suite's QEnsemble tree (backbone per head, the shared Dense copied to every head). The base
policy's samples are the stored candidates (parl.base_samples is monkeypatched).

- top_m: parl.global_top_m on ensemble-mean Q vs action_optimization_sample_actions' kept set.
- ascent_small / ascent_large: parl.local_ascent vs local_optimization_steps (3e-4 x 10 on the
  mean; 1.5 x 6 on the min, where overshooting steps are rejected and the box clip binds).
- pipeline: parl.optimized_candidates / optimize_actions / distillation_targets vs the authors'
  mixture components, logits, argmax action and distillation candidate set.
The authors list the kept candidates worst first (argsort), the suite best first: compared reversed.
"""
import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from baselines import parl
from tests.conftest import with_hp
from tests import golden_files
from tests.golden_files import assert_close, load

OBS, ACT, H = 4, 2, 4
CFG = dict(hidden_dims=(16, 16), num_qs=H, num_min_qs=2, critic_layer_norm=True, N=8, num_keep=3,
           T=2, diffusion_width=8, diffusion_blocks=1, time_dim=4, cql_alpha=1.0, cql_n_actions=2,
           batch_size=4)


@pytest.fixture(scope="module")
def agent():
    cfg = {**parl.get_config(), **CFG}
    return jax.jit(lambda: parl.create(0, OBS, ACT, cfg))()


def critic_params(g):
    flat = {tuple(k.split("/")[2:]): jnp.asarray(v) for k, v in g.items()
            if k.startswith("critic/modules_critic/")}
    authors = flax.traverse_util.unflatten_dict(flat)
    shared = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (H, *x.shape)), authors["Dense_0"])
    return {"MLP_0": authors["network"], "Dense_0": shared}


def fixed_samples(monkeypatch, table):
    def fake(ag, actor_params, key, observations, num):
        assert observations.shape[0] == table.shape[0] and num == table.shape[1]
        return jnp.asarray(table)

    monkeypatch.setattr(parl, "base_samples", fake)


def test_top_m(agent):
    g, meta = load("parl", "top_m")
    obs, cands = jnp.asarray(g["observations"]), jnp.asarray(g["candidates"])
    b, n, _ = cands.shape
    q = parl.ensemble_q(agent, critic_params(g), jnp.repeat(obs, n, axis=0),
                        cands.reshape(b * n, ACT)).reshape(b, n)
    kept, q_kept = parl.global_top_m(cands, q, g["kept"].shape[1])
    assert_close(kept[:, ::-1], g["kept"], meta, "kept candidates")
    assert_close(q_kept[:, ::-1], g["kept_q"], meta, "kept Q")


@pytest.mark.parametrize("case", ["ascent_small", "ascent_large"])
def test_local_ascent(agent, case):
    g, meta = load("parl", case)
    params, actions = critic_params(g), jnp.asarray(g["actions"])
    obs = jnp.repeat(jnp.asarray(g["observations"]), actions.shape[0] // g["observations"].shape[0],
                     axis=0)
    use_min = bool(g["use_min"])
    best, best_q, _ = parl.local_ascent(lambda a: parl.ensemble_q(agent, params, obs, a, use_min),
                                        actions, int(g["steps"]), float(g["step_size"]))
    assert_close(best, g["best"], meta, "best iterate")
    assert_close(best_q, g["best_q"], meta, "best Q")


def test_pipeline(agent, monkeypatch):
    g, meta = load("parl", "pipeline")
    ag = with_hp(agent, ascent_steps=5, ascent_step_size=0.05, optimize_ensemble_min=False,
                 distill_argmax=True, distill_dataset_action=True)
    params, obs = critic_params(g), jnp.asarray(g["observations"])
    ag = ag.replace(critic=ag.critic.replace(params=params))  # distillation_targets reads it there
    fixed_samples(monkeypatch, g["candidates"])
    key = jax.random.PRNGKey(0)
    candidates = jax.jit(parl.optimized_candidates)  # jit only for speed; same code
    cands, q, _ = candidates(ag, None, params, key, obs)
    assert_close(cands[:, ::-1], g["optimized"], meta, "optimized candidates")
    assert_close(q[:, ::-1], g["optimized_q"], meta, "optimized Q")
    # the authors' mixture over the candidates: softmax of that Q (distrax keeps log-probs)
    assert_close(jax.nn.log_softmax(q[:, ::-1]), g["optimized_log_probs"], meta, "log-probs")
    assert_close(jax.jit(parl.optimize_actions)(ag, None, params, key, obs), g["action"], meta,
                 "action")
    # distillation set: the code drops the worst kept action and appends the data action
    data = jnp.asarray(g["dataset_actions"])
    cands, q, _ = candidates(ag, None, params, key, obs, data)
    m = cands.shape[1]
    order = list(range(m - 2, -1, -1)) + [m - 1]  # suite [best, ..., data] -> code [.., best, data]
    assert_close(cands[:, order], g["distill_optimized"], meta, "distillation candidates")
    assert_close(q[:, order], g["distill_q"], meta, "distillation Q")
    assert_close(jax.nn.log_softmax(q[:, order]), g["distill_log_probs"], meta, "distill log-probs")
    target, _ = jax.jit(parl.distillation_targets)(ag, key, obs, data)
    best = np.argmax(g["distill_q"], axis=1)
    assert_close(target, g["distill_optimized"][np.arange(len(best)), best], meta, "argmax target")


def test_every_case_names_its_provenance():
    golden_files.assert_provenance("parl", "a26a192", "MaxSobolMark/PolicyAgnosticRL", {"top_m", "ascent_small", "ascent_large", "pipeline"})