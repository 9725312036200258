"""Every random stream of a run derives from its seed through these two functions."""
from __future__ import annotations

import zlib

import jax
import numpy as np

# Fixed stream ids (a crc of the name), so adding a stream never shifts the others.
def _stream_id(name: str) -> int:
    return zlib.crc32(name.encode())


def numpy_rng(seed: int, stream: str) -> np.random.Generator:
    return np.random.default_rng([seed, _stream_id(stream)])


def episode_seed(seed: int, stream: str, index: int) -> int:
    """Seed of the index-th environment reset of a stream ("train", "eval")."""
    return int(np.random.SeedSequence([seed, _stream_id(stream), index]).generate_state(1)[0])


def jax_key(seed: int, stream: str) -> jax.Array:
    return jax.random.fold_in(jax.random.PRNGKey(seed), _stream_id(stream) & 0x7FFFFFFF)
