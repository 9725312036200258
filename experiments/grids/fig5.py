"""Fig. 5: the OTF action only for acting vs for acting AND the TD backup, on Can and Square,
3 seeds (2 tasks x 2 methods x 3 = 12 runs).

`expo_no_otf_backup` backs up ONE base-policy sample (SARSA-like, the paper's Fig. 5). Choice: the paper's
ablations (Fig. 5-10) start from a pretrained base policy (Fig. 6 and 8 say so, Fig. 7 compares with
the imitation policy), so every ablation grid uses the offline-to-online setting with the protocol's
pretraining (Robomimic 200k) and Table 1's offline-to-online beta (0.1).
"""
from experiments.grids._paper import SEEDS

GRID = {
    "description": "ablation: OTF action for sampling only vs sampling and TD backup (Can, Square)",
    "tasks": ["can", "square"],
    "methods": ["expo", "expo_no_otf_backup"],
    "seeds": SEEDS,
    "setting": "offline_to_online",
    "scale": "paper",
    "overrides": {},
}
