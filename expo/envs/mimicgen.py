"""MimicGen tasks (Threading_D0, Stack_D0) through the same robosuite low-dim path as robomimic.

MimicGen (github.com/NVlabs/mimicgen) defines its task variants as robosuite environments; importing the
`mimicgen` package registers them (Threading_D0, Stack_D0, ...) in robosuite's env registry. Once
registered they are built exactly like the robomimic tasks (expo.envs.robomimic.make_lowdim_env):
robomimic's low-dim keys object / robot0_eef_pos / robot0_eef_quat / robot0_gripper_qpos -> Threading 37,
Stack 32 dims, OSC_POSE action 7, reward 1 and termination at success, horizon from the protocol row.

Installing MimicGen (it is not on PyPI). Facts from its docs (docs/introduction/installation.md):
    git clone https://github.com/NVlabs/mimicgen.git && cd mimicgen && pip install -e .
plus robomimic from source (github.com/ARISE-Initiative/robomimic, master / v0.3+) and robosuite at
commit b9d8d3de5e3dfd1724f4a0e6555246c460407daa or the v1.4.1 branch, with mujoco==2.3.2 recommended.
Its docs say: "The current codebase does not support robosuite v1.5+" (changed controller
conventions). This suite pins robosuite 1.5.1, so MimicGen cannot be installed into the suite's
environment as is. What a user must do to run Threading / Stack:
  - a separate environment with robosuite 1.4.1 (git checkout v1.4.1 of ARISE-Initiative/robosuite,
    `pip install -e .`), mujoco 2.3.2, robomimic and mimicgen installed from source, and this suite
    installed into it with `pip install --no-deps -e .`. expo.envs.robomimic falls back to robosuite
    1.4's part-controller config there (not tested by this suite's CI, which has robosuite 1.5.1), or
  - use the stand-in task `stack_robosuite` (robosuite 1.5's own Stack, embedded scripted data).
With robosuite 1.4.x, robosuite's "object-state" is already in the order the MimicGen files store.

Without the package, make_mimicgen_env raises MimicGenUnavailable (an ImportError) with that advice.
"""
from __future__ import annotations

import importlib
from typing import Optional

import gymnasium as gym

from expo.protocol import TaskSpec

INSTALL_HINT = (
    "install it from source: git clone https://github.com/NVlabs/mimicgen && pip install -e mimicgen "
    "(it needs robosuite 1.4.1 and robomimic from source, which conflicts with this suite's robosuite 1.5.1 "
    "pin: use a separate robosuite-1.4.1 environment, see expo/envs/mimicgen.py), or run the stand-in task "
    "stack_robosuite"
)


class MimicGenUnavailable(ImportError):
    """The optional `mimicgen` package is not importable, so its robosuite tasks are not registered."""


def import_mimicgen():
    """Import mimicgen (registering its robosuite envs) or raise MimicGenUnavailable with the fix."""
    from expo.envs.robomimic import _import_robosuite

    _import_robosuite()  # robosuite first, with its log noise filtered
    try:
        return importlib.import_module("mimicgen")
    except ImportError as e:
        raise MimicGenUnavailable(f"mimicgen is not installed ({e}); {INSTALL_HINT}") from None


def mimicgen_available() -> bool:
    """True when the mimicgen package can be imported (tests skip the env checks otherwise)."""
    try:
        import_mimicgen()
    except MimicGenUnavailable:
        return False
    return True


def make_mimicgen_env(spec: TaskSpec, seed: int, env_kwargs: Optional[dict] = None) -> gym.Env:
    """TimeLimit(ClipAction(RobosuiteLowDimEnv(spec.env_name))) for a MimicGen task (mimicgen required).

    `env_kwargs` as for make_robomimic_env (e.g. `dataset_env_kwargs(entry)` of the MimicGen file).
    """
    if spec.domain != "mimicgen":
        raise ValueError(f"make_mimicgen_env got task {spec.name!r} of domain {spec.domain!r}")
    import_mimicgen()
    from expo.envs.robomimic import make_lowdim_env

    return make_lowdim_env(spec, seed, env_kwargs)
