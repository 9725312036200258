"""PA-RL ("Policy Agnostic RL", Sobol Mark et al., arXiv 2412.06685): a diffusion base policy that
is only ever trained with its own supervised loss, improved by ACTION OPTIMIZATION against a critic.

Action optimization (the method's core, `optimize_actions`):
1. global: draw N = 32 actions per state from the base policy and keep the top m = 10 by Q;
2. local: T = 10 gradient-ascent steps of size 3e-4 on Q for each kept action, clipped to the action
   box after every step; each candidate ends at the best point of its ascent (start included), so a
   step that lowers Q is never kept;
3. the candidate with the highest Q is THE action: it acts in the environment, is evaluated, forms the
   TD target at s', and is the base policy's distillation target.
Distillation: the base policy takes one epsilon-MSE step (its own imitation loss) per environment
step on the optimized actions of the batch states (lr 5e-5, plain Adam). Offline pretraining: the
same imitation loss on the dataset actions (lr 3e-4, 2000 warm-up steps, cosine decay over 3e6).

Facts from the authors' code (MaxSobolMark/PolicyAgnosticRL: configs/base_config.py,
agents/continuous/action_optimization.py, parl_calql.py, cql.py, train.py):
- N 32, m 10, T 10, step 3e-4; ranking, ascent and final choice use the ensemble MEAN of the ONLINE
  critic (optimize_critic_ensemble_min=False, use_target_critic=False); the ascent keeps, per action,
  the best point of its trajectory; acting and evaluation take the argmax ("max_q_value");
- the distillation candidate set replaces the worst of the top m by the batch's dataset action
  (distill_dataset_action); distillation lr 5e-5 without decay; base DDPM T 5, dropout 0.1, LN-ResNet
  width 256, 3 blocks, time features 128;
- critic: Cal-QL, 10 heads, target = min over a subsample of 2 heads at the optimized action, Polyak
  0.005; CQL set = 10 uniform actions + the PA-RL action at s' and at s (each repeated 10 times,
  evaluated at s) + the data action, temperature 1, no importance sampling; the Cal-QL bound
  max(Q, MC return-to-go) applies to the policy actions only; the CQL term stays on online;
  critic hidden 256x2 (256x4 on antmaze, README command); mixing 0.5; critic UTD 1 and base-policy
  (distillation) UTD 1 per environment step (train.py flag defaults), so utd defaults to 1.

Adaptations to the suite (also in get_config()["deviations"], saved in every run's config):
- critic: the suite's LayerNorm MSE ensemble (expo/nets/ensemble.py: relu, independent heads,
  flax's initialisation) instead of the code's distributional (128 bins on [-100, 0]) critic with
  swish, one output layer shared by the heads and orthogonal initialisation at scale 1e-2; num_min_qs from the protocol (antmaze 1). The code's
  CQL weight 0.005 multiplies a cross-entropy loss and does not carry over to an MSE loss, so the CQL
  weight is Cal-QL's own for an MSE critic (antmaze 5, otherwise 1; no Lagrange tuning) and applies
  to every head (the code subsamples 2);
- reward as the protocol gives it (r - 1 on antmaze, as the PA-RL command's reward_bias = -1;
  {0, 1} on robomimic/mimicgen, {-1, 0} on adroit). The CQL weight above is Cal-QL's, which Cal-QL
  applies to rewards scaled by 10 (10 r - 5 on antmaze, 10 r + 5 on adroit). The CQL term is linear
  in the scale of Q and the TD loss quadratic, so on the protocol's unscaled rewards the
  conservative term is about 10x stronger relative to TD than in Cal-QL. Kept on purpose: PA-RL's
  own runs use unscaled rewards, and no weight for an MSE critic on that scale is published;
  agent.cql_alpha=0.1 (antmaze 0.5) restores Cal-QL's relative strength;
- Monte-Carlo returns for the Cal-QL bound: discounted return-to-go inside each episode; an episode
  cut by the time limit continues its last reward forever (r / (1 - gamma)), which is Cal-QL's
  value for all-failure sparse-reward episodes; online rows hold -inf (no bound) until their episode
  ends;
- schedule: one jitted call per env step: utd critic steps (lax.scan), then ONE distillation step
  on the last minibatch (the code distils on a fresh 50/50 batch before the critic steps);
- offline pretraining runs the base policy's imitation step and the critic's Cal-QL step on the
  same batches at once (the code first pretrains the base policy, then the critic with it);
- the VP noise schedule of expo/nets/diffusion.py instead of the code's cosine schedule; no EMA;
- distillation target: the best optimized action (distill_argmax=True, as the PA-RL description
  says); the code's default samples the target from softmax(Q) over the candidates
  (distill_argmax=False reproduces it).
In the online setting (no pretraining) the same objective simply starts from scratch. After
pretraining the PA-RL policy collects from the first online step (train.py:905-919 at a26a192:
env_data_collection_policy_fn is the agent's own policy), so no random-action warm-up.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import flax
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training.train_state import TrainState

from expo.config import ConfigError
from expo.nets import diffusion
from expo.nets.ensemble import QEnsemble, subset_params
from expo.agents.scan import scan_minibatches

# Cal-QL's Monte-Carlo lower bound: a per-transition field, -inf (no bound) until its episode ends.
EXTRA_FIELDS = {"mc_returns": -np.inf}


def get_config() -> dict[str, Any]:
    """The authors' defaults (configs/base_config.py, README command, train.py flags)."""
    return {
        "actor_lr": 3e-4,             # offline imitation of the base policy (code: ddpm config)
        "actor_warmup_steps": 2000,
        "lr_decay_steps": 3_000_000,
        "distill_lr": 5e-5,           # online distillation, no decay (code)
        "critic_lr": 3e-4,
        "hidden_dims": None,          # None -> (256,)*4 on antmaze (README), else (256, 256)
        "num_qs": 10,
        "num_min_qs": None,           # None -> protocol (antmaze 1, otherwise 2)
        "critic_layer_norm": True,
        "discount": 0.99,
        "tau": 0.005,
        "T": 5,                       # diffusion steps of the code's DDPM base policy
        "diffusion_width": 256,
        "diffusion_blocks": 3,
        "time_dim": 128,
        "diffusion_dropout": 0.1,
        "N": 32,                      # base-policy samples per state (global optimization)
        "num_keep": None,             # top m by Q; None -> min(10, N)
        "ascent_steps": 10,           # local gradient steps on Q
        "ascent_step_size": 3e-4,
        "optimize_ensemble_min": False,  # ascent objective: ensemble mean (code default) or min
        "distill_argmax": True,
        "distill_dataset_action": True,
        "cql_alpha": None,            # None -> antmaze 5.0, otherwise 1.0 (Cal-QL, MSE critic)
        "cql_n_actions": 10,
        "use_calql": True,
        "online_cql": True,
        "utd": 1,
        "batch_size": 256,
        "deviations": (
            "MSE LayerNorm 10-head ensemble (relu, independent heads, flax init) with protocol "
            "num_min_qs instead of the distributional Cal-QL critic (swish, shared output layer, "
            "orthogonal init); CQL weight Cal-QL's MSE value (antmaze 5, else 1) on all heads instead "
            "of 0.005 on a cross-entropy loss, applied to unscaled protocol rewards (Cal-QL scales "
            "them by 10, so the CQL term is ~10x stronger relative to TD); time-limited episodes' MC return continues the last "
            "reward; imitation and critic pretraining run jointly; one distillation step on the "
            "last critic minibatch per env step; VP diffusion schedule, no EMA; distillation "
            "target = best optimized action (code default samples softmax(Q))"
        ),
    }


def resolve_config(agent: dict, spec, setting: str) -> None:
    if agent["num_min_qs"] is None:
        agent["num_min_qs"] = spec.num_min_qs
    if agent["hidden_dims"] is None:
        agent["hidden_dims"] = (256,) * 4 if spec.domain == "antmaze" else (256, 256)
    if agent["cql_alpha"] is None:
        agent["cql_alpha"] = 5.0 if spec.domain == "antmaze" else 1.0
    if agent["num_keep"] is None:
        agent["num_keep"] = min(10, agent["N"])


def validate_config(agent: dict) -> None:
    checks = [
        (agent["N"] >= 1, f"agent.N must be >= 1, got {agent['N']}"),
        (agent["num_keep"] is not None and 1 <= agent["num_keep"] <= agent["N"],
         f"agent.num_keep must be in [1, agent.N={agent['N']}], got {agent['num_keep']}"),
        (agent["ascent_steps"] >= 0, f"agent.ascent_steps must be >= 0, got {agent['ascent_steps']}"),
        (agent["ascent_step_size"] >= 0,
         f"agent.ascent_step_size must be >= 0, got {agent['ascent_step_size']}"),
        (agent["T"] >= 1, f"agent.T (diffusion steps) must be >= 1, got {agent['T']}"),
        (agent["num_qs"] >= 1, f"agent.num_qs must be >= 1, got {agent['num_qs']}"),
        (agent["num_min_qs"] is not None and 1 <= agent["num_min_qs"] <= agent["num_qs"],
         f"agent.num_min_qs must be in [1, agent.num_qs={agent['num_qs']}], got {agent['num_min_qs']}"),
        (agent["cql_alpha"] is not None and agent["cql_alpha"] >= 0,
         f"agent.cql_alpha must be >= 0, got {agent['cql_alpha']}"),
        (agent["cql_n_actions"] >= 1, f"agent.cql_n_actions must be >= 1, got {agent['cql_n_actions']}"),
        (agent["utd"] >= 1, f"agent.utd must be >= 1, got {agent['utd']}"),
        (agent["batch_size"] >= 2 and agent["batch_size"] % 2 == 0,
         f"agent.batch_size must be even and >= 2 (half offline, half online), got {agent['batch_size']}"),
        (0 < agent["discount"] < 1, f"agent.discount must be in (0, 1), got {agent['discount']}"),
        (agent["distill_lr"] > 0, f"agent.distill_lr must be > 0, got {agent['distill_lr']}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


@dataclasses.dataclass(frozen=True)
class Hyper:
    """Static hyperparameters: part of the pytree's structure, so changing one recompiles."""
    N: int
    num_keep: int
    ascent_steps: int
    ascent_step_size: float
    action_dim: int
    num_qs: int
    num_min_qs: int
    discount: float
    tau: float
    optimize_ensemble_min: bool
    distill_argmax: bool
    distill_dataset_action: bool
    distill_lr: float
    cql_alpha: float
    cql_n_actions: int
    use_calql: bool
    online_cql: bool


class ParlAgent(flax.struct.PyTreeNode):
    rng: jax.Array
    actor: TrainState          # diffusion base policy; its tx is the offline imitation optimizer
    distill_opt_state: Any     # Adam(distill_lr) state of the online distillation optimizer
    critic: TrainState
    target_critic: Any
    schedule: diffusion.Schedule
    hp: Hyper = flax.struct.field(pytree_node=False)


def distill_optimizer(hp: Hyper) -> optax.GradientTransformation:
    """Plain Adam at the distillation lr (the code's fine-tuning DDPM: lr 5e-5, no decay)."""
    return optax.adam(hp.distill_lr)


def create(seed: int, obs_dim: int, action_dim: int, cfg: dict) -> ParlAgent:
    validate_config(cfg)
    rng = jax.random.PRNGKey(seed)
    rng, actor_key, critic_key = jax.random.split(rng, 3)
    obs = jnp.zeros((1, obs_dim))
    act = jnp.zeros((1, action_dim))

    actor_def = diffusion.NoisePredictor(
        action_dim, cfg["diffusion_width"], cfg["diffusion_blocks"], cfg["time_dim"],
        dropout_rate=cfg["diffusion_dropout"])
    actor_params = actor_def.init(actor_key, obs, act, jnp.zeros((1, 1)))["params"]
    warmup = min(cfg["actor_warmup_steps"], cfg["lr_decay_steps"] - 1)
    pretrain_lr = optax.warmup_cosine_decay_schedule(0.0, cfg["actor_lr"], max(warmup, 0),
                                                     cfg["lr_decay_steps"])
    actor = TrainState.create(apply_fn=actor_def.apply, params=actor_params,
                              tx=optax.adam(pretrain_lr))

    critic_def = QEnsemble(tuple(cfg["hidden_dims"]), cfg["num_qs"], cfg["critic_layer_norm"])
    critic_params = critic_def.init(critic_key, obs, act)["params"]
    critic = TrainState.create(apply_fn=critic_def.apply, params=critic_params,
                               tx=optax.adam(cfg["critic_lr"]))

    hp = Hyper(
        N=cfg["N"], num_keep=cfg["num_keep"], ascent_steps=cfg["ascent_steps"],
        ascent_step_size=float(cfg["ascent_step_size"]), action_dim=action_dim,
        num_qs=cfg["num_qs"], num_min_qs=cfg["num_min_qs"], discount=float(cfg["discount"]),
        tau=float(cfg["tau"]), optimize_ensemble_min=bool(cfg["optimize_ensemble_min"]),
        distill_argmax=bool(cfg["distill_argmax"]),
        distill_dataset_action=bool(cfg["distill_dataset_action"]),
        distill_lr=float(cfg["distill_lr"]), cql_alpha=float(cfg["cql_alpha"]),
        cql_n_actions=cfg["cql_n_actions"], use_calql=bool(cfg["use_calql"]),
        online_cql=bool(cfg["online_cql"]),
    )
    agent = ParlAgent(rng=rng, actor=actor, distill_opt_state=distill_optimizer(hp).init(actor_params),
                      critic=critic, target_critic=critic_params,
                      schedule=diffusion.vp_schedule(cfg["T"]), hp=hp)
    # Strongly typed arrays everywhere (TrainState.step starts as a Python int), so update() and
    # pretrain_update() each compile once in the training loop.
    return jax.tree_util.tree_map(lambda x: jnp.array(x, dtype=jnp.asarray(x).dtype), agent)


# ----------------------------------------------------------------------------- action optimization

def base_samples(agent: ParlAgent, actor_params, key, observations, num: int):
    """num base-policy samples per state with the suite's DDPM sampler: [B, num, A]."""
    batch = observations.shape[0]
    obs_rep = jnp.repeat(observations, num, axis=0)
    a = diffusion.ddpm_sample(agent.actor.apply_fn, actor_params, agent.schedule, key, obs_rep,
                              agent.hp.action_dim)
    return a.reshape(batch, num, agent.hp.action_dim)


def ensemble_q(agent: ParlAgent, critic_params, observations, actions, use_min: bool = False):
    """Q over ALL heads reduced by the mean (code default) or the min. [n, D], [n, A] -> [n]."""
    qs = agent.critic.apply_fn({"params": critic_params}, observations, actions)
    return qs.min(axis=0) if use_min else qs.mean(axis=0)


def global_top_m(candidates, q_values, m: int):
    """Keep the m highest-Q candidates of each row. candidates [B, K, A], q [B, K] -> [B, m, A], [B, m]
    (sorted best first)."""
    q_top, idx = jax.lax.top_k(q_values, m)
    return jnp.take_along_axis(candidates, idx[..., None], axis=1), q_top


def local_ascent(q_fn, actions, num_steps: int, step_size: float):
    """num_steps gradient-ascent steps a <- clip(a + step_size * dQ/da, -1, 1) on every row of
    actions [n, A], where q_fn(actions) -> [n] scores each row independently.

    Each row returns the best point of its trajectory (the start included): a step that lowers Q
    is never kept, as in the authors' local optimizer (action_optimization.py:44 at a26a192; golden
    cases ascent_small / ascent_large in tests/test_golden_parl.py), which continues from the latest
    iterate and remembers the maximum. One value-and-gradient evaluation per step gives both the Q of the
    current point (for the running best) and the direction of the next step.
    Returns (best actions [n, A], their Q [n], Q of the start [n])."""
    value_and_grad = jax.value_and_grad(lambda a: (lambda q: (jnp.sum(q), q))(q_fn(a)), has_aux=True)

    def keep_better(current, q, best, best_q):
        better = q > best_q
        return jnp.where(better[:, None], current, best), jnp.where(better, q, best_q)

    def body(i, state):
        current, best, best_q, q0 = state
        (_, q), grad = value_and_grad(current)
        best, best_q = keep_better(current, q, best, best_q)
        q0 = jnp.where(i == 0, q, q0)
        return jnp.clip(current + step_size * grad, -1.0, 1.0), best, best_q, q0

    minus_inf = jnp.full(actions.shape[:1], -jnp.inf, actions.dtype)
    current, best, best_q, q0 = jax.lax.fori_loop(0, num_steps, body,
                                                  (actions, actions, minus_inf, minus_inf))
    q_last = q_fn(current)
    best, best_q = keep_better(current, q_last, best, best_q)
    return best, best_q, (q_last if num_steps == 0 else q0)


def select_best(candidates, q_values):
    """The highest-Q candidate of each row: [B, K, A], [B, K] -> [B, A]."""
    best = jnp.argmax(q_values, axis=1)
    return jnp.take_along_axis(candidates, best[:, None, None], axis=1)[:, 0]


def optimized_candidates(agent: ParlAgent, actor_params, critic_params, key, observations,
                         dataset_actions=None):
    """Global then local optimization: the m optimized candidates per state and their (ensemble
    mean) Q. With dataset_actions [B, A] the worst of the top m is replaced by the dataset action
    before the ascent (the code's distillation candidate set). Returns ([B, m, A], [B, m], info)."""
    hp = agent.hp
    batch = observations.shape[0]
    samples = base_samples(agent, actor_params, key, observations, hp.N)
    obs_rep = jnp.repeat(observations, hp.N, axis=0)
    q_samples = ensemble_q(agent, critic_params, obs_rep,
                           samples.reshape(batch * hp.N, -1)).reshape(batch, hp.N)
    kept, _ = global_top_m(samples, q_samples, hp.num_keep)
    if dataset_actions is not None:
        kept = jnp.concatenate([kept[:, : hp.num_keep - 1], dataset_actions[:, None]], axis=1)
    m = kept.shape[1]
    obs_m = jnp.repeat(observations, m, axis=0)

    def q_fn(a):
        return ensemble_q(agent, critic_params, obs_m, a, hp.optimize_ensemble_min)

    best, best_q, q0 = local_ascent(q_fn, kept.reshape(batch * m, -1), hp.ascent_steps,
                                    hp.ascent_step_size)
    if hp.optimize_ensemble_min:  # ranking always uses the ensemble mean (code)
        best_q = ensemble_q(agent, critic_params, obs_m, best)
        q0 = ensemble_q(agent, critic_params, obs_m, kept.reshape(batch * m, -1))
    info = {"ascent_gain": jnp.mean(best_q - q0)}
    return best.reshape(batch, m, -1), best_q.reshape(batch, m), info


def optimize_actions(agent: ParlAgent, actor_params, critic_params, key, observations):
    """THE PA-RL action of every state: the best of the optimized candidates. [B, D] -> [B, A]."""
    cands, q, _ = optimized_candidates(agent, actor_params, critic_params, key, observations)
    return select_best(cands, q)


@jax.jit
def sample_actions(agent: ParlAgent, observations, key):
    """Acting and evaluation (the code's "max_q_value" strategy for both)."""
    return optimize_actions(agent, agent.actor.params, agent.critic.params, key, observations)


# ----------------------------------------------------------------------------- critic

def policy_actions(agent: ParlAgent, key, batch, with_current: bool):
    """PA-RL actions at s' (TD target) and, for the CQL term, at s: ONE optimization call over
    the stacked states (optimized against the online critic: use_target_critic=False in the code).
    Returns (actions at s' [B, A], actions at s [B, A] or None)."""
    next_obs = batch["next_observations"]
    obs = jnp.concatenate([next_obs, batch["observations"]]) if with_current else next_obs
    actions = optimize_actions(agent, agent.actor.params, agent.critic.params, key, obs)
    b = next_obs.shape[0]
    return actions[:b], (actions[b:] if with_current else None)


def td_target(agent: ParlAgent, key, batch, next_actions):
    """y = r + gamma * mask * min over a random subset of num_min_qs target heads of
    Q'(s', a*(s'))."""
    heads = subset_params(agent.target_critic, key, agent.hp.num_qs, agent.hp.num_min_qs)
    next_q = agent.critic.apply_fn({"params": heads}, batch["next_observations"], next_actions)
    return batch["rewards"] + agent.hp.discount * batch["masks"] * next_q.min(axis=0)


def cql_gap(q_data, q_random, q_next_pi, q_cur_pi, mc_returns, n_actions: int, use_calql: bool):
    """Per head and state: logsumexp over the CQL action set minus Q(s, a_data).

    Shapes: q_data [H, B]; q_random [H, B, n]; q_next_pi, q_cur_pi [H, B] (the PA-RL action at s'
    and at s, both evaluated at s, each counted n times as the code repeats its deterministic
    sample); mc_returns [B]. Cal-QL lifts the policy-action values to at least the MC return.
    The set is averaged (log of its size subtracted, temperature 1), as the code does
    (jaxrl_m/agents/continuous/cql.py:274 and :286-291 at a26a192)."""
    if use_calql:
        q_next_pi = jnp.maximum(q_next_pi, mc_returns[None])
        q_cur_pi = jnp.maximum(q_cur_pi, mc_returns[None])
    log_n = jnp.log(float(n_actions))
    values = jnp.concatenate([q_random, (q_next_pi + log_n)[..., None], (q_cur_pi + log_n)[..., None],
                              q_data[..., None]], axis=-1)
    lse = jax.scipy.special.logsumexp(values, axis=-1) - jnp.log(3.0 * n_actions + 1.0)
    return lse - q_data


def critic_loss_fn(critic_params, agent: ParlAgent, batch, target, cql_inputs, use_cql: bool):
    qs = agent.critic.apply_fn({"params": critic_params}, batch["observations"], batch["actions"])
    td_loss = jnp.mean((qs - target[None]) ** 2)
    info = {"td_loss": td_loss, "q_mean": qs.mean(), "q_max": qs.max(), "q_min": qs.min()}
    if not use_cql:
        return td_loss, info
    random_actions, next_pi, cur_pi = cql_inputs
    hp = agent.hp
    obs = batch["observations"]
    b, n = random_actions.shape[:2]
    q_random = agent.critic.apply_fn({"params": critic_params}, jnp.repeat(obs, n, axis=0),
                                     random_actions.reshape(b * n, -1)).reshape(-1, b, n)
    q_next_pi = agent.critic.apply_fn({"params": critic_params}, obs, next_pi)
    q_cur_pi = agent.critic.apply_fn({"params": critic_params}, obs, cur_pi)
    gap = cql_gap(qs, q_random, q_next_pi, q_cur_pi, batch["mc_returns"], hp.cql_n_actions,
                  hp.use_calql)
    cql_loss = gap.mean()
    bound_rate = jnp.mean(jnp.concatenate([q_next_pi, q_cur_pi], -1)
                          < jnp.tile(batch["mc_returns"], 2)[None])
    info.update(cql_loss=cql_loss, calql_bound_rate=bound_rate)
    return td_loss + hp.cql_alpha * cql_loss, info


def critic_step(agent: ParlAgent, batch, use_cql: bool):
    rng, opt_key, head_key, rand_key = jax.random.split(agent.rng, 4)
    next_actions, cur_actions = policy_actions(agent, opt_key, batch, use_cql)
    target = td_target(agent, head_key, batch, next_actions)
    cql_inputs = None
    if use_cql:
        b = batch["observations"].shape[0]
        random_actions = jax.random.uniform(rand_key, (b, agent.hp.cql_n_actions, agent.hp.action_dim),
                                            minval=-1.0, maxval=1.0)
        cql_inputs = (random_actions, next_actions, cur_actions)
    (loss, info), grads = jax.value_and_grad(critic_loss_fn, has_aux=True)(
        agent.critic.params, agent, batch, jax.lax.stop_gradient(target),
        jax.lax.stop_gradient(cql_inputs), use_cql)
    critic = agent.critic.apply_gradients(grads=grads)
    target_params = optax.incremental_update(critic.params, agent.target_critic, agent.hp.tau)
    info.update(critic_loss=loss, target_mean=target.mean())
    return agent.replace(rng=rng, critic=critic, target_critic=target_params), info


# ----------------------------------------------------------------------------- base policy

def imitation_step(agent: ParlAgent, batch):
    """Offline pretraining: the base policy's epsilon-MSE on the dataset actions."""
    rng, key, dropout_key = jax.random.split(agent.rng, 3)
    actor, loss = diffusion.imitation_step(agent.actor, agent.schedule, key, batch["observations"],
                                           batch["actions"], dropout_key)
    return agent.replace(rng=rng, actor=actor), {"bc_loss": loss}


def distillation_targets(agent: ParlAgent, key, observations, dataset_actions):
    """The optimized actions the base policy imitates: the best candidate (distill_argmax) or a
    sample from softmax(Q) over the candidates (the code's default); the dataset action joins the
    candidates in place of the worst of the top m when distill_dataset_action."""
    hp = agent.hp
    cand_key, pick_key = jax.random.split(key)
    cands, q, info = optimized_candidates(
        agent, agent.actor.params, agent.critic.params, cand_key, observations,
        dataset_actions if hp.distill_dataset_action else None)
    if hp.distill_argmax:
        return select_best(cands, q), info
    index = jax.random.categorical(pick_key, q, axis=-1)
    return jnp.take_along_axis(cands, index[:, None, None], axis=1)[:, 0], info


def distill_step(agent: ParlAgent, batch):
    """One epsilon-MSE step of the base policy towards the optimized actions (Adam, distill_lr)."""
    rng, target_key, key, dropout_key = jax.random.split(agent.rng, 4)
    targets, info = distillation_targets(agent, target_key, batch["observations"], batch["actions"])
    targets = jax.lax.stop_gradient(targets)
    params = agent.actor.params
    loss, grads = jax.value_and_grad(
        lambda p: diffusion.ddpm_loss(agent.actor.apply_fn, p, agent.schedule, key,
                                      batch["observations"], targets, dropout_key))(params)
    updates, opt_state = distill_optimizer(agent.hp).update(grads, agent.distill_opt_state, params)
    actor = agent.actor.replace(params=optax.apply_updates(params, updates))
    info = {"distill_loss": loss,
            "distill_shift": jnp.mean(jnp.sum(jnp.abs(targets - batch["actions"]), -1)), **info}
    return agent.replace(rng=rng, actor=actor, distill_opt_state=opt_state), info


# ----------------------------------------------------------------------------- updates


@jax.jit
def update(agent: ParlAgent, batch):
    """One environment step: utd critic steps (lax.scan), then one distillation step on the last
    minibatch. batch leaves have shape [utd, B, ...] (first half offline, second half online)."""
    use_cql = agent.hp.online_cql and agent.hp.cql_alpha > 0
    agent, critic_info = scan_minibatches(lambda a, b: critic_step(a, b, use_cql), agent, batch)
    last = jax.tree_util.tree_map(lambda x: x[-1], batch)
    agent, distill_info = distill_step(agent, last)
    return agent, {**critic_info, **distill_info}


@jax.jit
def pretrain_update(agent: ParlAgent, batch):
    """Offline pretraining, k steps on [k, B, ...] offline batches: per step one imitation step of
    the base policy and one Cal-QL critic step whose policy is PA-RL's action optimization."""
    use_cql = agent.hp.cql_alpha > 0

    def step(a, b):
        a, bc_info = imitation_step(a, b)
        a, critic_info = critic_step(a, b, use_cql)
        return a, {**bc_info, **critic_info}

    return scan_minibatches(step, agent, batch)


# ----------------------------------------------------------------------------- Monte-Carlo returns

def monte_carlo_returns(rewards, masks, dones, discount: float) -> np.ndarray:
    """Discounted return-to-go inside each episode (dones = 1 at an episode's last transition).
    A terminal last step (mask 0) ends the sum; a time-limited one (mask 1) continues its last
    reward forever, r / (1 - gamma)."""
    rewards = np.asarray(rewards, np.float64)
    masks = np.asarray(masks, np.float64)
    dones = np.asarray(dones, bool)
    out = np.empty_like(rewards)
    g = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        if dones[t] or t == len(rewards) - 1:
            g = rewards[t] / (1.0 - discount) if masks[t] > 0 else rewards[t]
        else:
            g = rewards[t] + discount * masks[t] * g
        out[t] = g
    return out.astype(np.float32)


def offline_extras(data: dict, agent_cfg: dict) -> dict:
    return {"mc_returns": monte_carlo_returns(data["rewards"], data["masks"], data["dones"],
                                              agent_cfg["discount"])}


def episode_extras(rewards, terminated: bool, agent_cfg: dict) -> dict:
    n = len(rewards)
    masks = np.ones(n)
    masks[-1] = 0.0 if terminated else 1.0
    dones = np.zeros(n)
    dones[-1] = 1.0
    return {"mc_returns": monte_carlo_returns(rewards, masks, dones, agent_cfg["discount"])}
