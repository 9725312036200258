"""Facts shared by the paper's figure grids (fig1.py ... fig10.py): plain data.

The paper's Lift runs use robomimic v0.1 Lift PH (Table 2: 10 demos, subsampled), its Threading and
Stack runs MimicGen's D0 files, so every figure grid points those tasks at the paper's file
(`protocol.paper_dataset`; `python -m expo.data fetch lift|threading|stack` downloads it); their
protocol default is the embedded scripted data that demo / cpu3 / cpu4 / quickstart / baselines use
without a download. `dataset.name=lift_scripted` (etc.) on the command line runs a figure on the
embedded data instead.
"""
from expo.protocol import PAPER_TASKS, TASKS, paper_dataset

SEEDS = 3  # the paper's evaluation protocol: 3 seeds per curve

# The dataset the paper used where the protocol's default is an embedded one.
TASK_OVERRIDES = {t: {"dataset.name": paper_dataset(s)} for t, s in TASKS.items()
                  if paper_dataset(s) != s.dataset}

ALL_TASKS = list(PAPER_TASKS)
ADROIT_TASKS = [t for t in PAPER_TASKS if TASKS[t].domain == "adroit"]
