"""Fig. 6: no action edits (argmax over base samples only) vs EXPO, on pen-binary (pretrained 20k)
and Square (pretrained 200k), 3 seeds (2 x 2 x 3 = 12 runs).

Offline-to-online with the protocol's pretraining steps, which are exactly the paper's 20k for pen
and 200k for Square. Unlike Fig. 4 (where EXPO does not pretrain on Adroit), pen IS pretrained here,
as the paper states for this figure. `expo_no_edit` is agent.n_edit=0.
"""
from experiments.grids._paper import SEEDS

GRID = {
    "description": "ablation: no action edits vs EXPO (pen-binary pretrained 20k, Square 200k)",
    "tasks": ["pen-binary-v0", "square"],
    "methods": ["expo", "expo_no_edit"],
    "seeds": SEEDS,
    "setting": "offline_to_online",
    "scale": "paper",
    "overrides": {},
}
