"""DIPO (Yang et al. 2023, "Policy Representation via Diffusion Probability Model for RL"): an
online diffusion policy trained by imitation of its own "improved" actions.

Per update (authors' code, BellmanTimeHut/DIPO agent/DiPo.py, main.py defaults):
- critic: double Q (2 heads, 256x3 mish MLPs, no LayerNorm), y = r + gamma * mask *
  min(Q1', Q2')(s', a'), a' one sample of the TARGET actor (noise ratio 1), loss = sum over the two
  heads of the MSE; Adam(3e-4, eps 1e-5) with global grad-norm clipping at 2.0 (ac_grad_norm);
- action gradient: the stored actions a are improved by 20 Adam steps (lr 0.03, eps 1e-5, a fresh
  optimizer each update) on sum_b -min(Q1, Q2)(s_b, a_b) with the just-updated critic; before
  every Adam step the gradient of the WHOLE [B, A] action tensor is clipped to total L2 norm
  0.1 * |A| (torch clip_grad_norm_, ratio 0.1), and after it the actions are clamped to [-1, 1];
- actor: the diffusion policy (T = 100, cosine beta schedule, eps-prediction, loss = MSE MEAN over
  batch and action dims) is BC-trained on the improved actions; Adam(3e-4, eps 1e-5), grad-norm
  clip 2.0; noise network = sinusoidal time features (32) -> (256, 32) mish MLP, then a
  (256, 256, 256) mish MLP over (a_t, s, time);
- targets: critic and actor targets are Polyak-averaged with tau 0.005 after every update
  (update_actor_target_every = 1);
- sampling: Diffusion-QL's posterior sampler (predicted a_0 clipped to [-1, 1], posterior
  variance, noise ratio), final sample clipped. Acting uses the ONLINE actor with noise ratio 1;
  evaluation (eval=True in the code) the online actor with noise ratio 0 (a_T is still random);
- one update per environment step (updates_per_step = 1), batch 256.

Adaptations to the suite (also listed under agent.deviations in every config):
- Each sampled transition is improved afresh from its stored (dataset or executed) action, 20
  steps per update. The authors' code does the same in effect: its write-back of the improved
  actions is a no-op (agent/replay_memory.py:77-78 at c6d8d1b: np.copyto into
  self.best_actions[idxs], a fancy-indexed COPY), so every sample restarts from the executed
  action. In the online setting with offline data both halves of the 50/50 batch are improved and
  imitated: the offline data are part of DIPO's memory here, where the code's action memory holds
  the executed actions only.
- The critic and the action gradient use the same minibatch (the code samples the action memory
  independently of the replay batch); with utd > 1 each of the utd minibatches gets the full
  DIPO step (critic, action gradient, actor, targets), as the code's train(iterations) loop does.
- offline_to_online: DIPO has no offline objective. pretrain_update trains the critic exactly as
  online (TD with the target actor's sample) and BC-trains the diffusion policy on the DATASET
  actions (no action gradient, so the pretrained policy imitates the data rather than a critic
  that has not learnt anything yet); the targets move as online.
- Network initialisation is flax's (xavier-uniform kernels) instead of the code's truncated normal
  with std 1 / (2 sqrt(fan_in)).
- The authors' rewards/masks are used as the suite's protocol gives them (the code's mask is
  gamma * (1 - done); here discount * mask, the same product), and start_training is the
  protocol's (the code uses 10000 random steps on MuJoCo). DIPO is an online method: in the
  offline-to-online setting (the suite's adaptation) it follows the rule of every pretraining
  run, no random steps after pretraining.
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

BETA_SCHEDULES = ("cosine", "vp")


def get_config() -> dict[str, Any]:
    """DIPO's defaults (main.py argparse defaults, agent/model.py sizes)."""
    return {
        "actor_lr": 3e-4,             # diffusion_lr
        "critic_lr": 3e-4,
        "adam_eps": 1e-5,             # both networks' Adam
        "grad_clip": 2.0,             # ac_grad_norm: global grad-norm clip of actor and critic
        "hidden_dims": (256, 256, 256),  # critic heads
        "num_qs": 2,
        "discount": 0.99,
        "tau": 0.005,                 # critic target and actor target (every update)
        "T": 100,
        "beta_schedule": "cosine",
        "diffusion_width": 256,       # noise MLP width
        "diffusion_layers": 3,        # noise MLP hidden layers
        "time_dim": 32,               # sinusoidal time features
        "noise_ratio": 1.0,           # sampler noise when acting and in the TD target (0 at eval)
        "action_lr": 0.03,
        "action_gradient_steps": 20,
        "action_grad_ratio": 0.1,     # action-gradient clip: total norm <= ratio * |A| (0: none)
        "utd": 1,
        "batch_size": 256,
        "deviations": (
            "the action memory holds the offline data too (both halves of the 50/50 batch are "
            "improved from their stored action, as the code's no-op write-back also restarts "
            "from it); critic and action gradient share one minibatch; pretraining = critic TD as online + BC on dataset "
            "actions; flax default initialisation; protocol start_training"),
    }


def resolve_config(agent: dict, spec, setting: str) -> None:
    """DIPO's code has one set of defaults for every task (MuJoCo): nothing is per-domain."""
    del agent, spec, setting


def validate_config(agent: dict) -> None:
    checks = [
        (agent["T"] >= 1, f"agent.T (diffusion steps) must be >= 1, got {agent['T']}"),
        (agent["beta_schedule"] in BETA_SCHEDULES,
         f"agent.beta_schedule must be one of {', '.join(BETA_SCHEDULES)}, got {agent['beta_schedule']!r}"),
        (agent["num_qs"] >= 1, f"agent.num_qs must be >= 1, got {agent['num_qs']}"),
        (agent["action_gradient_steps"] >= 0,
         f"agent.action_gradient_steps must be >= 0, got {agent['action_gradient_steps']}"),
        (agent["action_lr"] > 0, f"agent.action_lr must be > 0, got {agent['action_lr']}"),
        (agent["action_grad_ratio"] >= 0,
         f"agent.action_grad_ratio must be >= 0 (0 disables clipping), got {agent['action_grad_ratio']}"),
        (agent["noise_ratio"] >= 0, f"agent.noise_ratio must be >= 0, got {agent['noise_ratio']}"),
        (agent["grad_clip"] >= 0, f"agent.grad_clip must be >= 0 (0 disables it), got {agent['grad_clip']}"),
        (agent["diffusion_layers"] >= 1,
         f"agent.diffusion_layers must be >= 1, got {agent['diffusion_layers']}"),
        (agent["time_dim"] >= 4 and agent["time_dim"] % 2 == 0,
         f"agent.time_dim must be even and >= 4 (sinusoidal features), got {agent['time_dim']}"),
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
    noise_ratio: float
    action_lr: float
    action_gradient_steps: int
    action_max_norm: float        # action_grad_ratio * |A|; 0 = no clipping
    adam_eps: float


class DipoAgent(flax.struct.PyTreeNode):
    rng: jax.Array
    actor: TrainState             # diffusion policy: acts and evaluates
    actor_target: Any             # EMA parameters: the TD target's next action
    critic: TrainState
    target_critic: Any
    schedule: diffusion.Schedule
    hp: Hyper = flax.struct.field(pytree_node=False)


def _optimizer(lr: float, eps: float, clip: float):
    adam = optax.adam(lr, eps=eps)
    return optax.chain(optax.clip_by_global_norm(clip), adam) if clip > 0 else adam


def create(seed: int, obs_dim: int, action_dim: int, cfg: dict) -> DipoAgent:
    validate_config(cfg)
    rng = jax.random.PRNGKey(seed)
    rng, actor_key, critic_key = jax.random.split(rng, 3)
    obs = jnp.zeros((1, obs_dim))
    act = jnp.zeros((1, action_dim))

    actor_def = diffusion.MLPNoisePredictor(
        action_dim, (cfg["diffusion_width"],) * cfg["diffusion_layers"], cfg["time_dim"],
        (cfg["diffusion_width"], cfg["time_dim"]), learnable_time=False, activation=jax.nn.mish)
    actor_params = actor_def.init(actor_key, obs, act, jnp.zeros((1, 1)))["params"]
    actor = TrainState.create(apply_fn=actor_def.apply, params=actor_params,
                              tx=_optimizer(cfg["actor_lr"], cfg["adam_eps"], cfg["grad_clip"]))

    critic_def = QEnsemble(cfg["hidden_dims"], cfg["num_qs"], use_layer_norm=False,
                           activation=jax.nn.mish)
    critic_params = critic_def.init(critic_key, obs, act)["params"]
    critic = TrainState.create(apply_fn=critic_def.apply, params=critic_params,
                               tx=_optimizer(cfg["critic_lr"], cfg["adam_eps"], cfg["grad_clip"]))

    schedule = (diffusion.cosine_schedule(cfg["T"]) if cfg["beta_schedule"] == "cosine"
                else diffusion.vp_schedule(cfg["T"]))
    hp = Hyper(action_dim=action_dim, discount=float(cfg["discount"]), tau=float(cfg["tau"]),
               noise_ratio=float(cfg["noise_ratio"]), action_lr=float(cfg["action_lr"]),
               action_gradient_steps=int(cfg["action_gradient_steps"]),
               action_max_norm=float(cfg["action_grad_ratio"]) * action_dim,
               adam_eps=float(cfg["adam_eps"]))
    agent = DipoAgent(rng=rng, actor=actor, actor_target=actor_params, critic=critic,
                      target_critic=critic_params, schedule=schedule, hp=hp)
    # Strongly typed leaves (see expo.agents.expo.create): update() then compiles once.
    return jax.tree_util.tree_map(lambda x: jnp.array(x, dtype=jnp.asarray(x).dtype), agent)


# ----------------------------------------------------------------------------- acting

def policy_sample(agent: DipoAgent, params, key, observations, noise_ratio: float):
    return diffusion.posterior_sample(agent.actor.apply_fn, params, agent.schedule, key, observations,
                                      agent.hp.action_dim, noise_ratio)


@jax.jit
def sample_actions(agent: DipoAgent, observations, key):
    """Acting: one sample of the online diffusion policy with the sampler noise (eval=False)."""
    return policy_sample(agent, agent.actor.params, key, observations, agent.hp.noise_ratio)


@jax.jit
def eval_actions(agent: DipoAgent, observations, key):
    """Evaluation as the authors do (main.py:69 at c6d8d1b, eval=True): the online policy with
    noise ratio 0 (golden case posterior_sampler in tests/test_golden_dipo.py)."""
    return policy_sample(agent, agent.actor.params, key, observations, 0.0)


# ----------------------------------------------------------------------------- the action gradient

def clip_total_norm(g, max_norm: float):
    """torch.nn.utils.clip_grad_norm_ on one tensor: scale g by min(1, max_norm / (||g|| + 1e-6)),
    ||g|| the L2 norm of the WHOLE tensor (all rows and dims together). max_norm 0: unchanged.
    Returns (clipped g, ||g|| before clipping)."""
    norm = jnp.sqrt(jnp.sum(g ** 2))
    if max_norm <= 0:
        return g, norm
    return g * jnp.minimum(1.0, max_norm / (norm + 1e-6)), norm


def min_q(agent: DipoAgent, critic_params, observations, actions):
    """min over the critic heads of Q(s, a): [B]."""
    return jnp.min(agent.critic.apply_fn({"params": critic_params}, observations, actions), axis=0)


def improve_actions(agent: DipoAgent, critic_params, observations, actions):
    """DIPO's action gradient: action_gradient_steps Adam steps (fresh state, lr action_lr, eps
    adam_eps) on sum_b -min_h Q_h(s_b, a_b); the [B, A] gradient is clipped to total norm
    action_max_norm before each step and the actions clamped to [-1, 1] after it.
    Returns (improved actions, gradient norm of the first step)."""
    hp = agent.hp
    opt = optax.adam(hp.action_lr, eps=hp.adam_eps)
    grad_fn = jax.grad(lambda a: -jnp.sum(min_q(agent, critic_params, observations, a)))

    def body(carry, _):
        a, state = carry
        g, norm = clip_total_norm(grad_fn(a), hp.action_max_norm)
        updates, state = opt.update(g, state)
        return (jnp.clip(a + updates, -1.0, 1.0), state), norm

    (improved, _), norms = jax.lax.scan(body, (actions, opt.init(actions)), None,
                                        length=hp.action_gradient_steps)
    first_norm = norms[0] if hp.action_gradient_steps > 0 else jnp.zeros(())
    return jax.lax.stop_gradient(improved), first_norm


# ----------------------------------------------------------------------------- updates

def td_target(agent: DipoAgent, key, batch):
    """y = r + gamma * mask * min_h Q'_h(s', a'), a' one sample of the target actor (noise ratio 1)."""
    next_obs = batch["next_observations"]
    next_actions = policy_sample(agent, agent.actor_target, key, next_obs, agent.hp.noise_ratio)
    next_q = min_q(agent, agent.target_critic, next_obs, next_actions)
    return batch["rewards"] + agent.hp.discount * batch["masks"] * next_q


def critic_step(agent: DipoAgent, batch):
    """One TD step; the loss is the SUM over heads of each head's MSE (F.mse_loss(q1) + F.mse_loss(q2))."""
    rng, key = jax.random.split(agent.rng)
    target = td_target(agent, key, batch)
    critic, info = summed_mse_step(agent.critic, batch["observations"], batch["actions"], target)
    return agent.replace(rng=rng, critic=critic), info


def bc_loss(agent: DipoAgent, params, key, observations, actions):
    """DIPO's diffusion loss: eps-MSE MEAN over batch and action dims (the shared ddpm_loss sums
    over dims, so divide by |A|)."""
    return diffusion.ddpm_loss(agent.actor.apply_fn, params, agent.schedule, key, observations,
                               actions) / agent.hp.action_dim


def actor_step(agent: DipoAgent, observations, targets):
    """One BC step of the diffusion policy towards `targets` (the improved actions)."""
    rng, key = jax.random.split(agent.rng)
    actor, loss = diffusion.imitation_step(agent.actor, agent.schedule, key, observations, targets,
                                           per_dim=True)  # = bc_loss
    return agent.replace(rng=rng, actor=actor), {"bc_loss": loss}


def move_targets(agent: DipoAgent):
    tau = agent.hp.tau
    return agent.replace(
        target_critic=optax.incremental_update(agent.critic.params, agent.target_critic, tau),
        actor_target=optax.incremental_update(agent.actor.params, agent.actor_target, tau))


def dipo_step(agent: DipoAgent, batch):
    """The authors' train() iteration: critic, action gradient (updated critic), BC on the
    improved actions, then both targets."""
    agent, info = critic_step(agent, batch)
    obs, actions = batch["observations"], batch["actions"]
    improved, grad_norm = improve_actions(agent, agent.critic.params, obs, actions)
    agent, actor_info = actor_step(agent, obs, improved)
    info.update(actor_info)
    info["action_grad_norm"] = grad_norm
    info["action_shift"] = jnp.mean(jnp.abs(improved - actions))
    info["action_q_gain"] = jnp.mean(min_q(agent, agent.critic.params, obs, improved)
                                     - min_q(agent, agent.critic.params, obs, actions))
    return move_targets(agent), info


def pretrain_step(agent: DipoAgent, batch):
    """Offline: the critic as online, the diffusion policy BC-trained on the dataset actions."""
    agent, info = critic_step(agent, batch)
    agent, actor_info = actor_step(agent, batch["observations"], batch["actions"])
    info.update(actor_info)
    return move_targets(agent), info


@jax.jit
def update(agent: DipoAgent, batch):
    """One environment step's worth of learning. batch leaves have shape [utd, B, ...]."""
    return scan_minibatches(dipo_step, agent, batch)


@jax.jit
def pretrain_update(agent: DipoAgent, batch):
    """k offline steps (batch leaves [k, B, ...]): see pretrain_step and the module docstring."""
    return scan_minibatches(pretrain_step, agent, batch)
