"""Critic ensemble: num_qs Q heads in one vmapped module, and the REDQ subset-min target."""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from expo.nets.mlp import MLP, default_init


class QNetwork(nn.Module):
    hidden_dims: Sequence[int]
    use_layer_norm: bool = True
    activation: Callable = nn.relu  # DAC's critic uses mish

    @nn.compact
    def __call__(self, observations, actions, training: bool = False):
        x = jnp.concatenate([observations, actions], axis=-1)
        x = MLP(self.hidden_dims, activation=self.activation, activate_final=True,
                use_layer_norm=self.use_layer_norm)(x, training)
        return jnp.squeeze(nn.Dense(1, kernel_init=default_init())(x), -1)


@dataclasses.dataclass(frozen=True)
class QEnsemble:
    """num_qs independent Q networks with stacked parameters (leading axis = head).

    apply() maps over however many heads the parameters hold, so a random subset of heads
    (subset_params) is evaluated at the cost of that subset only, as the TD target needs.
    Frozen dataclass: equal configurations hash equal, so apply() is a stable jit-static function.
    """
    hidden_dims: Sequence[int]
    num_qs: int = 10
    use_layer_norm: bool = True
    activation: Callable = nn.relu

    @property
    def net(self) -> QNetwork:
        return QNetwork(tuple(self.hidden_dims), self.use_layer_norm, self.activation)

    def init(self, key, observations, actions):
        keys = jax.random.split(key, self.num_qs)
        return {"params": jax.vmap(lambda k: self.net.init(k, observations, actions)["params"])(keys)}

    def apply(self, variables, observations, actions, training: bool = False):
        """Q values of shape [heads, ...batch]."""
        return jax.vmap(lambda p: self.net.apply({"params": p}, observations, actions, training))(
            variables["params"])


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


def summed_mse_step(critic, observations, actions, target):
    """One gradient step of the critic TrainState on the SUM over heads of each head's MSE against
    the shared target [B] (independent heads: each head's gradient is its own MSE's). DIPO's and
    QSM's critic loss. Returns (updated critic, info)."""
    def loss_fn(params):
        qs = critic.apply_fn({"params": params}, observations, actions)
        return jnp.sum(jnp.mean((qs - target[None]) ** 2, axis=1)), qs

    (loss, qs), grads = jax.value_and_grad(loss_fn, has_aux=True)(critic.params)
    info = {"critic_loss": loss, "q_mean": qs.mean(), "q_max": qs.max(), "q_min": qs.min(),
            "target_mean": target.mean()}
    return critic.apply_gradients(grads=grads), info
