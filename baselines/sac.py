"""Pieces shared by the two SAC-style baselines (RLPD and Cal-QL): the tanh-Gaussian actor's
construction, sampling and evaluation policy, the temperature's construction, and the final
"strongly typed leaves" conversion.

Both authors' codebases act with a sample of the tanh-Gaussian policy and evaluate with its
deterministic mode tanh(mean) (RLPD: `eval_actions` = dist.mode(); Cal-QL: the evaluation sampler
calls the policy with deterministic=True, i.e. tanh(mean)). The losses differ between the two
methods (RLPD's actor uses the mean over its 10 heads and trains alpha; Cal-QL's actor uses the min
of its 2 heads and trains log alpha), so they live in the methods' own modules.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from expo.nets.distributions import TanhGaussian, tanh_gaussian_sample
from expo.nets.temperature import Temperature


def create_actor(key, obs_dim: int, action_dim: int, hidden_dims: Sequence[int], lr: float) -> TrainState:
    """A tanh-Gaussian policy on the observation (no LayerNorm), trained with Adam."""
    actor_def = TanhGaussian(tuple(hidden_dims), action_dim)
    params = actor_def.init(key, jnp.zeros((1, obs_dim)))["params"]
    return TrainState.create(apply_fn=actor_def.apply, params=params, tx=optax.adam(lr))


def create_temperature(key, init_temperature: float, lr: float) -> TrainState:
    temp_def = Temperature(init_temperature)
    return TrainState.create(apply_fn=temp_def.apply, params=temp_def.init(key)["params"],
                             tx=optax.adam(lr))


def policy_sample(actor: TrainState, params, key, observations):
    """Reparameterised actions in (-1, 1) and their log-probabilities for observations [B, D]."""
    mean, log_std = actor.apply_fn({"params": params}, observations)
    return tanh_gaussian_sample(key, mean, log_std)


def policy_samples(actor: TrainState, params, key, observations, n: int):
    """n samples per state: actions [B, n, A], log-probabilities [B, n] (one forward pass)."""
    mean, log_std = actor.apply_fn({"params": params}, observations)
    shape = (observations.shape[0], n, mean.shape[-1])
    mean = jnp.broadcast_to(mean[:, None], shape)
    log_std = jnp.broadcast_to(log_std[:, None], shape)
    return tanh_gaussian_sample(key, mean, log_std)


@jax.jit
def sample_actions(agent, observations, key):
    """Acting / exploration: one sample of the policy. observations [B, obs_dim] -> [B, A]."""
    actions, _ = policy_sample(agent.actor, agent.actor.params, key, observations)
    return actions


@jax.jit
def eval_actions(agent, observations, key):
    """The authors' evaluation policy: the deterministic mode tanh(mean) (key unused)."""
    mean, _ = agent.actor.apply_fn({"params": agent.actor.params}, observations)
    return jnp.tanh(mean)


def strongly_typed(tree):
    """Every leaf as a strongly typed array (TrainState.step starts as a Python int): the leaves
    then have exactly the types update() returns, so the training loop compiles update() once."""
    return jax.tree_util.tree_map(lambda x: jnp.array(x, dtype=jnp.asarray(x).dtype), tree)
