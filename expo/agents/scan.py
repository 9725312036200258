"""The one way every agent runs several gradient steps inside one jitted call."""
from __future__ import annotations

import jax


def scan_minibatches(step, agent, batch):
    """lax.scan `step(agent, minibatch) -> (agent, info)` over the leading axis of `batch` (the utd
    or pretraining minibatches); returns the final agent and each info entry averaged over steps."""
    agent, info = jax.lax.scan(step, agent, batch)
    return agent, {k: v.mean() for k, v in info.items()}
