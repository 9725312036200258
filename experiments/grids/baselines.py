"""Every baseline next to EXPO on the embedded Lift task, offline-to-online, mini scale, 3 seeds: the
same runs as `quickstart` for EXPO (same seeds, data subsets and sizes), one per baseline method.
Methods without an offline objective of their own pretrain as their docstrings say; RLPD never
pretrains (the paper, Fig. 4)."""
GRID = {
    "description": "EXPO vs RLPD, IDQL, Cal-QL, DAC, DIPO, QSM, PA-RL on embedded Lift (mini scale)",
    "tasks": ["lift"],
    "methods": ["expo", "rlpd", "idql", "calql", "dac", "dipo", "qsm", "parl"],
    "seeds": 3,
    "setting": "offline_to_online",
    "scale": "mini",
    "overrides": {},
}
