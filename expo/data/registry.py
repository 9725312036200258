"""The datasets the suite knows: where each file comes from, where it lives, what it must contain.

TaskSpec.dataset (expo/protocol.py) names an entry of DATASETS. Two kinds of entries:
  - ExternalDataset: public files fetched from their official location by
    `python -m expo.data fetch <task|dataset>` into the data root (expo/data/paths.py), checked by
    `python -m expo.data verify`. `expected` holds the facts known for the public files, each one
    measured by verify exactly as recorded (expo/data/verify.py FACTS): raw counts of the files
    (rows, demos, trajectories), what the loader yields (demos, widths) and the recorded env.
  - GeneratedDataset: demonstrations written on this machine by a scripted expert (an embedded task).
    The file name encodes every parameter that changes its content (demos, noise, seed, expert
    version), so editing any of them makes `load_task_dataset` generate a new file instead of
    silently reusing an old one.
Every entry has a `format`, the name of the loader module in expo/data/ (see expo/data/__init__.py).
Generation parameters (expert versions included), download locations and known counts live here only.
The registry describes files: it imports neither the experts (expo/data/experts, which import it; their
generators: expo.data.experts.GENERATORS) nor the envs; the robomimic keys come from expo/robomimic_format.py,
which the envs import too.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping, Optional, Union

from expo.data.paths import data_root
from expo.robomimic_format import ROBOMIMIC_OBS_KEYS


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """One downloadable file: saved as data_root() / relpath.

    With `member`, `url` is an archive (zip / tar.*) and the file is that member of it.
    """

    relpath: str
    url: str
    member: Optional[str] = None
    size: Optional[int] = None    # bytes, when known (fetch checks it)
    sha256: Optional[str] = None  # when known (verify checks it)

    def path(self) -> Path:
        return data_root() / self.relpath


@dataclasses.dataclass(frozen=True)
class ExternalDataset:
    """Public data obtained from its official location."""

    key: str
    format: str                       # loader module: robomimic_hdf5 | d4rl_hdf5 | awac_npy | minari
    files: tuple[RemoteFile, ...]
    description: str                  # what the data are and how the suite composes them (docs)
    expected: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # facts verify checks
    obs_keys: tuple[str, ...] = ()    # robomimic / MimicGen low-dim keys
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)   # format-specific

    def path(self) -> Path:
        return self.files[0].path()

    def paths(self) -> list[Path]:
        return [f.path() for f in self.files]

    def fix_hint(self) -> str:
        """The command that brings the dataset onto this machine when it is not there."""
        return self._fetch_hint("")

    def replace_hint(self) -> str:
        """The command that replaces a dataset that is present but damaged or wrong: plain `fetch`
        skips a file that is already there (and exits 0), so it has to be forced."""
        return self._fetch_hint(" --force")

    def _fetch_hint(self, force: str) -> str:
        if self.format == "minari":  # Minari keeps its datasets in its own store, not the data root
            ident = self.options.get("dataset_id", "<dataset id>")
            return (f"`python -m expo.data fetch {self.key}{force}` (runs `minari download {ident}{force}`; "
                    f"Minari's store: $MINARI_DATASETS_PATH, default ~/.minari/datasets)")
        return f"`python -m expo.data fetch {self.key}{force}` (data root: {data_root()}, set EXPO_DATA_ROOT to move it)"


@dataclasses.dataclass(frozen=True)
class GeneratedDataset:
    """Demonstrations written on this machine by a scripted expert (an embedded task)."""

    key: str
    expert: str  # the name `python -m expo.data generate <expert>` takes
    num_demos: int  # demos in the file (a run may use fewer: TaskSpec.num_demos)
    noise: float  # std of the expert's action noise (see expo/data/experts/<expert>.py)
    seed: int
    obs_keys: tuple[str, ...]
    description: str = ""
    format: str = "robomimic_hdf5"

    def path(self) -> Path:
        version = EXPERT_VERSIONS[self.expert]
        name = f"{self.key}_n{self.num_demos}_noise{self.noise:g}_seed{self.seed}_expert-v{version}.hdf5"
        return data_root() / "generated" / name

    def paths(self) -> list[Path]:
        return [self.path()]

    def fix_hint(self) -> str:
        return (
            f"`python -m expo.data generate {self.expert} --noise {self.noise:g} "
            f"--num-demos {self.num_demos} --seed {self.seed} --force`"
        )

    def replace_hint(self) -> str:
        return self.fix_hint()  # already --force: it regenerates a file that is present


Dataset = Union[ExternalDataset, GeneratedDataset]

# expert name (expo/data/experts/<name>.py) -> its version, part of the dataset file name and attributes.
# Bump it when the expert's behaviour changes, so that a changed expert writes a new file instead of an
# old one being reused. stack v2: the same policy, in MimicGen Stack_D0 (v1 ran in robosuite's own Stack,
# the retired stack_robosuite).
EXPERT_VERSIONS: dict[str, int] = {"lift": 1, "pendulum": 1, "stack": 2, "threading": 1}

_D4RL = "http://rail.eecs.berkeley.edu/datasets/offline_rl/ant_maze_v2"
_D4RL_FILES = {  # D4RL's infos.py: antmaze-{medium,large}-{play,diverse}-v2
    ("medium", "play"): "Ant_maze_big-maze_noisy_multistart_True_multigoal_False_sparse_fixed.hdf5",
    ("medium", "diverse"): "Ant_maze_big-maze_noisy_multistart_True_multigoal_True_sparse_fixed.hdf5",
    ("large", "play"): "Ant_maze_hardest-maze_noisy_multistart_True_multigoal_False_sparse_fixed.hdf5",
    ("large", "diverse"): "Ant_maze_hardest-maze_noisy_multistart_True_multigoal_True_sparse_fixed.hdf5",
}


def _d4rl_antmaze(maze: str, data: str) -> ExternalDataset:
    name = f"antmaze-{maze}-{data}-v2"
    return ExternalDataset(
        key=f"d4rl_antmaze_{maze}_{data}_v2",
        format="d4rl_hdf5",
        files=(RemoteFile(f"d4rl/{name}.hdf5", f"{_D4RL}/{_D4RL_FILES[maze, data]}"),),
        description=f"D4RL {name}: 1M steps of a goal-reaching ant ({data} goals), every transition they form",
        # rows: the file's 1M steps (D4RL's antmaze datasets hold 1M samples each). The loader yields
        # fewer transitions, as d4rl.qlearning_dataset does (one row per time-out and the last row are
        # dropped: expo/data/d4rl_hdf5.py), so it is the raw rows that are compared, not the transitions.
        expected={"rows": 1_000_000, **_widths(f"antmaze-{maze}-{data}-v2")},
    )


_ROBOMIMIC = "http://downloads.cs.stanford.edu/downloads/rt_benchmark"


def _widths(task: str) -> dict:
    """The observation and action widths of a task's files: its protocol row's."""
    from expo.protocol import TASKS

    return {"obs_dim": TASKS[task].obs_dim, "act_dim": TASKS[task].act_dim}


def _task_layout(task: str) -> dict:
    """The env a task's files were recorded in (data.attrs["env_args"]["env_name"]) and its observation
    and action widths, from the task's protocol row: what tells a Lift file from a Can file at the same
    path even when no task uses the dataset (verify then has no protocol row of its own to compare)."""
    from expo.protocol import TASKS

    return {**_widths(task), "env_name": TASKS[task].env_name}


def _robomimic(task: str, kind: str, demos: int) -> ExternalDataset:
    return ExternalDataset(
        key=f"robomimic_{task}_{kind}",
        format="robomimic_hdf5",
        files=(RemoteFile(f"robomimic/{task}/{kind}/low_dim_v141.hdf5", f"{_ROBOMIMIC}/{task}/{kind}/low_dim_v141.hdf5"),),
        description=f"robomimic v0.1 {task.capitalize()} {kind.upper()} low_dim ({demos} demos, robosuite 1.4.1)",
        expected={"demos": demos, **_task_layout(task)},
        obs_keys=ROBOMIMIC_OBS_KEYS,
    )


# MimicGen's Hugging Face dataset repo (mimicgen/__init__.py: HF_REPO_ID, DATASET_REGISTRY): "source" holds
# the 10 human demos per task, "core" the 1000 generated demos per task variant (docs/datasets/
# mimicgen_corl_2023.md). Generated files have no rewards (MimicGen's write_demo_to_hdf5), hence
# missing_rewards; the loader composes 10 + k demos (expo/data/robomimic_hdf5.py).
_MIMICGEN = "https://huggingface.co/datasets/amandlek/mimicgen_datasets/resolve/main"


def _mimicgen(task: str, generated: int) -> ExternalDataset:
    return ExternalDataset(
        key=f"mimicgen_{task}",
        format="robomimic_hdf5",
        files=(
            RemoteFile(f"mimicgen/source/{task}.hdf5", f"{_MIMICGEN}/source/{task}.hdf5"),
            RemoteFile(f"mimicgen/core/{task}_d0.hdf5", f"{_MIMICGEN}/core/{task}_d0.hdf5"),
        ),
        description=(
            f"MimicGen {task.capitalize()}: the 10 human source demos + {generated} of the 1000 generated "
            f"{task}_d0 demos, drawn with the run's seed (Table 2: {10 + generated})"
        ),
        # demos: what the loader composes; file_demos: what each file holds (10 source, 1000 generated).
        expected={"demos": 10 + generated, "file_demos": (10, 1000), **_task_layout(task)},
        obs_keys=ROBOMIMIC_OBS_KEYS,
        options={"compose": (10, generated), "missing_rewards": "success_at_end"},
    )


_AWAC_NOTE = "first 90% of the trajectories of {h}2_sparse.npy (expert) + first 90% of {h}_bc_sparse4.npy (BC)"
# The AWAC dexterous-manipulation archive (Google Drive file 1SsVaQKZnY5UkuR78WrInp9XxTdKHbF0x), linked by
# the AWAC code (rlkit examples/awac/hand/awac1.py and README) and RLPD's README ("download and unzip
# .npy files into ~/.datasets/awac-data/"); the .npy files sit at the top level of the archive (a TFDS
# builder for it reads <extracted>/pen2_sparse.npy). EXPO's README links Cal-QL's re-upload instead
# (Drive id 1yUdJnGgYit94X_AvV6JJP5Y3Lx2JF30Y, unpacked into offpolicy_hand_data/), with the same file
# names read by the same (RLPD) loader; its inner layout is not documented, so the AWAC original is used.
_AWAC_URL = "https://drive.google.com/uc?export=download&id=1SsVaQKZnY5UkuR78WrInp9XxTdKHbF0x"
# Known facts per task. pen: rlkit's copy of pen2_sparse.npy (tests/regression/awac/hand) holds 25
# demos of 199 steps each (200 rewards each); counts for the other files are not published.
_AWAC_EXPECTED = {"pen": {"expert_trajectories": 25, "expert_trajectory_length": 199}}

DATASETS: dict[str, Dataset] = {
    # Noise 0.3: the expert still succeeds (results/experts/lift.csv), but an imitation-only
    # diffusion policy trained on the 10 demos a run draws does not solve Lift (the `bc` arm of
    # results/cpu4), which leaves RL something to improve.
    "lift_scripted": GeneratedDataset(
        key="lift_scripted", expert="lift", num_demos=50, noise=0.3, seed=0, obs_keys=ROBOMIMIC_OBS_KEYS,
        description="50 demos of a noisy scripted expert (noise 0.3) in robosuite 1.5 Lift, generated here",
    ),
    # MimicGen Stack_D0 (the suite's robosuite 1.5 env, expo/envs/mimicgen_tasks): 200 demos, the count a run
    # uses (Table 2), so every seed trains on the same demos (drawn in its own order). Noise 0.25: the most
    # varied demos at which the expert still succeeds in nearly every episode within the 200-step horizon
    # (measured: results/experts/stack.csv, `python -m expo.data experts stack`).
    "stack_scripted": GeneratedDataset(
        key="stack_scripted", expert="stack", num_demos=200, noise=0.25, seed=0, obs_keys=ROBOMIMIC_OBS_KEYS,
        description="200 demos of a noisy scripted expert (noise 0.25) in MimicGen Stack_D0 (robosuite 1.5), "
                    "generated here",
    ),
    # MimicGen Threading_D0: 100 demos, of which a run draws 50 (Table 2) with its seed. Noise 0.2: the
    # expert still succeeds in (nearly) every episode within the 400-step horizon; at 0.3 a third of the
    # pushes through the ring jam until the horizon (12 episodes each while tuning; the 50-episode rates:
    # results/experts/threading.csv, `python -m expo.data experts threading`).
    "threading_scripted": GeneratedDataset(
        key="threading_scripted", expert="threading", num_demos=100, noise=0.2, seed=0, obs_keys=ROBOMIMIC_OBS_KEYS,
        description="100 demos of a noisy scripted expert (noise 0.2) in MimicGen Threading_D0 (robosuite 1.5), "
                    "generated here",
    ),
    # The canary (not a paper task): 50 full episodes of a controller that swings Pendulum-v1 up and
    # never balances it (expo/data/experts/pendulum.py), in D4RL's layout. Noise 1.0: actions vary
    # widely around the pump's, so the upright region holds many actions to learn from (at noise 0.3
    # and 0.6 the same single-seed EXPO run learned more slowly: -692 and -496 at 2k online steps,
    # against -289 at 1.0).
    "pendulum_scripted": GeneratedDataset(
        key="pendulum_scripted", expert="pendulum", num_demos=50, noise=1.0, seed=0, obs_keys=(),
        format="d4rl_hdf5",
        description="50 episodes of a noisy energy-pumping controller (noise 1.0) in Pendulum-v1, generated here",
    ),
    **{d.key: d for d in (_d4rl_antmaze(m, k) for m in ("medium", "large") for k in ("play", "diverse"))},
    # Optional backend: Minari's re-recorded antmaze data (not D4RL's files; see expo/data/minari_datasets.py).
    **{
        f"minari_antmaze_{m}_{k}": ExternalDataset(
            key=f"minari_antmaze_{m}_{k}", format="minari", files=(),
            description=f"Minari D4RL/antmaze/{m}-{k}-v1 (re-recorded in gymnasium-robotics, converted to the D4RL frame)",
            expected=_widths(f"antmaze-{m}-{k}-v2"),
            options={"dataset_id": f"D4RL/antmaze/{m}-{k}-v1", "maze": m},
        )
        for m in ("medium", "large") for k in ("play", "diverse")
    },
    **{
        f"awac_{h}_binary": ExternalDataset(
            key=f"awac_{h}_binary",
            format="awac_npy",
            # The AWAC release (one archive of .npy files); fetch unpacks the two files each task needs.
            # Order matters: expo/data/awac_npy.py reads files[0] as the expert file, files[1] as BC.
            files=(
                RemoteFile(f"awac/{h}2_sparse.npy", _AWAC_URL, member=f"{h}2_sparse.npy"),
                RemoteFile(f"awac/{h}_bc_sparse4.npy", _AWAC_URL, member=f"{h}_bc_sparse4.npy"),
            ),
            description="AWAC Adroit binary: " + _AWAC_NOTE.format(h=h),
            expected={**_widths(f"{h}-binary-v0"), **_AWAC_EXPECTED.get(h, {})},
        )
        for h in ("pen", "door", "relocate")
    },
    "robomimic_lift_ph": _robomimic("lift", "ph", 200),
    "robomimic_can_mh": _robomimic("can", "mh", 300),
    "robomimic_square_ph": _robomimic("square", "ph", 200),
    # MimicGen (Table 2): 10 human source demos + generated D0 demos (the authors' own subset is not public).
    "mimicgen_threading": _mimicgen("threading", 40),
    "mimicgen_stack": _mimicgen("stack", 190),
}

# The envs read an entry's env kwargs by key through expo/robomimic_format.py (dataset_env_kwargs).

# `python -m expo.data generate <expert>` starts from this entry's parameters.
DEFAULT_FOR_EXPERT = {"lift": "lift_scripted", "pendulum": "pendulum_scripted", "stack": "stack_scripted", "threading": "threading_scripted"}


def get_dataset(key: str) -> Dataset:
    if key not in DATASETS:
        raise KeyError(f"unknown dataset {key!r}; known: {', '.join(sorted(DATASETS))}")
    return DATASETS[key]
