"""Golden cases for Cal-QL from the authors' own code (nakamotoo/Cal-QL at ac6eafe).

    /tmp/venv_calql/bin/python tools/golden/calql.py --repo /tmp/ref/Cal-QL

The authors pin jax/jaxlib 0.3.15 and flax 0.4.2 (requirements.txt); jaxlib 0.3.15 is no longer
installable from PyPI here, so the code runs under a throwaway venv with the oldest versions that
install and import it: python 3.10, jax/jaxlib 0.4.13, flax 0.7.0, optax 0.1.7, chex 0.1.7,
distrax 0.1.4 (--no-deps), tensorflow-probability 0.21.0, numpy 1.24.4, ml_collections:

    python3.10 -m venv /tmp/venv_calql && /tmp/venv_calql/bin/pip install jax==0.4.13 \
        jaxlib==0.4.13 flax==0.7.0 optax==0.1.7 chex==0.1.7 numpy==1.24.4 ml_collections \
        tensorflow-probability==0.21.0 "scipy<1.12" && /tmp/venv_calql/bin/pip install --no-deps distrax==0.1.4

Cases:
  mc_returns_*   JaxCQL/replay_buffer.py calc_return_to_go on single trajectories of scaled
                 rewards (antmaze 10 r - 5, adroit 10 r + 5): successes with and without a
                 terminal, and the all-failure rule (every step gets r_fail / (1 - gamma)).
                 replay_buffer.py imports d4rl and gym at the top; the function uses neither, so
                 empty stand-in modules are put in sys.modules for the import.
  cql_*          one ConservativeSAC._train_step (use_cql, enable_calql) on fixed parameters,
                 batch and RNG, with the step's own intermediate arrays read out: the policy
                 samples (random, current-state, next-state actions and log-probs), the
                 max-target backup's next actions and target, Q(s, a_data), the CQL soft maximum
                 per head (with the Monte-Carlo floor on the policy actions), the gap, and the
                 per-head losses. Read-out: the module's collect_jax_metrics (its logging helper)
                 is wrapped so that it also returns those locals of loss_fn; nothing else changes.
                 Variants: fixed weight (adroit: w = 1) and Lagrange (antmaze: w = 5, gap 0.8).
"""
from __future__ import annotations

import argparse
import sys
import types
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from goldens import FROM_CHECKOUT, flatten, require_commit, write_case  # noqa: E402

PINNED = "ac6eafe"
REPOSITORY = "https://github.com/nakamotoo/Cal-QL"
OBS, ACT, B, K = 4, 2, 4, 3
ENV = ("run under /tmp/venv_calql: python 3.10, jax 0.4.13, flax 0.7.0, optax 0.1.7, distrax 0.1.4, "
       "chex 0.1.7, tensorflow-probability 0.21.0 (the pinned jax 0.3.15 is not installable)")
READ_OUT = ["new_next_actions", "target_q_values", "td_target", "q1_pred", "q2_pred",
            "cql_random_actions", "cql_current_actions", "cql_current_log_pis", "cql_next_actions",
            "cql_next_log_pis", "cql_q1_current_actions", "cql_q1_next_actions", "lower_bounds",
            "cql_qf1_ood", "cql_qf2_ood", "cql_qf1_diff", "cql_qf2_diff", "cql_min_qf1_loss",
            "cql_min_qf2_loss", "qf1_bellman_loss", "qf2_bellman_loss", "qf1_loss", "qf2_loss",
            "alpha_prime", "log_pi_data"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", required=True)
    args = ap.parse_args()
    commit = require_commit(args.repo, PINNED)
    sys.path.insert(0, args.repo)
    for name in ("d4rl", "gym"):  # imported at the top of replay_buffer.py, unused by calc_return_to_go
        sys.modules.setdefault(name, types.ModuleType(name))

    import jax
    import jax.numpy as jnp
    import numpy as np
    from JaxCQL import conservative_sac, jax_utils
    from JaxCQL.model import FullyConnectedQFunction, TanhGaussianPolicy
    from JaxCQL.replay_buffer import calc_return_to_go

    def where(path, name):
        lines = (Path(args.repo) / path).read_text().splitlines()
        line = next(i + 1 for i, l in enumerate(lines)
                    if l.lstrip().startswith((f"def {name}", f"class {name}")))
        return f"{path}:{line} {name}"

    common = dict(repository=REPOSITORY, commit=commit)
    gamma = 0.99

    # ---------------------------------------------------------------- Monte-Carlo returns
    # (env name, raw rewards, terminals, reward_scale, reward_bias): antmaze r in {0, 1} -> 10 r - 5,
    # adroit-binary r in {-1, 0} -> 10 r + 5 (scripts/run_antmaze.sh, run_adroit.sh)
    trajectories = {
        "antmaze_success_terminal": ("antmaze-large-diverse-v2", [0, 0, 0, 1], [0, 0, 0, 1], 10.0, -5.0),
        "antmaze_all_failure": ("antmaze-large-diverse-v2", [0, 0, 0, 0, 0], [0, 0, 0, 0, 0], 10.0, -5.0),
        "adroit_success_no_terminal": ("pen-binary-v0", [-1, -1, 0, 0, -1, 0], [0] * 6, 10.0, 5.0),
        "adroit_all_failure": ("pen-binary-v0", [-1, -1, -1], [0, 0, 0], 10.0, 5.0),
    }
    for name, (env, raw, terminals, scale, bias) in trajectories.items():
        rewards = np.asarray(raw, np.float32) * scale + bias   # as the authors' loaders scale first
        terminals = np.asarray(terminals, np.float32)
        mc = calc_return_to_go(env, rewards, terminals, gamma, scale, bias, is_sparse_reward=True)
        write_case("calql", f"mc_returns_{name}", {
            "raw_rewards": np.asarray(raw, np.float32), "rewards": rewards, "terminals": terminals,
            "discount": np.float32(gamma), "reward_scale": np.float32(scale),
            "reward_bias": np.float32(bias), "mc_returns": mc}, **common,
            functions=[where("JaxCQL/replay_buffer.py", "calc_return_to_go")],
            source=f"{FROM_CHECKOUT}; {ENV}", rtol=1e-6, atol=1e-5,
            notes=f"env name {env!r}, scaled rewards = {scale} r + {bias}, gamma {gamma}; the "
                  "failure reward the sparse rule compares with is reward_neg * scale + bias = -5. "
                  "atol 1e-5: returns up to 500 in float32 (the authors build them in Python floats)")

    # ---------------------------------------------------------------- one CQL / Cal-QL step
    original = conservative_sac.collect_jax_metrics

    def collect_and_read_out(metrics, names, prefix=None):
        out = original(metrics, names, prefix)
        if prefix is None:  # the first call sees loss_fn's locals(): keep the ones named above
            out.update({f"golden/{n}": metrics[n] for n in READ_OUT if n in metrics})
        return out

    conservative_sac.collect_jax_metrics = collect_and_read_out

    def perturbed(params, key, scale):
        leaves, tree = jax.tree_util.tree_flatten(params)
        keys = jax.random.split(key, len(leaves))
        return jax.tree_util.tree_unflatten(
            tree, [x + scale * jax.random.normal(k, jnp.shape(x)) if hasattr(x, "shape") else x  # Scalar: float
                   for x, k in zip(leaves, keys)])

    k = jax.random.split(jax.random.PRNGKey(7), 10)
    batch = {
        "observations": jax.random.normal(k[0], (B, OBS)),
        "actions": jax.random.uniform(k[1], (B, ACT), minval=-0.9, maxval=0.9),
        "next_observations": jax.random.normal(k[2], (B, OBS)),
        "rewards": jnp.array([-5.0, 5.0, -5.0, -5.0]),
        "dones": jnp.array([0.0, 1.0, 0.0, 0.0]),
    }
    variants = {
        # adroit: fixed CQL weight 1 (run_adroit.sh); antmaze: Lagrange, w = 5, gap 0.8 (run_antmaze.sh)
        "cql_calql_fixed_weight": (dict(cql_lagrange=False), 1.0),
        "cql_calql_lagrange": (dict(cql_lagrange=True, cql_target_action_gap=0.8), 5.0),
    }
    for case, (updates, weight) in variants.items():
        jax_utils.init_rng(0)
        policy = TanhGaussianPolicy(OBS, ACT, arch="8-8")
        qf = FullyConnectedQFunction(OBS, ACT, arch="8-8")
        sac = conservative_sac.ConservativeSAC(
            dict(cql_n_actions=K, target_entropy=-float(ACT), **updates), policy, qf)
        # larger weights than the tiny default init, so the Q values spread and the policy moves
        states = dict(sac._train_states)
        for i, name in enumerate(("policy", "qf1", "qf2")):
            states[name] = states[name].replace(params=perturbed(states[name].params, k[3 + i], 0.5))
        target = {"qf1": perturbed(states["qf1"].params, k[6], 0.1),
                  "qf2": perturbed(states["qf2"].params, k[7], 0.1)}
        rng = jax.random.PRNGKey(123)

        def step(mc_returns):
            _, _, metrics = sac._train_step(states, target, rng, {**batch, "mc_returns": mc_returns},
                                            True, weight, True)
            return {n[len("golden/"):]: np.asarray(v) for n, v in metrics.items() if n.startswith("golden/")}

        # the floor: a first pass (mc = -1e6, no bound) gives the policy-action Q values; then
        # row 0 floors at its median (some clamped), row 1 above all (all clamped), rows 2-3 below
        # all (none clamped, incl. the all-failure value -500)
        free = step(jnp.full((B,), -1e6))
        q_pol = np.concatenate([free["cql_q1_current_actions"], free["cql_q1_next_actions"]], axis=1)
        mc_returns = jnp.array([np.median(q_pol[0]), q_pol[1].max() + 1.0, -500.0, q_pol[3].min() - 1.0],
                               jnp.float32)
        out = step(mc_returns)
        write_case("calql", case, {
            **{n: np.asarray(v) for n, v in batch.items()}, "mc_returns": np.asarray(mc_returns),
            "cql_min_q_weight": np.float32(weight),
            **flatten(states["qf1"].params, "qf1"), **flatten(states["qf2"].params, "qf2"),
            **flatten(target["qf1"], "target_qf1"), **flatten(target["qf2"], "target_qf2"),
            **flatten(states["policy"].params, "policy"), **out}, **common,
            functions=[where("JaxCQL/conservative_sac.py", "_train_step"),
                       where("JaxCQL/model.py", "FullyConnectedQFunction"),
                       where("JaxCQL/model.py", "multiple_action_q_function"),
                       where("JaxCQL/model.py", "TanhGaussianPolicy")],
            source=f"{FROM_CHECKOUT}; {ENV}", rtol=1e-5, atol=1e-5,
            notes=f"ConservativeSAC(cql_n_actions={K}, {updates}) _train_step(use_cql=True, "
                  f"cql_min_q_weight={weight}, enable_calql=True); Q nets 8-8 ReLU, discount 0.99, "
                  "no backup entropy, max-target backup. Arrays after the inputs are loss_fn's locals "
                  "(cql_qf*_ood: logsumexp per state with the floored policy actions; cql_qf*_diff: "
                  "the gap; qf*_loss: Bellman MSE + CQL term per head). atol 1e-5: values up to "
                  "~10 and logsumexp over 9 terms in float32")
    print("wrote tests/golden/calql/")


if __name__ == "__main__":
    main()
