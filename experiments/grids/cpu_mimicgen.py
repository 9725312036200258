"""MimicGen Threading and Stack in the suite's own robosuite 1.5 envs (expo/envs/mimicgen_tasks) on
their embedded scripted data: EXPO and the imitation-only base policy, offline-to-online, mini scale
(expo/config.py SCALES["mini"]: 5k imitation steps, 10k online steps), 3 seeds; sized for a 2-core
CPU. Run directories: results/cpu_mimicgen/<task>/<method>/seed_<s>.
"""
GRID = {
    "description": "EXPO vs imitation-only on embedded MimicGen Threading and Stack (mini scale)",
    "tasks": ["threading", "stack"],
    "methods": ["expo", "bc"],
    "seeds": 3,
    "setting": "offline_to_online",
    "scale": "mini",
    "overrides": {},
}
