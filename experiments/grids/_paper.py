"""Facts shared by the paper's figure grids (fig1.py ... fig10.py): plain data, no logic.

The paper's Lift runs use robomimic v0.1 Lift PH (Table 2: 10 demos, subsampled), so every figure
grid points Lift at that file (`python -m expo.data fetch robomimic_lift_ph`); the protocol's default
for `lift` is the embedded scripted data that demo / quickstart / baselines use without a download.
`dataset.name=lift_scripted` on the command line runs a figure on the embedded data instead.
"""
from expo.protocol import PAPER_TASKS, TASKS

SEEDS = 3  # the paper's evaluation protocol: 3 seeds per curve

# The dataset the paper used where the protocol's default is a stand-in.
TASK_OVERRIDES = {"lift": {"dataset.name": "robomimic_lift_ph"}}

ALL_TASKS = list(PAPER_TASKS)
ADROIT_TASKS = [t for t in PAPER_TASKS if TASKS[t].domain == "adroit"]
