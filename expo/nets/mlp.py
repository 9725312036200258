"""Plain MLP, the trunk of critics, Gaussian policies and the MLP noise networks; ConcatDense."""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import flax.linen as nn
import jax.numpy as jnp

default_init = nn.initializers.xavier_uniform


class ConcatDense(nn.Module):
    """nn.Dense applied to concat(parts, -1), computed part by part: sum_i x_i W_i + b, where W_i
    are the rows of the one kernel that meet part i. A part with a single row (a diffusion step's
    time embedding when the sampler passes one step for the whole batch) is multiplied once and
    broadcast instead of once per row: at paper sizes ~4% of the FLOPs of the EXPO/IDQL noise
    network and ~19% of QSM's. Parameters ("kernel" [sum of part widths, features], "bias") and
    their initialisation are nn.Dense's, so a module named like the Dense it replaces has the same
    weights for the same key."""
    features: int
    kernel_init: Callable = default_init()

    @nn.compact
    def __call__(self, *parts):
        widths = [part.shape[-1] for part in parts]
        kernel = self.param("kernel", self.kernel_init, (sum(widths), self.features), jnp.float32)
        out = self.param("bias", nn.initializers.zeros_init(), (self.features,), jnp.float32)
        start = 0
        for part, width in zip(parts, widths):
            out = out + part @ kernel[start:start + width]
            start += width
        return out


class MLP(nn.Module):
    hidden_dims: Sequence[int]
    activation: Callable = nn.relu
    activate_final: bool = False
    use_layer_norm: bool = False
    dropout_rate: Optional[float] = None

    @nn.compact
    def __call__(self, x: Union[jnp.ndarray, tuple], training: bool = False) -> jnp.ndarray:
        """x: the input, or a tuple of parts taken as their concatenation by a ConcatDense."""
        for i, width in enumerate(self.hidden_dims):
            # Explicit names, those flax gives the Dense layers, whichever class the first one is.
            if i == 0 and isinstance(x, tuple):
                x = ConcatDense(width, name="Dense_0")(*x)
            else:
                x = nn.Dense(width, kernel_init=default_init(), name=f"Dense_{i}")(x)
            if i + 1 < len(self.hidden_dims) or self.activate_final:
                if self.dropout_rate:
                    x = nn.Dropout(self.dropout_rate)(x, deterministic=not training)
                # RLPD-style critics: LayerNorm after each hidden Dense, before the activation.
                if self.use_layer_norm:
                    x = nn.LayerNorm()(x)
                x = self.activation(x)
        return x
