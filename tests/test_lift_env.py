"""The embedded robosuite Lift env: spaces, seeding, clipping, success termination, truncation."""
import dataclasses

import numpy as np
import pytest

from expo.data.experts.lift import LiftExpert
from expo.envs import make_env
from expo.protocol import get_task

SPEC = get_task("lift")


@pytest.fixture(scope="module")
def env():
    e = make_env(SPEC, seed=0)
    yield e
    e.close()


def test_spaces_match_protocol(env):
    assert env.observation_space.shape == (SPEC.obs_dim,) == (19,)
    assert env.action_space.shape == (SPEC.act_dim,) == (7,)
    np.testing.assert_array_equal(env.action_space.low, -1.0)
    np.testing.assert_array_equal(env.action_space.high, 1.0)
    obs, info = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == (19,)
    assert info == {"success": False}


def test_reset_is_seeded_and_leaves_global_rng_alone(env):
    before = np.random.get_state()[1].copy()
    first, _ = env.reset(seed=7)
    for _ in range(3):
        env.step(env.action_space.sample())
    again, _ = env.reset(seed=7)
    other, _ = env.reset(seed=8)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first[:2], other[:2])  # cube xy differs
    assert not np.allclose(first[10:13], other[10:13])  # joint noise moves the eef
    np.testing.assert_array_equal(np.random.get_state()[1], before)


def test_same_env_seed_gives_same_episode(env):
    twin = make_env(SPEC, seed=0)
    try:
        actions = np.random.default_rng(0).uniform(-1, 1, size=(5, 7))
        a, _ = env.reset(seed=3)
        b, _ = twin.reset(seed=3)
        np.testing.assert_array_equal(a, b)
        for act in actions:
            a = env.step(act)[0]
            b = twin.step(act)[0]
        np.testing.assert_array_equal(a, b)
    finally:
        twin.close()


def test_step_clips_actions(env):
    env.reset(seed=1)
    clipped = [env.step(np.full(7, 5.0))[0] for _ in range(2)]
    env.reset(seed=1)
    for expected in clipped:
        obs, reward, terminated, truncated, info = env.step(np.ones(7))
        np.testing.assert_array_equal(obs, expected)
    assert np.all(np.isfinite(obs))
    assert (reward, terminated, truncated, info["success"]) == (0.0, False, False, False)


def test_expert_succeeds_and_success_terminates(env):
    obs, _ = env.reset(seed=11)
    expert = LiftExpert(noise=0.0, seed=0)
    expert.reset(obs)
    for t in range(SPEC.horizon):
        obs, reward, terminated, truncated, info = env.step(expert.act(obs))
        if terminated or truncated:
            break
        assert reward == 0.0 and not info["success"]
    assert terminated and not truncated
    assert reward == 1.0 and info["success"]
    assert t < 100  # the noiseless expert lifts in ~35 steps
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(7))


def test_truncation_at_horizon():
    short = make_env(dataclasses.replace(SPEC, horizon=5), seed=0)
    try:
        short.reset(seed=0)
        for _ in range(4):
            _, _, terminated, truncated, _ = short.step(np.zeros(7))
            assert not terminated and not truncated
        _, reward, terminated, truncated, info = short.step(np.zeros(7))
        assert truncated and not terminated and reward == 0.0 and not info["success"]
    finally:
        short.close()


def test_unknown_domain_is_one_line_error():
    with pytest.raises(ValueError, match="unknown domain 'nope'; known: robomimic"):
        make_env(dataclasses.replace(SPEC, domain="nope"), seed=0)
