"""Automatic entropy temperature (SAC): alpha = exp(log_alpha), trained towards a target entropy."""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp


class Temperature(nn.Module):
    initial_temperature: float = 1.0

    @nn.compact
    def __call__(self) -> jnp.ndarray:
        log_temp = self.param("log_temp", lambda _: jnp.full((), jnp.log(self.initial_temperature), dtype=jnp.float32))
        return jnp.exp(log_temp)


def temperature_loss(temperature, entropy, target_entropy):
    """Gradient raises alpha when the entropy is below target, lowers it when above."""
    return temperature * (entropy - target_entropy)
