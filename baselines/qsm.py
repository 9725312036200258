"""QSM, Q-Score Matching (Psenka et al. 2024, "Learning a Diffusion Model Policy from Rewards via
Q-Score Matching"): the diffusion policy's noise prediction is regressed onto the critic's action
gradient, so its score points uphill in Q. No imitation term.

Per update (authors' code, Alescontrela/score_matching_rl, ScoreMatchingLearner with
configs/score_matching_config.py):
- critic: 2 Q networks (512x2 relu MLPs, no LayerNorm), each trained by MSE against
  y = r + gamma * mask * min(Q1', Q2')(s', a'), a' = clip(one diffusion sample of the ONLINE
  policy + N(0, 0.1^2), -1, 1); Adam(3e-4); Polyak tau 0.005 after every critic step;
- actor: t ~ U{0..T-1}, eps ~ N(0, I), a_t = sqrt(abar_t) a + sqrt(1 - abar_t) eps with a the
  batch action; loss = mean over batch and action dims of (eps_theta(s, a_t, t) + M * gbar)^2
  with gbar = mean over the two (just updated, online) critics of grad_a Q_h(s, a) AT a_t, and
  M = 50. The code writes it as (-M gbar - eps_theta)^2: eps_theta is trained towards -M gbar, so
  the implied score -eps_theta / sqrt(1 - abar_t) points along +grad Q (samples climb Q).
  Adam with lr 3e-4 cosine-decayed over 2e6 steps;
- diffusion: T = 5, VP beta schedule (create()'s default; the config does not set one), ancestral
  DDPM sampler clipped to [-1, 1] every step (= expo.nets.diffusion.ddpm_sample); noise network =
  learnable Fourier time features (64) -> (128, 128) mish MLP, then a (512, 512) mish MLP;
- acting: one diffusion sample + N(0, 0.1^2), clipped; evaluation (evaluation.evaluate calls
  eval_actions): one diffusion sample WITHOUT the extra noise;
- per environment step: one critic update then one actor update on the same batch (utd_ratio 1).

Adaptations to the suite (also in agent.deviations):
- With utd > 1 the utd minibatches each get a critic and an actor step (lax.scan); the code's
  utd_ratio instead samples one batch utd times larger and updates once. Default utd = 1 = code.
- The 50/50 offline/online batch feeds both losses: the offline actions, noised, are where the
  score is matched, as the executed actions are.
- offline_to_online: QSM has no offline objective. pretrain_update trains the critic exactly as
  online and the diffusion policy with the eps-MSE imitation loss on the dataset actions (the
  same pretraining the suite gives DIPO), so the policy starts at the data; online updates then
  switch the actor to score matching.
- start_training is the protocol's (the code uses 10000 random steps).
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
from expo.nets.ensemble import QEnsemble, summed_mse_step
from expo.agents.scan import scan_minibatches

BETA_SCHEDULES = ("vp", "cosine")


def get_config() -> dict[str, Any]:
    """QSM's defaults (score_matching_config.py over ScoreMatchingLearner.create's defaults)."""
    return {
        "actor_lr": 3e-4,
        "critic_lr": 3e-4,
        "lr_decay_steps": 2_000_000,  # cosine decay of the actor lr (create's decay_steps)
        "hidden_dims": (512, 512),    # critic heads
        "num_qs": 2,
        "discount": 0.99,
        "tau": 0.005,
        "T": 5,
        "beta_schedule": "vp",
        "diffusion_width": 512,       # noise MLP width (actor_hidden_dims = (512, 512))
        "diffusion_layers": 2,
        "time_dim": 64,               # learnable Fourier time features
        "time_hidden_dims": (128, 128),
        "M": 50.0,                    # M_q: scale of grad_a Q in the score-matching target
        "target_noise": 0.1,          # std of the Gaussian added to the TD target's next action
        "explore_noise": 0.1,         # std of the Gaussian added when acting (none at eval)
        "utd": 1,
        "batch_size": 256,
        "deviations": (
            "utd > 1 scans utd minibatches with a critic+actor step each (code: one step on a "
            "utd-times larger batch); pretraining = critic TD as online + eps-MSE imitation on "
            "dataset actions; protocol start_training"),
    }


def resolve_config(agent: dict, spec, setting: str) -> None:
    """QSM's code has one set of defaults for every task (DMC): nothing is per-domain."""
    del agent, spec, setting


def validate_config(agent: dict) -> None:
    checks = [
        (agent["T"] >= 1, f"agent.T (diffusion steps) must be >= 1, got {agent['T']}"),
        (agent["beta_schedule"] in BETA_SCHEDULES,
         f"agent.beta_schedule must be one of {', '.join(BETA_SCHEDULES)}, got {agent['beta_schedule']!r}"),
        (agent["num_qs"] >= 1, f"agent.num_qs must be >= 1, got {agent['num_qs']}"),
        (agent["M"] > 0, f"agent.M (score scale M_q) must be > 0, got {agent['M']}"),
        (agent["target_noise"] >= 0, f"agent.target_noise must be >= 0, got {agent['target_noise']}"),
        (agent["explore_noise"] >= 0, f"agent.explore_noise must be >= 0, got {agent['explore_noise']}"),
        (agent["diffusion_layers"] >= 1,
         f"agent.diffusion_layers must be >= 1, got {agent['diffusion_layers']}"),
        (len(agent["time_hidden_dims"]) >= 1, "agent.time_hidden_dims must name at least one width"),
        (agent["lr_decay_steps"] >= 1, f"agent.lr_decay_steps must be >= 1, got {agent['lr_decay_steps']}"),
        (agent["utd"] >= 1, f"agent.utd must be >= 1, got {agent['utd']}"),
        (agent["batch_size"] >= 2 and agent["batch_size"] % 2 == 0,
         f"agent.batch_size must be even and >= 2 (half offline, half online), got {agent['batch_size']}"),
        (0 < agent["discount"] <= 1, f"agent.discount must be in (0, 1], got {agent['discount']}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


@dataclasses.dataclass(frozen=True)
class Hyper:
    """Static hyperparameters: part of the pytree's structure, so changing one recompiles."""
    action_dim: int
    discount: float
    tau: float
    M: float
    target_noise: float
    explore_noise: float


class QsmAgent(flax.struct.PyTreeNode):
    rng: jax.Array
    actor: TrainState             # the score (noise-prediction) model
    critic: TrainState
    target_critic: Any
    schedule: diffusion.Schedule
    hp: Hyper = flax.struct.field(pytree_node=False)


def create(seed: int, obs_dim: int, action_dim: int, cfg: dict) -> QsmAgent:
    validate_config(cfg)
    rng = jax.random.PRNGKey(seed)
    rng, actor_key, critic_key = jax.random.split(rng, 3)
    obs = jnp.zeros((1, obs_dim))
    act = jnp.zeros((1, action_dim))

    actor_def = diffusion.MLPNoisePredictor(
        action_dim, (cfg["diffusion_width"],) * cfg["diffusion_layers"], cfg["time_dim"],
        tuple(cfg["time_hidden_dims"]), learnable_time=True, activation=jax.nn.mish)
    actor_params = actor_def.init(actor_key, obs, act, jnp.zeros((1, 1)))["params"]
    actor = TrainState.create(
        apply_fn=actor_def.apply, params=actor_params,
        tx=optax.adam(optax.cosine_decay_schedule(cfg["actor_lr"], cfg["lr_decay_steps"])))

    critic_def = QEnsemble(cfg["hidden_dims"], cfg["num_qs"], use_layer_norm=False)
    critic_params = critic_def.init(critic_key, obs, act)["params"]
    # One Adam over the stacked heads = one Adam per head (Adam is elementwise, the heads' losses
    # are summed, so each head's gradient is its own loss's gradient).
    critic = TrainState.create(apply_fn=critic_def.apply, params=critic_params,
                               tx=optax.adam(cfg["critic_lr"]))

    schedule = (diffusion.vp_schedule(cfg["T"]) if cfg["beta_schedule"] == "vp"
                else diffusion.cosine_schedule(cfg["T"]))
    hp = Hyper(action_dim=action_dim, discount=float(cfg["discount"]), tau=float(cfg["tau"]),
               M=float(cfg["M"]), target_noise=float(cfg["target_noise"]),
               explore_noise=float(cfg["explore_noise"]))
    agent = QsmAgent(rng=rng, actor=actor, critic=critic, target_critic=critic_params,
                     schedule=schedule, hp=hp)
    # Strongly typed leaves (see expo.agents.expo.create): update() then compiles once.
    return jax.tree_util.tree_map(lambda x: jnp.array(x, dtype=jnp.asarray(x).dtype), agent)


# ----------------------------------------------------------------------------- acting

def diffusion_sample(agent: QsmAgent, key, observations):
    return diffusion.ddpm_sample(agent.actor.apply_fn, agent.actor.params, agent.schedule, key,
                                 observations, agent.hp.action_dim)


def noisy_sample(agent: QsmAgent, key, observations, std: float):
    """clip(one diffusion sample + N(0, std^2), -1, 1): acting (explore_noise) and the TD target's
    next action (target_noise)."""
    sample_key, noise_key = jax.random.split(key)
    actions = diffusion_sample(agent, sample_key, observations)
    return jnp.clip(actions + std * jax.random.normal(noise_key, actions.shape), -1.0, 1.0)


@jax.jit
def sample_actions(agent: QsmAgent, observations, key):
    """Acting (sample_actions in the code): a diffusion sample plus 0.1 Gaussian noise."""
    return noisy_sample(agent, key, observations, agent.hp.explore_noise)


@jax.jit
def eval_actions(agent: QsmAgent, observations, key):
    """Evaluation (eval_actions in the code): one diffusion sample, no extra noise."""
    return diffusion_sample(agent, key, observations)


# ----------------------------------------------------------------------------- updates

def td_target(agent: QsmAgent, key, batch):
    """y = r + gamma * mask * min_h Q'_h(s', a'), a' = clip(diffusion sample + N(0, 0.1^2)).
    Returns (y, a')."""
    next_obs = batch["next_observations"]
    next_actions = noisy_sample(agent, key, next_obs, agent.hp.target_noise)
    next_q = jnp.min(agent.critic.apply_fn({"params": agent.target_critic}, next_obs, next_actions),
                     axis=0)
    return batch["rewards"] + agent.hp.discount * batch["masks"] * next_q, next_actions


def critic_step(agent: QsmAgent, batch):
    """Each head's MSE against the shared target (summed: independent heads), then Polyak."""
    rng, key = jax.random.split(agent.rng)
    target, _ = td_target(agent, key, batch)
    critic, info = summed_mse_step(agent.critic, batch["observations"], batch["actions"], target)
    target_params = optax.incremental_update(critic.params, agent.target_critic, agent.hp.tau)
    return agent.replace(rng=rng, critic=critic, target_critic=target_params), info


def mean_action_gradient(agent: QsmAgent, critic_params, observations, actions):
    """gbar = mean over heads of grad_a Q_h(s, a): [B, A]."""
    # Rows are independent, so d(sum_b Q_h(s_b, a_b)) / da = per-row gradients: [heads, B, A].
    per_head = jax.jacrev(lambda a: jnp.sum(
        agent.critic.apply_fn({"params": critic_params}, observations, a), axis=1))(actions)
    return jnp.mean(per_head, axis=0)


def score_matching_loss(actor_params, agent: QsmAgent, observations, actions, t, noise):
    """mean_{b, dims} (eps_theta(s, a_t, t) + M * gbar(s, a_t))^2 at the noisy action
    a_t = sqrt(abar_t) a + sqrt(1 - abar_t) noise; t [B] integer steps in [0, T)."""
    a_t = diffusion.noisy_actions_at(agent.schedule, actions, t, noise)
    gbar = jax.lax.stop_gradient(mean_action_gradient(agent, agent.critic.params, observations, a_t))
    eps = agent.actor.apply_fn({"params": actor_params}, observations, a_t, t[:, None])
    loss = jnp.mean((eps + agent.hp.M * gbar) ** 2)
    return loss, {"actor_loss": loss, "q_grad_norm": jnp.mean(jnp.linalg.norm(gbar, axis=-1)),
                  "eps_pred_norm": jnp.mean(jnp.linalg.norm(eps, axis=-1))}


def actor_step(agent: QsmAgent, batch):
    rng, t_key, n_key = jax.random.split(agent.rng, 3)
    actions = batch["actions"]
    t = jax.random.randint(t_key, (actions.shape[0],), 0, agent.schedule.betas.shape[0])
    noise = jax.random.normal(n_key, actions.shape)
    grads, info = jax.grad(score_matching_loss, has_aux=True)(
        agent.actor.params, agent, batch["observations"], actions, t, noise)
    return agent.replace(rng=rng, actor=agent.actor.apply_gradients(grads=grads)), info


def bc_step(agent: QsmAgent, batch):
    """Imitation (pretraining only): eps-MSE on the dataset actions, mean over batch and dims
    (the scale of the score-matching loss)."""
    rng, key = jax.random.split(agent.rng)
    actor, loss = diffusion.imitation_step(agent.actor, agent.schedule, key, batch["observations"],
                                           batch["actions"], per_dim=True)
    return agent.replace(rng=rng, actor=actor), {"bc_loss": loss}


def qsm_step(agent: QsmAgent, batch):
    """The code's update(): critic step, then the score-matching step with the updated critic."""
    agent, info = critic_step(agent, batch)
    agent, actor_info = actor_step(agent, batch)
    return agent, {**info, **actor_info}


def pretrain_step(agent: QsmAgent, batch):
    agent, info = critic_step(agent, batch)
    agent, actor_info = bc_step(agent, batch)
    return agent, {**info, **actor_info}


@jax.jit
def update(agent: QsmAgent, batch):
    """One environment step's worth of learning. batch leaves have shape [utd, B, ...]."""
    return scan_minibatches(qsm_step, agent, batch)


@jax.jit
def pretrain_update(agent: QsmAgent, batch):
    """k offline steps (batch leaves [k, B, ...]): critic TD as online + imitation of the data."""
    return scan_minibatches(pretrain_step, agent, batch)
