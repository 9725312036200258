"""The embedded default behind `make demo`: EXPO and the imitation-only base policy on Lift,
offline-to-online, 2 seeds, mini scale (5k imitation steps, then 10k online steps): 14.7-16.1
minutes on a 2-core CPU including set-up (two fresh-clone measurements), the shortest configuration
measured whose EXPO curve ends above its step-0 value and above imitation by more than the spread
over seeds (docs/MEASURED.md).

Evaluation: 40 episodes at steps 0, 5k and 10k instead of mini's 20 every 2.5k (about the same
evaluation time): at 20 episodes one evaluation's binomial spread (about 0.1 at a success rate of
0.7) is as large as the rise the demo is there to show. The same runs with 3 seeds, the paper's
baselines and the ablations are the grid `cpu4` (results/cpu4, committed)."""
GRID = {
    "description": "EXPO vs imitation-only on embedded Lift (mini scale, 10k online steps)",
    "tasks": ["lift"],
    "methods": ["expo", "bc"],
    "seeds": 2,
    "setting": "offline_to_online",
    "scale": "mini",
    "overrides": {"steps": 10_000, "eval_interval": 5_000, "eval_episodes": 40},
}
