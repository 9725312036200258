"""Plain MLP, the trunk of critics and Gaussian policies."""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp

default_init = nn.initializers.xavier_uniform


class MLP(nn.Module):
    hidden_dims: Sequence[int]
    activation: Callable = nn.relu
    activate_final: bool = False
    use_layer_norm: bool = False
    dropout_rate: Optional[float] = None

    @nn.compact
    def __call__(self, x: jnp.ndarray, training: bool = False) -> jnp.ndarray:
        for i, width in enumerate(self.hidden_dims):
            x = nn.Dense(width, kernel_init=default_init())(x)
            if i + 1 < len(self.hidden_dims) or self.activate_final:
                if self.dropout_rate:
                    x = nn.Dropout(self.dropout_rate)(x, deterministic=not training)
                # RLPD-style critics: LayerNorm after each hidden Dense, before the activation.
                if self.use_layer_norm:
                    x = nn.LayerNorm()(x)
                x = self.activation(x)
        return x
