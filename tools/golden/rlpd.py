"""Golden cases for RLPD from the authors' own code (ikostrikov/rlpd at c90fd4b).

    /tmp/venv_rlpd/bin/python tools/golden/rlpd.py --repo /tmp/ref/rlpd

The authors' code needs tensorflow-probability and gym, which the suite's environment does not
have (and jax 0.10 is too new for tfp's jax substrate), so it runs under a throwaway venv:
python 3.10, jax/jaxlib 0.4.13, flax 0.7.0, optax 0.1.7, tensorflow-probability 0.21.0,
gym 0.23.1, numpy 1.24.4 (all from PyPI):

    python3.10 -m venv /tmp/venv_rlpd && /tmp/venv_rlpd/bin/pip install jax==0.4.13 jaxlib==0.4.13 \
        flax==0.7.0 optax==0.1.7 tensorflow-probability==0.21.0 "numpy<1.25" ml_collections \
        "scipy<1.12" gym==0.23.1

Networks are the authors' modules (Ensemble of StateActionValue on their MLP with LayerNorm,
TanhNormal actor, Temperature) with their flax parameters saved flat ("critic/...", "target/...",
"actor/..."); tests/test_golden_rlpd.py maps them onto the suite's trees. The losses are the
authors' SACLearner.update_critic / update_actor / update_temperature, called on a hand-built
SACLearner (the dataclass itself; `create` needs gym spaces). Values the learner keeps internal are
read back through plain SGD(lr=1) optimisers: new_params = params - grad.

Cases:
  critic_forward     Q of every head of the authors' LayerNorm ensemble at (s, a).
  critic_target_*    the TD target of update_critic (min over the random subset of target heads
                     at fixed next actions, minus alpha*log pi with backup entropy), extracted
                     exactly through a stub online critic; plus the critic loss and its gradient
                     with the real online ensemble. Variants: backup_entropy on / off.
  actor_temperature  update_actor's loss, entropy and parameter gradient (tfp TanhNormal,
                     reparameterised, mean over heads) with the pre-tanh noise saved, and
                     update_temperature's loss at that entropy.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from functools import partial
from pathlib import Path

warnings.filterwarnings("ignore")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from goldens import FROM_CHECKOUT, flatten, require_commit, write_case  # noqa: E402

PINNED = "c90fd4b"
REPOSITORY = "https://github.com/ikostrikov/rlpd"
OBS, ACT, B, H, M = 4, 2, 4, 4, 2     # H * B / 2 = 8: the target read-back below is exact
HIDDEN = (8, 8)
ENV = ("run under /tmp/venv_rlpd: python 3.10, jax 0.4.13, flax 0.7.0, optax 0.1.7, "
       "tensorflow-probability 0.21.0, gym 0.23.1")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", required=True)
    args = ap.parse_args()
    commit = require_commit(args.repo, PINNED)
    sys.path.insert(0, args.repo)

    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from flax.training.train_state import TrainState
    from rlpd.agents.sac.sac_learner import SACLearner
    from rlpd.agents.sac.temperature import Temperature
    from rlpd.distributions import TanhNormal
    from rlpd.networks import MLP, Ensemble, StateActionValue

    def where(path, name):
        """file:line of `name` (a def or class) in the checkout."""
        lines = (Path(args.repo) / path).read_text().splitlines()
        line = next(i + 1 for i, l in enumerate(lines) if l.lstrip().startswith((f"def {name}", f"class {name}")))
        return f"{path}:{line} {name}"

    common = dict(repository=REPOSITORY, commit=commit)

    # ---------------------------------------------------------------- fixed inputs and networks
    k = jax.random.split(jax.random.PRNGKey(2023), 8)
    obs = jax.random.normal(k[0], (B, OBS))
    next_obs = jax.random.normal(k[1], (B, OBS))
    actions = jax.random.uniform(k[2], (B, ACT), minval=-0.9, maxval=0.9)
    batch = {"observations": obs, "actions": actions, "next_observations": next_obs,
             "rewards": jnp.array([0.5, -1.0, 2.0, 0.25]), "masks": jnp.array([1.0, 0.0, 1.0, 1.0])}
    next_actions = jnp.array([[0.3, -0.7], [0.1, 0.2], [-0.95, 0.5], [0.6, 0.6]])
    next_log_probs = jnp.array([1.2, -0.4, 2.5, 0.3])

    critic_cls = partial(StateActionValue, base_cls=partial(MLP, hidden_dims=HIDDEN, activate_final=True,
                                                            use_layer_norm=True))
    critic_def = Ensemble(critic_cls, num=H)
    critic_params = critic_def.init(k[3], obs, actions)["params"]
    target_params = critic_def.init(k[4], obs, actions)["params"]
    # give the biases non-zero values (init sets them to 0) so the mapping of every leaf matters
    perturb = lambda p, key: jax.tree_util.tree_map(  # noqa: E731
        lambda x: x + 0.1 * jax.random.normal(key, x.shape), p)
    critic_params = perturb(critic_params, k[5])
    target_params = perturb(target_params, k[6])
    actor_def = TanhNormal(partial(MLP, hidden_dims=HIDDEN, activate_final=True), ACT)
    actor_params = perturb(actor_def.init(k[7], obs)["params"], k[0])
    temp_def = Temperature(0.7)
    temp_params = temp_def.init(k[1])["params"]
    temperature = float(temp_def.apply({"params": temp_params}))
    base = {**{n: np.asarray(v) for n, v in batch.items()}, **flatten(critic_params, "critic"),
            **flatten(target_params, "target")}

    # ---------------------------------------------------------------- critic forward
    qs = critic_def.apply({"params": critic_params}, obs, actions)
    write_case("rlpd", "critic_forward", {**base, "qs": qs}, **common,
               functions=[where("rlpd/networks/ensemble.py", "Ensemble"),
                          where("rlpd/networks/state_action_value.py", "StateActionValue"),
                          where("rlpd/networks/mlp.py", "MLP")],
               source=f"{FROM_CHECKOUT}; {ENV}", rtol=1e-5, atol=1e-6,
               notes="Q of the 4 heads (hidden (8, 8), LayerNorm, ReLU) at (observations, actions); "
                     "params critic/VmapStateActionValue_0/... stacked on the head axis")

    # ---------------------------------------------------------------- critic target and loss
    class FixedNext:
        """Stub policy distribution: the fixed next actions and their log-probabilities."""
        def sample(self, seed):
            return next_actions

        def log_prob(self, a):
            return next_log_probs

    fixed_actor = TrainState.create(apply_fn=lambda variables, o: FixedNext(), params={},
                                    tx=optax.sgd(1.0))
    temp = TrainState.create(apply_fn=temp_def.apply, params=temp_params, tx=optax.sgd(1.0))
    target_def = Ensemble(critic_cls, num=M)   # as SACLearner.create: num_min_qs heads

    def learner(critic, target_critic, backup_entropy, seed):
        return SACLearner(rng=jax.random.PRNGKey(seed), actor=fixed_actor, critic=critic,
                          target_critic=target_critic, temp=temp, tau=0.005, discount=0.99,
                          target_entropy=-ACT / 2, num_qs=H, num_min_qs=M, backup_entropy=backup_entropy)

    for backup_entropy, seed in ((True, 11), (False, 12)):
        # 1) the target, read back exactly: online "critic" = free values q [H, B] at 0 (so the
        #    loss is mean((q - y)^2) and SGD(1) gives q' = 2 y / (H B)); both trees also carry the
        #    real target ensemble under "net" (Polyak needs equal structures).
        stub_critic = TrainState.create(
            apply_fn=lambda v, *a, **kw: v["params"]["q"],
            params={"q": jnp.zeros((H, B)), "net": target_params}, tx=optax.sgd(1.0))
        stub_target = TrainState.create(
            apply_fn=lambda v, *a, **kw: target_def.apply({"params": v["params"]["net"]}, *a, **kw),
            params={"q": jnp.zeros((H, B)), "net": target_params},
            tx=optax.GradientTransformation(lambda _: None, lambda _: None))
        ag = learner(stub_critic, stub_target, backup_entropy, seed)
        new, _ = ag.update_critic(batch)
        q_new = np.asarray(new.critic.params["q"])
        target = q_new[0] * (H * B / 2)
        assert np.allclose(q_new, q_new[0:1]), "every head sees the same target"
        # the subset key update_critic draws: rng -> (next-action key, rng) -> (subset key, rng)
        _, rng = jax.random.split(ag.rng)
        subset_key, _ = jax.random.split(rng)
        subset = jax.random.choice(subset_key, a=jnp.arange(H), shape=(M,), replace=False)

        # 2) the critic loss and its gradient with the real online ensemble
        real_critic = TrainState.create(apply_fn=critic_def.apply, params=critic_params, tx=optax.sgd(1.0))
        real_target = TrainState.create(apply_fn=target_def.apply, params=target_params,
                                        tx=optax.GradientTransformation(lambda _: None, lambda _: None))
        new2, info = learner(real_critic, real_target, backup_entropy, seed).update_critic(batch)
        grads = jax.tree_util.tree_map(lambda p, n: p - n, critic_params, new2.critic.params)
        name = f"critic_target_{'backup_entropy' if backup_entropy else 'no_backup_entropy'}"
        write_case("rlpd", name, {
            **base, "next_actions": next_actions, "next_log_probs": next_log_probs,
            "temperature": np.float32(temperature), "subset_key": np.asarray(subset_key),
            "subset": np.asarray(subset), "target": target, "critic_loss": np.asarray(info["critic_loss"]),
            **flatten(grads, "critic_grad")}, **common,
            functions=[where("rlpd/agents/sac/sac_learner.py", "update_critic"),
                       where("rlpd/networks/ensemble.py", "subsample_ensemble"),
                       where("rlpd/networks/ensemble.py", "Ensemble")],
            source=f"{FROM_CHECKOUT}; {ENV}", rtol=1e-5, atol=1e-6,
            notes=f"num_qs {H}, num_min_qs {M}, discount 0.99, backup_entropy {backup_entropy}, "
                  f"alpha {temperature:.4f}. target: y of update_critic at fixed next actions / "
                  "log-probs (stub policy), read back through a stub online critic and SGD(1) "
                  "(exact: factor H*B/2 = 8). subset: the heads jax.random.choice draws from "
                  "subset_key (the key update_critic uses). critic_loss / critic_grad: the real "
                  "online ensemble (critic/...) against that target (gradient = params - SGD(1) step)")

    # ---------------------------------------------------------------- actor and temperature
    actor = TrainState.create(apply_fn=actor_def.apply, params=actor_params, tx=optax.sgd(1.0))
    critic = TrainState.create(apply_fn=critic_def.apply, params=critic_params, tx=optax.sgd(1.0))
    ag = SACLearner(rng=jax.random.PRNGKey(21), actor=actor, critic=critic, target_critic=critic, temp=temp,
                    tau=0.005, discount=0.99, target_entropy=-ACT / 2, num_qs=H, num_min_qs=M,
                    backup_entropy=False)
    new, actor_info = ag.update_actor(batch)
    actor_grads = jax.tree_util.tree_map(lambda p, n: p - n, actor_params, new.actor.params)
    # the noise update_actor draws: key = first half of split(rng); tfp samples the pre-tanh
    # Gaussian with that seed (tanh(dist.distribution.sample(seed)) == dist.sample(seed))
    key, _ = jax.random.split(ag.rng)
    dist = actor_def.apply({"params": actor_params}, obs)
    pre_tanh = dist.distribution.sample(seed=key)
    assert np.allclose(np.tanh(pre_tanh), dist.sample(seed=key))
    eps = (pre_tanh - dist.distribution.mean()) / dist.distribution.stddev()
    _, temp_info = new.update_temperature(actor_info["entropy"])
    write_case("rlpd", "actor_temperature", {
        **base, **flatten(actor_params, "actor"), "temperature": np.float32(temperature),
        "eps": eps, "actor_loss": np.asarray(actor_info["actor_loss"]),
        "entropy": np.asarray(actor_info["entropy"]), **flatten(actor_grads, "actor_grad"),
        "target_entropy": np.float32(-ACT / 2),
        "temperature_loss": np.asarray(temp_info["temperature_loss"])}, **common,
        functions=[where("rlpd/agents/sac/sac_learner.py", "update_actor"),
                   where("rlpd/agents/sac/sac_learner.py", "update_temperature"),
                   where("rlpd/distributions/tanh_normal.py", "Normal"),
                   where("rlpd/distributions/tanh_transformed.py", "TanhTransformedDistribution"),
                   where("rlpd/agents/sac/temperature.py", "Temperature")],
        source=f"{FROM_CHECKOUT}; {ENV}", rtol=1e-5, atol=1e-6,
        notes="actor_loss = mean(alpha log pi(a|s) - mean_heads Q(s, a)), a ~ TanhNormal (tfp) "
              "reparameterised with the standard-normal noise eps (recovered from tfp's pre-tanh "
              "sample for update_actor's key); actor_grad = its gradient (SGD(1) read-back); "
              "temperature_loss = alpha * (entropy - target_entropy) of update_temperature at "
              "update_actor's entropy")
    print("wrote tests/golden/rlpd/")


if __name__ == "__main__":
    main()
