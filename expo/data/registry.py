"""The datasets the suite knows, and where each one lives. Generation parameters live here only.

TaskSpec.dataset (expo/protocol.py) names an entry of DATASETS. A generated entry's file name encodes
every parameter that changes its content (demos, noise, seed, expert version), so editing any of
them makes `load_task_dataset` generate a new file instead of silently reusing an old one.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Union

from expo.data.experts import lift as lift_expert
from expo.data.paths import data_root
from expo.envs.robomimic import ROBOMIMIC_OBS_KEYS


@dataclasses.dataclass(frozen=True)
class GeneratedDataset:
    """Demonstrations written on this machine by a scripted expert (an embedded task)."""

    key: str
    expert: str  # the name `python -m expo.data generate <expert>` takes
    num_demos: int  # demos in the file (a run may use fewer: TaskSpec.num_demos)
    noise: float  # std of the expert's action noise (see expo/data/experts/<expert>.py)
    seed: int
    obs_keys: tuple[str, ...]

    def path(self) -> Path:
        version = EXPERTS[self.expert][1]
        name = f"{self.key}_n{self.num_demos}_noise{self.noise:g}_seed{self.seed}_expert-v{version}.hdf5"
        return data_root() / "generated" / name

    def fix_hint(self) -> str:
        return (
            f"`python -m expo.data generate {self.expert} --noise {self.noise:g} "
            f"--num-demos {self.num_demos} --seed {self.seed} --force`"
        )


@dataclasses.dataclass(frozen=True)
class ExternalDataset:
    """A file obtained elsewhere (e.g. a robomimic release), expected under the data root."""

    key: str
    relpath: str
    obs_keys: tuple[str, ...]
    source: str  # where to get it

    def path(self) -> Path:
        return data_root() / self.relpath

    def fix_hint(self) -> str:
        return f"{self.source}, saved as {self.path()} (or set EXPO_DATA_ROOT)"


# expert name -> (generate(path, num_demos, noise, seed, max_attempts=None, progress=False), version)
EXPERTS: dict[str, tuple[Callable[..., dict], int]] = {
    "lift": (lift_expert.generate_lift_dataset, lift_expert.EXPERT_VERSION),
}

# Noise 0.3: the expert still succeeds in every episode, but an imitation-only diffusion policy trained
# on the 10 demos a run draws does not solve Lift (measured at mini scale: 0.70 / 0.75 / 0.65 success
# for seeds 0 / 1 / 2), which leaves RL something to improve (README, "Measured on this machine").
DATASETS: dict[str, Union[GeneratedDataset, ExternalDataset]] = {
    "lift_scripted": GeneratedDataset(
        key="lift_scripted", expert="lift", num_demos=50, noise=0.3, seed=0, obs_keys=ROBOMIMIC_OBS_KEYS
    ),
    "robomimic_lift_ph": ExternalDataset(
        key="robomimic_lift_ph",
        relpath="robomimic/lift/ph/low_dim.hdf5",
        obs_keys=ROBOMIMIC_OBS_KEYS,
        source="download robomimic v0.1 Lift PH low_dim.hdf5 (robomimic's scripts/download_datasets.py)",
    ),
}

# `python -m expo.data generate <expert>` starts from this entry's parameters.
DEFAULT_FOR_EXPERT = {"lift": "lift_scripted"}


def get_dataset(key: str) -> Union[GeneratedDataset, ExternalDataset]:
    if key not in DATASETS:
        raise KeyError(f"unknown dataset {key!r}; known: {', '.join(sorted(DATASETS))}")
    return DATASETS[key]
