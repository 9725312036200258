"""DDPM diffusion policy: variance-preserving schedule, noise-prediction network, loss, sampler.

The one place the suite defines the diffusion sampler; EXPO's base policy and the diffusion
baselines all call it. Conventions follow the EXPO/IDQL code (IMPLEMENTATIONS.md):
- schedule: the VP beta schedule beta_t = 1 - exp(-b_min/T - (b_max - b_min)(2t - 1) / (2 T^2)),
  t = 1..T, b_min = 0.1, b_max = 10;
- network: eps(s, a_t, t) with learnable Fourier features of the integer step t, an MLP on them,
  and an LN residual MLP over concat(a_t, s, time embedding);
- loss: || eps - eps_theta ||^2 summed over action dims, averaged over the batch;
- sampler: ancestral DDPM from a_T ~ N(0, I), clipped to the action box [-1, 1] after every step.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from expo.nets.mlp import MLP, default_init


class Schedule(NamedTuple):
    betas: jnp.ndarray       # [T]
    alphas: jnp.ndarray      # 1 - betas
    alpha_bars: jnp.ndarray  # cumulative products of alphas


def vp_schedule(T: int, b_min: float = 0.1, b_max: float = 10.0) -> Schedule:
    t = jnp.arange(1, T + 1, dtype=jnp.float32)
    alphas = jnp.exp(-b_min / T - 0.5 * (b_max - b_min) * (2 * t - 1) / T**2)
    return Schedule(betas=1.0 - alphas, alphas=alphas, alpha_bars=jnp.cumprod(alphas))


class FourierFeatures(nn.Module):
    """Learnable random Fourier features of the (integer) diffusion step."""
    output_size: int

    @nn.compact
    def __call__(self, t: jnp.ndarray) -> jnp.ndarray:
        w = self.param("kernel", nn.initializers.normal(0.2), (self.output_size // 2, t.shape[-1]))
        f = 2 * jnp.pi * t @ w.T
        return jnp.concatenate([jnp.cos(f), jnp.sin(f)], axis=-1)


class ResidualBlock(nn.Module):
    width: int
    activation: Callable
    use_layer_norm: bool = True
    dropout_rate: Optional[float] = None

    @nn.compact
    def __call__(self, x, training: bool = False):
        residual = x
        if self.dropout_rate:
            x = nn.Dropout(self.dropout_rate)(x, deterministic=not training)
        if self.use_layer_norm:
            x = nn.LayerNorm()(x)
        x = nn.Dense(self.width * 4, kernel_init=default_init())(x)
        x = self.activation(x)
        x = nn.Dense(self.width, kernel_init=default_init())(x)
        return residual + x


class NoisePredictor(nn.Module):
    """eps_theta(s, a_t, t): IDQL's LN-ResNet with a learned time embedding."""
    action_dim: int
    width: int = 256
    num_blocks: int = 3
    time_dim: int = 128
    use_layer_norm: bool = True
    dropout_rate: Optional[float] = None

    @nn.compact
    def __call__(self, observations, noisy_actions, t, training: bool = False):
        t_emb = FourierFeatures(self.time_dim)(t.astype(jnp.float32))
        t_emb = MLP((2 * self.time_dim, 2 * self.time_dim), activation=nn.swish)(t_emb, training)
        x = jnp.concatenate([noisy_actions, observations, t_emb], axis=-1)
        x = nn.Dense(self.width, kernel_init=default_init())(x)
        for _ in range(self.num_blocks):
            x = ResidualBlock(self.width, nn.swish, self.use_layer_norm, self.dropout_rate)(x, training)
        x = nn.swish(x)
        return nn.Dense(self.action_dim, kernel_init=default_init())(x)


def noisy_actions_at(schedule: Schedule, actions, t, noise):
    """Forward process q(a_t | a_0) = N(sqrt(abar_t) a_0, (1 - abar_t) I), t in [0, T)."""
    abar = schedule.alpha_bars[t][:, None]
    return jnp.sqrt(abar) * actions + jnp.sqrt(1.0 - abar) * noise


def ddpm_loss(apply_fn, params, schedule: Schedule, key, observations, actions, dropout_key=None):
    """Epsilon-prediction MSE (sum over action dims, mean over the batch)."""
    T = schedule.betas.shape[0]
    t_key, n_key = jax.random.split(key)
    t = jax.random.randint(t_key, (actions.shape[0],), 0, T)
    noise = jax.random.normal(n_key, actions.shape)
    a_t = noisy_actions_at(schedule, actions, t, noise)
    rngs = {"dropout": dropout_key} if dropout_key is not None else {}
    eps = apply_fn({"params": params}, observations, a_t, t[:, None], training=dropout_key is not None,
                   rngs=rngs)
    return jnp.mean(jnp.sum((eps - noise) ** 2, axis=-1))


def ddpm_step(schedule: Schedule, a_t, eps, t, z):
    """One ancestral step a_t -> a_{t-1}, clipped to [-1, 1]; no noise is added at t = 0."""
    alpha, alpha_bar, beta = schedule.alphas[t], schedule.alpha_bars[t], schedule.betas[t]
    mean = (a_t - beta / jnp.sqrt(1.0 - alpha_bar) * eps) / jnp.sqrt(alpha)
    a_prev = mean + (t > 0) * jnp.sqrt(beta) * z
    return jnp.clip(a_prev, -1.0, 1.0)


def ddpm_sample(apply_fn, params, schedule: Schedule, key, observations, action_dim: int):
    """Draw one action per row of observations [B, obs_dim] -> [B, action_dim]."""
    T = schedule.betas.shape[0]
    batch = observations.shape[0]
    init_key, key = jax.random.split(key)
    noise_keys = jax.random.split(key, T)

    def body(a_t, inputs):
        t, z_key = inputs
        eps = apply_fn({"params": params}, observations, a_t, jnp.full((batch, 1), t))
        z = jax.random.normal(z_key, a_t.shape)
        return ddpm_step(schedule, a_t, eps, t, z), None

    a_T = jax.random.normal(init_key, (batch, action_dim))
    steps = jnp.arange(T - 1, -1, -1)
    a_0, _ = jax.lax.scan(body, a_T, (steps, noise_keys))
    return a_0
