"""Offline dataset, online replay buffer and the symmetric offline/online minibatch sampler.

RLPD's symmetric sampling, as EXPO uses it: every minibatch is exactly half offline transitions and
half online transitions (the paper's settings, Figs. 3-4). Sampling is uniform with replacement inside each
half and is driven by a numpy Generator derived from the run seed, so runs are reproducible.
`sample_online` draws from the online buffer alone (Fig. 8: no offline data kept after pretraining).
"""
from __future__ import annotations

import numpy as np

FIELDS = ("observations", "actions", "rewards", "next_observations", "masks")


class TransitionStore:
    """Fixed arrays of transitions (the offline dataset, or the online buffer's storage).

    `extra` names per-transition scalar fields some methods need besides FIELDS (e.g. Cal-QL's
    Monte-Carlo return-to-go "mc_returns"); they are stored and sampled like the others.
    """

    def __init__(self, data: dict[str, np.ndarray], extra: tuple[str, ...] = ()):
        self.fields = FIELDS + tuple(extra)
        missing = [f for f in self.fields if f not in data]
        if missing:
            raise ValueError(f"transitions lack fields {missing}")
        n = len(data["observations"])
        for f in self.fields:
            if len(data[f]) != n:
                raise ValueError(f"field {f} has {len(data[f])} rows, observations has {n}")
        self.data = {f: np.asarray(data[f], dtype=np.float32) for f in self.fields}
        self.size = n

    def gather(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        return {f: self.data[f][idx] for f in self.fields}


class ReplayBuffer(TransitionStore):
    """Online transitions, appended one environment step at a time.

    `extra` maps extra field names to the value a row holds until `write_recent` fills it (e.g.
    mc_returns = -inf until its episode ends: a vacuous lower bound).
    """

    def __init__(self, obs_dim: int, action_dim: int, capacity: int, extra: dict[str, float] | None = None):
        extra = dict(extra or {})
        shapes = {"observations": (obs_dim,), "actions": (action_dim,), "rewards": (),
                  "next_observations": (obs_dim,), "masks": ()}
        data = {f: np.zeros((capacity,) + shapes[f], np.float32) for f in FIELDS}
        data.update({f: np.zeros(capacity, np.float32) for f in extra})
        super().__init__(data, tuple(extra))
        self._fill = extra
        self.capacity, self.size, self._next = capacity, 0, 0

    def add(self, observation, action, reward, next_observation, mask) -> None:
        i = self._next
        self.data["observations"][i] = observation
        self.data["actions"][i] = action
        self.data["rewards"][i] = reward
        self.data["next_observations"][i] = next_observation
        self.data["masks"][i] = mask
        for f, fill in self._fill.items():
            self.data[f][i] = fill
        self._next = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def recent_rows(self, n: int) -> np.ndarray:
        """The indices of the n most recently added rows, oldest first (ring-aware)."""
        if not 0 <= n <= self.size:
            raise ValueError(f"cannot take {n} rows of a buffer holding {self.size}")
        return (self._next - n + np.arange(n)) % self.capacity

    def write_recent(self, field: str, values: np.ndarray) -> None:
        """Set `field` of the len(values) most recently added rows, oldest first."""
        values = np.asarray(values, dtype=np.float32)
        if not 0 < len(values) <= self.size:
            raise ValueError(f"cannot write {len(values)} rows of a buffer holding {self.size}")
        self.data[field][self.recent_rows(len(values))] = values

    def contents(self) -> tuple[dict[str, np.ndarray], dict[str, int]]:
        """What rebuilds this buffer exactly (a checkpoint): copies of the filled rows of every field,
        and {"size", "next"} (the fill level and the ring's write position)."""
        rows = {f: self.data[f][:self.size].copy() for f in self.fields}
        return rows, {"size": self.size, "next": self._next}

    def restore(self, rows: dict[str, np.ndarray], size: int, next_index: int) -> None:
        """Refill the buffer from `contents()` of a buffer with the same fields and capacity."""
        if sorted(rows) != sorted(self.fields) or not 0 <= size <= self.capacity \
                or not 0 <= next_index < self.capacity:
            raise ValueError(f"cannot restore fields {sorted(rows)}, size {size}, next {next_index} "
                             f"into a buffer of fields {sorted(self.fields)}, capacity {self.capacity}")
        for f in self.fields:
            if rows[f].shape != (size,) + self.data[f].shape[1:]:
                raise ValueError(f"field {f}: {rows[f].shape} rows, expected {(size,) + self.data[f].shape[1:]}")
            self.data[f][:size] = rows[f]
            self.data[f][size:] = 0.0
        self.size, self._next = size, next_index


def sample_stacked(rng: np.random.Generator, stores: list[tuple[TransitionStore, int]],
                   num_batches: int) -> dict[str, np.ndarray]:
    """num_batches minibatches, each made of `count` rows from every (store, count) pair, stacked
    as [num_batches, sum(counts), ...]. Rows of store j occupy a fixed slice of every minibatch."""
    parts = []
    for store, count in stores:
        if store.size == 0:
            raise ValueError("cannot sample from an empty buffer")
        idx = rng.integers(0, store.size, size=(num_batches, count))
        parts.append(store.gather(idx))
    return {f: np.concatenate([p[f] for p in parts], axis=1) for f in stores[0][0].fields}


def sample_symmetric(rng, offline: TransitionStore, online: TransitionStore, num_batches: int,
                     batch_size: int) -> dict[str, np.ndarray]:
    """[num_batches, batch_size, ...]: the first half of each minibatch offline, the second online."""
    half = batch_size // 2
    return sample_stacked(rng, [(offline, half), (online, batch_size - half)], num_batches)


def sample_offline(rng, offline: TransitionStore, num_batches: int, batch_size: int):
    return sample_stacked(rng, [(offline, batch_size)], num_batches)


def sample_online(rng, online: TransitionStore, num_batches: int, batch_size: int) -> dict[str, np.ndarray]:
    """[num_batches, batch_size, ...], every row from the online buffer (the layout of
    sample_symmetric): the fine-tuning batches of a run that keeps no offline data (Fig. 8)."""
    return sample_stacked(rng, [(online, batch_size)], num_batches)
