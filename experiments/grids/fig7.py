"""Fig. 7: dataset subsampling on Square: success at 1M env steps of EXPO and EXPO + entropy
backup vs the imitation policy trained on the same subsample, 3 seeds (5 sizes x 3 x 3 = 45 runs).

Choices the paper leaves open:
- subsample sizes 10, 20, 50, 100 and 200 demos of Square PH's 200 (200 = the whole dataset, the
  Fig. 4 point); each run draws its subsample with its seed (dataset.seed = seed), so at a given
  seed EXPO, EXPO + entropy backup and the imitation policy see the same demos;
- offline-to-online (the imitation policy IS EXPO's pretrained base policy: `bc` is that policy
  after the protocol's 200k imitation steps, evaluated without online steps);
- 1M online steps = the protocol's Square train_steps.
Run directories: results/fig7/square/<method>-demos<k>/seed_<s>.
"""
from experiments.grids._paper import SEEDS

DEMOS = [10, 20, 50, 100, 200]

GRID = {
    "description": "Square subsampled to 10-200 demos: EXPO, EXPO + entropy backup, imitation",
    "tasks": ["square"],
    "arms": [
        {"method": method, "variant": f"demos{k}", "overrides": {"dataset.num_demos": k}}
        for method in ("expo", "expo_entropy_backup", "bc") for k in DEMOS
    ],
    "seeds": SEEDS,
    "setting": "offline_to_online",
    "scale": "paper",
    "overrides": {},
}
