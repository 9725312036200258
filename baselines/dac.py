"""DAC, "Diffusion Actor-Critic" (Fang et al. 2024): a diffusion policy trained by the BC epsilon
loss plus a Q-gradient guidance term, with a lower-confidence-bound (LCB) ensemble critic.

Facts from the authors' code (Fang-Lin93/DAC: agents/dac.py, main.py, runs.sh):
- actor loss, per minibatch, with t uniform over the T = 5 steps, eps ~ N(0, I),
  a_t = sqrt(abar_t) a + sqrt(1 - abar_t) eps:
      L = eta * mean_{b, j} (eps_theta(s, a_t, t) - eps)^2
          + mean_{b, j} [ sqrt(1 - abar_t) * g_j(s, a_t) * eps_theta(s, a_t, t)_j ],
      g(s, a_t) = grad_a mean_heads Q'(s, a)|_{a = a_t} / (mean_{heads, batch} |Q'(s, a_batch)| + 1e-6)
  with Q' the TARGET critic (already updated in this step) and g held constant. The "+" sign:
  lowering L pushes eps_theta against grad Q, and the denoising step a_{t-1} ~ a_t - c * eps_theta
  then moves the action up the Q gradient (the soft "Q_guidance" variant, the default). Both terms
  are means over batch AND action dims (unlike IDQL/EXPO's sum over action dims);
- eta: 0.1 fixed on antmaze (runs.sh); otherwise main.py's defaults eta = 1 and eta_lr = 0. With
  eta_lr > 0 (the authors' locomotion runs: 0.001, bc_threshold 1) eta follows dual ascent
  eta += eta_lr * clip(BC_after - bc_threshold, -1, 1), clipped to [eta_min, eta_max] = [0.001, 100],
  where BC_after is the BC loss of the updated network (no dropout) on the same noisy actions;
- critic: 10 heads, MLP (256, 256, 256) with mish, no LayerNorm; target
      y = r + gamma * mask * LCB,  LCB = mean_h V_h - rho * std_h V_h  (population std, rho 1;
      antmaze-large-play 1.1),  V_h = mean over 10 next actions of Q'_h(s', a')  (max on antmaze),
  a' sampled from the EMA policy; MSE on every head; Polyak tau 0.005 each step;
- optimisers: Adam, lr 3e-4 cosine-decayed over 2e6 steps for actor AND critic (critic 1e-3 on
  antmaze-large), global-norm gradient clipping 1.0; actor EMA tau 0.005 applied every 5 updates
  once more than 1000 updates were made (before that the EMA stays at the initial weights);
- one update = one critic step then one actor step on the same minibatch of 256;
- acting and evaluation: 10 samples from the ONLINE (not EMA) policy, argmax of the mean over
  heads of the target critic (temperature 0).

Adaptations to the suite (saved under agent.deviations): DAC is an offline RL method; main.py can
continue the same update on a replay buffer seeded with the dataset, one update per env step. The
suite runs it in both settings by continuing the same objective: offline_to_online pretrains with
pretrain_update (the offline update) and fine-tunes with update(); the online setting uses update()
from scratch; both on the loop's 50/50 offline/online minibatches (utd full updates per env step).
Other differences: the noise network is the suite's shared LN-ResNet (expo/nets/diffusion.py) instead
of DAC's 3x256 mish MLP with fixed sinusoidal time features; the shared DDPM sampler clips the
action after every step, where DAC clips the predicted a_0 inside the posterior mean; rewards follow
the suite's protocol (r - 1 on antmaze) rather than DAC's reward_tune. Pretraining runs the
protocol's steps (Table 1: 200k robomimic, 500k antmaze; EXPO's offline budget) where DAC's
main.py:22 (at e254357) trains 2M offline steps; the cosine decay keeps DAC's 2M horizon. After
pretraining the policy acts and updates run from online step 1, as main.py:140-158 fine-tunes
(sample_actions, insert, update at every step): no random-action warm-up.
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

from expo.config import ConfigError
from expo.nets import diffusion
from expo.nets.ensemble import QEnsemble
from expo.agents.scan import scan_minibatches

EPS = 1e-6
ACTIVATIONS = {"mish": jax.nn.mish, "relu": jax.nn.relu}


def get_config() -> dict[str, Any]:
    """The authors' defaults (DACLearner + main.py + runs.sh)."""
    return {
        "actor_lr": 3e-4,
        "critic_lr": None,             # None -> 1e-3 on antmaze-large, else 3e-4 (runs.sh)
        "lr_decay_steps": 2_000_000,   # cosine decay of both lrs (main.py max_steps)
        "grad_clip_norm": 1.0,
        "hidden_dims": (256, 256, 256),
        "num_qs": 10,
        "critic_layer_norm": False,
        "critic_activation": "mish",
        "discount": 0.99,
        "tau": 0.005,                  # critic Polyak and actor EMA rate
        "actor_ema_every": 5,
        "actor_ema_start": 1000,
        "T": 5,
        "diffusion_width": 256,
        "diffusion_blocks": 3,
        "time_dim": 128,
        "diffusion_dropout": None,
        "eta": None,                   # None -> 0.1 on antmaze, 1.0 otherwise
        "eta_lr": None,                # None -> 0 (fixed eta), as runs.sh (antmaze) / main.py
        "eta_min": 0.001,
        "eta_max": 100.0,
        "bc_threshold": 1.0,
        "rho": None,                   # None -> 1.1 on antmaze-large-play, else 1.0
        "max_q_backup": None,          # None -> True on antmaze (max over target samples)
        "num_target_samples": 10,
        "N": 10,                       # action samples for the argmax-Q action
        "utd": 1,
        "batch_size": 256,
        "deviations": (
            "offline method run online by continuing the same objective (both settings, 50/50 "
            "minibatches); noise network = the suite's LN-ResNet instead of DAC's mish MLP; shared "
            "DDPM sampler (clips each step) instead of DAC's x0-clipping sampler; protocol rewards; "
            "pretraining: the protocol's steps instead of DAC's 2M"
        ),
    }


def resolve_config(agent: dict, spec, setting: str) -> None:
    antmaze = spec.domain == "antmaze"
    if agent["critic_lr"] is None:
        agent["critic_lr"] = 1e-3 if antmaze and "large" in spec.name else 3e-4
    if agent["eta"] is None:
        agent["eta"] = 0.1 if antmaze else 1.0
    if agent["eta_lr"] is None:
        agent["eta_lr"] = 0.0
    if agent["rho"] is None:
        agent["rho"] = 1.1 if antmaze and "large-play" in spec.name else 1.0
    if agent["max_q_backup"] is None:
        agent["max_q_backup"] = antmaze


def validate_config(agent: dict) -> None:
    checks = [
        (agent["N"] >= 1, f"agent.N must be >= 1, got {agent['N']}"),
        (agent["num_target_samples"] >= 1,
         f"agent.num_target_samples must be >= 1, got {agent['num_target_samples']}"),
        (agent["T"] >= 1, f"agent.T (diffusion steps) must be >= 1, got {agent['T']}"),
        (agent["num_qs"] >= 2, f"agent.num_qs must be >= 2 (the LCB needs a spread), got {agent['num_qs']}"),
        (agent["utd"] >= 1, f"agent.utd must be >= 1, got {agent['utd']}"),
        (agent["batch_size"] >= 2 and agent["batch_size"] % 2 == 0,
         f"agent.batch_size must be even and >= 2 (half offline, half online), got {agent['batch_size']}"),
        (0 < agent["discount"] <= 1, f"agent.discount must be in (0, 1], got {agent['discount']}"),
        (0 < agent["tau"] <= 1, f"agent.tau must be in (0, 1], got {agent['tau']}"),
        (agent["critic_activation"] in ACTIVATIONS,
         f"agent.critic_activation must be one of {sorted(ACTIVATIONS)}, got {agent['critic_activation']!r}"),
        (agent["eta"] is not None and agent["eta"] >= 0, f"agent.eta must be >= 0, got {agent['eta']}"),
        (agent["eta_lr"] is not None and agent["eta_lr"] >= 0,
         f"agent.eta_lr must be >= 0, got {agent['eta_lr']}"),
        (0 <= agent["eta_min"] <= agent["eta_max"],
         f"agent.eta_min must be in [0, agent.eta_max={agent['eta_max']}], got {agent['eta_min']}"),
        (agent["rho"] is not None and agent["rho"] >= 0, f"agent.rho must be >= 0, got {agent['rho']}"),
        (agent["max_q_backup"] is not None, "agent.max_q_backup must be true or false"),
        (agent["actor_ema_every"] >= 1, f"agent.actor_ema_every must be >= 1, got {agent['actor_ema_every']}"),
        (agent["grad_clip_norm"] is None or agent["grad_clip_norm"] > 0,
         f"agent.grad_clip_norm must be > 0 or none, got {agent['grad_clip_norm']}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


@dataclasses.dataclass(frozen=True)
class Hyper:
    """Static hyperparameters (part of the pytree structure)."""
    N: int
    num_target_samples: int
    T: int
    action_dim: int
    discount: float
    tau: float
    actor_ema_every: int
    actor_ema_start: int
    rho: float
    max_q_backup: bool
    eta_lr: float
    eta_min: float
    eta_max: float
    bc_threshold: float


class DACAgent(flax.struct.PyTreeNode):
    rng: jax.Array
    actor: TrainState          # diffusion policy, online weights: acting and evaluation
    actor_ema: Any             # EMA weights: next actions of the TD target
    critic: TrainState
    target_critic: Any
    eta: jax.Array             # BC weight (dual ascent when eta_lr > 0)
    schedule: diffusion.Schedule
    hp: Hyper = flax.struct.field(pytree_node=False)


def _optimizer(lr: float, decay_steps: int, clip):
    adam = optax.adam(optax.cosine_decay_schedule(lr, decay_steps))
    return optax.chain(optax.clip_by_global_norm(clip), adam) if clip else adam


def create(seed: int, obs_dim: int, action_dim: int, cfg: dict) -> DACAgent:
    validate_config(cfg)
    rng = jax.random.PRNGKey(seed)
    rng, actor_key, critic_key = jax.random.split(rng, 3)
    obs = jnp.zeros((1, obs_dim))
    act = jnp.zeros((1, action_dim))

    actor_def = diffusion.NoisePredictor(
        action_dim, cfg["diffusion_width"], cfg["diffusion_blocks"], cfg["time_dim"],
        dropout_rate=cfg["diffusion_dropout"] or None)
    actor_params = actor_def.init(actor_key, obs, act, jnp.zeros((1, 1)))["params"]
    actor = TrainState.create(apply_fn=actor_def.apply, params=actor_params,
                              tx=_optimizer(cfg["actor_lr"], cfg["lr_decay_steps"], cfg["grad_clip_norm"]))

    critic_def = QEnsemble(cfg["hidden_dims"], cfg["num_qs"], cfg["critic_layer_norm"],
                           ACTIVATIONS[cfg["critic_activation"]])
    critic_params = critic_def.init(critic_key, obs, act)["params"]
    critic = TrainState.create(apply_fn=critic_def.apply, params=critic_params,
                               tx=_optimizer(float(cfg["critic_lr"]), cfg["lr_decay_steps"],
                                             cfg["grad_clip_norm"]))

    hp = Hyper(N=cfg["N"], num_target_samples=cfg["num_target_samples"], T=cfg["T"],
               action_dim=action_dim, discount=float(cfg["discount"]), tau=float(cfg["tau"]),
               actor_ema_every=int(cfg["actor_ema_every"]), actor_ema_start=int(cfg["actor_ema_start"]),
               rho=float(cfg["rho"]), max_q_backup=bool(cfg["max_q_backup"]),
               eta_lr=float(cfg["eta_lr"]), eta_min=float(cfg["eta_min"]),
               eta_max=float(cfg["eta_max"]), bc_threshold=float(cfg["bc_threshold"]))
    agent = DACAgent(rng=rng, actor=actor, actor_ema=actor_params, critic=critic,
                     target_critic=critic_params, eta=jnp.asarray(float(cfg["eta"]), jnp.float32),
                     schedule=diffusion.vp_schedule(cfg["T"]), hp=hp)
    # Strongly typed leaves (TrainState.step starts as a Python int) so update() compiles once.
    return jax.tree_util.tree_map(lambda x: jnp.array(x, dtype=jnp.asarray(x).dtype), agent)


# ----------------------------------------------------------------------------- critic

def lcb_value(q_next, rho: float, max_q_backup: bool):
    """q_next [heads, B, samples] -> [B]: per head the max (antmaze) or mean over the sampled next
    actions, then mean - rho * std over heads (population std, as jnp.std)."""
    per_head = q_next.max(axis=-1) if max_q_backup else q_next.mean(axis=-1)
    return per_head.mean(axis=0) - rho * per_head.std(axis=0)


def td_target(agent: DACAgent, key, batch):
    """y = r + gamma * mask * LCB over heads of Q'(s', a'), a' from the EMA policy."""
    hp = agent.hp
    next_obs = batch["next_observations"]
    batch_size, n = next_obs.shape[0], hp.num_target_samples
    next_rep = jnp.repeat(next_obs, n, axis=0)   # row b * n + j: state b, sample j
    next_actions = diffusion.ddpm_sample(agent.actor.apply_fn, agent.actor_ema, agent.schedule, key,
                                         next_rep, hp.action_dim)
    q_next = agent.critic.apply_fn({"params": agent.target_critic}, next_rep, next_actions)
    v = lcb_value(q_next.reshape(-1, batch_size, n), hp.rho, hp.max_q_backup)
    return batch["rewards"] + hp.discount * batch["masks"] * v


def critic_loss_fn(critic_params, agent: DACAgent, batch, target):
    qs = agent.critic.apply_fn({"params": critic_params}, batch["observations"], batch["actions"])
    loss = jnp.mean((qs - target[None]) ** 2)
    return loss, {"critic_loss": loss, "q_mean": qs.mean(), "q_max": qs.max(), "q_min": qs.min(),
                  "q_std": qs.std(axis=0).mean(), "target_mean": target.mean()}


def critic_step(agent: DACAgent, batch):
    rng, key = jax.random.split(agent.rng)
    target = td_target(agent, key, batch)
    grads, info = jax.grad(critic_loss_fn, has_aux=True)(agent.critic.params, agent, batch, target)
    critic = agent.critic.apply_gradients(grads=grads)
    target_params = optax.incremental_update(critic.params, agent.target_critic, agent.hp.tau)
    return agent.replace(rng=rng, critic=critic, target_critic=target_params), info


# ----------------------------------------------------------------------------- actor

def guidance_weights(agent: DACAgent, critic_params, observations, actions, noisy_actions, t):
    """sqrt(1 - abar_t) * grad_a mean_heads Q(s, a_t) / (mean |Q(s, a_batch)| + 1e-6): [B, A].
    Rows are independent, so the gradient of the batch sum is every row's own gradient."""
    q_norm = jnp.abs(agent.critic.apply_fn({"params": critic_params}, observations, actions)).mean()
    grad = jax.grad(lambda a: agent.critic.apply_fn({"params": critic_params}, observations, a)
                    .mean(axis=0).sum())(noisy_actions)
    sigma = jnp.sqrt(1.0 - agent.schedule.alpha_bars[t])[:, None]
    return jax.lax.stop_gradient(sigma * grad / (q_norm + EPS)), q_norm


def actor_loss(eps_pred, noise, weights, eta):
    """eta * BC + guidance, both means over batch and action dims. Returns (loss, bc, guidance)."""
    bc = jnp.mean((eps_pred - noise) ** 2)
    guidance = jnp.mean(weights * eps_pred)
    return eta * bc + guidance, bc, guidance


def actor_step(agent: DACAgent, batch):
    hp = agent.hp
    rng, t_key, noise_key, dropout_key = jax.random.split(agent.rng, 4)
    obs, actions = batch["observations"], batch["actions"]
    t = jax.random.randint(t_key, (actions.shape[0],), 0, hp.T)
    noise = jax.random.normal(noise_key, actions.shape)
    noisy = diffusion.noisy_actions_at(agent.schedule, actions, t, noise)
    weights, q_norm = guidance_weights(agent, agent.target_critic, obs, actions, noisy, t)

    def loss_fn(params):
        eps_pred = agent.actor.apply_fn({"params": params}, obs, noisy, t[:, None], training=True,
                                        rngs={"dropout": dropout_key})
        loss, bc, guidance = actor_loss(eps_pred, noise, weights, agent.eta)
        return loss, {"actor_loss": loss, "bc_loss": bc, "guidance_loss": guidance}

    grads, info = jax.grad(loss_fn, has_aux=True)(agent.actor.params)
    actor = agent.actor.apply_gradients(grads=grads)

    eta = agent.eta
    if hp.eta_lr > 0:  # dual ascent on the BC loss of the updated network (no dropout)
        eps_new = agent.actor.apply_fn({"params": actor.params}, obs, noisy, t[:, None])
        new_bc = jnp.mean((eps_new - noise) ** 2)
        eta = jnp.clip(eta + hp.eta_lr * jnp.clip(new_bc - hp.bc_threshold, -1.0, 1.0),
                       hp.eta_min, hp.eta_max)

    # EMA every actor_ema_every updates once more than actor_ema_start were made (counted before
    # this one, as the authors' _n_training_steps: agents/dac.py:446-447 at e254357).
    n = agent.actor.step
    do_ema = (n % hp.actor_ema_every == 0) & (n > hp.actor_ema_start)
    moved = optax.incremental_update(actor.params, agent.actor_ema, hp.tau)
    ema = jax.tree_util.tree_map(lambda m, o: jnp.where(do_ema, m, o), moved, agent.actor_ema)
    info.update({"eta": eta, "q_norm": q_norm, "guidance_abs": jnp.abs(weights).mean()})
    return agent.replace(rng=rng, actor=actor, actor_ema=ema, eta=eta), info


def full_step(agent: DACAgent, batch):
    """The authors' update: one critic step, then one actor step, on the same minibatch."""
    agent, critic_info = critic_step(agent, batch)
    agent, actor_info = actor_step(agent, batch)
    return agent, {**critic_info, **actor_info}


# ----------------------------------------------------------------------------- acting

def select_argmax(agent: DACAgent, observations, candidates):
    """The candidate with the largest MEAN over heads of the target Q. [B, K, A] -> [B, A]."""
    batch, k, _ = candidates.shape
    q = agent.critic.apply_fn({"params": agent.target_critic}, jnp.repeat(observations, k, axis=0),
                              candidates.reshape(batch * k, -1)).mean(axis=0).reshape(batch, k)
    best = jnp.argmax(q, axis=1)
    return jnp.take_along_axis(candidates, best[:, None, None], axis=1)[:, 0]


@jax.jit
def sample_actions(agent: DACAgent, observations, key):
    """Acting and evaluation: N samples from the ONLINE policy, argmax of the mean target Q."""
    batch = observations.shape[0]
    samples = diffusion.ddpm_sample(agent.actor.apply_fn, agent.actor.params, agent.schedule, key,
                                    jnp.repeat(observations, agent.hp.N, axis=0), agent.hp.action_dim)
    return select_argmax(agent, observations, samples.reshape(batch, agent.hp.N, agent.hp.action_dim))


# ----------------------------------------------------------------------------- updates


@jax.jit
def update(agent: DACAgent, batch):
    """One environment step: utd full DAC updates (critic then actor) on [utd, B] minibatches."""
    return scan_minibatches(full_step, agent, batch)


@jax.jit
def pretrain_update(agent: DACAgent, batch):
    """k offline DAC updates on [k, B] offline minibatches (the same objective as online)."""
    return scan_minibatches(full_step, agent, batch)
