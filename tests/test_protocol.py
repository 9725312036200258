"""The protocol table: the paper's 12 tasks with the facts of the paper (Tables 1-2, its evaluation
protocol) and of the authors' code (EXPO at commit bbd5713), every dataset registered, every task
buildable into a run config, and docs/PROTOCOL.md rendered from it."""
import json

import pytest

from expo import protocol
from expo.config import build_config
from expo.data.registry import DATASETS
from expo.protocol_table import DOC_PATH, render_markdown

PAPER_TASKS = [
    "antmaze-medium-play-v2", "antmaze-medium-diverse-v2", "antmaze-large-play-v2",
    "antmaze-large-diverse-v2", "pen-binary-v0", "door-binary-v0", "relocate-binary-v0",
    "lift", "can", "square", "threading", "stack",
]
# (obs, act, horizon) per task: the environments the authors' code builds (EXPO at bbd5713)
DIMS = {
    "antmaze-medium-play-v2": (29, 8, 1000), "antmaze-large-diverse-v2": (29, 8, 1000),
    "pen-binary-v0": (45, 24, 100), "door-binary-v0": (39, 28, 200), "relocate-binary-v0": (39, 30, 200),
    "lift": (19, 7, 400), "can": (23, 7, 400), "square": (23, 7, 400), "threading": (37, 7, 400),
    "stack": (32, 7, 200),
}


def test_the_paper_tasks_are_exactly_the_twelve():
    assert list(protocol.PAPER_TASKS) == PAPER_TASKS
    assert all(not protocol.get_task(n).paper_task for n in protocol.TASKS if n not in PAPER_TASKS)


@pytest.mark.parametrize("name", list(DIMS))
def test_dims_and_horizons(name):
    spec = protocol.get_task(name)
    assert (spec.obs_dim, spec.act_dim, spec.horizon) == DIMS[name]


def test_domain_conventions():
    for spec in protocol.TASKS.values():
        if spec.domain == "classic":  # the canary: tests/test_canary.py
            assert not spec.paper_task
        elif spec.domain == "antmaze":
            # r - 1 for learners; the goal terminates; 5k / 100 evaluation; Table 1 and code values
            assert spec.transform_reward(1.0) == 0.0 and spec.transform_reward(0.0) == -1.0
            assert spec.terminate_on == "success" and spec.num_min_qs == 1
            assert (spec.eval_interval, spec.eval_episodes, spec.metric) == (5_000, 100, "success_rate")
            assert (spec.beta_online, spec.beta_offline_to_online, spec.pretrain_steps) == (0.05, 0.05, 500_000)
            assert spec.train_steps == 300_000 and spec.num_demos is None
        elif spec.domain == "adroit":
            assert spec.transform_reward(-1.0) == -1.0 and spec.terminate_on == "never"
            assert (spec.eval_interval, spec.eval_episodes, spec.metric) == (5_000, 100, "percent_solved_steps")
            assert (spec.beta_online, spec.beta_offline_to_online, spec.pretrain_steps) == (0.7, 0.7, 20_000)
            assert spec.edit_dropout == 0.1 and spec.start_training == (0 if spec.name == "pen-binary-v0" else 5_000)
        else:
            assert spec.domain in ("robomimic", "mimicgen")
            assert spec.transform_reward(1.0) == 1.0 and spec.terminate_on == "success"
            assert (spec.eval_interval, spec.eval_episodes, spec.metric) == (10_000, 50, "success_rate")
            assert spec.beta_online == 0.05 and spec.pretrain_steps == 200_000
            # MimicGen's 0.05, robomimic's 0.1
            assert spec.beta_offline_to_online == (0.05 if spec.domain == "mimicgen" else 0.1)


def test_table2_demo_counts():
    demos = {n: protocol.get_task(n).num_demos for n in ("lift", "can", "square", "threading", "stack")}
    assert demos == {"lift": 10, "can": 300, "square": 200, "threading": 50, "stack": 200}


@pytest.mark.parametrize("name", list(protocol.TASKS))
def test_every_task_has_a_dataset_and_builds_a_config(name):
    spec = protocol.get_task(name)
    assert spec.dataset in DATASETS
    paper = build_config({"task": name})
    assert paper["steps"] == spec.train_steps and paper["eval_episodes"] == spec.eval_episodes
    assert paper["pretrain_steps"] == spec.pretrain_steps
    mini = build_config({"task": name, "scale": "mini", "setting": "online"})
    assert mini["steps"] == 10_000 and mini["pretrain_steps"] == 0
    json.dumps(protocol.as_dict(spec))  # saved into config.json


def test_spec_is_read_only():
    spec = protocol.get_task("antmaze-large-play-v2")
    with pytest.raises(TypeError):
        spec.env_kwargs["maze"] = "medium"
    assert protocol.as_dict(spec)["env_kwargs"] == {"maze": "large"}


def test_unknown_task_lists_the_valid_ones():
    with pytest.raises(KeyError, match="valid tasks: antmaze-medium-play-v2"):
        protocol.get_task("antmaze-umaze-v2")


def test_docs_are_rendered_from_the_table():
    text = render_markdown()
    for spec in protocol.TASKS.values():
        assert f"| {spec.name}" in text and spec.env_name in text
    assert DOC_PATH.read_text() == text, "docs/PROTOCOL.md is stale: run `python -m expo.protocol_table`"


def test_every_task_spec_pickles_to_an_equal_read_only_spec():
    """Evaluation worker processes receive the spec by pickle (expo/env_pool.py)."""
    import pickle
    import types

    from expo.protocol import TASKS

    for spec in TASKS.values():
        copy = pickle.loads(pickle.dumps(spec))
        assert copy == spec and isinstance(copy.env_kwargs, types.MappingProxyType)
