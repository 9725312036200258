"""Fig. 4: offline-to-online, 12 tasks, EXPO vs IDQL, Cal-QL, DAC, RLPD, 3 seeds (180 runs).

EXPO pretrains only its base policy by imitation for the protocol's pretraining steps (Table 1:
Robomimic / MimicGen 200k, Antmaze 500k), except on Adroit, where the paper's EXPO does not pretrain
(the paper's offline-to-online setting: narrow data), so the expo arm sets pretrain_steps=0 for the three Adroit tasks
(Table 1's Adroit 20k is the Fig. 6 pen run). IDQL, Cal-QL and DAC pretrain with their own offline
objective for the protocol's steps; RLPD never pretrains (its method preset). beta is Table 1's
offline-to-online value. Lift uses the paper's robomimic Lift PH file (see _paper.py).
"""
from experiments.grids._paper import ADROIT_TASKS, ALL_TASKS, SEEDS, TASK_OVERRIDES

GRID = {
    "description": "offline-to-online: EXPO vs IDQL, Cal-QL, DAC, RLPD on the 12 tasks",
    "tasks": ALL_TASKS,
    "arms": [
        {"method": "expo", "task_overrides": {task: {"pretrain_steps": 0} for task in ADROIT_TASKS}},
        {"method": "idql"},
        {"method": "calql"},
        {"method": "dac"},
        {"method": "rlpd"},
    ],
    "seeds": SEEDS,
    "setting": "offline_to_online",
    "scale": "paper",
    "overrides": {},
    "task_overrides": TASK_OVERRIDES,
}
