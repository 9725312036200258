"""Fig. 3: online RL with offline data, 12 tasks, EXPO vs RLPD, IDQL, DIPO, QSM, 3 seeds (180 runs).

Setting `online`: no pretraining for any method; every minibatch is half offline, half online.
Online steps, evaluation schedule, beta (Table 1 "online") and start_training come from each task's
protocol row. Lift uses the paper's robomimic Lift PH file (see _paper.py).
"""
from experiments.grids._paper import ALL_TASKS, SEEDS, TASK_OVERRIDES

GRID = {
    "description": "online RL with offline data: EXPO vs RLPD, IDQL, DIPO, QSM on the 12 tasks",
    "tasks": ALL_TASKS,
    "methods": ["expo", "rlpd", "idql", "dipo", "qsm"],
    "seeds": SEEDS,
    "setting": "online",
    "scale": "paper",
    "overrides": {},
    "task_overrides": TASK_OVERRIDES,
}
