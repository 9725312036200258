"""AntMaze (D4RL antmaze-*-v2 on gymnasium-robotics): spaces, success signal, seeding, and the frame
transform between gymnasium-robotics' maze coordinates and the D4RL dataset frame."""
import importlib.util

import mujoco
import numpy as np
import pytest

from expo.envs import antmaze, make_env
from expo.protocol import TASKS

ANTMAZE_TASKS = [name for name, spec in TASKS.items() if spec.domain == "antmaze"]


def core(env):
    return env.unwrapped


def test_four_antmaze_tasks_are_in_the_protocol():
    assert sorted(ANTMAZE_TASKS) == sorted(
        f"antmaze-{m}-{d}-v2" for m in ("medium", "large") for d in ("play", "diverse"))


@pytest.mark.parametrize("name", ANTMAZE_TASKS)
def test_spaces_reset_and_random_steps(name):
    spec = TASKS[name]
    env = make_env(spec, seed=0)
    assert env.action_space.shape == (8,) and env.observation_space.shape == (29,)
    obs, info = env.reset(seed=3)
    assert obs.shape == (29,) and obs.dtype == np.float32 and info["success"] is False
    rng = np.random.default_rng(0)
    for _ in range(25):
        obs, reward, terminated, truncated, info = env.step(rng.uniform(-1, 1, 8).astype(np.float32))
        assert obs.shape == (29,) and obs.dtype == np.float32 and np.all(np.isfinite(obs))
        assert reward == 0.0 and not terminated and not truncated and info["success"] is False
    # Observation layout is D4RL's: obs[:15] = qpos with x, y in the D4RL frame, obs[15:] = qvel.
    data = core(env).ant.data
    np.testing.assert_allclose(obs[:2], antmaze.env_xy_to_d4rl(data.qpos[:2], spec.env_kwargs["maze"]), atol=1e-5)
    np.testing.assert_allclose(obs[2:15], data.qpos[2:15], atol=1e-5)
    np.testing.assert_allclose(obs[15:], data.qvel[:14], atol=1e-4)
    # Out-of-range actions are clipped by ClipAction, not passed on to the motors.
    env.step(np.full(8, 5.0, np.float32))
    np.testing.assert_allclose(data.ctrl, 1.0)


@pytest.mark.parametrize("name", ANTMAZE_TASKS)
def test_start_and_goal_follow_d4rl_eval(name):
    """Start: the 'r' cell (D4RL origin) + U(-0.1, 0.1); goal: 'g' cell centre + U(0,1) + U(0,0.5)."""
    maze = TASKS[name].env_kwargs["maze"]
    env = make_env(TASKS[name], seed=0)
    goal_centre = {"medium": (20.0, 20.0), "large": (32.0, 24.0)}[maze]  # D4RL cells (6,6) / (7,9)
    goals = []
    for s in range(30):
        obs, info = env.reset(seed=s)
        assert np.all(np.abs(obs[:2]) <= 0.1 + 1e-6)
        offset = info["goal"] - goal_centre
        assert np.all(offset >= 0) and np.all(offset <= 1.5)
        goals.append(info["goal"])
    assert np.ptp(np.array(goals), axis=0).min() > 0.5  # the goal really is re-drawn every episode


@pytest.mark.parametrize("name", ANTMAZE_TASKS)
def test_success_at_goal_only(name):
    maze = TASKS[name].env_kwargs["maze"]
    env = make_env(TASKS[name], seed=1)
    _, info = env.reset(seed=5)
    zero = np.zeros(8, np.float32)
    _, reward, terminated, _, info = env.step(zero)
    assert (reward, terminated, info["success"]) == (0.0, False, False)
    # Put the ant on the goal through the MuJoCo data, in the env frame.
    c = core(env)
    qpos, qvel = c.ant.data.qpos.copy(), c.ant.data.qvel.copy()
    qpos[:2] = antmaze.d4rl_xy_to_env(info["goal"], maze)
    qvel[:] = 0.0
    c.ant.set_state(qpos, qvel)
    obs, reward, terminated, truncated, info = env.step(zero)
    assert (reward, terminated, truncated, info["success"]) == (1.0, True, False, True)
    assert np.linalg.norm(obs[:2] - info["goal"]) <= antmaze.SUCCESS_RADIUS
    # Just outside the 0.5 radius (D4RL's, not gymnasium's 0.45): no success.
    env.reset(seed=5)
    qpos, qvel = c.ant.data.qpos.copy(), c.ant.data.qvel.copy()
    qpos[:2] = antmaze.d4rl_xy_to_env(c.goal + np.array([0.0, 0.8]), maze)
    qvel[:] = 0.0
    c.ant.set_state(qpos, qvel)
    _, reward, terminated, _, info = env.step(zero)
    assert (reward, terminated, info["success"]) == (0.0, False, False)


def test_reset_is_deterministic_per_seed():
    spec = TASKS["antmaze-large-play-v2"]
    a, b = make_env(spec, seed=0), make_env(spec, seed=99)
    oa, ia = a.reset(seed=7)
    ob, ib = b.reset(seed=7)
    np.testing.assert_array_equal(oa, ob)
    np.testing.assert_array_equal(ia["goal"], ib["goal"])
    actions = np.random.default_rng(1).uniform(-1, 1, (10, 8)).astype(np.float32)
    for act in actions:
        oa, *_ = a.step(act)
        ob, *_ = b.step(act)
    np.testing.assert_array_equal(oa, ob)
    oc, ic = a.reset(seed=8)
    assert not np.array_equal(oc, a.reset(seed=7)[0]) and not np.array_equal(ic["goal"], ia["goal"])


@pytest.mark.parametrize("maze", ["medium", "large"])
def test_frame_transform_cells_and_walls(maze):
    """Known cell centres agree in both frames, and every wall geom sits on a D4RL wall cell."""
    c = antmaze.D4RLAntMaze(maze, seed=0)
    walls = antmaze.wall_map(maze)
    height, width = walls.shape
    assert (height, width) == {"medium": (8, 8), "large": (9, 12)}[maze]
    # The translation derived in env_offset, as numbers.
    np.testing.assert_allclose(antmaze.env_offset(maze), {"medium": (10, 10), "large": (18, 12)}[maze])
    # D4RL's start cell (1, 1) is its origin; its goal cell is (6, 6) -> (20, 20) / (7, 9) -> (32, 24).
    gmaze = c.inner.maze
    for (i, j), d4rl_xy in [((1, 1), (0, 0)), (antmaze.find_cell(maze, "g"), {"medium": (20, 20), "large": (32, 24)}[maze])]:
        np.testing.assert_allclose(antmaze.d4rl_cell_xy(maze, (i, j)), d4rl_xy)
        env_xy = gmaze.cell_rowcol_to_xy(np.array([height - 1 - i, j]))  # gymnasium's own cell centre
        np.testing.assert_allclose(antmaze.env_xy_to_d4rl(env_xy, maze), d4rl_xy)
        np.testing.assert_allclose(antmaze.d4rl_xy_to_env(d4rl_xy, maze), env_xy)
    # Every wall geom of the compiled model, mapped to the D4RL frame, is the centre of a D4RL wall
    # cell (D4RL puts block (i, j) at (4j - 4, 4i - 4)), and all D4RL walls are there.
    model = c.ant.model
    found = set()
    for g in range(model.ngeom):
        name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_GEOM, g) or ""
        if name.startswith("block_"):
            x, y = antmaze.env_xy_to_d4rl(model.geom_pos[g, :2], maze)
            i, j = round(y / 4 + 1), round(x / 4 + 1)
            np.testing.assert_allclose((x, y), (4 * j - 4, 4 * i - 4), atol=1e-9)
            found.add((i, j))
    assert found == {(i, j) for i in range(height) for j in range(width) if walls[i, j]}


def test_d4rl_physics_parameters():
    d4rl_like = antmaze.D4RLAntMaze("medium", physics="d4rl")
    gym_like = antmaze.D4RLAntMaze("medium", physics="gymnasium")
    assert d4rl_like.ant.dt == pytest.approx(0.1) and gym_like.ant.dt == pytest.approx(0.05)
    np.testing.assert_allclose(d4rl_like.ant.model.actuator_gear[:, 0], 30.0)
    np.testing.assert_allclose(gym_like.ant.model.actuator_gear[:, 0], 150.0)
    np.testing.assert_allclose(d4rl_like.ant.model.geom_solimp[:, :3], np.tile([0.8, 0.8, 0.01], (d4rl_like.ant.model.ngeom, 1)))


def test_minari_mirror_matches_simulation():
    """Minari's world (gymnasium maze from D4RL's rows in order) is D4RL's mirrored in y. Simulate the
    same motion in that world and, mirrored, in this module's env: minari_obs_to_d4rl of the first
    must equal the second's observation, step by step."""
    from gymnasium_robotics.envs.maze.ant_maze_v4 import AntMazeEnv

    maze = "medium"
    ours = antmaze.D4RLAntMaze(maze, physics="gymnasium", goal_noise=False)
    ours.reset(seed=0)
    theirs = AntMazeEnv(maze_map=antmaze.wall_map(maze).tolist(), continuing_task=True, reset_target=False)
    theirs.reset(seed=0)
    rng = np.random.default_rng(0)
    # A generic state near the start cell in Minari's world: tilted torso, bent legs, moving.
    cell = theirs.maze.cell_rowcol_to_xy(np.array([1, 1]))
    qpos = theirs.ant_env.init_qpos.copy()
    qpos[:2] = cell + rng.uniform(-0.3, 0.3, 2)
    quat = np.array([1.0, 0.1, -0.05, 0.3])
    qpos[3:7] = quat / np.linalg.norm(quat)
    qpos[7:15] = [0.2, 0.6, -0.1, -0.7, 0.3, -0.5, -0.2, 0.8]
    qvel = rng.normal(0, 0.3, 14)
    theirs.ant_env.set_state(qpos, qvel)
    mp, mv = antmaze.mirror_ant_state(qpos, qvel)
    mp[:2] = antmaze.d4rl_xy_to_env(antmaze.minari_obs_to_d4rl(qpos[:2], np.zeros(27), maze)[:2], maze)
    ours.ant.set_state(mp, mv)
    for t in range(30):
        minari_obs = np.concatenate([theirs.ant_env.data.qpos[2:15], theirs.ant_env.data.qvel[:14]])
        converted = antmaze.minari_obs_to_d4rl(theirs.ant_env.data.qpos[:2], minari_obs, maze)
        np.testing.assert_allclose(converted, ours._obs(), atol=1e-4, err_msg=f"step {t}")
        action = rng.uniform(-1, 1, 8)
        theirs.ant_env.do_simulation(action, theirs.ant_env.frame_skip)
        ours.step(antmaze.mirror_ant_action(action))
    assert np.linalg.norm(converted[:2]) > 0.05  # it moved, so the comparison covered dynamics


def test_mirror_is_an_involution():
    rng = np.random.default_rng(0)
    qpos, qvel, act = rng.normal(size=15), rng.normal(size=14), rng.normal(size=8)
    p2, v2 = antmaze.mirror_ant_state(*antmaze.mirror_ant_state(qpos, qvel))
    np.testing.assert_allclose(p2, qpos)
    np.testing.assert_allclose(v2, qvel)
    np.testing.assert_allclose(antmaze.mirror_ant_action(antmaze.mirror_ant_action(act)), act)
    assert not np.allclose(antmaze.mirror_ant_action(act), act)


def test_d4rl_backend_error_is_one_line():
    if importlib.util.find_spec("d4rl") is not None:
        pytest.skip("d4rl is installed here")
    with pytest.raises(RuntimeError) as e:
        make_env(TASKS["antmaze-medium-play-v2"], seed=0, backend="d4rl")
    assert "d4rl" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ValueError, match="backend"):
        make_env(TASKS["antmaze-medium-play-v2"], seed=0, backend="nope")
