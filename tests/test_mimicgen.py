"""MimicGen Threading / Stack backends: the built-in envs by default, MimicGen's own package on request
(EXPO_MIMICGEN=package), with one clear error when it is asked for and not installed."""
import builtins

import numpy as np
import pytest

from expo.envs import make_env
from expo.envs.mimicgen import BACKEND_VARIABLE, MimicGenUnavailable, mimicgen_available, mimicgen_backend
from expo.protocol import get_task

TASKS = ("threading", "stack")


@pytest.fixture
def without_mimicgen(monkeypatch):
    """Make `import mimicgen` fail even where it is installed, so the error path is always tested."""
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "mimicgen" or name.startswith("mimicgen."):
            raise ModuleNotFoundError("No module named 'mimicgen'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    monkeypatch.delitem(__import__("sys").modules, "mimicgen", raising=False)


@pytest.mark.parametrize("name", TASKS)
def test_asking_for_the_missing_package_is_one_clear_error(name, without_mimicgen, monkeypatch):
    monkeypatch.setenv(BACKEND_VARIABLE, "package")
    assert not mimicgen_available()
    with pytest.raises(MimicGenUnavailable) as err:
        make_env(get_task(name), seed=0)
    message = str(err.value)
    assert "\n" not in message
    assert "mimicgen is not installed" in message and "github.com/NVlabs/mimicgen" in message
    assert "robosuite 1.4.1" in message and "unset EXPO_MIMICGEN" in message
    assert isinstance(err.value, ImportError)


def test_an_unknown_backend_names_the_valid_ones(monkeypatch):
    monkeypatch.setenv(BACKEND_VARIABLE, "mimicgen-1.0")
    with pytest.raises(MimicGenUnavailable, match="names no MimicGen backend; fix: set it to one of builtin, package"):
        mimicgen_backend()


@pytest.mark.parametrize("name", TASKS)
def test_the_default_backend_needs_no_package(name, without_mimicgen, monkeypatch):
    monkeypatch.delenv(BACKEND_VARIABLE, raising=False)
    assert mimicgen_backend() == "builtin" and mimicgen_available()
    spec = get_task(name)
    env = make_env(spec, seed=0)
    try:
        assert env.observation_space.shape == (spec.obs_dim,) == ({"threading": 37, "stack": 32}[name],)
        assert env.action_space.shape == (7,) and env.horizon == spec.horizon
        a, info = env.reset(seed=4)
        assert info == {"success": False}
        b, _ = env.reset(seed=4)
        np.testing.assert_array_equal(a, b)
        obs, reward, terminated, truncated, info = env.step(np.zeros(7))
        assert obs.shape == (spec.obs_dim,) and np.all(np.isfinite(obs))
        assert (reward, terminated, truncated, info["success"]) == (0.0, False, False, False)
    finally:
        env.close()


def test_stack_success_through_sim_state():
    env = make_env(get_task("stack"), seed=0)
    try:
        env.reset(seed=0)
        raw = env.unwrapped.raw
        top = raw.sim.data.body_xpos[raw.cubeB_body_id] + np.array([0, 0, 0.045])
        raw.sim.data.set_joint_qpos(raw.cubeA.joints[0], np.concatenate([top, [1.0, 0, 0, 0]]))
        raw.sim.forward()
        for _ in range(10):  # let cube A settle and the gripper stay clear of it
            obs, reward, terminated, truncated, info = env.step(np.array([0, 0, 0, 0, 0, 0, -1.0]))
            if terminated:
                break
        assert reward == 1.0 and terminated and info["success"]
    finally:
        env.close()
