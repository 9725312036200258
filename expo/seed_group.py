"""Several seeds of one run in one process (`seeds_per_process=k`): the agent functions over k agents
at once.

The k agents are one pytree whose leaves have a leading axis of size k; one jitted, vmapped update
steps them all, each on its own minibatch, and one vmapped acting call picks every seed's action. On
a GPU that turns k small programs into one k-times-wider one; on a CPU that is already busy with one
seed's matrix products it saves little (see docs/MEASURED.md, Speed).

k = 1 is the ordinary run: the module's own functions on the unstacked agent, so a run with
seeds_per_process=1 computes exactly what it always did. For k > 1, seed i's results are determined by
its seed and k (vmapping may change float rounding, not what is computed).
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def _named_jit(function, name: str):
    """jax.jit of `function` under `name`: compilations are counted by name (expo/compilation.py),
    so the vmapped update is "update" like the module's own."""
    function.__name__ = function.__qualname__ = name
    return jax.jit(function)


@jax.jit
def _stack_columns(columns):
    return [jnp.stack(column) for column in columns]


@jax.jit
def _take(tree, i):
    return jax.tree_util.tree_map(lambda x: x[i], tree)


class SeedGroup:
    """The agent functions of one agent module for k seeds: `agent` below is the group's agent (the
    module's agent for k = 1, else the k agents stacked along a leading axis)."""

    def __init__(self, module, k: int):
        if k < 1:
            raise ValueError(f"a seed group has k >= 1 seeds, got {k}")
        self.module, self.k = module, k
        if k > 1:
            self._update = _named_jit(lambda agent, batch: jax.vmap(module.update)(agent, batch),
                                      "update")
            self._pretrain = _named_jit(
                lambda agent, batch: jax.vmap(module.pretrain_update)(agent, batch), "pretrain_update")

            def act(agent, observations, keys, step):
                # seed i acts on its own observation [1, obs_dim] with fold_in(its act key, step)
                def one(lane_agent, observation, key):
                    return module.sample_actions(lane_agent, observation[None],
                                                 jax.random.fold_in(key, step))[0]
                return jax.vmap(one)(agent, observations, keys)

            self._act = _named_jit(act, "act")

    def stack(self, agents: Sequence):
        if len(agents) != self.k:
            raise ValueError(f"{len(agents)} agents for a group of {self.k} seeds")
        if self.k == 1:
            return agents[0]
        # The structure of the first: the static parts (apply functions, optimizers) are equal in
        # what they compute but are distinct Python objects in each agent.
        treedef = jax.tree_util.tree_structure(agents[0])
        leaves = [jax.tree_util.tree_leaves(agent) for agent in agents]
        return jax.tree_util.tree_unflatten(treedef, _stack_columns([list(c) for c in zip(*leaves)]))

    def lane(self, agent, i: int):
        """Seed i's agent, unstacked (evaluation, warm start and checkpoints use it)."""
        return agent if self.k == 1 else _take(agent, i)

    def infos(self, info) -> list[dict[str, float]]:
        """An update's info as one dict of Python floats per seed."""
        values = jax.device_get(info)
        if self.k == 1:
            return [{name: float(v) for name, v in values.items()}]
        return [{name: float(v[i]) for name, v in values.items()} for i in range(self.k)]

    def _stack_batches(self, batches: Sequence[dict]) -> dict:
        return {name: np.stack([b[name] for b in batches]) for name in batches[0]}

    def update(self, agent, batches: Sequence[dict]):
        """One online update of every seed, seed i on batches[i]; returns (agent, info)."""
        if self.k == 1:
            return self.module.update(agent, batches[0])
        return self._update(agent, self._stack_batches(batches))

    def pretrain_update(self, agent, batches: Sequence[dict]):
        if self.k == 1:
            return self.module.pretrain_update(agent, batches[0])
        return self._pretrain(agent, self._stack_batches(batches))

    def act(self, agent, observations: Sequence[np.ndarray], keys: Sequence, step: int) -> list[np.ndarray]:
        """Every seed's action for its observation, keyed by fold_in(keys[i], step)."""
        if self.k == 1:
            key = jax.random.fold_in(keys[0], step)
            return [np.asarray(self.module.sample_actions(agent, observations[0][None], key)[0])]
        actions = self._act(agent, jnp.asarray(np.stack(observations), jnp.float32), jnp.stack(keys),
                            step)
        return list(np.asarray(actions))
