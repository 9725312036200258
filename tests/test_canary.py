"""The canary (experiments/grids/canary.py): Pendulum-v1 under the suite's conventions, its scripted
data, and (marker canary, run by `make test-heavy`) every method learning it.

The learning tests train the canary grid's own runs (same configs as `python experiments/launch.py
figure=canary`, in a temporary results folder) and require the mean final return over the grid's 3
seeds to reach THRESHOLD, which no episode of the data and no random policy reaches (tested here).
"""
import numpy as np
import pytest
from gymnasium.envs.classic_control.pendulum import PendulumEnv

from analysis import canary as canary_analysis
from experiments import grids
from experiments.grids import canary as canary_grid
from expo import protocol
from expo.data import load_task_dataset, registry
from expo.data.d4rl_hdf5 import load_d4rl_hdf5
from expo.data.experts.pendulum import generate_pendulum_dataset, pump_action
from expo.envs import make_env
from expo.train import train
from tests.conftest import read_rows

SPEC = protocol.get_task("pendulum")


def test_the_canary_is_a_marked_stand_in_not_a_paper_task():
    assert not SPEC.paper_task and "pendulum" not in protocol.PAPER_TASKS
    assert SPEC.metric == "return" and SPEC.terminate_on == "never" and SPEC.horizon == 200
    assert "canary" in SPEC.deviations


def test_env_steps_gymnasium_pendulum_with_unit_actions():
    env = make_env(SPEC, seed=3)
    reference = PendulumEnv()
    obs, info = env.reset(seed=11)
    ref_obs, _ = reference.reset(seed=11)
    assert obs.dtype == np.float32 and obs.shape == (3,) and isinstance(info["success"], bool)
    np.testing.assert_allclose(obs, ref_obs, rtol=1e-6)
    rng = np.random.default_rng(0)
    for t in range(200):
        action = rng.uniform(-1.5, 1.5, size=1).astype(np.float32)  # out of range: clipped to [-1, 1]
        obs, reward, terminated, truncated, info = env.step(action)
        ref_obs, ref_reward, *_ = reference.step(2.0 * np.clip(action, -1, 1))
        np.testing.assert_allclose(obs, ref_obs, rtol=1e-5, atol=1e-6)
        assert reward == pytest.approx(float(ref_reward), rel=1e-6)
        assert not terminated and truncated == (t == 199)


def test_success_means_balanced_upright():
    env = make_env(SPEC, seed=0)
    env.reset(seed=0)
    core = env.unwrapped.pendulum
    core.state = np.array([0.05, 0.2])
    assert env.step(np.zeros(1, np.float32))[4]["success"]
    env.reset(seed=0)
    core.state = np.array([np.pi, 0.0])
    assert not env.step(np.zeros(1, np.float32))[4]["success"]


def test_pump_action_by_hand():
    # hanging at rest: no energy to pump along a zero velocity
    assert pump_action(np.array([-1.0, 0.0, 0.0])) == 0.0
    # hanging, theta_dot = 1: E = 0.5 - 30 = -29.5, u = 29.5 * 1 / 30
    assert pump_action(np.array([-1.0, 0.0, 1.0])) == pytest.approx(29.5 / 30)
    # upright at rest: E = 0, nothing to add
    assert pump_action(np.array([1.0, 0.0, 0.0])) == 0.0
    # horizontal, theta_dot = -2: E = 2 - 15 = -13, u = -13 * 2 / 30 (pushes along the motion)
    assert pump_action(np.array([0.0, 1.0, -2.0])) == pytest.approx(-13 * 2 / 30)


def test_generated_dataset_is_d4rl_layout_deterministic_and_scaled(tmp_path):
    a, b = tmp_path / "a.hdf5", tmp_path / "b.hdf5"
    summary = generate_pendulum_dataset(a, num_demos=3, noise=1.0, seed=5)
    generate_pendulum_dataset(b, num_demos=3, noise=1.0, seed=5)
    raw = load_d4rl_hdf5(a)
    again = load_d4rl_hdf5(b)
    for key in raw:
        np.testing.assert_array_equal(raw[key], again[key])
    # D4RL's convention: each episode's time-out row is dropped, so 199 transitions per episode
    assert raw["observations"].shape == (3 * 199, 3) and raw["actions"].shape == (3 * 199, 1)
    assert np.all(raw["masks"] == 1) and raw["dones"].sum() == 3
    assert np.all(np.abs(raw["actions"]) <= 1)
    scaled = load_d4rl_hdf5(a, spec=SPEC)
    np.testing.assert_allclose(scaled["rewards"], 0.1 * raw["rewards"], rtol=1e-6)
    assert summary["mean_return"] < -500


def test_threshold_is_above_every_episode_of_the_data_and_a_random_policy():
    """What makes the canary a test of learning: imitating the data or acting at random stays below it."""
    entry = registry.get_dataset(SPEC.dataset)
    data = load_task_dataset(SPEC)
    episode = np.cumsum(data["episode_starts"]) - 1
    returns = np.bincount(episode, weights=data["rewards"] / SPEC.reward_scale)
    assert len(returns) == entry.num_demos
    assert returns.max() < canary_grid.THRESHOLD - 50
    env = make_env(SPEC, seed=0)
    rng = np.random.default_rng(0)
    random_returns = []
    for i in range(10):
        env.reset(seed=i)
        total, done = 0.0, False
        while not done:
            _, r, terminated, truncated, _ = env.step(rng.uniform(-1, 1, 1).astype(np.float32))
            total, done = total + r, terminated or truncated
        random_returns.append(total)
    assert max(random_returns) < canary_grid.THRESHOLD - 200


def test_grid_runs_every_method_of_the_suite():
    from expo.config import METHODS

    spec = grids.load("canary")
    methods = {arm["method"] for arm in grids.arms_of(spec)}
    assert methods == set(METHODS) - {"bc"}
    assert spec["seeds"] == 3


def _grid_runs(method: str, results_dir) -> list[dict]:
    return grids.expand(grids.load("canary"), {"figure": "canary", "methods": method},
                        {"results_dir": str(results_dir), "progress": False})


def _param(method: str):
    reason = canary_grid.KNOWN_FAILURES.get(method)
    return pytest.param(method, marks=pytest.mark.xfail(strict=True, reason=reason)) if reason else method


# The costliest first, so that the two test-heavy workers finish together.
CANARY_METHODS = [_param(m) for m in sorted(canary_grid.STEPS, key=canary_grid.COST_ORDER.index)]


@pytest.mark.slow
@pytest.mark.canary
@pytest.mark.parametrize("method", CANARY_METHODS)
def test_method_learns_the_canary(method, tmp_path):
    finals = []
    for cfg in _grid_runs(method, tmp_path):
        run_dir = train(cfg)
        rows = read_rows(run_dir / "eval.csv")
        assert int(rows[-1]["env_step"]) == canary_grid.STEPS[method]
        finals.append(float(rows[-1]["return"]))
    verdict = canary_analysis.verdict(finals)
    assert verdict.passed, (f"{method}: mean final return {verdict.mean:.1f} over seeds {finals} is below the "
                            f"canary threshold {canary_grid.THRESHOLD}")


def _rows(figure, task, method, seed, steps_values, variant=""):
    return [{"figure": figure, "task": task, "method": method, "seed": seed, "env_step": s, "value": v,
             "variant": variant} for s, v in steps_values]


def test_canary_table_verdicts_and_near_zero_baselines():
    import pandas as pd

    level = canary_grid.THRESHOLD
    data = pd.DataFrame(
        _rows("canary", "pendulum", "rlpd", 0, [(0, -1500), (100, level + 10)])
        + _rows("canary", "pendulum", "rlpd", 1, [(0, -1400), (100, level - 30)])      # mean level - 10
        + _rows("canary", "pendulum", "calql", 0, [(0, -1500), (100, level + 200)])
        + _rows("cpu4", "lift", "rlpd", 0, [(0, 0.0), (10, 0.05)])
        + _rows("cpu4", "lift", "calql", 0, [(0, 0.0), (10, 0.4)])
        + _rows("cpu4", "lift", "expo", 0, [(0, 0.0), (10, 0.0)])                      # not a baseline
        + _rows("cpu4", "lift", "rlpd", 0, [(0, 0.0), (10, 0.0)], variant="x"))         # a sweep: left out
    table = canary_analysis.table(data).set_index("method")
    assert table.loc["rlpd", "final_return"] == pytest.approx(level - 10) and not table.loc["rlpd", "passed"]
    assert table.loc["calql", "passed"] and table.loc["rlpd", "start_return"] == pytest.approx(-1450)
    zero = canary_analysis.near_zero(data)
    assert zero == {"rlpd": ["cpu4 lift 0.05"]}
    text = "\n".join(canary_analysis.markdown(canary_analysis.table(data), zero))
    assert "| rlpd | 100 |" in text and "**no**" in text and f"rlpd (cpu4 lift 0.05): {level - 10:.0f}, fails" in text
    assert canary_analysis.verdict([]).passed is False
