"""DDPM diffusion policy: variance-preserving schedule, noise-prediction network, loss, sampler.

The one place the suite defines the diffusion sampler; EXPO's base policy and the diffusion
baselines all call it. Conventions follow the authors' EXPO code (commit bbd5713) and IDQL's:
- schedule: the VP beta schedule beta_t = 1 - exp(-b_min/T - (b_max - b_min)(2t - 1) / (2 T^2)),
  t = 1..T, b_min = 0.1, b_max = 10;
- network: eps(s, a_t, t) with learnable Fourier features of the integer step t, an MLP on them,
  and an LN residual MLP over concat(a_t, s, time embedding);
- loss: || eps - eps_theta ||^2 summed over action dims, averaged over the batch;
- sampler: ancestral DDPM from a_T ~ N(0, I), clipped to the action box [-1, 1] after every step.
Also here for the DIPO / QSM baselines (their authors' conventions): the cosine beta schedule, the
Diffusion-QL posterior sampler (clipped a_0 prediction, posterior variance, a noise ratio) and the
plain-MLP noise network with sinusoidal or learnable Fourier time features.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from expo.nets.mlp import MLP, ConcatDense, default_init


class Schedule(NamedTuple):
    betas: jnp.ndarray       # [T]
    alphas: jnp.ndarray      # 1 - betas
    alpha_bars: jnp.ndarray  # cumulative products of alphas


def vp_schedule(T: int, b_min: float = 0.1, b_max: float = 10.0) -> Schedule:
    t = jnp.arange(1, T + 1, dtype=jnp.float32)
    alphas = jnp.exp(-b_min / T - 0.5 * (b_max - b_min) * (2 * t - 1) / T**2)
    return Schedule(betas=1.0 - alphas, alphas=alphas, alpha_bars=jnp.cumprod(alphas))


def cosine_schedule(T: int, s: float = 0.008) -> Schedule:
    """Nichol & Dhariwal's cosine schedule as the DIPO and QSM code build it: f(k) =
    cos^2(((k / T) + s) / (1 + s) * pi / 2), k = 0..T; beta_t = 1 - f(t) / f(t - 1) clipped to
    [0, 0.999] (computed in float64, stored float32); alpha_bars are the products of the clipped
    1 - beta_t, as the authors recompute them (golden cases: tests/test_golden_dipo.py
    cosine_schedule, tests/test_golden_qsm.py schedules)."""
    k = np.arange(T + 1, dtype=np.float64) / T
    f = np.cos((k + s) / (1 + s) * np.pi * 0.5) ** 2
    betas = np.clip(1.0 - f[1:] / f[:-1], 0.0, 0.999)
    alphas = 1.0 - betas
    return Schedule(betas=jnp.asarray(betas, jnp.float32), alphas=jnp.asarray(alphas, jnp.float32),
                    alpha_bars=jnp.asarray(np.cumprod(alphas), jnp.float32))


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
        # flax's default kernel init (lecun_normal), as the authors' residual blocks use it
        # (EXPO expo/networks/diffusion.py:270-272 at bbd5713; IDQL jaxrl5/networks/resnet.py:23-25)
        x = nn.Dense(self.width * 4)(x)
        x = self.activation(x)
        x = nn.Dense(self.width)(x)
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
        # The names are those flax gives two nn.Dense in this order (Dense_0 on concat(a_t, s,
        # t_emb), Dense_1 at the output): same parameter tree and initial weights as before.
        x = ConcatDense(self.width, name="Dense_0")(noisy_actions, observations, t_emb)
        for _ in range(self.num_blocks):
            x = ResidualBlock(self.width, nn.swish, self.use_layer_norm, self.dropout_rate)(x, training)
        x = nn.swish(x)
        return nn.Dense(self.action_dim, kernel_init=default_init(), name="Dense_1")(x)


def sinusoidal_embedding(t: jnp.ndarray, dim: int) -> jnp.ndarray:
    """Fixed transformer-style features of the step t [B, 1]: [sin(t w_i), cos(t w_i)],
    w_i = 10000^(-i / (dim/2 - 1)), i < dim/2 (DIPO / Diffusion-QL's SinusoidalPosEmb)."""
    half = dim // 2
    freqs = jnp.exp(-jnp.log(10000.0) * jnp.arange(half) / (half - 1))
    f = t.astype(jnp.float32) * freqs
    return jnp.concatenate([jnp.sin(f), jnp.cos(f)], axis=-1)


class MLPNoisePredictor(nn.Module):
    """eps_theta(s, a_t, t) as a plain MLP, the network of DIPO (Diffusion-QL's) and QSM: a time
    embedding passed through an MLP (time_hidden_dims, last entry = conditioning width), then an
    MLP over concat(a_t, s, conditioning) with hidden_dims and an action_dim output.
    DIPO: fixed sinusoidal features (32) -> (256, 32), trunk (256, 256, 256), mish.
    QSM: learnable Fourier features (64) -> (128, 128), trunk (512, 512), mish."""
    action_dim: int
    hidden_dims: Sequence[int]
    time_dim: int
    time_hidden_dims: Sequence[int]
    learnable_time: bool = True
    activation: Callable = jax.nn.mish

    @nn.compact
    def __call__(self, observations, noisy_actions, t, training: bool = False):
        if self.learnable_time:
            t_emb = FourierFeatures(self.time_dim)(t.astype(jnp.float32))
        else:
            t_emb = sinusoidal_embedding(t, self.time_dim)
        cond = MLP(tuple(self.time_hidden_dims), activation=self.activation)(t_emb, training)
        return MLP((*self.hidden_dims, self.action_dim), activation=self.activation)(
            (noisy_actions, observations, cond), training)


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


def imitation_step(actor, schedule: Schedule, key, observations, actions, dropout_key=None,
                   per_dim: bool = False):
    """One gradient step of the actor TrainState on the epsilon-MSE (ddpm_loss) of (observations,
    actions); per_dim divides the loss by |A| (a mean over action dims, as DIPO and QSM take it).
    Returns (updated actor, loss)."""
    def loss_fn(params):
        loss = ddpm_loss(actor.apply_fn, params, schedule, key, observations, actions, dropout_key)
        return loss / actions.shape[-1] if per_dim else loss

    loss, grads = jax.value_and_grad(loss_fn)(actor.params)
    return actor.apply_gradients(grads=grads), loss


def ddpm_step(schedule: Schedule, a_t, eps, t, z):
    """One ancestral step a_t -> a_{t-1}, clipped to [-1, 1]; no noise is added at t = 0."""
    alpha, alpha_bar, beta = schedule.alphas[t], schedule.alpha_bars[t], schedule.betas[t]
    mean = (a_t - beta / jnp.sqrt(1.0 - alpha_bar) * eps) / jnp.sqrt(alpha)
    a_prev = mean + (t > 0) * jnp.sqrt(beta) * z
    return jnp.clip(a_prev, -1.0, 1.0)


def posterior_step(schedule: Schedule, a_t, eps, t, z, noise_scale=1.0):
    """One reverse step as DIPO / Diffusion-QL take it: predict a_0 = (a_t - sqrt(1 - abar_t) eps)
    / sqrt(abar_t), clip it to [-1, 1], move to the mean of q(a_{t-1} | a_t, a_0) and add
    noise_scale * its std (beta_t (1 - abar_{t-1}) / (1 - abar_t))^0.5 * z; no noise at t = 0 and
    no clipping of a_{t-1} itself (the sample is clipped once at the end). noise_scale is DIPO's
    noise_ratio: 1 when acting and in the TD target, 0 at evaluation."""
    alpha, alpha_bar, beta = schedule.alphas[t], schedule.alpha_bars[t], schedule.betas[t]
    alpha_bar_prev = jnp.where(t > 0, schedule.alpha_bars[jnp.maximum(t - 1, 0)], 1.0)
    a_0 = jnp.clip(jnp.sqrt(1.0 / alpha_bar) * a_t - jnp.sqrt(1.0 / alpha_bar - 1.0) * eps, -1.0, 1.0)
    mean = (beta * jnp.sqrt(alpha_bar_prev) * a_0 + (1.0 - alpha_bar_prev) * jnp.sqrt(alpha) * a_t) / (
        1.0 - alpha_bar)
    std = jnp.exp(0.5 * jnp.log(jnp.maximum(beta * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar), 1e-20)))
    return mean + (t > 0) * noise_scale * std * z


def posterior_sample(apply_fn, params, schedule: Schedule, key, observations, action_dim: int,
                     noise_scale: float = 1.0):
    """DIPO's sampler: ddpm_sample with posterior_step, the result clipped to [-1, 1]."""
    step = lambda s, a_t, eps, t, z: posterior_step(s, a_t, eps, t, z, noise_scale)  # noqa: E731
    return jnp.clip(ddpm_sample(apply_fn, params, schedule, key, observations, action_dim, step),
                    -1.0, 1.0)


def ddpm_sample(apply_fn, params, schedule: Schedule, key, observations, action_dim: int,
                step: Callable = ddpm_step):
    """Draw one action per row of observations [B, obs_dim] -> [B, action_dim]. step(schedule,
    a_t, eps, t, z) -> a_{t-1} is the reverse step (default ddpm_step)."""
    T = schedule.betas.shape[0]
    batch = observations.shape[0]
    init_key, key = jax.random.split(key)
    noise_keys = jax.random.split(key, T)

    def body(a_t, inputs):
        t, z_key = inputs
        # Every row is at step t: the time embedding is computed once, not once per row (the
        # networks broadcast a [1, 1] step), which is ~6% of a paper-size EXPO update.
        eps = apply_fn({"params": params}, observations, a_t, jnp.full((1, 1), t))
        z = jax.random.normal(z_key, a_t.shape)
        return step(schedule, a_t, eps, t, z), None

    a_T = jax.random.normal(init_key, (batch, action_dim))
    steps = jnp.arange(T - 1, -1, -1)
    a_0, _ = jax.lax.scan(body, a_T, (steps, noise_keys))
    return a_0
