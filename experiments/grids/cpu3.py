"""The CPU-scale reproduction of the paper's online-with-offline-data claim (Fig. 3) on the embedded
Lift task: EXPO against RLPD, IDQL, DIPO and QSM, no pretraining, every minibatch half offline, half
online. Mini scale (expo/config.py SCALES["mini"]), 3 seeds; sized to run on a 2-core CPU.
Run directories: results/cpu3/lift/<method>/seed_<s>.
"""
GRID = {
    "description": "CPU-scale online RL with offline data on embedded Lift (Fig. 3; mini scale)",
    "tasks": ["lift"],
    "methods": ["expo", "rlpd", "idql", "dipo", "qsm"],
    "seeds": 3,
    "setting": "online",
    "scale": "mini",
    "overrides": {},
}
