"""EXPO: a diffusion base policy trained by imitation, a small edit policy trained to raise Q, and
an on-the-fly (OTF) policy that picks the highest-Q action among base samples and their edits.

Behaviour follows the paper (Sec. 4, Table 1) and the authors' code at bbd5713 (golden tests in
tests/test_golden_expo.py compare the pieces with the authors' own functions):
- base policy: DDPM (expo/nets/diffusion.py) trained ONLY with the epsilon-MSE loss on the batch;
  an EMA copy (tau 0.001) acts and is evaluated; the TD backup samples with the online weights;
- edit policy: tanh-Gaussian on (s, a); edited action a + beta * u, u in (-1, 1); loss
  alpha * log pi_edit - mean_heads Q(s, a + beta u), applied to the batch action; log-prob corrected
  by -|A| log beta; automatic temperature with target entropy -|A|/2;
- OTF policy: N base samples, the first n_edit of them edited, argmax over all N + n_edit
  candidates of the min over a random subset of num_min_qs target-critic heads; the same selection
  acts, evaluates and forms the TD target;
- critic: num_qs LayerNorm heads, y = r + gamma * mask * min_{subset'} Q'(s', a'), where a' was
  chosen under one random head subset and is valued under another, independent one (td_target);
  MSE on every head, Polyak tau after every critic step;
- per environment step ONE jitted call: the backup candidates of all utd minibatches sampled in one
  batched pass, lax.scan over the utd minibatches (critic; each selects among its candidates under
  its own step's target critic), then one base policy update and one edit-policy + temperature
  update on the last minibatch.

Ablation switches (config, same code): n_edit=0 (no edits), otf_backup=False (the TD target uses
one base-policy sample), entropy_backup=True (Sec. 4.3: the OTF policy selects by a draw from
softmax(beta_s Q) over the candidates, for acting and evaluation as well as in the backup, and the
target adds alpha_b * H, the closed-form entropy of that draw, with its own fixed temperature
backup_temperature; the released code stores but never reads its backup_entropy flag, so the
paper's text is the reference).

The edit temperature: with beta <= 0.3 the target entropy -|A|/2 is out of the edit policy's reach,
in the authors' code too, so log alpha rises by about temp_lr per update (~3e-4) without bound.
train.csv logs temperature, log_temperature and edit_q_grad_share, the share of the edit gradient's
norm that comes from Q: as alpha grows the edit turns into a Q-blind perturbation within +-beta.

Deliberate differences from the authors' code (saved in every config under agent.deviations):
edited actions are clipped to the action box [-1, 1] so that Q is evaluated at the action the
environment executes (the code clips only in the environment).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import flax
import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from expo.agents.scan import scan_minibatches
from expo.config import ConfigError
from expo.nets import diffusion
from expo.nets.distributions import TanhGaussian, tanh_gaussian_sample
from expo.nets.ensemble import QEnsemble, subset_params
from expo.nets.temperature import Temperature, temperature_loss


def get_config() -> dict[str, Any]:
    """Paper defaults (Table 1 and the authors' code)."""
    return {
        "actor_lr": 3e-4,
        "critic_lr": 3e-4,
        "temp_lr": 3e-4,
        # cosine decay of the base and edit policies' lr (expo_learner.py:116,153-154 at bbd5713)
        "lr_decay_steps": 3_000_000,
        "actor_weight_decay": 1e-4,    # AdamW (optax default, as the code uses optax.adamw)
        "hidden_dims": (256, 256, 256),  # critic and edit policy
        "num_qs": 10,
        "num_min_qs": None,            # None -> protocol (antmaze 1, otherwise 2)
        "critic_layer_norm": True,
        "discount": 0.99,
        "tau": 0.005,
        "actor_ema": 0.001,
        "T": 10,
        "diffusion_width": 256,
        "diffusion_blocks": 3,
        "time_dim": 128,
        "diffusion_dropout": None,
        "N": 8,
        "n_edit": 8,
        "beta": None,                  # edit scale; None -> protocol for the setting
        "edit_dropout": None,          # None -> protocol
        "init_temperature": 1.0,
        "target_entropy": None,        # None -> -|A| / 2 (+ |A| log beta if adjust_target_entropy)
        # The code's default (False) keeps -|A|/2, which the beta-scaled edit cannot reach when
        # beta < e^-0.5 / 2 ~ 0.30 (its entropy is at most |A| log(2 beta)): the temperature then
        # grows without bound (log alpha rises ~lr per step). True shifts the target by |A| log beta.
        "adjust_target_entropy": False,
        "utd": 20,
        "batch_size": 256,
        "otf_backup": True,
        "entropy_backup": False,
        "selection_inverse_temperature": 10.0,  # beta_s of the soft selection (entropy_backup)
        # alpha_b of the entropy backup's -alpha log pi_OTF term (Sec. 4.3), a constant of its own.
        # The released code never reads its backup_entropy flag, so the paper names no value. Not the
        # edit policy's temperature: that one grows without bound when beta <= 0.3 (see
        # adjust_target_entropy), and would make the target grow with it. Not tuned online either: the
        # selection entropy is set by beta_s and the spread of Q, not by alpha_b, so a learned
        # alpha_b has no lever on its own target and drifts. With K = 16 candidates and gamma 0.99
        # the bonus adds at most alpha_b log K gamma / (1 - gamma) = 0.27 to any Q, a quarter of
        # one success reward.
        "backup_temperature": 1e-3,
        "deviations": (
            "edited actions are clipped to the action box [-1, 1]; entropy backup (the released "
            "code never reads its backup_entropy flag): Sec. 4.3's soft selection with "
            "selection_inverse_temperature and a fixed backup_temperature, both the suite's choices"
        ),
    }


def resolve_config(agent: dict, spec, setting: str) -> None:
    from expo.protocol import edit_scale

    if agent["beta"] is None:
        agent["beta"] = edit_scale(spec, setting)
    if agent["num_min_qs"] is None:
        agent["num_min_qs"] = spec.num_min_qs
    if agent["edit_dropout"] is None:
        agent["edit_dropout"] = spec.edit_dropout


def validate_config(agent: dict) -> None:
    checks = [
        (agent["N"] >= 1, f"agent.N must be >= 1, got {agent['N']}"),
        (0 <= agent["n_edit"] <= agent["N"],
         f"agent.n_edit must be in [0, agent.N={agent['N']}], got {agent['n_edit']}"),
        (agent["beta"] > 0, f"agent.beta (edit scale) must be > 0, got {agent['beta']}"),
        (agent["T"] >= 1, f"agent.T (diffusion steps) must be >= 1, got {agent['T']}"),
        (agent["num_qs"] >= 1, f"agent.num_qs must be >= 1, got {agent['num_qs']}"),
        (1 <= agent["num_min_qs"] <= agent["num_qs"],
         f"agent.num_min_qs must be in [1, agent.num_qs={agent['num_qs']}], got {agent['num_min_qs']}"),
        (agent["utd"] >= 1, f"agent.utd must be >= 1, got {agent['utd']}"),
        (agent["batch_size"] >= 2 and agent["batch_size"] % 2 == 0,
         f"agent.batch_size must be even and >= 2 (half offline, half online), got {agent['batch_size']}"),
        (0 < agent["discount"] <= 1, f"agent.discount must be in (0, 1], got {agent['discount']}"),
        (agent["selection_inverse_temperature"] > 0,
         "agent.selection_inverse_temperature must be > 0"),
        (agent["backup_temperature"] >= 0,
         f"agent.backup_temperature must be >= 0, got {agent['backup_temperature']}"),
        (not (agent["entropy_backup"] and not agent["otf_backup"]),
         "agent.entropy_backup=true needs agent.otf_backup=true (it softens the OTF selection)"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


@dataclasses.dataclass(frozen=True)
class Hyper:
    """Static hyperparameters: part of the pytree's structure, so changing one recompiles."""
    N: int
    n_edit: int
    beta: float
    T: int
    action_dim: int
    num_qs: int
    num_min_qs: int
    discount: float
    tau: float
    actor_ema: float
    target_entropy: float
    otf_backup: bool
    entropy_backup: bool
    selection_inverse_temperature: float
    backup_temperature: float = 0.0


class ExpoAgent(flax.struct.PyTreeNode):
    rng: jax.Array
    actor: TrainState               # diffusion base policy (online weights)
    actor_ema: Any                  # EMA parameters: act and evaluate
    edit: TrainState                # edit policy
    critic: TrainState
    target_critic: Any              # target critic parameters
    temp: TrainState
    schedule: diffusion.Schedule
    hp: Hyper = flax.struct.field(pytree_node=False)


# The diffusion noise schedule of the base policy: variance preserving (the paper's Table 1; the
# authors' EXPO builds vp_beta_schedule too: expo/agents/sac/expo_learner.py:187 at bbd5713).
# analysis/tables.py reports it from here.
BETA_SCHEDULE = diffusion.vp_schedule


def create(seed: int, obs_dim: int, action_dim: int, cfg: dict) -> ExpoAgent:
    validate_config(cfg)
    rng = jax.random.PRNGKey(seed)
    rng, actor_key, edit_key, critic_key, temp_key = jax.random.split(rng, 5)
    obs = jnp.zeros((1, obs_dim))
    act = jnp.zeros((1, action_dim))

    actor_def = diffusion.NoisePredictor(
        action_dim, cfg["diffusion_width"], cfg["diffusion_blocks"], cfg["time_dim"],
        dropout_rate=cfg["diffusion_dropout"])
    actor_params = actor_def.init(actor_key, obs, act, jnp.zeros((1, 1)))["params"]
    policy_lr = optax.cosine_decay_schedule(cfg["actor_lr"], cfg["lr_decay_steps"])
    actor = TrainState.create(apply_fn=actor_def.apply, params=actor_params,
                              tx=optax.adamw(policy_lr, weight_decay=cfg["actor_weight_decay"]))

    edit_def = TanhGaussian(cfg["hidden_dims"], action_dim, dropout_rate=cfg["edit_dropout"] or None)
    edit_params = edit_def.init(edit_key, jnp.zeros((1, obs_dim + action_dim)))["params"]
    edit = TrainState.create(apply_fn=edit_def.apply, params=edit_params, tx=optax.adam(policy_lr))

    critic_def = QEnsemble(cfg["hidden_dims"], cfg["num_qs"], cfg["critic_layer_norm"])
    critic_params = critic_def.init(critic_key, obs, act)["params"]
    critic = TrainState.create(apply_fn=critic_def.apply, params=critic_params,
                               tx=optax.adam(cfg["critic_lr"]))

    temp_def = Temperature(cfg["init_temperature"])
    temp = TrainState.create(apply_fn=temp_def.apply, params=temp_def.init(temp_key)["params"],
                             tx=optax.adam(cfg["temp_lr"]))

    target_entropy = cfg["target_entropy"]
    if target_entropy is None:
        target_entropy = -action_dim / 2
        if cfg["adjust_target_entropy"]:
            target_entropy += action_dim * float(jnp.log(cfg["beta"]))
    hp = Hyper(
        N=cfg["N"], n_edit=cfg["n_edit"], beta=float(cfg["beta"]), T=cfg["T"], action_dim=action_dim,
        num_qs=cfg["num_qs"], num_min_qs=cfg["num_min_qs"], discount=float(cfg["discount"]),
        tau=float(cfg["tau"]), actor_ema=float(cfg["actor_ema"]), target_entropy=float(target_entropy),
        otf_backup=bool(cfg["otf_backup"]), entropy_backup=bool(cfg["entropy_backup"]),
        selection_inverse_temperature=float(cfg["selection_inverse_temperature"]),
        backup_temperature=float(cfg["backup_temperature"]),
    )
    agent = ExpoAgent(rng=rng, actor=actor, actor_ema=actor_params, edit=edit, critic=critic,
                      target_critic=critic_params, temp=temp, schedule=BETA_SCHEDULE(cfg["T"]),
                      hp=hp)
    # Strongly typed arrays everywhere (TrainState.step starts as a Python int): the leaves then
    # have exactly the types update() returns, so the training loop compiles update() once.
    return jax.tree_util.tree_map(lambda x: jnp.array(x, dtype=jnp.asarray(x).dtype), agent)


# ----------------------------------------------------------------------------- the OTF policy

def edit_actions(agent: ExpoAgent, edit_params, key, observations, actions):
    """a + beta * u with u ~ pi_edit(. | s, a), clipped to the action box. Shapes [B, A]."""
    mean, log_std = agent.edit.apply_fn({"params": edit_params},
                                        jnp.concatenate([observations, actions], -1))
    u, _ = tanh_gaussian_sample(key, mean, log_std)
    return jnp.clip(actions + agent.hp.beta * u, -1.0, 1.0)


def otf_candidates(agent: ExpoAgent, actor_params, key, observations):
    """N base samples per state plus edits of the first n_edit: [B, N + n_edit, A]."""
    hp = agent.hp
    batch = observations.shape[0]
    base_key, edit_key = jax.random.split(key)
    obs_rep = jnp.repeat(observations, hp.N, axis=0)
    base = diffusion.ddpm_sample(agent.actor.apply_fn, actor_params, agent.schedule, base_key,
                                 obs_rep, hp.action_dim).reshape(batch, hp.N, hp.action_dim)
    if hp.n_edit == 0:
        return base
    to_edit = base[:, : hp.n_edit].reshape(batch * hp.n_edit, hp.action_dim)
    edited = edit_actions(agent, agent.edit.params, edit_key,
                          jnp.repeat(observations, hp.n_edit, axis=0), to_edit)
    return jnp.concatenate([base, edited.reshape(batch, hp.n_edit, hp.action_dim)], axis=1)


def candidate_values(agent: ExpoAgent, critic_params, key, observations, candidates):
    """Min over a random subset of num_min_qs heads of Q(s, a_i) for every candidate: [B, K]."""
    batch, k, _ = candidates.shape
    obs_rep = jnp.repeat(observations, k, axis=0)
    # Only the chosen heads are evaluated, as the authors' code does (subsample_ensemble, then
    # apply: expo/agents/sac/expo_learner.py:357-364 at bbd5713): same values as evaluating
    # all heads and taking subset_min with the same key, at num_min_qs / num_qs of the cost.
    heads = subset_params(critic_params, key, agent.hp.num_qs, agent.hp.num_min_qs)
    qs = agent.critic.apply_fn({"params": heads}, obs_rep, candidates.reshape(batch * k, -1))
    return jnp.min(qs, axis=0).reshape(batch, k)


def soft_selection(key, q_values, inverse_temperature: float):
    """Sample a candidate index from softmax(beta_s * Q); return (index, probs, entropy)."""
    logits = inverse_temperature * q_values
    probs = jax.nn.softmax(logits, axis=-1)
    index = jax.random.categorical(key, logits, axis=-1)
    entropy = -jnp.sum(probs * jax.nn.log_softmax(logits, axis=-1), axis=-1)
    return index, probs, entropy


def select_candidate(agent: ExpoAgent, key, q_values):
    """The OTF policy's choice among candidates given their values [B, K]: the argmax, or with
    entropy_backup a draw from softmax(beta_s * Q) (Sec. 4.3: the soft selection acts as well as
    backs up). Returns (index [B], entropy of the selection distribution [B]; 0 for the argmax)."""
    if agent.hp.entropy_backup:
        index, _, entropy = soft_selection(key, q_values, agent.hp.selection_inverse_temperature)
        return index, entropy
    return jnp.argmax(q_values, axis=1), jnp.zeros(q_values.shape[0])


def take_candidate(candidates, index):
    """candidates [B, K, A], index [B] -> [B, A]."""
    return jnp.take_along_axis(candidates, index[:, None, None], axis=1)[:, 0]


def otf_select(agent: ExpoAgent, actor_params, key, observations):
    """The OTF action: the candidate selected under the target-critic subset-min Q. Returns [B, A]."""
    cand_key, q_key, draw_key = jax.random.split(key, 3)
    candidates = otf_candidates(agent, actor_params, cand_key, observations)
    if candidates.shape[1] == 1:  # N = 1 and no edits: the base sample itself, no critic needed
        return candidates[:, 0]
    q = candidate_values(agent, agent.target_critic, q_key, observations, candidates)
    index, _ = select_candidate(agent, draw_key, q)
    return take_candidate(candidates, index)


# The agent fields sample_actions reads (besides the static apply functions and hp): what a finished
# run keeps as its policy (expo/policy_store.py; tests/test_policy.py checks that the other fields
# do not change an action).
POLICY_FIELDS = ("actor_ema", "edit", "target_critic", "schedule")


@jax.jit
def sample_actions(agent: ExpoAgent, observations, key):
    """Acting and evaluation: the OTF policy with the EMA base policy. observations [B, obs_dim]."""
    return otf_select(agent, agent.actor_ema, key, observations)


# ----------------------------------------------------------------------------- updates

def backup_candidates(agent: ExpoAgent, key, next_observations):
    """The TD backup's candidate next actions, with the ONLINE base policy: the OTF candidates
    [B, N + n_edit, A], or one base-policy sample [B, 1, A] without the OTF backup (Fig. 5)."""
    if agent.hp.otf_backup:
        return otf_candidates(agent, agent.actor.params, key, next_observations)
    # Fig. 5 ablation: a SARSA-like backup through a single base-policy sample
    base = diffusion.ddpm_sample(agent.actor.apply_fn, agent.actor.params, agent.schedule, key,
                                 next_observations, agent.hp.action_dim)
    return base[:, None]


def td_target(agent: ExpoAgent, key, batch, candidates):
    """y = r + gamma * mask * [Q'(s', a') + alpha_b * H(pi_OTF(. | s'))], a' the candidate selected
    under THIS step's target critic. candidates [B, K, A].

    Two independent random head subsets, as in the authors' learner (golden case td_target in
    tests/test_golden_expo.py): one chooses the candidate (expo/agents/sac/expo_learner.py:355-369
    at bbd5713), another, drawn from a different key, values the chosen action (:516-530); one
    shared subset would value each backup at the maximum of the very heads that chose it, an
    upward bias. The entropy term (entropy_backup only, Sec. 4.3) is the
    closed-form entropy of the softmax selection over the K candidates, the expectation of
    -log pi_OTF(a'|s') over the draw: at most log K, so with the fixed backup_temperature alpha_b the
    target stays within [r_min, r_max + gamma * alpha_b * log K] / (1 - gamma)."""
    hp = agent.hp
    next_obs = batch["next_observations"]
    select_key, value_key, draw_key = jax.random.split(key, 3)
    if candidates.shape[1] == 1:  # one candidate (no OTF backup): nothing to select
        index, entropy = jnp.zeros(next_obs.shape[0], jnp.int32), jnp.zeros(next_obs.shape[0])
    else:
        q_select = candidate_values(agent, agent.target_critic, select_key, next_obs, candidates)
        index, entropy = select_candidate(agent, draw_key, q_select)
    chosen = take_candidate(candidates, index)
    next_q = candidate_values(agent, agent.target_critic, value_key, next_obs, chosen[:, None])[:, 0]
    next_v = next_q + hp.backup_temperature * entropy  # entropy is 0 unless entropy_backup
    return batch["rewards"] + hp.discount * batch["masks"] * next_v, entropy


def critic_loss_fn(critic_params, apply_fn, batch, target):
    qs = apply_fn({"params": critic_params}, batch["observations"], batch["actions"])
    return jnp.mean((qs - target[None]) ** 2), qs


def critic_step(agent: ExpoAgent, minibatch_and_candidates):
    batch, candidates = minibatch_and_candidates
    rng, key = jax.random.split(agent.rng)
    target, entropy = td_target(agent, key, batch, candidates)
    (loss, qs), grads = jax.value_and_grad(critic_loss_fn, has_aux=True)(
        agent.critic.params, agent.critic.apply_fn, batch, target)
    critic = agent.critic.apply_gradients(grads=grads)
    target_params = optax.incremental_update(critic.params, agent.target_critic, agent.hp.tau)
    info = {"critic_loss": loss, "q_mean": qs.mean(), "q_max": qs.max(), "q_min": qs.min(),
            "target_mean": target.mean(), "selection_entropy": entropy.mean()}
    return agent.replace(rng=rng, critic=critic, target_critic=target_params), info


def all_backup_candidates(agent: ExpoAgent, next_observations):
    """Candidates for every critic step of one update in ONE batched sampling pass: the base and
    edit policies do not change during the critic steps, so sampling the utd minibatches together
    draws from the same distribution as sampling them step by step (independent noise per row), in
    a few large matrix products instead of utd small ones. next_observations [utd, B, obs_dim]
    -> ([utd, B, K, A], advanced agent)."""
    rng, key = jax.random.split(agent.rng)
    utd, batch = next_observations.shape[:2]
    flat = next_observations.reshape(utd * batch, -1)
    candidates = backup_candidates(agent, key, flat)
    return candidates.reshape(utd, batch, *candidates.shape[1:]), agent.replace(rng=rng)


def actor_step(agent: ExpoAgent, batch):
    """One imitation (epsilon-MSE) update of the base policy and its EMA."""
    rng, key, dropout_key = jax.random.split(agent.rng, 3)
    actor, loss = diffusion.imitation_step(agent.actor, agent.schedule, key, batch["observations"],
                                           batch["actions"], dropout_key)
    ema = optax.incremental_update(actor.params, agent.actor_ema, agent.hp.actor_ema)
    return agent.replace(rng=rng, actor=actor, actor_ema=ema), {"bc_loss": loss}


def edit_loss_terms(edit_params, agent: ExpoAgent, batch, key, dropout_key, temperature):
    """The edit loss alpha * log pi_edit - mean_heads Q(s, a + beta u) as its two terms
    [entropy term, Q term] (their sum is the loss), with the logged statistics."""
    hp = agent.hp
    obs, act = batch["observations"], batch["actions"]
    mean, log_std = agent.edit.apply_fn({"params": edit_params}, jnp.concatenate([obs, act], -1),
                                        training=True, rngs={"dropout": dropout_key})
    u, log_prob = tanh_gaussian_sample(key, mean, log_std)
    log_prob = log_prob - hp.action_dim * jnp.log(hp.beta)  # density of beta * u, not u
    edited = jnp.clip(act + hp.beta * u, -1.0, 1.0)
    q = agent.critic.apply_fn({"params": agent.critic.params}, obs, edited).mean(axis=0)
    terms = jnp.stack([jnp.mean(temperature * log_prob), -jnp.mean(q)])
    return terms, {"edit_loss": terms.sum(), "edit_q": q.mean(), "edit_entropy": -log_prob.mean()}


def edit_loss_fn(edit_params, agent: ExpoAgent, batch, key, dropout_key, temperature):
    terms, info = edit_loss_terms(edit_params, agent, batch, key, dropout_key, temperature)
    return terms.sum(), info


def _global_norm(tree):
    return jnp.sqrt(sum(jnp.sum(x ** 2) for x in jax.tree_util.tree_leaves(tree)))


def edit_step(agent: ExpoAgent, batch):
    """One edit-policy update, then one temperature update on the edit policy's entropy.

    The gradient is taken per loss term (one backward pass for both) so that train.csv shows how
    much of the edit's gradient comes from Q: with beta <= 0.3 the temperature grows without bound
    (adjust_target_entropy) and edit_q_grad_share falls towards 0, the edit then being a Q-blind
    perturbation within +-beta."""
    rng, key, dropout_key = jax.random.split(agent.rng, 3)
    temperature = agent.temp.apply_fn({"params": agent.temp.params})
    term_grads, info = jax.jacrev(edit_loss_terms, has_aux=True)(agent.edit.params, agent, batch,
                                                                 key, dropout_key, temperature)
    grads = jax.tree_util.tree_map(lambda g: g[0] + g[1], term_grads)
    entropy_norm = _global_norm(jax.tree_util.tree_map(lambda g: g[0], term_grads))
    q_norm = _global_norm(jax.tree_util.tree_map(lambda g: g[1], term_grads))
    info["edit_q_grad_norm"] = q_norm
    info["edit_entropy_grad_norm"] = entropy_norm
    info["edit_q_grad_share"] = q_norm / (q_norm + entropy_norm + 1e-12)
    edit = agent.edit.apply_gradients(grads=grads)
    entropy = info["edit_entropy"]
    temp_grads = jax.grad(lambda p: temperature_loss(agent.temp.apply_fn({"params": p}), entropy,
                                                     agent.hp.target_entropy))(agent.temp.params)
    temp = agent.temp.apply_gradients(grads=temp_grads)
    info["temperature"] = temperature
    info["log_temperature"] = jnp.log(temperature)
    return agent.replace(rng=rng, edit=edit, temp=temp), info


@jax.jit
def update(agent: ExpoAgent, batch):
    """One environment step's worth of learning. batch leaves have shape [utd, B, ...]."""
    candidates, agent = all_backup_candidates(agent, batch["next_observations"])
    agent, critic_info = scan_minibatches(critic_step, agent, (batch, candidates))
    last = jax.tree_util.tree_map(lambda x: x[-1], batch)
    agent, actor_info = actor_step(agent, last)
    info = {**critic_info, **actor_info}
    if agent.hp.n_edit > 0:
        agent, edit_info = edit_step(agent, last)
        info.update(edit_info)
    return agent, info


@jax.jit
def pretrain_update(agent: ExpoAgent, batch):
    """Offline imitation of the base policy only (Q and edit policy start from scratch online).
    batch leaves have shape [k, B, ...]: k imitation steps in one call."""
    return scan_minibatches(actor_step, agent, batch)
