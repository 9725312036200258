"""Critic ensemble: num_qs Q heads in one vmapped module, and the REDQ subset-min target."""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from expo.nets.mlp import MLP, default_init


class QNetwork(nn.Module):
    hidden_dims: Sequence[int]
    use_layer_norm: bool = True

    @nn.compact
    def __call__(self, observations, actions, training: bool = False):
        x = jnp.concatenate([observations, actions], axis=-1)
        x = MLP(self.hidden_dims, activate_final=True, use_layer_norm=self.use_layer_norm)(x, training)
        return jnp.squeeze(nn.Dense(1, kernel_init=default_init())(x), -1)


class QEnsemble(nn.Module):
    """Returns Q values of shape [num_qs, ...batch]: one independent network per head."""
    hidden_dims: Sequence[int]
    num_qs: int = 10
    use_layer_norm: bool = True

    @nn.compact
    def __call__(self, observations, actions, training: bool = False):
        heads = nn.vmap(
            QNetwork,
            variable_axes={"params": 0},
            split_rngs={"params": True, "dropout": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.num_qs,
        )
        return heads(self.hidden_dims, self.use_layer_norm)(observations, actions, training)


def subset_indices(key, num_qs: int, num_min_qs: int) -> jnp.ndarray:
    """A random subset of num_min_qs distinct heads (REDQ's M)."""
    return jax.random.choice(key, num_qs, shape=(num_min_qs,), replace=False)


def subset_min(q_values: jnp.ndarray, key, num_min_qs: int) -> jnp.ndarray:
    """Min over a random subset of heads of q_values [num_qs, ...] -> [...]."""
    idx = subset_indices(key, q_values.shape[0], num_min_qs)
    return jnp.min(q_values[idx], axis=0)


def subset_params(params, key, num_qs: int, num_min_qs: int):
    """The parameters of a random subset of heads, so only those heads are evaluated."""
    idx = subset_indices(key, num_qs, num_min_qs)
    return jax.tree_util.tree_map(lambda p: p[idx], params)
