"""What robomimic-format datasets and the robosuite envs agree on, in one module both sides import.

The dataset side (expo/data: the registry, the robomimic_hdf5 loader) describes files; the env side
(expo/envs: robomimic.py, mimicgen.py) describes simulators. What both need lives here, and this module
imports neither expo.data nor expo.envs:
  - ROBOMIMIC_OBS_KEYS: robomimic's low-dim observation keys, in the order the suite concatenates them
    (the registry's entries read them from files, the envs build observations from them);
  - robomimic's env metadata (a file's data.attrs["env_args"]: {"env_name", "type", "env_version",
    "env_kwargs"}): ROBOSUITE_ENV_TYPE, and `env_kwargs_from_env_args`, which turns it into robosuite.make
    kwargs for the installed robosuite (old part-controller configs are converted to the 1.5 composite
    format; SUITE_CONTROLLED_KWARGS are forced);
  - which dataset an env's kwargs come from: `dataset_env_kwargs(entry_or_path)` reads them from the last
    file of a registry entry (or from a file); the training loop passes the run's registry entry, so
    neither this module nor the envs import the registry;
  - `_import_robosuite`: robosuite imported with its known-harmless log lines filtered (the conversion and
    the envs both import robosuite).
The envs re-export these names (expo/envs/robomimic.py), so `from expo.envs.robomimic import ...` works too.
"""
from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Union

if TYPE_CHECKING:
    from expo.protocol import TaskSpec

# robomimic's low-dim observation keys, in the order the suite concatenates them.
ROBOMIMIC_OBS_KEYS = ("object", "robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos")

# robosuite.make kwargs the suite always sets itself, whatever a dataset's env_args say: no rendering or
# cameras (low-dim only), sparse reward, time limits by the TimeLimit wrapper, no per-episode model reload.
SUITE_CONTROLLED_KWARGS: dict[str, Any] = dict(
    has_renderer=False,
    has_offscreen_renderer=False,
    use_camera_obs=False,
    use_object_obs=True,
    reward_shaping=False,
    ignore_done=True,
    hard_reset=False,
)
# Rendering / camera keys of a dataset's env_kwargs that are dropped (meaningless without cameras).
_DROPPED_KWARGS = (
    "camera_names", "camera_heights", "camera_widths", "camera_depths", "camera_segmentations",
    "render_camera", "render_collision_mesh", "render_visual_mesh", "render_gpu_device_id", "renderer",
    "renderer_config", "camera_info",
)
# robosuite <= 1.4.1 part-controller keys renamed in 1.5's controllers.
_LEGACY_CONTROLLER_KEYS = {"damping": "damping_ratio", "damping_limits": "damping_ratio_limits"}
ROBOSUITE_ENV_TYPE = 1  # robomimic's EnvType.ROBOSUITE_TYPE

# Messages robosuite logs on every import / make that say nothing about this suite's setup: no private
# macro file, optional packages (robosuite_models, mink) absent, the composite-controller file path.
_NOISE_PREFIXES = (
    "No private macro file found",
    "It is recommended to use a private macro file",
    "To setup, run: python",
    "Could not import robosuite_models",
    "Could not load the mink-based whole-body IK",
    "Loading controller configuration from",
    'The config has defined for the controller "',
)


class _DropRobosuiteNoise(logging.Filter):
    """Drops the known-harmless robosuite messages above; anything at ERROR or above always passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        return not str(record.msg).startswith(_NOISE_PREFIXES)


def _import_robosuite():
    """Import robosuite with its import-time warning spam filtered (idempotent)."""
    # robosuite logs through the logger named "robosuite_logs"; getLogger returns the same object
    # robosuite configures later, so a filter attached now also covers the import itself.
    logger = logging.getLogger("robosuite_logs")
    if not any(isinstance(f, _DropRobosuiteNoise) for f in logger.filters):
        logger.addFilter(_DropRobosuiteNoise())
    import robosuite

    return robosuite


def convert_controller_config(controller: Mapping[str, Any], robots) -> dict:
    """A controller config from any robosuite version as the installed robosuite's composite config.

    robosuite <= 1.4.1 files store one part config ({"type": "OSC_POSE", ...}); robosuite 1.5 expects a
    composite config ({"type": "BASIC", "body_parts": {...}}). The conversion is robosuite's own
    `refactor_composite_controller_config` (robot default composite config, arm replaced by the old part
    config plus a GRIP gripper), after renaming the pre-1.5 keys 1.5 no longer reads (robomimic v0.1's
    damping / damping_limits; control_delta -> input_type), so that their values are not silently
    replaced by defaults. Only the arm body parts a single-arm robot has are kept.
    """
    controller = copy.deepcopy(dict(controller))
    try:
        from robosuite.controllers.composite.composite_controller_factory import (
            is_part_controller_config,
            refactor_composite_controller_config,
        )
    except ImportError:  # robosuite < 1.5 reads part configs itself (MimicGen environment, untested here)
        return controller
    if not is_part_controller_config(controller):
        return controller  # already composite (robosuite >= 1.5, e.g. this suite's own files)
    for old, new in _LEGACY_CONTROLLER_KEYS.items():
        if old in controller:
            controller.setdefault(new, controller[old])
            del controller[old]
    if "control_delta" in controller:
        controller.setdefault("input_type", "delta" if controller["control_delta"] else "absolute")
        del controller["control_delta"]
    robot = robots[0] if isinstance(robots, (list, tuple)) else robots
    if not isinstance(robot, str):
        raise ValueError(f"env_args robots must name a robot, got {robots!r}")
    composite = refactor_composite_controller_config(controller, robot, ["right"])
    composite["body_parts"] = {"right": composite["body_parts"]["right"]}
    return composite


def env_kwargs_from_env_args(env_args: Union[str, Mapping[str, Any]], env_name: Optional[str] = None) -> dict:
    """robosuite.make kwargs (for the installed robosuite) from a robomimic file's data.attrs["env_args"].

    `env_args` is robomimic's env metadata (JSON text or dict): {"env_name", "type", "env_version",
    "env_kwargs"}. The result keeps the recorded task settings (robots, control_freq, controller, object
    options), converts an old controller config (`convert_controller_config`), drops rendering / camera
    keys and forces SUITE_CONTROLLED_KWARGS. With `env_name`, a file recorded in another env is an error.
    """
    if isinstance(env_args, (str, bytes)):
        try:
            env_args = json.loads(env_args)
        except json.JSONDecodeError as e:
            raise ValueError(f"env_args is not valid JSON ({e}); fix: pass the file's data.attrs['env_args']") from None
    if not isinstance(env_args, Mapping) or "env_kwargs" not in env_args:
        raise ValueError("env_args has no 'env_kwargs'; fix: pass robomimic's env metadata {env_name, type, env_kwargs}")
    if env_args.get("type", ROBOSUITE_ENV_TYPE) != ROBOSUITE_ENV_TYPE:
        raise ValueError(f"env_args type {env_args.get('type')!r} is not a robosuite env (type {ROBOSUITE_ENV_TYPE})")
    if env_name is not None and env_args.get("env_name") not in (None, env_name):
        raise ValueError(
            f"dataset was recorded in {env_args.get('env_name')!r}, the task's env is {env_name!r}; "
            "fix: use the task's own dataset"
        )
    kwargs = {k: copy.deepcopy(v) for k, v in env_args["env_kwargs"].items() if k not in _DROPPED_KWARGS}
    kwargs.pop("env_name", None)  # robomimic sometimes repeats it inside env_kwargs; make() takes it apart
    if "controller_configs" in kwargs:
        kwargs["controller_configs"] = convert_controller_config(kwargs["controller_configs"], kwargs.get("robots", "Panda"))
    kwargs.update(SUITE_CONTROLLED_KWARGS)
    return kwargs


# Dataset key -> registry entry (anything with paths(), fix_hint() and key): the table of
def dataset_env_kwargs(entry_or_path, spec: Optional[TaskSpec] = None) -> Optional[dict]:
    """robosuite.make kwargs for the env a robomimic-format dataset was recorded in; None without env_args.

    `entry_or_path`: a registry entry (expo/data/registry.py; its last file is read) or a path to an
    hdf5 file. The
    training loop passes the result to `make_env(spec, seed, env_kwargs=...)`. With `spec`, the file's
    env_name must be spec.env_name.
    """
    import h5py

    if hasattr(entry_or_path, "paths"):
        paths = entry_or_path.paths()
        if not paths:
            raise ValueError(f"dataset {entry_or_path.key!r} has no files registered")
        # A composed MimicGen entry is [human source, generated core]; the generated file names the
        # task's own env variant (e.g. Threading_D0), so its env_args are the ones to build.
        path, hint = paths[-1], entry_or_path.fix_hint()
    else:
        path, hint = Path(entry_or_path), "pass the path of a robomimic-format hdf5 file"
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: file not found; fix: {hint}")
    with h5py.File(path, "r") as f:
        raw = f["data"].attrs.get("env_args") if "data" in f else None
    if raw is None or (isinstance(raw, (str, bytes)) and not raw.strip()):
        return None
    if isinstance(raw, bytes):
        raw = raw.decode()
    return env_kwargs_from_env_args(str(raw), env_name=spec.env_name if spec is not None else None)
