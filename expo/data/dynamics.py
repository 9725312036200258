"""Do the offline data describe the dynamics the agent meets online? `python -m expo.data verify <dataset> --dynamics`.

The suite trains online in maintained stand-ins for the simulators the datasets were recorded in
(gymnasium-robotics AntMaze v4 / AdroitHand v1 on MuJoCo 3 for D4RL's mujoco_py envs, robosuite 1.5.1 for
the robosuite 1.4.1 of the robomimic and MimicGen files). This module measures how far apart they are:
for K transitions drawn with a fixed seed it puts the suite's env in the stored simulator state, applies
the stored action and compares the env's next observation with the stored one, per observation group
(median / 95th percentile / max of each transition's largest absolute error in the group, and the
fraction of transitions whose every element is within `tolerance`), plus whether the env's reward /
success agrees with the stored label.

Per format (what is compared, what cannot be):
  robomimic_hdf5  (embedded Lift / Stack, robomimic v0.1, MimicGen) `states` [T, 1 + nq + nv] per demo,
      the MuJoCo state robomimic stores, and `model_file`, the MJCF it was recorded with. When the stored
      model has the env's joints (same names, types and order: the embedded data) the env is reset from
      that xml (robomimic's reset_to: object sizes drawn at recording match) and the state is set exactly.
      Otherwise (robosuite 1.4.1 files in 1.5.1) the qpos / qvel of the joints both models have are copied
      (1.4.1's `gripper0_finger_joint1` is 1.5's `gripper0_right_finger_joint1`), the rest of the env's
      state keeps its reset values, and the joints that could not be mapped are listed. The gripper's
      command is controller state outside MuJoCo's (robosuite's grippers move it by a fixed speed towards
      the sign of each gripper action), so it is rebuilt by replaying the demo's earlier gripper actions
      through the env's own gripper. Reward: the env's success after the step against rewards[t] > 0
      (files without rewards, MimicGen's generated ones: not compared).
  d4rl_hdf5 (AntMaze)  infos/qpos [N, 15] and infos/qvel [N, 14] of row i (D4RL frame; x, y moved into the
      gymnasium maze's frame), action i, compared with observations[i + 1] on rows that continue (not a
      time-out, not the last); reward: the env's success (within 0.5 of infos/goal[i]) against rewards[i].
  minari (AntMaze)  Minari's antmaze observation is the full ant state, so the state comes from the loaded
      (D4RL-frame) observation and the step runs with gymnasium's ant physics (Minari recorded with it);
      the goal is not in the loaded arrays, so rewards are not compared.
  awac_npy (Adroit)  no simulator state is stored (one line says so); what is checked instead is the
      reward label against the binary goal test recomputed from the stored next observation
      (goal_achieved - 1), as a rate.
A file of a format that stores states but lacks them, or states of the wrong width, raises DynamicsError
(one line: the file, the problem, the fix). Results go to <data root>/dynamics/<dataset>.json.
"""
from __future__ import annotations

import dataclasses
import json
import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Optional

import numpy as np

from expo.data.errors import DatasetError
from expo.data.paths import data_root

DEFAULT_TRANSITIONS = 200
DEFAULT_TOLERANCE = 1e-4  # absolute, in the observation's units (m, rad, m/s); float32 storage is ~1e-6
DEFAULT_SEED = 0


class DynamicsError(DatasetError):
    """The data cannot be checked (no states where the format has them, a state of the wrong width...).
    One line: the file, the problem and the fix."""


@dataclasses.dataclass
class Group:
    name: str
    dims: int
    median: float
    p95: float
    max: float
    within: float  # fraction of transitions whose every element is within the tolerance


@dataclasses.dataclass
class DynamicsReport:
    dataset: str
    format: str
    env: str
    state: str                  # "exact" | "mapped" | "from observation" | "none"
    transitions: int
    seed: int
    tolerance: float
    groups: list[Group] = dataclasses.field(default_factory=list)
    reward_compared: int = 0
    reward_agree: Optional[float] = None   # fraction of compared transitions whose label the env reproduces
    label_success_rate: Optional[float] = None  # fraction of compared transitions the stored label calls a success
    notes: list[str] = dataclasses.field(default_factory=list)
    unmapped: list[str] = dataclasses.field(default_factory=list)
    files: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def dynamics_path(key: str) -> Path:
    return data_root() / "dynamics" / f"{key}.json"


# ----------------------------------------------------------------------------------- statistics

def group_stats(name: str, env: np.ndarray, stored: np.ndarray, tolerance: float, quaternion: bool = False) -> Group:
    """Per transition the largest absolute error over the group's elements, then its median, 95th
    percentile and max over transitions. Quaternions q and -q are one rotation, so a quaternion group is
    compared after giving both the same sign (robosuite's quaternions may flip sign between releases)."""
    env, stored = np.asarray(env, np.float64), np.asarray(stored, np.float64)
    if quaternion:
        sign = np.where(np.sum(env * stored, axis=1, keepdims=True) < 0, -1.0, 1.0)
        env = env * sign
    err = np.abs(env - stored).max(axis=1)
    return Group(name, int(env.shape[1]), float(np.median(err)), float(np.percentile(err, 95)), float(err.max()),
                 float(np.mean(err <= tolerance)))


def _draw(n: int, k: int, seed: int) -> np.ndarray:
    """k of n indices, without replacement, with a fixed seed; sorted so that demos are visited in order."""
    k = min(k, n)
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


# ------------------------------------------------------------------------------------ entry point

def check_dynamics(key: str, transitions: int = DEFAULT_TRANSITIONS, seed: int = DEFAULT_SEED,
                   tolerance: float = DEFAULT_TOLERANCE) -> DynamicsReport:
    """Check dataset `key` (a DATASETS key). Raises DatasetMissing / DynamicsError / DatasetError with one line."""
    from expo.data.registry import get_dataset

    if transitions < 1:
        raise ValueError(f"--transitions must be >= 1, got {transitions}")
    entry = get_dataset(key)
    start = time.perf_counter()
    checker = {"robomimic_hdf5": _robomimic, "d4rl_hdf5": _d4rl, "minari": _minari, "awac_npy": _awac}.get(entry.format)
    if checker is None:
        raise DynamicsError(f"dataset {key!r}: format {entry.format!r} has no dynamics check; fix: add one to "
                            f"expo/data/dynamics.py")
    report = checker(entry, transitions, seed, tolerance)
    report.seconds = time.perf_counter() - start
    return report


def write_report_json(report: DynamicsReport) -> Path:
    from expo.logger import atomic_write_text

    path = dynamics_path(report.dataset)
    atomic_write_text(path, json.dumps(report.to_json(), indent=1) + "\n")
    return path


def format_report(report: DynamicsReport) -> str:
    """The report as a fixed-width table, then its reward line and notes."""
    lines = [f"{report.dataset} ({report.format}) in {report.env}: {report.transitions} transitions (seed "
             f"{report.seed}), state {report.state}, tolerance {report.tolerance:g}"]
    if report.groups:
        header = ("group", "dims", "median |err|", "p95 |err|", "max |err|", "within tol")
        cells = [header] + [(g.name, str(g.dims), f"{g.median:.3g}", f"{g.p95:.3g}", f"{g.max:.3g}",
                             f"{g.within:.1%}") for g in report.groups]
        widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
        rows = ["  ".join(c[i].ljust(widths[i]) if i == 0 else c[i].rjust(widths[i]) for i in range(len(header)))
                for c in cells]
        rows.insert(1, "  ".join("-" * w for w in widths))
        lines += rows
    if report.reward_agree is not None:
        lines.append(f"reward/success: the env agrees with the stored label on {report.reward_agree:.1%} of "
                     f"{report.reward_compared} transitions (stored label success on {report.label_success_rate:.1%})")
    lines += [f"not mapped: {u}" for u in report.unmapped]
    lines += [f"note: {n}" for n in report.notes]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------- robosuite

def _spec_for(entry, env_name: Optional[str]):
    """The protocol row whose env the data were recorded in (a task that uses the dataset, else one
    that runs in the recorded env)."""
    from expo.protocol import TASKS

    for spec in TASKS.values():
        if spec.dataset == entry.key:
            return spec
    for spec in TASKS.values():
        if env_name is not None and spec.env_name == env_name:
            return spec
    return None


# robosuite 1.5 names a single arm's gripper parts "gripper0_right_*", 1.4.1 named them "gripper0_*".
_GRIPPER_RE = re.compile(r"^(gripper\d+)_(?:right_|left_)?")


def _joint_key(name: str) -> str:
    return _GRIPPER_RE.sub(r"\1_", name)


_SIZES = {"free": (7, 6), "ball": (4, 3), "slide": (1, 1), "hinge": (1, 1)}


def xml_joint_layout(xml: str) -> list[tuple[str, str]]:
    """(name, type) of the joints of an MJCF model in MuJoCo's compiled order (bodies depth-first, a body's
    own joints before its children's), with joint types resolved through <default> classes. Read
    without compiling: a robosuite 1.4.1 model names mesh files of the machine it was recorded on."""
    root = ET.fromstring(xml)
    defaults: dict[str, dict] = {}

    def read_defaults(node, inherited: dict, name: str):
        attrs = dict(inherited)
        j = node.find("joint")
        if j is not None:
            attrs.update(j.attrib)
        defaults[name] = attrs
        for child in node.findall("default"):
            read_defaults(child, attrs, child.get("class", name))

    for d in root.findall("default"):
        read_defaults(d, {}, d.get("class", "main"))
    out = []

    def visit(body, cls: str):
        for el in body:
            if el.tag == "freejoint":
                out.append((el.get("name", ""), "free"))
            elif el.tag == "joint":
                attrs = {**defaults.get(el.get("class", cls), defaults.get("main", {})), **el.attrib}
                out.append((el.get("name", ""), attrs.get("type", "hinge")))
        for el in body.findall("body"):
            visit(el, el.get("childclass", cls))

    world = root.find("worldbody")
    if world is not None:
        visit(world, "main")
    return out


def _layout(joints: list[tuple[str, str]]) -> dict[str, tuple[str, int, int]]:
    """joint key -> (type, qpos address, qvel address)."""
    qa = va = 0
    out = {}
    for name, typ in joints:
        out[_joint_key(name)] = (typ, qa, va)
        qa += _SIZES[typ][0]
        va += _SIZES[typ][1]
    return out


def _env_joints(sim) -> list[tuple[str, str]]:
    import mujoco

    m = sim.model._model
    names = {mujoco.mjtJoint.mjJNT_FREE: "free", mujoco.mjtJoint.mjJNT_BALL: "ball",
             mujoco.mjtJoint.mjJNT_SLIDE: "slide", mujoco.mjtJoint.mjJNT_HINGE: "hinge"}
    return [(mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, j) or "", names[m.jnt_type[j]]) for j in range(m.njnt)]


def _robomimic_groups(core) -> list[tuple[str, int, bool]]:
    """(group name, width, is a quaternion) in observation order: robomimic's keys, "object" split into
    the robosuite observables it is made of when the suite knows its layout."""
    groups = []
    for key in core.obs_keys:
        width = core.last_obs_dict[key].size
        if key == "object" and core.object_layout is not None:
            sizes = {n: np.asarray(core.raw._observables[n].obs).size for n in core.object_layout}
            groups += [(n, sizes[n], n.endswith("quat")) for n in core.object_layout]
        else:
            groups.append((key, width, key.endswith("quat")))
    return groups


def _robomimic(entry, transitions: int, seed: int, tolerance: float) -> DynamicsReport:
    import h5py

    from expo.data.robomimic_hdf5 import demo_names, read_env_args

    paths = entry.paths()
    for p in paths:
        if not Path(p).is_file():
            from expo.data.errors import DatasetMissing

            raise DatasetMissing(f"{p}: file not found; fix: {entry.fix_hint()}")
    # every (file, demo, t): the draw is over all stored transitions of all files
    index, files = [], []
    for fi, path in enumerate(paths):
        with h5py.File(path, "r") as f:
            if "data" not in f:
                raise DynamicsError(f"{path}: no 'data' group, not a robomimic-format file; fix: {entry.replace_hint()}")
            for name in demo_names(f["data"]):
                g = f["data"][name]
                if "states" not in g:
                    raise DynamicsError(f"{path}: data/{name} has no 'states' (the simulator state per step), so the "
                                        f"dynamics cannot be checked; fix: {entry.replace_hint()}")
                index += [(fi, name, t) for t in range(len(g["actions"]))]
        files.append(str(path))
    picked = [index[i] for i in _draw(len(index), transitions, seed)]
    env_args = read_env_args(paths[-1])
    env_name = (env_args or {}).get("env_name")
    spec = _spec_for(entry, env_name)
    if spec is None:
        raise DynamicsError(f"{paths[-1]}: recorded in {env_name!r}, which no task of expo/protocol.py runs in; "
                            f"fix: add the task, or check a dataset of a known env")
    core, env_note = _robosuite_env(entry, spec, env_args)
    report = DynamicsReport(entry.key, entry.format, core.env_name + " (robosuite " + _robosuite_version() + ")",
                            "exact", len(picked), seed, tolerance, files=files)
    if env_note:
        report.notes.append(env_note)
    env_layout = _layout(_env_joints(core.raw.sim))
    env_width = 1 + core.raw.sim.model.nq + core.raw.sim.model.nv
    env_joints = [(_joint_key(n), ty) for n, ty in _env_joints(core.raw.sim)]
    groups = _robomimic_groups(core)
    got, want, reward_env, reward_file = [], [], [], []
    loaded_xml, unmapped, missing_rewards = None, set(), 0
    handles = [h5py.File(p, "r") for p in paths]
    try:
        for (fi, name, t) in picked:
            g = handles[fi]["data"][name]
            state = np.asarray(g["states"][t], np.float64)
            xml = g.attrs.get("model_file")
            xml = xml.decode() if isinstance(xml, bytes) else xml
            stored_joints = xml_joint_layout(xml) if xml else None
            first = np.asarray(g["states"][0], np.float64)
            if stored_joints is None or [(_joint_key(n), ty) for n, ty in stored_joints] == env_joints:
                # the stored model is the env's: reload it (object sizes drawn at recording) and set exactly
                if state.shape != (env_width,):
                    raise DynamicsError(f"{paths[fi]}: data/{name}/states has width {state.size}, the env's MuJoCo "
                                        f"state [time, qpos, qvel] has {env_width}; fix: {entry.replace_hint()}")
                if xml and xml != loaded_xml:
                    from expo.envs.robomimic import _seeded_global_numpy

                    with _seeded_global_numpy(seed):
                        core.raw.reset_from_xml_string(core.raw.edit_model_xml(xml))
                    loaded_xml = xml
            else:
                report.state = "mapped"
                stored = _layout(stored_joints)
                width = 1 + sum(_SIZES[ty][0] + _SIZES[ty][1] for _, ty in stored_joints)
                if state.shape != (width,):
                    raise DynamicsError(f"{paths[fi]}: data/{name}/states has width {state.size}, its model_file "
                                        f"gives [time, qpos, qvel] = {width}; fix: {entry.replace_hint()}")
                nq = sum(_SIZES[ty][0] for _, ty in stored_joints)
                state = _mapped_state(core.raw.sim, env_layout, stored, state, nq, unmapped)
                first = _mapped_state(core.raw.sim, env_layout, stored, first, nq, unmapped)
            actions = np.clip(np.asarray(g["actions"][:t + 1], np.float64), core.action_space.low,
                              core.action_space.high)
            first_qpos = first[1:1 + core.raw.sim.model.nq]
            core.raw.sim.set_state_from_flattened(state)
            core.raw.sim.forward()
            _restore_controllers(core, first_qpos, actions[:t])
            core.step(actions[t])
            got.append(np.concatenate([core.last_obs_dict[k] for k in core.obs_keys]))
            if "next_obs" in g:
                want.append(np.concatenate([np.asarray(g["next_obs"][k][t], np.float64).ravel() for k in core.obs_keys]))
            elif t + 1 < len(g["actions"]):
                want.append(np.concatenate([np.asarray(g["obs"][k][t + 1], np.float64).ravel() for k in core.obs_keys]))
            else:  # MimicGen's files store no next_obs and the last step has no successor
                got.pop()
                continue
            if "rewards" in g:
                reward_env.append(core.success())
                reward_file.append(float(g["rewards"][t]) > 0)
            else:
                missing_rewards += 1
    except KeyError as e:
        raise DynamicsError(f"{paths[fi]}: data/{name} lacks {e}; fix: {entry.replace_hint()}") from None
    finally:
        for h in handles:
            h.close()
        core.close()
    if not got:
        raise DynamicsError(f"{paths[0]}: no drawn transition has a stored next observation; fix: --transitions more")
    got, want = np.stack(got), np.stack(want)
    if got.shape != want.shape:
        raise DynamicsError(f"{paths[0]}: stored observations have width {want.shape[1]}, the env's {got.shape[1]}; "
                            f"fix: {entry.replace_hint()}")
    lo = 0
    for gname, width, quat in groups:
        report.groups.append(group_stats(gname, got[:, lo:lo + width], want[:, lo:lo + width], tolerance, quat))
        lo += width
    report.transitions = len(got)
    _rewards(report, reward_env, reward_file)
    if missing_rewards:
        report.notes.append(f"{missing_rewards} drawn transitions come from demos without rewards (MimicGen's "
                            f"generated files): their success is not compared")
    if report.state == "mapped":
        report.notes.append("joint qpos/qvel mapped by name from the stored model (another robosuite's layout); "
                            "model parameters (object sizes, masses, controller gains) are the env's own")
        report.unmapped = sorted(unmapped)
    return report


def _robosuite_version() -> str:
    from expo.envs.robomimic import _import_robosuite

    return _import_robosuite().__version__


def _robosuite_env(entry, spec, env_args):
    """The suite's env for the data, built from the file's env_args as a run builds it (MimicGen's
    Threading_D0 / Stack_D0: the suite's own robosuite 1.5 envs, expo/envs/mimicgen_tasks, or
    MimicGen's with EXPO_MIMICGEN=package), and no note."""
    from expo.envs.robomimic import RobosuiteLowDimEnv, _import_robosuite, dataset_env_kwargs

    _import_robosuite()  # first, with its log noise filtered (the kwargs conversion imports robosuite too)
    kwargs = dataset_env_kwargs(entry)
    if spec.domain == "mimicgen":
        from expo.envs.mimicgen import register_mimicgen_envs

        register_mimicgen_envs()  # Threading_D0 / Stack_D0 into robosuite's registry (the chosen backend)
    core = RobosuiteLowDimEnv(spec.env_name, seed=0, env_kwargs=kwargs)
    core.reset(seed=0)  # fills last_obs_dict (the group widths) and the controllers' state
    return core, None


def _mapped_state(sim, env_layout, stored_layout, state, nq, unmapped: set) -> np.ndarray:
    """The env's flattened state [time, qpos, qvel] with the stored joints that it also has copied in
    (the others keep the env's current values), noting what was not mapped."""
    qpos, qvel = np.array(sim.data.qpos), np.array(sim.data.qvel)
    s_qpos, s_qvel = state[1:1 + nq], state[1 + nq:]
    for key, (typ, qa, va) in stored_layout.items():
        if key not in env_layout or env_layout[key][0] != typ:
            unmapped.add(f"stored joint {key} ({typ}): not in the env's model")
            continue
        _, eqa, eva = env_layout[key]
        nqj, nvj = _SIZES[typ]
        qpos[eqa:eqa + nqj] = s_qpos[qa:qa + nqj]
        qvel[eva:eva + nvj] = s_qvel[va:va + nvj]
    for key, (typ, _, _) in env_layout.items():
        if key not in stored_layout:
            unmapped.add(f"env joint {key} ({typ}): not in the stored model, kept at its reset value")
    return np.concatenate([[state[0]], qpos, qvel])


def _restore_controllers(core, first_qpos: np.ndarray, earlier_actions: np.ndarray) -> None:
    """Rebuild the robosuite controller state that MuJoCo's state does not hold, from the demo itself:
    each gripper's command (robosuite's grippers move it by a fixed speed towards the sign of every
    gripper action, from 0 at reset) by replaying the demo's earlier actions through the env's own
    gripper, and the arm controllers' nullspace posture target (OSC pulls the joints towards the pose
    the episode started in) from the demo's first state. Without these a stored state stepped again
    differs from its stored successor by up to ~1e-2 in joint velocity."""
    for robot in core.raw.robots:
        cc = robot.composite_controller
        for part, gripper in cc.grippers.items():
            start, end = cc._action_split_indexes[part]
            gripper.current_action = np.zeros(gripper.dof)
            for a in earlier_actions:
                gripper.format_action(np.clip(a[start:end], -1.0, 1.0))
        for part, controller in cc.part_controllers.items():
            # The controllers cache the robot's kinematics (Jacobians, mass matrix, end-effector pose) and
            # re-read them only when new_update is set, which every env step leaves set but a reset does not:
            # without this, the first transition checked in a fresh env sets its goal from the pose at reset.
            controller.new_update = True
            if part not in cc.grippers and hasattr(controller, "initial_joint") and hasattr(controller, "qpos_index"):
                controller.initial_joint = np.array(first_qpos[controller.qpos_index], np.float64)


def _rewards(report: DynamicsReport, env_success, file_success) -> None:
    if len(file_success):
        env_success, file_success = np.asarray(env_success, bool), np.asarray(file_success, bool)
        report.reward_compared = int(len(file_success))
        report.reward_agree = float(np.mean(env_success == file_success))
        report.label_success_rate = float(np.mean(file_success))


# ----------------------------------------------------------------------------------------- antmaze

ANT_GROUPS = (("torso xy", 0, 2, False), ("torso z", 2, 3, False), ("torso orientation", 3, 7, True),
              ("joint angles", 7, 15, False), ("torso linear velocity", 15, 18, False),
              ("torso angular velocity", 18, 21, False), ("joint velocities", 21, 29, False))


def _antmaze_env(maze: str, physics: str):
    from expo.envs.antmaze import D4RLAntMaze

    env = D4RLAntMaze(maze, seed=0, physics=physics, goal_noise=False)
    env.reset(seed=0)
    return env


def _ant_step(env, maze: str, qpos, qvel, action) -> np.ndarray:
    """Set the ant to (qpos, qvel) given in the D4RL frame, step, return the D4RL-frame observation (float64)."""
    from expo.envs.antmaze import d4rl_xy_to_env, env_xy_to_d4rl

    qpos = np.array(qpos, np.float64)
    qpos[:2] = d4rl_xy_to_env(qpos[:2], maze)
    env.ant.set_state(qpos, np.asarray(qvel, np.float64))
    env.ant.do_simulation(np.clip(np.asarray(action, np.float64), -1.0, 1.0), env.ant.frame_skip)
    data = env.ant.data
    return np.concatenate([env_xy_to_d4rl(data.qpos[:2], maze), data.qpos[2:15], data.qvel[:14]])


def _ant_groups(report, got, want, tolerance):
    for name, lo, hi, quat in ANT_GROUPS:
        report.groups.append(group_stats(name, got[:, lo:hi], want[:, lo:hi], tolerance, quat))


def _d4rl(entry, transitions: int, seed: int, tolerance: float) -> DynamicsReport:
    import h5py

    from expo.data.errors import DatasetMissing
    from expo.envs.antmaze import SUCCESS_RADIUS

    path = entry.path()
    if not path.is_file():
        raise DatasetMissing(f"{path}: file not found; fix: {entry.fix_hint()}")
    spec = _spec_for(entry, None)
    maze = spec.env_kwargs["maze"]
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DynamicsError(f"{path}: not a readable HDF5 file ({e}); fix: {entry.replace_hint()}") from None
    with f:
        for k in ("observations", "actions", "rewards", "timeouts", "infos/qpos", "infos/qvel"):
            if k not in f:
                what = "the simulator state per step" if k.startswith("infos/q") else "a D4RL array"
                raise DynamicsError(f"{path}: no '{k}' ({what}), so the dynamics cannot be checked; "
                                    f"fix: {entry.replace_hint()}")
        n = f["observations"].shape[0]
        timeouts = np.asarray(f["timeouts"][()]).reshape(-1).astype(bool)
        rows = np.flatnonzero(~timeouts[:-1])  # rows whose next row continues the episode (the loader's rows)
        rows = rows[_draw(len(rows), transitions, seed)]
        qpos, qvel = f["infos/qpos"], f["infos/qvel"]
        if qpos.shape != (n, 15) or qvel.shape != (n, 14):
            raise DynamicsError(f"{path}: infos/qpos {qpos.shape} / infos/qvel {qvel.shape}, expected ({n}, 15) / "
                                f"({n}, 14) (the ant's state); fix: {entry.replace_hint()}")
        read = lambda ds, idx: np.asarray(ds[np.asarray(idx)], np.float64)  # noqa: E731  h5py fancy index: sorted
        qp, qv, act = read(qpos, rows), read(qvel, rows), read(f["actions"], rows)
        nxt = read(f["next_observations"], rows) if "next_observations" in f else read(f["observations"], rows + 1)
        rewards = np.asarray(f["rewards"][()]).reshape(-1)[rows]
        goals = read(f["infos/goal"], rows) if "infos/goal" in f else None
    env = _antmaze_env(maze, "d4rl")
    report = DynamicsReport(entry.key, entry.format, f"gymnasium-robotics AntMaze v4 ({maze}, D4RL physics)", "exact",
                            len(rows), seed, tolerance, files=[str(path)])
    got = np.stack([_ant_step(env, maze, qp[i], qv[i], act[i]) for i in range(len(rows))])
    env.close()
    _ant_groups(report, got, nxt, tolerance)
    if goals is None:
        report.notes.append("no infos/goal: rewards not compared")
    else:
        success = np.linalg.norm(got[:, :2] - goals, axis=1) <= SUCCESS_RADIUS
        _rewards(report, success, rewards > 0)
    return report


def _minari(entry, transitions: int, seed: int, tolerance: float) -> DynamicsReport:
    from expo.data import load_entry

    data = load_entry(entry)  # DatasetMissing / DatasetError with their own one line
    maze = entry.options["maze"]
    rows = _draw(len(data["observations"]), transitions, seed)
    obs, nxt, act = (np.asarray(data[k][rows], np.float64) for k in ("observations", "next_observations", "actions"))
    env = _antmaze_env(maze, "gymnasium")
    got = np.stack([_ant_step(env, maze, o[:15], o[15:29], a) for o, a in zip(obs, act)])
    env.close()
    report = DynamicsReport(entry.key, entry.format, f"gymnasium-robotics AntMaze v4 ({maze}, gymnasium physics)",
                            "from observation", len(rows), seed, tolerance,
                            files=[entry.options.get("dataset_id", entry.key)])
    _ant_groups(report, got, nxt, tolerance)
    report.notes.append("Minari's observation is the full ant state: the state is set from the stored (float32) "
                        "observation; the goal is not in the loaded arrays, so rewards are not compared")
    return report


# ------------------------------------------------------------------------------------------ adroit

def adroit_goal(hand: str, obs: np.ndarray) -> np.ndarray:
    """The binary task's goal test (expo/envs/adroit.py goal_achieved) from observations [N, D] alone,
    using gymnasium-robotics' (= mj_envs') observation layouts."""
    from expo.envs.adroit import DOOR_OPEN, PEN_COS_MIN, PEN_POS_TOL, RELOCATE_TOL

    if hand == "pen":  # qpos[:-6] (24), obj_pos, obj_vel (6), obj_orien, desired_orien, pos diff, orien diff
        return (np.linalg.norm(obs[:, 39:42], axis=1) < PEN_POS_TOL) & \
            (np.sum(obs[:, 33:36] * obs[:, 36:39], axis=1) > PEN_COS_MIN)
    if hand == "door":  # qpos[1:-2] (27), latch, door hinge, ...
        return obs[:, 28] >= DOOR_OPEN
    if hand == "relocate":  # qpos[:-6] (30), palm - obj, palm - target, obj - target
        return np.linalg.norm(obs[:, 36:39], axis=1) < RELOCATE_TOL
    raise ValueError(f"unknown Adroit task {hand!r}")


def _awac(entry, transitions: int, seed: int, tolerance: float) -> DynamicsReport:
    from expo.data import load_entry

    hand = entry.key.split("_")[1]
    data = load_entry(entry)
    rows = _draw(len(data["observations"]), transitions, seed)
    success = adroit_goal(hand, np.asarray(data["next_observations"][rows], np.float64))
    labels = np.asarray(data["rewards"][rows], np.float64) > -0.5  # goal_achieved - 1: 0 is a success
    report = DynamicsReport(entry.key, entry.format, f"gymnasium-robotics AdroitHand{hand.capitalize()} v1", "none",
                            len(rows), seed, tolerance, files=[str(p) for p in entry.paths()])
    report.notes.append(f"{entry.key}: the AWAC files store no simulator state, so the dynamics are not checked; "
                        f"checked instead: the reward labels against the goal test recomputed from the stored next "
                        f"observations")
    _rewards(report, success, labels)
    return report
