"""Minari antmaze datasets (optional backend) -> the suite's D4RL-frame transition arrays.

Minari's D4RL/antmaze/<maze>-<data>-v1 datasets are NOT the D4RL files: they were re-recorded with a
new goal-reaching SAC policy in gymnasium-robotics AntMaze_{Medium,Large}[_Diverse_GR]-v4
(Farama-Foundation/minari-dataset-generation-scripts, scripts/D4RL/antmaze: continuing_task=True,
reset_target=False, an episode is cut when the goal is reached), with gymnasium's ant physics (gear
150, dt 0.05: use the env with physics="gymnasium" to match them). Episodes hold dict observations
{observation [T+1, 27], achieved_goal [T+1, 2], desired_goal [T+1, 2]} in gymnasium's frame.

Their maps list D4RL's rows in D4RL's order, and gymnasium's y axis runs against the row index, so
their world is D4RL's mirrored in y. This loader reads the dataset's maze_map (its env spec, else the
registered env's default), checks it against D4RL's walls, and converts with expo/envs/antmaze.py's
functions only: mirrored maps -> minari_obs_to_d4rl + mirror_ant_action; maps already in this
suite's orientation (rows reversed) -> env_xy_to_d4rl. Anything else is a DatasetError.

Transitions: s = obs[t], s' = obs[t + 1] within each episode (Minari stores T + 1 observations);
reward = 1 within 0.5 (D4RL's radius; Minari's env used 0.45) of desired_goal at s', then
spec.transform_reward; a success is a terminal (mask 0) as in the env (terminate_on == "success");
dones at terminals and at each episode's last step; actions clipped to +-(1 - 1e-5). num_demos must
be None (whole dataset).

Errors: a dataset that is not in Minari's store raises DatasetMissing (fix: download it); one that is
there but cannot be read (a cut-off main_data.hdf5, a damaged metadata.json, episodes of another
layout) raises DatasetError (fix: download it again, --force). Minari reads lazily, so episodes are
read inside the same guard as load_dataset.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np

from expo.data.errors import DatasetError, DatasetMissing
from expo.envs import antmaze
from expo.protocol import TaskSpec

ACTION_CLIP = 1.0 - 1e-5


def _maze_map(dataset) -> Optional[list]:
    env_spec = getattr(dataset.spec, "env_spec", None)
    if env_spec is None:
        return None
    if "maze_map" in (env_spec.kwargs or {}):
        return env_spec.kwargs["maze_map"]
    import gymnasium as gym

    try:
        return gym.spec(env_spec.id).kwargs.get("maze_map")
    except gym.error.Error:
        return None


def frame_of(maze_map, maze: str) -> str:
    """'mirrored' (D4RL rows in order: Minari's datasets) or 'suite' (rows reversed: this suite's env)."""
    walls = np.array([[1 if c == 1 else 0 for c in row] for row in maze_map])
    d4rl = antmaze.wall_map(maze)
    if walls.shape == d4rl.shape and np.array_equal(walls, d4rl):
        return "mirrored"
    if walls.shape == d4rl.shape and np.array_equal(walls, d4rl[::-1]):
        return "suite"
    raise ValueError(f"maze_map {walls.shape} has neither D4RL's {maze} walls nor their row reversal")


def dataset_dir(dataset_id: str) -> Path:
    """Where Minari keeps `dataset_id` (minari.storage.get_dataset_path's rule, without its side effect
    of creating the store's root folder: checking for a dataset must write nothing)."""
    root = os.environ.get("MINARI_DATASETS_PATH")
    return (Path(root) if root is not None else Path.home() / ".minari" / "datasets") / dataset_id


def load_dataset(entry, spec: Optional[TaskSpec] = None, num_demos: Optional[int] = None, seed: int = 0):
    dataset_id = entry.options.get("dataset_id")
    where = f"minari dataset {dataset_id!r} ({dataset_dir(dataset_id or '')})"

    def fail(what: str, fix: Optional[str] = None) -> DatasetError:
        return DatasetError(" ".join(f"{where}: {what}; fix: {fix or entry.replace_hint()}".splitlines()))

    if not dataset_id:
        raise fail("registry entry has no options['dataset_id']", "add it to expo/data/registry.py")
    if num_demos is not None:
        raise fail(f"dataset.num_demos={num_demos} was asked for, but antmaze datasets are used whole",
                   "leave dataset.num_demos unset (none)")
    maze = spec.env_kwargs["maze"] if spec is not None else entry.options.get("maze")
    if maze not in antmaze.MAZES:
        raise fail(f"cannot tell the maze (spec / options['maze'] gave {maze!r})", "expo/data/registry.py")
    try:
        import minari
    except ImportError:
        raise fail("the minari package is not installed", f"`pip install minari`, then {entry.fix_hint()}") from None
    if not (dataset_dir(dataset_id) / "data").is_dir():  # what minari.load_dataset looks for
        raise DatasetMissing(f"{where}: not downloaded; fix: {entry.fix_hint()}")

    def unreadable(e: Exception) -> DatasetError:
        return fail(f"it is there but cannot be read ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})")

    def episodes(dataset):
        """dataset.iterate_episodes(), one at a time (memory), with minari's read errors as DatasetError:
        minari opens main_data.hdf5 only here, so a cut-off file first fails while iterating."""
        it = iter(dataset.iterate_episodes())
        while True:
            try:
                ep = next(it)
            except StopIteration:
                return
            except Exception as e:  # noqa: BLE001 - OSError, KeyError, ValueError or minari's own errors
                raise unreadable(e) from None
            yield ep

    try:
        dataset = minari.load_dataset(dataset_id)
        maze_map = _maze_map(dataset)
    except Exception as e:  # noqa: BLE001 - minari raises FileNotFoundError / ValueError / its own errors
        raise unreadable(e) from None

    if maze_map is None:
        raise fail("its env spec gives no maze_map, so its frame cannot be checked")
    try:
        frame = frame_of(maze_map, maze)
    except ValueError as e:
        raise fail(str(e)) from None

    parts = {k: [] for k in ("observations", "next_observations", "actions", "raw_rewards", "terminal", "last")}
    for ep in episodes(dataset):
        o = ep.observations
        if not isinstance(o, dict) or not {"observation", "achieved_goal", "desired_goal"} <= set(o):
            raise fail(f"episode {ep.id} observations are not antmaze dicts (observation/achieved_goal/desired_goal)")
        try:
            obs, ach, goal = (np.asarray(o[k], dtype=np.float64) for k in ("observation", "achieved_goal", "desired_goal"))
            actions = np.asarray(ep.actions, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise fail(f"episode {ep.id} holds non-numeric observations or actions ({e})") from None
        steps = len(actions)
        if steps == 0 or obs.shape != (steps + 1, 27) or ach.shape != (steps + 1, 2) or goal.shape != (steps + 1, 2) \
                or actions.shape != (steps, 8):
            raise fail(f"episode {ep.id} has observation {obs.shape}, achieved_goal {ach.shape}, actions "
                       f"{actions.shape}; expected T+1 x 27, T+1 x 2, T x 8 with T >= 1")
        if not (np.all(np.isfinite(obs)) and np.all(np.isfinite(ach)) and np.all(np.isfinite(actions))):
            raise fail(f"episode {ep.id} contains NaN or inf")
        if frame == "mirrored":
            full = antmaze.minari_obs_to_d4rl(ach, obs, maze)
            actions = antmaze.mirror_ant_action(actions)
        else:
            full = np.concatenate([antmaze.env_xy_to_d4rl(ach, maze), obs], axis=1)
        # Distances are the same in every frame (translation or mirror), so use Minari's own.
        success = np.linalg.norm(ach[1:] - goal[1:], axis=1) <= antmaze.SUCCESS_RADIUS
        parts["observations"].append(full[:-1])
        parts["next_observations"].append(full[1:])
        parts["actions"].append(actions)
        parts["raw_rewards"].append(success.astype(np.float64))
        parts["terminal"].append(success)
        parts["last"].append(np.arange(steps) == steps - 1)
    if not parts["actions"]:
        raise fail("it has no episodes")

    cat = {k: np.concatenate(v) for k, v in parts.items()}
    terminal = cat["terminal"] if spec is None or spec.terminate_on == "success" else np.zeros_like(cat["terminal"])
    dones = terminal | cat["last"]
    starts = np.r_[True, dones[:-1]]
    rewards = cat["raw_rewards"] if spec is None else spec.transform_reward(cat["raw_rewards"])
    if spec is not None and (cat["observations"].shape[1], cat["actions"].shape[1]) != (spec.obs_dim, spec.act_dim):
        raise fail(f"converted dims {cat['observations'].shape[1]}/{cat['actions'].shape[1]} != task's "
                   f"{spec.obs_dim}/{spec.act_dim}")
    return {
        "observations": cat["observations"].astype(np.float32),
        "next_observations": cat["next_observations"].astype(np.float32),
        "actions": np.clip(cat["actions"], -ACTION_CLIP, ACTION_CLIP).astype(np.float32),
        "rewards": np.asarray(rewards, dtype=np.float32),
        "masks": (~terminal).astype(np.float32),
        "dones": dones.astype(np.float32),
        "episode_starts": starts,
    }
