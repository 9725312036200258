"""The embedded MimicGen Stack_D0 task (`stack`): scripted Stack expert, its dataset file, and a tiny run end to end."""
import json

import h5py
import numpy as np
import pytest

from expo.data import registry
from expo.data.experts import GENERATORS
from expo.data.experts.stack import EXPERT_VERSION, StackExpert, _grasp_yaw, generate_stack_dataset
from expo.data.robomimic_hdf5 import load_robomimic_hdf5
from expo.envs import make_env
from expo.envs.robomimic import ROBOMIMIC_OBS_KEYS
from expo.protocol import get_task
from tests.conftest import tiny_train_run, use_tiny_dataset

SPEC = get_task("stack")
STACKED_DZ = 0.045  # cube A's centre above cube B's when A rests on B (half-sides 0.02 + 0.025)


def test_grasp_fingers_close_across_the_line_to_cube_b():
    """The fingers (eef y axis, at angle yaw - pi/2) must not come down between the two cubes."""
    for cube_yaw in (0.0, 0.3, -0.7):
        for toward_b in (0.0, np.pi / 2, 2.5, -1.0):
            for eef_yaw in (0.0, 1.2, -2.9):
                yaw = _grasp_yaw(cube_yaw, eef_yaw, np.array([np.cos(toward_b), np.sin(toward_b), 0.0]))
                # on one of A's faces (a cube repeats every quarter turn) ...
                assert abs(np.sin(2 * (yaw - cube_yaw))) < 1e-9
                # ... the more perpendicular of the two face-aligned grasps ...
                finger = yaw - np.pi / 2
                assert abs(np.cos(finger - toward_b)) <= np.sqrt(0.5) + 1e-9
                # ... reached with at most a quarter turn.
                assert abs(yaw - eef_yaw) <= np.pi / 2 + 1e-9


def test_noise_free_expert_stacks_from_seeded_initial_states():
    env = make_env(SPEC, seed=0)
    expert = StackExpert(noise=0.0)
    try:
        for reset_seed in (1, 2, 3):
            obs, _ = env.reset(seed=reset_seed)
            a0, b0 = obs[0:3].copy(), obs[7:10].copy()
            expert.reset(obs)
            for t in range(SPEC.horizon):
                obs, reward, terminated, truncated, info = env.step(expert.act(obs))
                if terminated or truncated:
                    break
            assert terminated and not truncated and reward == 1.0 and info["success"], reset_seed
            assert t + 1 < 120  # ~70 steps: no retry was needed
            a, b = obs[0:3], obs[7:10]
            assert np.linalg.norm(a0[:2] - b0[:2]) > 0.05  # the cubes started apart...
            np.testing.assert_allclose(a[2] - b[2], STACKED_DZ, atol=0.006)  # ... and A now rests on B
            assert np.linalg.norm((a - b)[:2]) < 0.02
            np.testing.assert_allclose(b[:2], b0[:2], atol=0.01)  # B was not pushed around
            assert expert.phase == "release"
    finally:
        env.close()


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    path = tmp_path_factory.mktemp("gen") / "stack.hdf5"
    summary = generate_stack_dataset(path, num_demos=2, noise=0.25, seed=5)
    return path, summary


def test_generated_file_reads_as_a_stack_dataset(generated):
    path, summary = generated
    assert summary["num_demos"] == 2 and 0 < summary["success_rate"] <= 1 and summary["path"] == str(path)
    with h5py.File(path, "r") as f:
        data = f["data"]
        env_args = json.loads(data.attrs["env_args"])
        assert env_args["env_name"] == "Stack_D0" and env_args["type"] == 1
        gen = json.loads(data.attrs["expo_generator"])
        assert (gen["expert"], gen["noise"], gen["seed"]) == ("stack", 0.25, 5)
        assert gen["expert_version"] == EXPERT_VERSION
        lengths = [int(data[f"demo_{k}"].attrs["num_samples"]) for k in range(2)]
        assert data.attrs["total"] == sum(lengths)
        assert data["demo_0/obs/object"].shape == (lengths[0], 23)
        final = [data[f"demo_{k}/next_obs/object"][-1] for k in range(2)]
        assert data["demo_1/states"].shape[0] == lengths[1]
    assert summary["mean_length"] == pytest.approx(np.mean(lengths))
    assert all(length <= SPEC.horizon for length in lengths)
    for obj in final:  # the state each demo ends in is A resting on B
        np.testing.assert_allclose(obj[2] - obj[9], STACKED_DZ, atol=0.006)

    d = load_robomimic_hdf5(path, ROBOMIMIC_OBS_KEYS, spec=SPEC)
    n = sum(lengths)
    assert d["observations"].shape == (n, SPEC.obs_dim) and d["actions"].shape == (n, SPEC.act_dim)
    ends = np.cumsum(lengths) - 1
    np.testing.assert_array_equal(np.flatnonzero(d["dones"]), ends)  # each demo ends at its first success
    np.testing.assert_array_equal(np.flatnonzero(d["masks"] == 0), ends)
    np.testing.assert_array_equal(np.flatnonzero(d["rewards"]), ends)
    np.testing.assert_array_equal(d["rewards"][ends], 1.0)
    inner = np.setdiff1d(np.arange(n - 1), ends)
    np.testing.assert_array_equal(d["next_observations"][inner], d["observations"][inner + 1])
    assert np.all(np.abs(d["actions"]) <= 1)
    # The noise is real: actions are not the noise-free controller's saturated / zero values only.
    assert np.std(d["actions"][:, :3]) > 0.1 and len(np.unique(d["actions"][:, 0])) > n // 2


def test_generation_is_deterministic(generated, tmp_path):
    path, _ = generated
    again = tmp_path / "again.hdf5"
    generate_stack_dataset(again, num_demos=2, noise=0.25, seed=5)
    a = load_robomimic_hdf5(path, ROBOMIMIC_OBS_KEYS)
    b = load_robomimic_hdf5(again, ROBOMIMIC_OBS_KEYS)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_registry_entry_names_the_stack_expert():
    entry = registry.DATASETS[SPEC.dataset]
    assert registry.DEFAULT_FOR_EXPERT["stack"] == SPEC.dataset == entry.key
    assert GENERATORS[entry.expert] is generate_stack_dataset
    assert registry.EXPERT_VERSIONS[entry.expert] == EXPERT_VERSION
    assert entry.num_demos >= SPEC.num_demos and entry.obs_keys == ROBOMIMIC_OBS_KEYS
    assert f"noise{entry.noise:g}_seed{entry.seed}_expert-v{EXPERT_VERSION}" in entry.path().name


@pytest.mark.slow  # heavy end-to-end check: make test-heavy (CI runs it)
def test_tiny_training_run_on_stack(tmp_path, monkeypatch):
    """tests/test_train.py's tiny run, on stack: a 3-demo file from the registry, horizon 15."""
    summary = use_tiny_dataset(monkeypatch, tmp_path / "data_root", "stack_scripted", "stack",
                               horizon=15, num_demos=3, noise=0.0)
    assert summary["num_demos"] == 3  # generated with the real horizon: the expert needs ~70 steps
    run_dir, rows, _ = tiny_train_run(tmp_path / "results", {
        "task": "stack", "figure": "t", "seed": 0,
        "scale": "mini", "steps": 12, "pretrain_steps": 20, "pretrain_chunk": 20, "eval_interval": 12,
        "eval_episodes": 1, "log_interval": 6, "progress": False, "dataset.num_demos": 2,
        "agent.hidden_dims": (16, 16), "agent.diffusion_width": 16, "agent.time_dim": 8,
        "agent.N": 2, "agent.n_edit": 2, "agent.T": 2, "agent.utd": 1, "agent.batch_size": 8,
    })
    assert run_dir == tmp_path / "results" / "t" / "stack" / "expo" / "seed_0"
    assert [int(r["env_step"]) for r in rows] == [0, 12]
    for r in rows:
        assert 0.0 <= float(r["success"]) <= 1.0 and 1 <= float(r["episode_length"]) <= 15
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["protocol"]["name"] == "stack" and saved["protocol"]["obs_dim"] == 32
    assert saved["protocol"]["paper_task"] is True
