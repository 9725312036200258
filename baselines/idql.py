"""IDQL (Hansen-Estruch et al. 2023, "IDQL: Implicit Q-Learning as an Actor-Critic Method with
Diffusion Policies"): an IQL critic plus a diffusion behaviour policy trained by plain imitation;
the agent acts with the best of N diffusion samples under Q.

Facts from the authors' code (philippe-eecs/IDQL, jaxrl5/agents/ddpm_iql_simple, the learner the
package exports, and launcher/examples/train_ddpm_iql_{offline,finetune}.py):
- value V(s): MLP (256, 256) with a LayerNorm on its INPUT (jaxrl5's MLP use_layer_norm), relu,
  trained by expectile regression  L = |tau - 1(u < 0)| u^2,  u = min_{2 heads} Q'(s, a) - V(s),
  with Q' the target critic at the batch action; tau = 0.9 on antmaze, 0.7 otherwise (launchers);
- Q: 2 heads, MLP (256, 256) relu, no LayerNorm; y = r + gamma * mask * V(s') with the value just
  updated in the same step; MSE on both heads; Polyak tau 0.005 after each Q step;
- policy: DDPM, T = 5, VP schedule, learnable Fourier time features (128) -> MLP(256, 256) swish,
  LN-ResNet 3 blocks width 256, dropout 0.1 (expo/nets/diffusion.py is this network); trained by
  plain BC (epsilon MSE, summed over action dims); AdamW with cosine-decayed lr (decay_steps 2e6
  in the fine-tuning launcher); EMA copy with tau 0.001;
- one offline step = actor update, then V, then Q, all on the same minibatch;
- acting AND evaluation (eval_actions): N samples from the EMA diffusion model, argmax over them of
  min_{2 heads} Q'(s, a) of the target critic (argmax of Q, not a softmax; Q - V would pick the same
  action since V does not depend on a). N: the agent is built with 64, but the fine-tuning launcher
  evaluates with the inference variant N = 128, and because the code drops the result of the
  `agent.replace(...)` that should restore N = 64, the agent then keeps N = 128 for acting and
  evaluation for the rest of the run: N = 128 here;
- fine-tuning: ONLY V and Q are updated (critic_update), UTD 1, minibatch 128 online + 128 offline.

Adaptations to the suite's settings (saved in every config under agent.deviations):
- offline-to-online: pretrain_update runs the authors' offline step (actor, V, Q) on [k, B]
  offline batches; update() then trains only V and Q, as the authors fine-tune
  (train_actor_online = False);
- online RL with offline data (no pretraining): a critic-only update would leave the diffusion
  policy at its random initialisation, so the actor is trained by BC on the same 50/50 minibatches
  as the critic (train_actor_online = True, the authors' full offline step on the mixed batch);
- pretraining length and minibatch: the protocol's pretraining steps (Table 1: 200k robomimic,
  500k antmaze) at agent.batch_size 256, the same offline budget as EXPO's; the authors pretrain
  3M steps at batch 512 (launcher/examples/train_ddpm_iql_offline.py:17-18 at 7582571);
- fine-tuning start as the authors: the pretrained policy acts from online step 1 and the critic
  updates wait for 5000 steps (i > online_start_training: train_ddpm_iql_finetune.py:25 and
  examples/states/train_diffusion_offline.py:99,122; expo/config.py METHODS["idql"]
  "after_pretraining": start_training 5001, warmup_acts policy).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import flax
import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from expo.agents import expo as expo_agent
from expo.config import ConfigError
from expo.nets import diffusion
from expo.nets.ensemble import QEnsemble
from expo.nets.mlp import MLP, default_init
from expo.agents.scan import scan_minibatches


def get_config() -> dict[str, Any]:
    """The authors' defaults (ddpm_iql_simple learner + the fine-tuning launcher)."""
    return {
        "actor_lr": 3e-4,
        "critic_lr": 3e-4,
        "value_lr": 3e-4,
        "lr_decay_steps": 2_000_000,   # cosine decay of the actor lr (fine-tuning launcher)
        "actor_weight_decay": 1e-4,    # optax.adamw default, as the code uses it
        "hidden_dims": (256, 256),     # Q heads and V
        "num_qs": 2,
        "value_layer_norm": True,      # LayerNorm on V's input
        "discount": 0.99,
        "tau": 0.005,
        "actor_ema": 0.001,
        "expectile": None,             # None -> 0.9 on antmaze, 0.7 otherwise
        "T": 5,
        "diffusion_width": 256,
        "diffusion_blocks": 3,
        "time_dim": 128,
        "diffusion_dropout": 0.1,
        "N": 128,                      # samples per state for the argmax-Q action (see docstring)
        "utd": 1,
        "batch_size": 256,
        "train_actor_online": None,    # None -> True in the online setting, False when fine-tuning
        "deviations": (
            "online setting (no pretraining): the diffusion actor is BC-trained on the 50/50 online "
            "minibatches with the critic (the authors fine-tune the critic only, which is kept in "
            "offline_to_online); pretraining: the protocol's steps at minibatch 256 instead of the "
            "authors' 3M steps at 512"
        ),
    }


def resolve_config(agent: dict, spec, setting: str) -> None:
    if agent["expectile"] is None:
        agent["expectile"] = 0.9 if spec.domain == "antmaze" else 0.7
    if agent["train_actor_online"] is None:
        agent["train_actor_online"] = setting == "online"


def validate_config(agent: dict) -> None:
    checks = [
        (agent["N"] >= 1, f"agent.N must be >= 1, got {agent['N']}"),
        (agent["expectile"] is not None and 0 < agent["expectile"] < 1,
         f"agent.expectile must be in (0, 1), got {agent['expectile']}"),
        (agent["T"] >= 1, f"agent.T (diffusion steps) must be >= 1, got {agent['T']}"),
        (agent["num_qs"] >= 1, f"agent.num_qs must be >= 1, got {agent['num_qs']}"),
        (agent["utd"] >= 1, f"agent.utd must be >= 1, got {agent['utd']}"),
        (agent["batch_size"] >= 2 and agent["batch_size"] % 2 == 0,
         f"agent.batch_size must be even and >= 2 (half offline, half online), got {agent['batch_size']}"),
        (0 < agent["discount"] <= 1, f"agent.discount must be in (0, 1], got {agent['discount']}"),
        (0 < agent["tau"] <= 1, f"agent.tau must be in (0, 1], got {agent['tau']}"),
        (0 < agent["actor_ema"] <= 1, f"agent.actor_ema must be in (0, 1], got {agent['actor_ema']}"),
        (agent["diffusion_dropout"] is None or 0 <= agent["diffusion_dropout"] < 1,
         f"agent.diffusion_dropout must be in [0, 1), got {agent['diffusion_dropout']}"),
        (agent["train_actor_online"] is not None,
         "agent.train_actor_online must be true or false (resolve_config sets it from the setting)"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


class StateValue(nn.Module):
    """V(s): optional LayerNorm on the input (as jaxrl5's MLP applies it), MLP, scalar head."""
    hidden_dims: Sequence[int]
    use_layer_norm: bool = True

    @nn.compact
    def __call__(self, observations):
        x = nn.LayerNorm()(observations) if self.use_layer_norm else observations
        x = MLP(self.hidden_dims, activate_final=True)(x)
        return jnp.squeeze(nn.Dense(1, kernel_init=default_init())(x), -1)


@dataclasses.dataclass(frozen=True)
class Hyper:
    """Static hyperparameters (part of the pytree structure)."""
    N: int
    T: int
    action_dim: int
    discount: float
    tau: float
    actor_ema: float
    expectile: float
    train_actor_online: bool


class IDQLAgent(flax.struct.PyTreeNode):
    rng: jax.Array
    actor: TrainState          # diffusion policy, online weights (trained by BC)
    actor_ema: Any             # EMA parameters: acting and evaluation
    critic: TrainState         # Q heads
    target_critic: Any
    value: TrainState
    schedule: diffusion.Schedule
    hp: Hyper = flax.struct.field(pytree_node=False)


def create(seed: int, obs_dim: int, action_dim: int, cfg: dict) -> IDQLAgent:
    validate_config(cfg)
    rng = jax.random.PRNGKey(seed)
    rng, actor_key, critic_key, value_key = jax.random.split(rng, 4)
    obs = jnp.zeros((1, obs_dim))
    act = jnp.zeros((1, action_dim))

    actor_def = diffusion.NoisePredictor(
        action_dim, cfg["diffusion_width"], cfg["diffusion_blocks"], cfg["time_dim"],
        dropout_rate=cfg["diffusion_dropout"] or None)
    actor_params = actor_def.init(actor_key, obs, act, jnp.zeros((1, 1)))["params"]
    actor_lr = optax.cosine_decay_schedule(cfg["actor_lr"], cfg["lr_decay_steps"])
    actor = TrainState.create(apply_fn=actor_def.apply, params=actor_params,
                              tx=optax.adamw(actor_lr, weight_decay=cfg["actor_weight_decay"]))

    critic_def = QEnsemble(cfg["hidden_dims"], cfg["num_qs"], use_layer_norm=False)
    critic_params = critic_def.init(critic_key, obs, act)["params"]
    critic = TrainState.create(apply_fn=critic_def.apply, params=critic_params,
                               tx=optax.adam(cfg["critic_lr"]))

    value_def = StateValue(tuple(cfg["hidden_dims"]), cfg["value_layer_norm"])
    value = TrainState.create(apply_fn=value_def.apply,
                              params=value_def.init(value_key, obs)["params"],
                              tx=optax.adam(cfg["value_lr"]))

    hp = Hyper(N=cfg["N"], T=cfg["T"], action_dim=action_dim, discount=float(cfg["discount"]),
               tau=float(cfg["tau"]), actor_ema=float(cfg["actor_ema"]),
               expectile=float(cfg["expectile"]),
               train_actor_online=bool(cfg["train_actor_online"]))
    agent = IDQLAgent(rng=rng, actor=actor, actor_ema=actor_params, critic=critic,
                      target_critic=critic_params, value=value,
                      schedule=diffusion.vp_schedule(cfg["T"]), hp=hp)
    # Strongly typed leaves (TrainState.step starts as a Python int) so update() compiles once.
    return jax.tree_util.tree_map(lambda x: jnp.array(x, dtype=jnp.asarray(x).dtype), agent)


# ----------------------------------------------------------------------------- losses and targets

def expectile_loss(diff, expectile: float):
    """|expectile - 1(diff < 0)| * diff^2, elementwise; diff = Q - V (V under-estimates -> weight
    expectile, over-estimates -> 1 - expectile)."""
    weight = jnp.where(diff > 0, expectile, 1.0 - expectile)
    return weight * diff ** 2


def min_q(agent: IDQLAgent, critic_params, observations, actions):
    """min over the Q heads at (s, a): [B]."""
    return agent.critic.apply_fn({"params": critic_params}, observations, actions).min(axis=0)


def value_loss_fn(value_params, agent: IDQLAgent, batch):
    q = min_q(agent, agent.target_critic, batch["observations"], batch["actions"])
    v = agent.value.apply_fn({"params": value_params}, batch["observations"])
    loss = expectile_loss(q - v, agent.hp.expectile).mean()
    return loss, {"value_loss": loss, "v_mean": v.mean()}


def q_target(agent: IDQLAgent, value_params, batch):
    """IQL's backup: y = r + gamma * mask * V(s')."""
    next_v = agent.value.apply_fn({"params": value_params}, batch["next_observations"])
    return batch["rewards"] + agent.hp.discount * batch["masks"] * next_v


def critic_loss_fn(critic_params, agent: IDQLAgent, batch, target):
    qs = agent.critic.apply_fn({"params": critic_params}, batch["observations"], batch["actions"])
    loss = jnp.mean((qs - target[None]) ** 2)
    return loss, {"critic_loss": loss, "q_mean": qs.mean(), "q_max": qs.max(), "q_min": qs.min(),
                  "target_mean": target.mean()}


def critic_step(agent: IDQLAgent, batch):
    """One V step (expectile on the target critic), then one Q step on the new V, then Polyak."""
    v_grads, v_info = jax.grad(value_loss_fn, has_aux=True)(agent.value.params, agent, batch)
    value = agent.value.apply_gradients(grads=v_grads)
    target = q_target(agent, value.params, batch)
    q_grads, q_info = jax.grad(critic_loss_fn, has_aux=True)(agent.critic.params, agent, batch, target)
    critic = agent.critic.apply_gradients(grads=q_grads)
    target_params = optax.incremental_update(critic.params, agent.target_critic, agent.hp.tau)
    return agent.replace(value=value, critic=critic, target_critic=target_params), {**v_info, **q_info}


def full_step(agent: IDQLAgent, batch):
    """The authors' offline step: actor (BC + EMA), then V, then Q, on one minibatch. The BC step
    is EXPO's base-policy step (same loss, same EMA rule)."""
    agent, actor_info = expo_agent.actor_step(agent, batch)
    agent, critic_info = critic_step(agent, batch)
    return agent, {**actor_info, **critic_info}


# ----------------------------------------------------------------------------- acting

def select_argmax(agent: IDQLAgent, observations, candidates):
    """The candidate with the largest min-over-heads target Q. candidates [B, K, A] -> [B, A]."""
    batch, k, _ = candidates.shape
    q = min_q(agent, agent.target_critic, jnp.repeat(observations, k, axis=0),
              candidates.reshape(batch * k, -1)).reshape(batch, k)
    best = jnp.argmax(q, axis=1)
    return jnp.take_along_axis(candidates, best[:, None, None], axis=1)[:, 0]


def policy_samples(agent: IDQLAgent, key, observations):
    """N samples per state from the EMA diffusion policy: [B, N, A]."""
    batch = observations.shape[0]
    samples = diffusion.ddpm_sample(agent.actor.apply_fn, agent.actor_ema, agent.schedule, key,
                                    jnp.repeat(observations, agent.hp.N, axis=0), agent.hp.action_dim)
    return samples.reshape(batch, agent.hp.N, agent.hp.action_dim)


@jax.jit
def sample_actions(agent: IDQLAgent, observations, key):
    """Acting and evaluation (the authors' eval_actions): argmax-Q over N EMA-policy samples."""
    return select_argmax(agent, observations, policy_samples(agent, key, observations))


# ----------------------------------------------------------------------------- updates


@jax.jit
def update(agent: IDQLAgent, batch):
    """One environment step: utd scanned steps on [utd, B] minibatches; critic only (the authors'
    fine-tuning) unless train_actor_online (the online setting, see the module docstring)."""
    step = full_step if agent.hp.train_actor_online else critic_step
    return scan_minibatches(step, agent, batch)


@jax.jit
def pretrain_update(agent: IDQLAgent, batch):
    """k offline IDQL steps (actor, V, Q each) on [k, B] offline minibatches."""
    return scan_minibatches(full_step, agent, batch)
