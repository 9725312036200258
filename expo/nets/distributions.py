"""Tanh-squashed diagonal Gaussian policy head (SAC / RLPD / EXPO's edit policy)."""
from __future__ import annotations

import math
from typing import Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from expo.nets.mlp import MLP, default_init

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


class TanhGaussian(nn.Module):
    """Outputs (mean, log_std) of the pre-tanh Gaussian."""
    hidden_dims: Sequence[int]
    action_dim: int
    dropout_rate: Optional[float] = None

    @nn.compact
    def __call__(self, x, training: bool = False):
        h = MLP(self.hidden_dims, activate_final=True, dropout_rate=self.dropout_rate)(x, training)
        mean = nn.Dense(self.action_dim, kernel_init=default_init())(h)
        log_std = nn.Dense(self.action_dim, kernel_init=default_init())(h)
        return mean, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)


def tanh_gaussian_sample(key, mean, log_std):
    """Reparameterised sample u = tanh(mean + std * eps) in (-1, 1) and its log-probability."""
    eps = jax.random.normal(key, mean.shape)
    x = mean + jnp.exp(log_std) * eps
    return jnp.tanh(x), tanh_gaussian_log_prob_pre_tanh(x, mean, log_std)


def tanh_gaussian_log_prob_pre_tanh(x, mean, log_std):
    """log p(tanh(x)) for x ~ N(mean, exp(log_std)^2), summed over the action dimension."""
    gauss = -0.5 * (((x - mean) / jnp.exp(log_std)) ** 2) - log_std - 0.5 * math.log(2 * math.pi)
    # log|d tanh(x)/dx| = log(1 - tanh(x)^2) = 2 * (log 2 - x - softplus(-2x)), stable for large |x|.
    log_det = 2.0 * (math.log(2.0) - x - jax.nn.softplus(-2.0 * x))
    return jnp.sum(gauss - log_det, axis=-1)
