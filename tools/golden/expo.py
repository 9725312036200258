"""Golden cases for EXPO from the authors' own code (github:Servo97/EXPO at bbd5713, the authors'
commits of that fork; expo/agents/sac/expo_learner.py and expo/networks/).

Run under an interpreter that can import the authors' code (jax 0.4, flax 0.7, tensorflow-probability,
gym; the suite's jax 0.10 cannot import tfp's jax substrate):

    python3.11 -m venv /tmp/expo_ref_venv
    /tmp/expo_ref_venv/bin/pip install "jax[cpu]==0.4.20" jaxlib==0.4.20 flax==0.7.5 optax==0.1.7 \
        tensorflow-probability==0.22.1 numpy==1.26.4 "scipy<1.13" gym==0.23.1 ml_dtypes==0.2.0
    /tmp/expo_ref_venv/bin/python tools/golden/expo.py --repo /tmp/ref/EXPO

Nothing of the authors' is copied: their EXPOLearner is built with their `create` (small sizes),
its base policy swapped for their own DDPM module at width 16 (their `create` fixes the ResNet width
at 256), and their methods run eagerly. What their methods draw or compute internally is RECORDED
by thin wrappers (the noise of jax.random.normal / randint, the head subsets chosen by their
subsample_ensemble, the candidates their samplers return, the gradients handed to
TrainState.apply_gradients), so the tests can feed the same noise and subsets to the suite.

jax_threefry_partitionable is switched on: jax >= 0.5 (the suite's) has it on by default, so the
same PRNG key gives the same bits in both interpreters (needed by the head-subset case only; every
other case records and injects its noise).
"""
from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from goldens import FROM_CHECKOUT, flatten, require_commit, write_case  # noqa: E402

METHOD = "expo"
REPOSITORY = "github:Servo97/EXPO"
PINNED = "bbd5713"
OBS, ACT, B = 4, 2, 4
HIDDEN, NUM_QS, NUM_MIN_QS = (16, 16), 5, 2
T, TIME_DIM, WIDTH, BLOCKS = 5, 8, 16, 2
N, N_EDIT, BETA, DISCOUNT, INIT_TEMP = 3, 2, 0.3, 0.99, 0.7

LEARNER = "expo/agents/sac/expo_learner.py"
DIFF = "expo/networks/diffusion.py"
F = {  # file:line at bbd5713
    "create": f"{LEARNER}:82 (EXPOLearner.create)",
    "compute_q": f"{LEARNER}:38 (compute_q)",
    "sample_batch_actions": f"{LEARNER}:324 (EXPOLearner.sample_batch_actions)",
    "update_edit_actor": f"{LEARNER}:423 (EXPOLearner.update_edit_actor)",
    "update_actor": f"{LEARNER}:460 (EXPOLearner.update_actor)",
    "update_temperature": f"{LEARNER}:500 (EXPOLearner.update_temperature)",
    "update_critic": f"{LEARNER}:511 (EXPOLearner.update_critic)",
    "Ensemble": "expo/networks/ensemble.py:8 (Ensemble)",
    "subsample_ensemble": "expo/networks/ensemble.py:25 (subsample_ensemble)",
    "MLP": "expo/networks/mlp.py:9 (MLP)",
    "StateActionValue": "expo/networks/state_action_value.py:22 (StateActionValue)",
    "vp_beta_schedule": f"{DIFF}:27 (vp_beta_schedule)",
    "FourierFeatures": f"{DIFF}:36 (FourierFeatures)",
    "DDPM": f"{DIFF}:53 (DDPM)",
    "ddpm_train_sampler": f"{DIFF}:73 (ddpm_train_sampler)",
    "ddpm_sampler": f"{DIFF}:111 (ddpm_sampler)",
    "DiffusionMLP": f"{DIFF}:200 (DiffusionMLP)",
    "MLPResNetBlock": f"{DIFF}:255 (MLPResNetBlock)",
    "DiffusionMLPResNet": f"{DIFF}:279 (DiffusionMLPResNet)",
    "TanhNormal": "expo/distributions/tanh_normal.py:17 (Normal, squash_tanh=True)",
    "Temperature": "expo/agents/sac/temperature.py:5 (Temperature)",
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", required=True, help="checkout of github:Servo97/EXPO at bbd5713")
    args = ap.parse_args()
    commit = require_commit(args.repo, PINNED)
    sys.path.insert(0, str(Path(args.repo).resolve()))

    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import optax
    from flax.training.train_state import TrainState

    jax.config.update("jax_threefry_partitionable", True)
    import expo.agents.sac.expo_learner as L  # the authors' package (shadows nothing of the suite's)
    from expo.networks import diffusion as D

    def case(name, arrays, functions, source, rtol=1e-5, atol=1e-6, notes=""):
        path = write_case(METHOD, name, arrays, repository=REPOSITORY, commit=commit,
                          functions=[F[f] for f in functions], source=f"{FROM_CHECKOUT}: {source}",
                          rtol=rtol, atol=atol, notes=notes)
        print("wrote", path)

    # ---- recorders ------------------------------------------------------------------------
    normals: list = []
    randints: list = []
    orig_normal, orig_randint = jax.random.normal, jax.random.randint

    def rec_normal(key, shape=(), dtype=jnp.float32):
        """jax.random.normal that records its draws, eagerly or through jit/scan/grad."""
        out = orig_normal(key, shape, dtype)
        jax.debug.callback(lambda x: normals.append(np.asarray(x)), out, ordered=True)
        return out

    def rec_randint(key, shape, minval, maxval, dtype=jnp.int32):
        out = orig_randint(key, shape, minval, maxval, dtype)
        randints.append(np.asarray(out))
        return out

    jax.random.normal, jax.random.randint = rec_normal, rec_randint

    GRADS_SINK: list = []

    class RecordingTrainState(TrainState):
        """Their TrainState, recording the gradients their update hands to apply_gradients."""
        def apply_gradients(self, *, grads, **kw):
            GRADS_SINK.append(grads)
            return super().apply_gradients(grads=grads, **kw)

    def recording(state):
        return RecordingTrainState.create(apply_fn=state.apply_fn, params=state.params, tx=state.tx)

    rs = np.random.RandomState(0)

    def perturb(tree, scale=0.2):
        """Random offsets on every leaf (biases and LayerNorm scales are 0/1 at init)."""
        return jax.tree_util.tree_map(
            lambda p: p + scale * rs.standard_normal(np.shape(p)).astype(np.float32), tree)

    # ---- the authors' learner, small ------------------------------------------------------
    agent = L.EXPOLearner.create(
        0, np.zeros(OBS, np.float32), np.zeros(ACT, np.float32), hidden_dims=HIDDEN,
        num_qs=NUM_QS, num_min_qs=NUM_MIN_QS, critic_layer_norm=True, discount=DISCOUNT, T=T,
        time_dim=TIME_DIM, N=N, n_edit_samples=N_EDIT, edit_action_scale=BETA,
        actor_num_blocks=BLOCKS, init_temperature=INIT_TEMP)
    # Their base policy as their create builds it (expo_learner.py:144-165), ResNet width 16.
    actor_def = D.DDPM(
        time_preprocess_cls=partial(D.FourierFeatures, output_size=TIME_DIM, learnable=True),
        cond_encoder_cls=partial(D.DiffusionMLP, hidden_dims=(TIME_DIM * 2, TIME_DIM * 2),
                                 activations=nn.swish, activate_final=False),
        reverse_encoder_cls=partial(D.DiffusionMLPResNet, use_layer_norm=True, num_blocks=BLOCKS,
                                    dropout_rate=None, out_dim=ACT, activations=nn.swish,
                                    hidden_dim=WIDTH))
    actor_params = perturb(actor_def.init(jax.random.PRNGKey(1), jnp.zeros((1, OBS)),
                                          jnp.zeros((1, ACT)), jnp.zeros((1, 1)))["params"])
    critic_params = perturb(agent.critic.params)
    target_params = perturb(critic_params, 0.05)
    edit_params = perturb(agent.edit_actor.params)
    agent = agent.replace(
        actor=RecordingTrainState.create(apply_fn=actor_def.apply, params=actor_params,
                                         tx=optax.adamw(3e-4)),
        target_actor=agent.target_actor.replace(apply_fn=actor_def.apply, params=actor_params),
        critic=recording(agent.critic.replace(params=critic_params)),
        target_critic=agent.target_critic.replace(params=target_params),
        edit_actor=recording(agent.edit_actor.replace(params=edit_params)),
        temp=recording(agent.temp),
    )
    critics = {**flatten(critic_params, "critic"), **flatten(target_params, "target_critic")}

    obs = rs.uniform(-1, 1, (B, OBS)).astype(np.float32)
    actions = rs.uniform(-0.5, 0.5, (B, ACT)).astype(np.float32)  # a + beta u stays in [-1, 1]
    next_obs = rs.uniform(-1, 1, (B, OBS)).astype(np.float32)
    batch = {"observations": obs, "actions": actions, "next_observations": next_obs,
             "rewards": rs.uniform(-1, 1, B).astype(np.float32),
             "masks": np.array([1, 0, 1, 1], np.float32)}

    # 1. critic forward ----------------------------------------------------------------------
    q = agent.critic.apply_fn({"params": critic_params}, obs, actions, True)
    case("critic_forward", {**flatten(critic_params, "critic"), "observations": obs,
                            "actions": actions, "q": q},
         ["Ensemble", "StateActionValue", "MLP", "create"],
         "EXPOLearner.create's critic (Ensemble of StateActionValue(MLP, LayerNorm)), hidden "
         "(16, 16), 5 heads, parameters offset randomly; q [heads, B]")

    # 2. head subsets ---------------------------------------------------------------------
    keys = np.stack([np.asarray(jax.random.PRNGKey(s)) for s in range(8)])
    heads = np.stack([np.asarray(L.subsample_ensemble(jnp.asarray(k), {"i": jnp.arange(NUM_QS)},
                                                      NUM_MIN_QS, NUM_QS)["i"]) for k in keys])
    case("head_subsets", {"keys": keys, "heads": heads, "num_qs": NUM_QS,
                          "num_min_qs": NUM_MIN_QS}, ["subsample_ensemble"],
         "subsample_ensemble on a params tree whose one leaf is arange(num_qs), so the chosen "
         "rows are the head indices", rtol=0, atol=0,
         notes="jax_threefry_partitionable=True in the generator (the default of the suite's jax "
               ">= 0.5): under jax 0.4's default the same key draws other bits in both codes.")

    # 3. TD target with independent subsets -------------------------------------------------
    subsets, sampled, edits, target_calls = [], [], [], []
    orig_sub, orig_train_sampler, orig_sample = (L.subsample_ensemble, L.ddpm_train_sampler,
                                                 L._sample_actions)

    def rec_sub(key, p, num_sample, num_qs):
        subsets.append(np.asarray(orig_sub(key, {"i": jnp.arange(num_qs)}, num_sample, num_qs)["i"]))
        return orig_sub(key, p, num_sample, num_qs)

    def rec_train_sampler(*a, **k):
        out = orig_train_sampler(*a, **k)
        sampled.append(np.asarray(out[0]))
        return out

    def rec_sample(*a, **k):
        out = orig_sample(*a, **k)
        edits.append(np.asarray(out[0]))
        return out

    def rec_target_apply(*a, **k):
        out = target_apply(*a, **k)
        if not isinstance(out, jax.core.Tracer):
            target_calls.append(np.asarray(out))
        return out

    target_apply = agent.target_critic.apply_fn
    L.subsample_ensemble, L.ddpm_train_sampler, L._sample_actions = (rec_sub, rec_train_sampler,
                                                                     rec_sample)
    for seed in range(50):  # a seed whose two subsets differ and whose shared-subset target differs
        subsets.clear(), sampled.clear(), edits.clear(), target_calls.clear(), GRADS_SINK.clear()
        td_agent = agent.replace(rng=jax.random.PRNGKey(seed),
                                 target_critic=agent.target_critic.replace(apply_fn=rec_target_apply))
        new_agent, info = td_agent.update_critic(batch)
        if len(set(subsets[0]) & set(subsets[1])) == 0:
            break
    L.subsample_ensemble, L.ddpm_train_sampler, L._sample_actions = (orig_sub, orig_train_sampler,
                                                                     orig_sample)
    select_heads, value_heads = subsets
    base = sampled[0].reshape(B, N, ACT)
    candidates = np.concatenate([base, (edits[0] * BETA).reshape(B, N_EDIT, ACT)
                                 + base[:, :N_EDIT]], axis=1)  # expo_learner.py:349-350
    next_qs = target_calls[-1]  # update_critic's own call (expo_learner.py:523-529)
    q_select = L.compute_q(target_apply, jax.tree_util.tree_map(lambda p: p[select_heads],
                                                                target_params),
                           np.repeat(next_obs, N + N_EDIT, 0), candidates.reshape(-1, ACT))
    q_select = np.asarray(q_select).reshape(B, N + N_EDIT)
    index = q_select.argmax(1)
    chosen = candidates[np.arange(B), index]
    check = np.asarray(target_apply({"params": jax.tree_util.tree_map(lambda p: p[value_heads],
                                                                      target_params)},
                                    next_obs, chosen, True))
    np.testing.assert_allclose(check, next_qs, rtol=1e-6)  # their selection is the argmax
    target = batch["rewards"] + DISCOUNT * batch["masks"] * next_qs.min(0)
    shared = np.asarray(target_apply({"params": jax.tree_util.tree_map(lambda p: p[select_heads],
                                                                       target_params)},
                                     next_obs, chosen, True)).min(0)
    assert np.abs(shared - next_qs.min(0)).max() > 1e-3, "the case would not tell the subsets apart"
    case("td_target", {**critics, **{k: np.asarray(v) for k, v in batch.items()},
                       "candidates": candidates, "select_heads": select_heads,
                       "value_heads": value_heads, "q_select": q_select, "index": index,
                       "next_qs": next_qs, "target": target,
                       "critic_loss": np.asarray(info["critic_loss"]),
                       **flatten(GRADS_SINK[0], "critic_grads")},
         ["update_critic", "sample_batch_actions", "compute_q", "subsample_ensemble",
          "ddpm_train_sampler"],
         "EXPOLearner.update_critic run eagerly; the candidates (their ddpm_train_sampler's N "
         "samples, then their _sample_actions' tanh-normal edits * edit_action_scale + the first "
         "n_edit samples, expo_learner.py:340-351) and both head subsets (select: sample_batch_"
         "actions :357, value: update_critic :518) recorded from their calls; q_select by their "
         "compute_q on the select subset; next_qs the target critic's output recorded in "
         "update_critic (:523); target = r + discount * mask * next_qs.min(0) (:530-532); "
         "critic_loss and its gradients (recorded at apply_gradients) from their code",
         notes=f"rng seed {seed} of the agent: the first whose select and value subsets share no "
               "head; a shared subset would give a target off by > 1e-3")

    # 4. VP schedule -------------------------------------------------------------------------
    arrays = {}
    for steps in (5, 10):
        a = L.EXPOLearner.create(0, np.zeros(OBS, np.float32), np.zeros(ACT, np.float32),
                                 hidden_dims=(8,), T=steps)
        arrays.update({f"betas_{steps}": a.betas, f"alphas_{steps}": a.alphas,
                       f"alpha_bars_{steps}": a.alpha_hats})
    case("vp_schedule", arrays, ["create", "vp_beta_schedule"],
         "EXPOLearner.create(beta_schedule='vp', T=5 and T=10): betas, alphas = 1 - betas, "
         "alpha_hats = products of alphas (expo_learner.py:186-192)")

    # 5. noise network -----------------------------------------------------------------------
    a_t = rs.standard_normal((B, ACT)).astype(np.float32)
    t = np.array([[0], [2], [4], [1]], np.int32)
    eps = actor_def.apply({"params": actor_params}, obs, a_t, t)
    case("noise_net", {**flatten(actor_params, "actor"), "observations": obs, "noisy_actions": a_t,
                       "t": t, "eps": eps}, ["DDPM", "FourierFeatures", "DiffusionMLP",
                                             "DiffusionMLPResNet", "MLPResNetBlock"],
         "their DDPM module as create builds it (learnable Fourier time features of size 8, "
         "DiffusionMLP (16, 16) swish, DiffusionMLPResNet 2 LN blocks swish) at width 16")

    # 6. epsilon-MSE loss --------------------------------------------------------------------
    normals.clear(), randints.clear(), GRADS_SINK.clear()
    agent = agent.replace(rng=jax.random.PRNGKey(7))
    _, info = agent.update_actor(batch)
    jax.effects_barrier()
    case("eps_mse", {**flatten(actor_params, "actor"), "observations": obs, "actions": actions,
                     "t": randints[0], "noise": normals[0], "loss": np.asarray(info["actor_loss"]),
                     **flatten(GRADS_SINK[0], "grads")}, ["update_actor", "vp_beta_schedule"],
         "EXPOLearner.update_actor run eagerly (T=5 vp schedule); its draws of t (randint) and "
         "noise (normal) recorded; loss from its info, gradients recorded at apply_gradients",
         rtol=1e-4, atol=1e-5,
         notes="gradients through the Fourier-feature time MLP differ by up to ~2.5e-5 relative "
               "(float32 rounding: the suite's ConcatDense sums the first ResNet layer part by part, "
               "and the two jax/XLA versions order reductions differently); the loss agrees to 1e-6")

    # 7. sampler -----------------------------------------------------------------------------
    normals.clear()
    sample, _ = D.ddpm_sampler(actor_def.apply, actor_params, T, jax.random.PRNGKey(3), ACT, obs,
                               agent.alphas, agent.alpha_hats, agent.betas, 1.0, 0, True)
    jax.effects_barrier()
    draws = np.stack(normals)  # a_T, then z of the scan steps t = T-1, ..., 0
    assert draws.shape == (T + 1, B, ACT), draws.shape
    case("ddpm_sampler", {**flatten(actor_params, "actor"), "observations": obs, "noise": draws,
                          "sample": sample}, ["ddpm_sampler", "DDPM", "vp_beta_schedule"],
         "their ddpm_sampler(T=5, temperature 1, repeat_last_step 0, clip_sampler True); its "
         "normal draws recorded in order: a_T, then z at t = T-1, ..., 0",
         notes=f"{int((np.abs(draws[0]) > 1).sum())} of a_T's entries outside [-1, 1]")

    # 8. edit loss and gradients; 9. temperature loss ---------------------------------------
    normals.clear(), GRADS_SINK.clear()
    agent = agent.replace(rng=jax.random.PRNGKey(11))
    new_agent, info = agent.update_edit_actor(batch)
    jax.effects_barrier()
    # tfp's MultivariateNormalDiag draws its standard normal as [event, batch] = [A, B] and
    # transposes it: the noise of row b is column b of the draw.
    assert len(normals) == 1 and normals[0].shape == (ACT, B), [n.shape for n in normals]
    edit_noise = normals[0].T
    log_temp = np.asarray(agent.temp.params["log_temp"])
    case("edit_loss", {**flatten(critic_params, "critic"), **flatten(edit_params, "edit"),
                       **{k: np.asarray(v) for k, v in batch.items()}, "noise": edit_noise, "log_temp": log_temp,
                       "loss": np.asarray(info["edit_actor_loss"]),
                       "edit_q": np.asarray(info["edit_q"]), "entropy": np.asarray(info["entropy"]),
                       **flatten(GRADS_SINK[0], "grads"),
                       **flatten(new_agent.edit_actor.params, "edit_after_adam")},
         ["update_edit_actor", "TanhNormal", "Ensemble", "Temperature"],
         "EXPOLearner.update_edit_actor run eagerly (edit_action_scale 0.3, entropy_scale 1, "
         "temperature 0.7); its one normal draw (tfp's tanh-normal sample, drawn [A, B] and "
         "transposed) recorded; loss, edit_q, entropy from its info; gradients recorded at apply_gradients; parameters after its adam "
         "step (lr 3e-4 cosine schedule at step 0)",
         notes="tfp's log_prob recomputes x = atanh(tanh(x)) from the sample where the suite keeps "
               "x: equal within the float32 tolerance for these |x| (well inside (-3, 3)); the batch "
               "actions lie in [-0.5, 0.5], so a + 0.3 u never reaches the suite's clip to [-1, 1] "
               "(its documented deviation)")
    GRADS_SINK.clear()
    entropy = info["entropy"]
    new_agent, _ = agent.update_temperature(entropy)
    case("temperature", {"log_temp": log_temp, "entropy": np.asarray(entropy),
                         "target_entropy": np.asarray(agent.target_entropy, np.float32),
                         "grad": np.asarray(GRADS_SINK[0]["log_temp"]),
                         "log_temp_after_adam": np.asarray(new_agent.temp.params["log_temp"])},
         ["update_temperature", "Temperature"],
         "EXPOLearner.update_temperature(entropy of the edit case) run eagerly; gradient w.r.t. "
         "log_temp recorded at apply_gradients (equal to the loss itself, d/dlog a of a * c = a * c);"
         " log_temp after its adam step (lr 3e-4)")


if __name__ == "__main__":
    main()
