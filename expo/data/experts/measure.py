"""How often does each scripted expert succeed? `python -m expo.data experts <expert> --episodes 50`.

Rolls the expert out in its task's env, noise-free and at the noise its dataset is generated with (the
registry entry DEFAULT_FOR_EXPERT names), with the seeding of generate_demonstrations (env seed = seed,
episode i reset with SeedSequence([seed, i]), expert noise from SeedSequence([seed, 10**6])): the noisy
row is exactly the first `episodes` attempts a generation with that seed makes. Every episode counts
(generation keeps only the successful ones). One CSV per expert, results/experts/<task>.csv by default.
"""
from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Callable, Iterable, Optional

import numpy as np

from expo.data.experts import lift, stack, threading
from expo.data.experts.common import rollout
from expo.envs import make_env
from expo.protocol import get_task

# expert name -> (module: TASK, EXPERT_VERSION; expert factory (noise, seed))
EXPERTS: dict[str, tuple[object, Callable[[float, int], object]]] = {
    "lift": (lift, lambda n, s: lift.LiftExpert(n, seed=s)),
    "stack": (stack, lambda n, s: stack.StackExpert(n, seed=s)),
    "threading": (threading, lambda n, s: threading.ThreadingExpert(n, seed=s)),
}
COLUMNS = ("task", "expert", "expert_version", "noise", "episodes", "successes", "success_rate",
           "mean_length_of_successes", "seed", "robosuite_version", "seconds")


def measure(expert: str, noise: float, episodes: int, seed: int = 0) -> dict:
    """Success count of `episodes` seeded episodes of `expert` at `noise` (one CSV row)."""
    if expert not in EXPERTS:
        raise KeyError(f"unknown expert {expert!r}; known: {', '.join(EXPERTS)}")
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    module, factory = EXPERTS[expert]
    start = time.perf_counter()
    env = make_env(get_task(module.TASK), seed=seed)
    policy = factory(noise, int(np.random.SeedSequence([seed, 10**6]).generate_state(1)[0]))
    lengths = []
    try:
        for i in range(episodes):
            episode = rollout(env, policy, int(np.random.SeedSequence([seed, i]).generate_state(1)[0]))
            if episode["success"]:
                lengths.append(episode["length"])
        version = env.unwrapped.env_args()["env_version"]
    finally:
        env.close()
    return {
        "task": module.TASK, "expert": expert, "expert_version": module.EXPERT_VERSION, "noise": noise,
        "episodes": episodes, "successes": len(lengths), "success_rate": round(len(lengths) / episodes, 4),
        "mean_length_of_successes": round(float(np.mean(lengths)), 1) if lengths else "",
        "seed": seed, "robosuite_version": version, "seconds": round(time.perf_counter() - start, 1),
    }


def write_rows(rows: Iterable[dict], path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def measure_expert(expert: str, data_noise: float, episodes: int, seed: int = 0, out_dir: Path = Path("results/experts"),
                   extra_noises: Optional[Iterable[float]] = None, log: Callable[[str], None] = print) -> Path:
    """Rows for noise 0, the data's noise and any `extra_noises`, written to out_dir/<task>.csv."""
    noises = list(dict.fromkeys([0.0, float(data_noise), *(float(n) for n in (extra_noises or ()))]))
    rows = []
    for noise in noises:
        row = measure(expert, noise, episodes, seed)
        log(f"{expert} expert v{row['expert_version']} at noise {noise:g}: {row['successes']}/{episodes} episodes "
            f"succeeded ({row['success_rate']:.0%}), mean length {row['mean_length_of_successes']} steps, "
            f"{row['seconds']:.0f} s")
        rows.append(row)
    return write_rows(rows, Path(out_dir) / f"{EXPERTS[expert][0].TASK}.csv")
