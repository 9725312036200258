"""Fig. 9: the number of base-policy samples N, on Lift and Square, 3 seeds (2 x 5 x 3 = 30 runs).

Choices the paper leaves open: N in {2, 4, 8, 16, 32} (powers of two around the paper's default 8);
every sample is edited (agent.n_edit = N, as in the paper's default n_edit = N = 8); offline-to-
online like the other ablations (see fig5.py). The swept N is kept at mini scale too (mini shrinks
sizes, not the sweep). Lift uses the paper's robomimic Lift PH file (see _paper.py).
Run directories: results/fig9/<task>/expo-N<k>/seed_<s>.
"""
from experiments.grids._paper import SEEDS, TASK_OVERRIDES

NS = [2, 4, 8, 16, 32]

GRID = {
    "description": "EXPO with N = 2 ... 32 base-policy samples (Lift, Square)",
    "tasks": ["lift", "square"],
    "arms": [{"method": "expo", "variant": f"N{n}", "overrides": {"agent.N": n, "agent.n_edit": n}}
             for n in NS],
    "seeds": SEEDS,
    "setting": "offline_to_online",
    "scale": "paper",
    "overrides": {},
    "task_overrides": TASK_OVERRIDES,
}
