"""Fig. 10: the edit scale beta, on Lift and Square, 3 seeds (2 x 4 x 3 = 24 runs).

Choices the paper leaves open: beta in {0.05, 0.1, 0.3, 0.7}, the authors' tuning grid (Table 1);
offline-to-online like the other ablations (see fig5.py), where Table 1's Robomimic beta is 0.1.
Lift uses the paper's robomimic Lift PH file (see _paper.py).
Run directories: results/fig10/<task>/expo-beta<value>/seed_<s>.
"""
from experiments.grids._paper import SEEDS, TASK_OVERRIDES

BETAS = [0.05, 0.1, 0.3, 0.7]

GRID = {
    "description": "EXPO with edit scale beta in {0.05, 0.1, 0.3, 0.7} (Lift, Square)",
    "tasks": ["lift", "square"],
    "arms": [{"method": "expo", "variant": f"beta{b:g}", "overrides": {"agent.beta": b}} for b in BETAS],
    "seeds": SEEDS,
    "setting": "offline_to_online",
    "scale": "paper",
    "overrides": {},
    "task_overrides": TASK_OVERRIDES,
}
