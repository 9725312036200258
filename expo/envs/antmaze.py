"""AntMaze medium / large (D4RL antmaze-*-v2) on gymnasium-robotics AntMaze v4 and MuJoCo 3.

What D4RL's antmaze-{medium,large}-{play,diverse}-v2 evaluation env is (d4rl/locomotion/__init__.py,
maze_env.py, ant.py, goal_reaching_env.py in Farama-Foundation/D4RL):
  - maps BIG_MAZE_TEST (medium, 8x8) and HARDEST_MAZE_TEST (large, 9x12), maze_size_scaling 4,
    one reset cell 'r' at (row 1, col 1) and one goal cell 'g' at (6, 6) / (7, 9); eval=True, so the
    observation has no goal in it and the episode ends (done) once the ant is within 0.5 of the goal;
    sparse reward 1.0 within 0.5, else 0.0; max_episode_steps 1000.
  - D4RL's frame: the wall of cell (row i, col j) is centred at (j*4 - 4*c_r, i*4 - 4*r_r) where
    (r_r, c_r) = the 'r' cell, i.e. y grows with the row index and the start cell is the origin.
  - start: non_zero_reset=False, so x, y = 0 (the 'r' cell) plus the ant's reset noise:
    qpos += U(-0.1, 0.1) on every coordinate (x, y included), qvel += 0.1 * N(0, 1).
  - goal: v2_resets=True re-draws the target at EVERY reset: goal = centre of the 'g' cell
    + U(0, 1) + U(0, 0.5) on x and on y independently (maze_env.goal_sampler: _rowcol_to_xy with
    add_random_noise adds U(0, 0.25*4), then U(0, 0.5)*0.25*4 is added). So the evaluation goal is
    a fixed cell with this noise, not a fixed point. D4RL draws it from the global np.random; this
    module draws it from the env's seeded np_random (same distribution, reproducible).
  - the D4RL datasets are recorded in this same frame (generate_dataset.py uses the same MazeEnv; the
    dataset maps BIG_MAZE / HARDEST_MAZE have their 'r' cell at (1, 1) too), observation
    = qpos[:15] + qvel[:14] (29 dims, x and y first).

gymnasium-robotics (installed maze_v4.py / ant_maze_v4.py) differs in ways this module undoes:
  - its cell_rowcol_to_xy puts the maze centre at the origin with y DEcreasing with the row index.
    Building its maze from the D4RL map with the rows in reverse order makes the physical layout
    identical to D4RL's, and the two frames then differ by a pure translation (derived in
    `env_offset` below; medium: d4rl = env + (10, 10), large: d4rl = env + (18, 12)). The
    translation lives only in `env_xy_to_d4rl` / `d4rl_xy_to_env`; tests/test_antmaze_env.py checks
    it against gymnasium's own cell centres and against the wall geoms in the compiled MuJoCo model.
  - it adds U(-1, 1) noise to both goal and reset position (position_noise_range 0.25 * 4), uses a
    0.45 success radius, resamples goals in continuing mode (continuing_task / reset_target) and has
    reset_noise_scale 0 for the ant. This module sets position_noise_range to 0, places start and
    goal itself (D4RL's distribution above), sets the ant's reset noise to D4RL's 0.1, and computes
    reward / termination / info["success"] itself with radius 0.5 in the D4RL frame.
  - its ant (gymnasium ant.xml) has timestep 0.01 (dt 0.05 with frame_skip 5), motor gear 150 with
    ctrlrange [-1, 1], and MuJoCo's default contact solimp (0.9, 0.95, 0.001); D4RL's ant.xml has
    timestep 0.02 (dt 0.1), gear 1 with ctrlrange [-30, 30] behind NormalizedBoxEnv (so torque
    = 30 * action), and solimp (0.8, 0.8, 0.01) on every geom, walls and floor included. Masses,
    inertias, joint ranges, damping, armature, friction and initial pose are identical (compared
    field by field on the two compiled models). physics="d4rl" (default) sets timestep 0.02, gear
    30 and that solimp on the compiled model, so an action means the same torque for the same time
    as in the D4RL data; physics="gymnasium" keeps gymnasium's ant (what Minari's antmaze data were
    recorded with). MuJoCo 3.3 vs mujoco_py / MuJoCo 2.1 remains a (small) difference either way.

Optional backend="d4rl": the original env, `gym.make("antmaze-<maze>-<data>-v2")` from d4rl, wrapped to
this module's conventions. It needs d4rl + mujoco_py (MuJoCo 2.1 binaries in ~/.mujoco/mujoco210,
Cython < 3, numpy < 2, gym 0.23.1, e.g. a separate venv:
`pip "numpy<2" "cython<3" gym==0.23.1 mujoco-py==2.1.2.14 git+https://github.com/Farama-Foundation/D4RL`)
and is imported lazily; when it is absent, make_antmaze_env raises one clear RuntimeError.
"""
from __future__ import annotations

from typing import Optional

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding

from expo.envs.wrappers import ClipAction, TimeLimit
from expo.protocol import TaskSpec

R, G = "r", "g"
SCALE = 4.0            # D4RL maze_size_scaling (gymnasium-robotics AntMaze uses the same 4)
SUCCESS_RADIUS = 0.5   # D4RL goal_reaching_env: sparse reward and eval termination within 0.5
RESET_NOISE = 0.1      # D4RL AntEnv.reset_model: qpos U(-0.1, 0.1), qvel 0.1 * N(0, 1)
GOAL_NOISE = (1.0, 0.5)  # D4RL goal_sampler: + U(0, 0.25*scale) then + U(0, 0.5)*0.25*scale per axis

# D4RL's evaluation maps of antmaze-*-v2 (maze_env.BIG_MAZE_TEST / HARDEST_MAZE_TEST), row 0 first,
# in D4RL's orientation (y grows with the row). The dataset maps (BIG_MAZE / HARDEST_MAZE) have the
# same walls and the same 'r' cell; they only mark more 'g' cells (used when recording data).
MAZES: dict[str, tuple[tuple, ...]] = {
    "medium": (
        (1, 1, 1, 1, 1, 1, 1, 1),
        (1, R, 0, 1, 1, 0, 0, 1),
        (1, 0, 0, 1, 0, 0, 0, 1),
        (1, 1, 0, 0, 0, 1, 1, 1),
        (1, 0, 0, 1, 0, 0, 0, 1),
        (1, 0, 1, 0, 0, 1, 0, 1),
        (1, 0, 0, 0, 1, 0, G, 1),
        (1, 1, 1, 1, 1, 1, 1, 1),
    ),
    "large": (
        (1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1),
        (1, R, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1),
        (1, 0, 1, 1, 0, 1, 0, 1, 0, 1, 0, 1),
        (1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1),
        (1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 0, 1),
        (1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 1),
        (1, 1, 0, 1, 0, 1, 0, 1, 0, 1, 1, 1),
        (1, 0, 0, 1, 0, 0, 0, 1, 0, G, 0, 1),
        (1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1),
    ),
}


def _check_maze(maze: str) -> tuple[tuple, ...]:
    if maze not in MAZES:
        raise ValueError(f"unknown antmaze maze {maze!r}; known: {', '.join(MAZES)}")
    return MAZES[maze]


def find_cell(maze: str, marker: str) -> tuple[int, int]:
    """(row, col) of the unique `marker` cell ('r' start or 'g' goal) of a D4RL map."""
    cells = [(i, j) for i, row in enumerate(_check_maze(maze)) for j, c in enumerate(row) if c == marker]
    assert len(cells) == 1, (maze, marker, cells)
    return cells[0]


def wall_map(maze: str) -> np.ndarray:
    """The D4RL map as an int array: 1 wall, 0 free (row 0 first, D4RL orientation)."""
    return np.array([[1 if c == 1 else 0 for c in row] for row in _check_maze(maze)], dtype=np.int64)


def d4rl_cell_xy(maze: str, rowcol) -> np.ndarray:
    """Centre of cell (row, col) in D4RL's frame (maze_env._rowcol_to_xy without noise)."""
    r0, c0 = find_cell(maze, R)
    return np.array([(rowcol[1] - c0) * SCALE, (rowcol[0] - r0) * SCALE])


def env_offset(maze: str) -> np.ndarray:
    """d4rl_xy - env_xy for this module's gymnasium maze (the D4RL map with its rows reversed).

    gymnasium-robotics puts cell (i', j) of an H x W map at x = (j + 0.5) s - W s / 2,
    y = H s / 2 - (i' + 0.5) s. With i' = H - 1 - i (rows reversed): y = (i + 0.5) s - H s / 2.
    D4RL puts cell (i, j) at x = (j - c_r) s, y = (i - r_r) s. Both are affine in (i, j) with the
    same slopes, so d4rl - env = ((W/2 - 0.5 - c_r) s, (H/2 - 0.5 - r_r) s) everywhere.
    """
    walls = wall_map(maze)
    height, width = walls.shape
    r0, c0 = find_cell(maze, R)
    return np.array([(width / 2 - 0.5 - c0) * SCALE, (height / 2 - 0.5 - r0) * SCALE])


def env_xy_to_d4rl(xy, maze: str) -> np.ndarray:
    """Gymnasium-env (x, y) -> D4RL-frame (x, y). Works on [..., 2] arrays."""
    return np.asarray(xy, dtype=np.float64) + env_offset(maze)


def d4rl_xy_to_env(xy, maze: str) -> np.ndarray:
    """D4RL-frame (x, y) -> gymnasium-env (x, y). Works on [..., 2] arrays."""
    return np.asarray(xy, dtype=np.float64) - env_offset(maze)


def gymnasium_map(maze: str) -> list[list[int]]:
    """The map handed to gymnasium-robotics: D4RL's walls with the rows reversed, no 'r'/'g' marks
    (this module places start and goal itself)."""
    return [list(row) for row in wall_map(maze)[::-1].tolist()]


# --- Minari's antmaze data --------------------------------------------------------------------------
# Minari's D4RL/antmaze/* datasets (minari-dataset-generation-scripts, scripts/D4RL/antmaze) were
# recorded in gymnasium-robotics AntMaze_{Medium,Large}[_Diverse_GR]-v4 whose maps list D4RL's rows
# in D4RL's order. Since gymnasium's y axis runs against the row index, Minari's world is D4RL's world
# MIRRORED in y (not translated): x_d4rl = x + (W/2 - 0.5 - c_r) s, y_d4rl = -y + (H/2 - 0.5 - r_r) s.
# A mirror also changes the ant's body coordinates: with S = diag(1, -1, 1), the torso quaternion
# (w, x, y, z) -> (w, -x, y, -z), the linear velocity (vx, vy, vz) -> (vx, -vy, vz), the angular
# velocity (a pseudo-vector, body or world frame alike) (wx, wy, wz) -> (-wx, wy, -wz), and the legs
# swap: front_left (+x, +y) <-> right_back (+x, -y), front_right (-x, +y) <-> back (-x, -y). A hip
# (axis z) angle changes sign; an ankle axis a maps to -S a, which is exactly the partner ankle's
# axis ((-1, 1, 0) <-> (1, 1, 0)), so ankle angles swap with the same sign (their ranges agree:
# 30..70 for ankles 1 and 4, -70..-30 for 2 and 3). Motor torques follow the joints.

# qpos[7:15] / qvel[6:14] order: hip_1, ankle_1, hip_2, ankle_2, hip_3, ankle_3, hip_4, ankle_4
_JOINT_PERM = np.array([6, 7, 4, 5, 2, 3, 0, 1])
_JOINT_SIGN = np.array([-1, 1, -1, 1, -1, 1, -1, 1], dtype=np.float64)
# actuator order: hip_4, ankle_4, hip_1, ankle_1, hip_2, ankle_2, hip_3, ankle_3
_ACT_PERM = np.array([2, 3, 0, 1, 6, 7, 4, 5])
_ACT_SIGN = np.array([-1, 1, -1, 1, -1, 1, -1, 1], dtype=np.float64)


def mirrored_offset(maze: str) -> np.ndarray:
    """c such that d4rl_xy = (x, -y) + c for a gymnasium maze built from D4RL's rows in D4RL's order."""
    return env_offset(maze)  # same constants: see the derivation in env_offset and the note above


def mirror_ant_state(qpos: np.ndarray, qvel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ant's qpos [..., 15] / qvel [..., 14] reflected through the xz-plane (y -> -y), x/y
    untouched (frames are handled by the callers). Its own inverse."""
    qpos = np.array(qpos, dtype=np.float64)
    qvel = np.array(qvel, dtype=np.float64)
    out_p, out_v = qpos.copy(), qvel.copy()
    out_p[..., 1] = -qpos[..., 1]
    out_p[..., 4] = -qpos[..., 4]   # quaternion x
    out_p[..., 6] = -qpos[..., 6]   # quaternion z
    out_p[..., 7:15] = qpos[..., 7:15][..., _JOINT_PERM] * _JOINT_SIGN
    out_v[..., 1] = -qvel[..., 1]
    out_v[..., 3] = -qvel[..., 3]
    out_v[..., 5] = -qvel[..., 5]
    out_v[..., 6:14] = qvel[..., 6:14][..., _JOINT_PERM] * _JOINT_SIGN
    return out_p, out_v


def mirror_ant_action(action: np.ndarray) -> np.ndarray:
    """Motor commands [..., 8] for the mirrored ant (its own inverse)."""
    action = np.asarray(action)
    return action[..., _ACT_PERM] * _ACT_SIGN.astype(action.dtype)


def minari_obs_to_d4rl(achieved_goal: np.ndarray, observation: np.ndarray, maze: str) -> np.ndarray:
    """Minari antmaze (achieved_goal [..., 2], observation [..., 27]) -> D4RL-frame obs [..., 29]."""
    qpos = np.concatenate([achieved_goal, observation[..., :13]], axis=-1)
    qpos, qvel = mirror_ant_state(qpos, observation[..., 13:27])  # y -> -y, body mirrored
    qpos[..., :2] += mirrored_offset(maze)
    return np.concatenate([qpos, qvel], axis=-1)


# --- the environment --------------------------------------------------------------------------------
class D4RLAntMaze(gym.Env):
    """D4RL's antmaze-<maze>-*-v2 evaluation task on gymnasium-robotics' AntMaze v4 (no time limit).

    Observation float32 [29]: x, y in the D4RL frame, qpos[2:15], qvel[:14] (D4RL's layout). Reward
    1.0 within SUCCESS_RADIUS of the goal (D4RL frame) else 0.0; terminated at success;
    info["success"], info["goal"] (D4RL frame) every step.
    """

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, maze: str, seed: Optional[int] = None, physics: str = "d4rl", goal_noise: bool = True,
                 render_mode: Optional[str] = None):
        from expo.envs.adroit import import_quietly

        AntMazeEnv = import_quietly("gymnasium_robotics.envs.maze.ant_maze_v4").AntMazeEnv

        _check_maze(maze)
        if physics not in ("d4rl", "gymnasium"):
            raise ValueError(f"physics must be 'd4rl' or 'gymnasium', got {physics!r}")
        self.maze, self.physics, self.goal_noise = maze, physics, bool(goal_noise)
        # continuing_task=True + reset_target=False: gymnasium never terminates nor moves the goal;
        # termination and reward are computed here (radius 0.5, D4RL frame).
        self.inner = AntMazeEnv(maze_map=gymnasium_map(maze), continuing_task=True, reset_target=False,
                                render_mode=render_mode)
        self.inner.position_noise_range = 0.0  # start/goal are placed exactly where this class says
        self.ant = self.inner.ant_env
        self.ant._reset_noise_scale = RESET_NOISE  # D4RL's qpos / qvel reset noise
        if physics == "d4rl":
            model = self.ant.model
            model.opt.timestep = 0.02                 # D4RL ant.xml; frame_skip 5 -> dt 0.1
            model.actuator_gear[:, 0] = 30.0          # gear 1 x ctrl in [-30, 30] == gear 30 x [-1, 1]
            model.geom_solimp[:, :3] = (0.8, 0.8, 0.01)  # D4RL ant.xml default class (all geoms)
        self.render_mode = render_mode
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(8,), dtype=np.float32)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(29,), dtype=np.float32)
        self.start_cell = find_cell(maze, R)
        self.goal_cell = find_cell(maze, G)
        self.goal = d4rl_cell_xy(maze, self.goal_cell)
        self._np_random, _ = seeding.np_random(seed)

    def _obs(self) -> np.ndarray:
        data = self.ant.data
        xy = env_xy_to_d4rl(data.qpos[:2], self.maze)
        return np.concatenate([xy, data.qpos[2:15], data.qvel[:14]]).astype(np.float32)

    def _success(self) -> bool:
        xy = env_xy_to_d4rl(self.ant.data.qpos[:2], self.maze)
        return bool(np.linalg.norm(xy - self.goal) <= SUCCESS_RADIUS)

    def reset(self, *, seed: Optional[int] = None, options=None):
        super().reset(seed=seed)  # reseeds self.np_random when seed is given
        goal = d4rl_cell_xy(self.maze, self.goal_cell)
        if self.goal_noise:
            goal = goal + self.np_random.uniform(0.0, GOAL_NOISE[0], 2) + self.np_random.uniform(0.0, GOAL_NOISE[1], 2)
        self.goal = goal
        # One derived integer seeds the inner env, so the ant's reset noise follows reset(seed=...).
        inner_seed = int(self.np_random.integers(2**31 - 1))
        rows = len(MAZES[self.maze])
        flip = lambda rc: (rows - 1 - rc[0], rc[1])  # noqa: E731  D4RL row -> gymnasium (reversed) row
        self.inner.reset(seed=inner_seed, options={"goal_cell": flip(self.goal_cell), "reset_cell": flip(self.start_cell)})
        self.inner.goal = d4rl_xy_to_env(self.goal, self.maze)
        self.inner.update_target_site_pos()
        return self._obs(), {"success": self._success(), "goal": self.goal.copy()}

    def step(self, action):
        self.ant.do_simulation(np.asarray(action, dtype=np.float64), self.ant.frame_skip)
        success = self._success()
        info = {"success": success, "goal": self.goal.copy()}
        return self._obs(), float(success), success, False, info

    def render(self):
        return self.inner.render()

    def close(self):
        self.inner.close()


class _D4RLBackend(gym.Env):
    """The original d4rl env (gym 0.23 API) seen through gymnasium's API. Only with d4rl installed."""

    def __init__(self, env_id: str, seed: Optional[int]):
        import gym as old_gym  # noqa: F401  (d4rl registers into old gym)
        import d4rl  # noqa: F401

        self.env = old_gym.make(env_id).env  # drop old gym's TimeLimit: the suite adds its own
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(8,), dtype=np.float32)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(29,), dtype=np.float32)
        self._seed = seed

    def _success(self) -> bool:
        return bool(np.linalg.norm(np.asarray(self.env.get_xy()) - np.asarray(self.env.target_goal)) <= SUCCESS_RADIUS)

    def reset(self, *, seed=None, options=None):
        if seed is not None or self._seed is not None:
            s = seed if seed is not None else self._seed
            self.env.seed(s)
            np.random.seed(s)  # d4rl draws the goal from the global RNG
            self._seed = None
        obs = self.env.reset()
        return np.asarray(obs, np.float32), {"success": self._success(), "goal": np.asarray(self.env.target_goal)}

    def step(self, action):
        obs, reward, done, _ = self.env.step(np.asarray(action))
        success = self._success()
        return np.asarray(obs, np.float32), float(reward), bool(done), False, {
            "success": success, "goal": np.asarray(self.env.target_goal)}


def make_antmaze_env(spec: TaskSpec, seed: int, backend: str = "gymnasium", physics: str = "d4rl",
                     goal_noise: bool = True, render_mode: Optional[str] = None) -> gym.Env:
    """TimeLimit(ClipAction(core), spec.horizon) for an antmaze task (maze from spec.env_kwargs)."""
    maze = spec.env_kwargs["maze"]
    _check_maze(maze)
    if spec.terminate_on != "success":
        raise ValueError(f"{spec.name}: antmaze ends episodes at success; terminate_on={spec.terminate_on!r}")
    if backend == "gymnasium":
        core = D4RLAntMaze(maze, seed=seed, physics=physics, goal_noise=goal_noise, render_mode=render_mode)
    elif backend == "d4rl":
        try:
            core = _D4RLBackend(spec.name, seed)
        except ImportError as e:
            raise RuntimeError(
                f"backend='d4rl' needs d4rl + mujoco_py + gym 0.23.1 ({e}); see expo/envs/antmaze.py's docstring"
            ) from None
    else:
        raise ValueError(f"unknown antmaze backend {backend!r}; use 'gymnasium' or 'd4rl'")
    return TimeLimit(ClipAction(core), spec.horizon)
