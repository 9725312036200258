"""Tests of the figure grids (experiments/grids) and the compute estimate (experiments/cost.py):
paper counts, mini scale, unique run directories, arm overrides reaching the resolved config,
validation errors, and the cost arithmetic on a hand-computed case."""
import pytest

from experiments import cost, grids
from expo import protocol
from expo.config import ConfigError, build_config
from expo.logger import run_dir_for, run_label

PAPER_FIGURES = ["fig1", "fig3", "fig4", "fig5", "fig6", "fig7", "fig8", "fig9", "fig10"]

# (runs, tasks, arms, seeds) per figure, from the paper's Figs. 3-10 and each module's documented choices.
PAPER_COUNTS = {
    "fig3": (180, 12, 5, 3), "fig4": (180, 12, 5, 3), "fig5": (12, 2, 2, 3), "fig6": (12, 2, 2, 3),
    "fig7": (45, 1, 15, 3), "fig8": (12, 2, 2, 3), "fig9": (30, 2, 5, 3), "fig10": (24, 2, 4, 3),
}


def expand(name, scale=None, **launcher):
    run_overrides = launcher.pop("run_overrides", {})
    if scale:
        run_overrides = {**run_overrides, "scale": scale}
    return grids.expand(grids.load(name), {"figure": name, **launcher}, run_overrides)


def by_label(runs):
    out = {}
    for cfg in runs:
        out.setdefault((cfg["task"], run_label(cfg)), []).append(cfg)
    return out


@pytest.fixture(scope="module")
def paper_runs():
    return {name: expand(name) for name in PAPER_FIGURES}


def test_every_paper_figure_has_a_grid():
    assert set(PAPER_FIGURES) <= set(grids.available())
    names = grids.available()
    assert names.index("fig3") < names.index("fig10")  # natural order, as the paper numbers them


@pytest.mark.parametrize("name", sorted(PAPER_COUNTS))
def test_paper_scale_counts(name, paper_runs):
    runs = paper_runs[name]
    total, tasks, arms, seeds = PAPER_COUNTS[name]
    assert len(runs) == total
    assert len({c["task"] for c in runs}) == tasks
    assert len({(c["method"], c["variant"]) for c in runs}) == arms
    assert {c["seed"] for c in runs} == set(range(seeds))
    assert {c["figure"] for c in runs} == {name}
    assert {c["scale"] for c in runs} == {"paper"}
    assert grids.count_line(name, grids.load(name), runs).endswith(f"= {total} runs")


def test_fig3_and_fig4_are_the_papers_comparisons(paper_runs):
    fig3, fig4 = paper_runs["fig3"], paper_runs["fig4"]
    assert {c["task"] for c in fig3} == {c["task"] for c in fig4} == set(protocol.PAPER_TASKS)
    assert {c["method"] for c in fig3} == {"expo", "rlpd", "idql", "dipo", "qsm"}
    assert {c["method"] for c in fig4} == {"expo", "idql", "calql", "dac", "rlpd"}
    assert {c["setting"] for c in fig3} == {"online"} and {c["pretrain_steps"] for c in fig3} == {0}
    assert {c["setting"] for c in fig4} == {"offline_to_online"}
    pretrain = {(c["task"], c["method"]): c["pretrain_steps"] for c in fig4}
    # EXPO does not pretrain on Adroit in Fig. 4; the baselines and the other domains do.
    assert pretrain["pen-binary-v0", "expo"] == 0 and pretrain["pen-binary-v0", "idql"] == 20_000
    assert pretrain["square", "expo"] == 200_000 and pretrain["antmaze-large-play-v2", "expo"] == 500_000
    assert pretrain["square", "rlpd"] == 0
    # The paper's own Lift file, everywhere in the figures.
    assert {c["dataset"]["name"] for c in fig4 if c["task"] == "lift"} == {"robomimic_lift_ph"}


def test_fig1_is_the_union_of_fig3_and_fig4(paper_runs):
    fig1 = paper_runs["fig1"]
    assert len(fig1) == 360
    dirs = lambda runs: {run_dir_for(c) for c in runs}  # noqa: E731
    assert dirs(fig1) == dirs(paper_runs["fig3"]) | dirs(paper_runs["fig4"])
    line = grids.count_line("fig1", grids.load("fig1"), fig1)
    assert "no runs of its own" in line and "fig3: 12 tasks x 5 methods x 3 seeds = 180 runs" in line


@pytest.mark.parametrize("name", PAPER_FIGURES)
def test_run_directories_are_unique(name, paper_runs):
    dirs = [run_dir_for(c) for c in paper_runs[name]]
    assert len(set(dirs)) == len(dirs)


@pytest.mark.parametrize("name", PAPER_FIGURES)
def test_mini_scale_gives_the_same_runs_at_mini_sizes(name, paper_runs):
    paper, mini = paper_runs[name], expand(name, scale="mini")
    assert [run_dir_for(c) for c in mini] == [run_dir_for(c) for c in paper]
    for p, m in zip(paper, mini):
        assert m["scale"] == "mini" and m["steps"] == min(p["steps"], 10_000)
        assert m["agent"]["batch_size"] < p["agent"]["batch_size"]
        # What defines the run (setting, data, variant) is the same at both scales.
        assert (m["setting"], m["dataset"], m["variant"]) == (p["setting"], p["dataset"], p["variant"])


def test_arm_overrides_reach_the_resolved_config(paper_runs):
    fig9 = by_label(paper_runs["fig9"])
    for n in (2, 4, 8, 16, 32):
        for cfg in fig9["square", f"expo-N{n}"]:
            assert cfg["agent"]["N"] == n and cfg["agent"]["n_edit"] == n
    # The sweep is not shrunk at mini scale.
    assert {c["agent"]["N"] for c in expand("fig9", scale="mini") if c["variant"] == "N16"} == {16}
    fig10 = by_label(paper_runs["fig10"])
    assert {c["agent"]["beta"] for c in fig10["lift", "expo-beta0.3"]} == {0.3}
    fig7 = by_label(paper_runs["fig7"])
    for method in ("expo", "expo_entropy_backup", "bc"):
        assert {c["dataset"]["num_demos"] for c in fig7["square", f"{method}-demos20"]} == {20}
    assert all(c["agent"]["entropy_backup"] for c in fig7["square", "expo_entropy_backup-demos10"])
    assert {c["steps"] for c in fig7["square", "bc-demos10"]} == {0}
    assert {c["steps"] for c in fig7["square", "expo-demos10"]} == {1_000_000}
    # The same subsample for every method at a given seed: the data seed is the run seed.
    assert all(c["dataset"]["seed"] == c["seed"] for c in paper_runs["fig7"])
    fig6 = by_label(paper_runs["fig6"])
    assert {c["pretrain_steps"] for c in fig6["pen-binary-v0", "expo"]} == {20_000}
    assert {c["agent"]["n_edit"] for c in fig6["square", "expo_no_edit"]} == {0}
    fig5 = by_label(paper_runs["fig5"])
    assert not any(c["agent"]["otf_backup"] for c in fig5["can", "expo_no_otf_backup"])


def test_fig8_drops_the_offline_data_for_both_methods(paper_runs):
    runs = paper_runs["fig8"]
    assert {c["method"] for c in runs} == {"expo", "calql_sac"} and {c["task"] for c in runs} == {"lift", "can"}
    assert {c["keep_offline_data"] for c in runs} == {False}
    # Warm start: as many rollouts as the dataset has demos (warm_start_episodes unset).
    assert {c["warm_start_episodes"] for c in runs} == {None}
    assert {c["task"]: cost.warm_start_rollouts(c) for c in runs} == {"lift": 10, "can": 300}
    assert {c["pretrain_steps"] for c in runs} == {200_000}
    assert {c["setting"] for c in runs} == {"offline_to_online"}


def test_expanding_needs_no_dataset_on_disk(tmp_path, monkeypatch):
    root = tmp_path / "empty_data_root"
    monkeypatch.setenv("EXPO_DATA_ROOT", str(root))
    for name in PAPER_FIGURES:
        assert expand(name, seeds=1)
    assert not root.exists()


def test_launcher_keys_select_from_a_sweep():
    assert {c["variant"] for c in expand("fig9", methods="expo-N4,expo-N16")} == {"N4", "N16"}
    assert len(expand("fig9", methods="expo", tasks="lift", seeds=1)) == 5  # every expo arm
    runs = expand("fig4", run_overrides={"task": "square", "method": "expo"}, seeds=2)
    assert [(c["task"], c["method"], c["seed"]) for c in runs] == [("square", "expo", 0), ("square", "expo", 1)]
    with pytest.raises(ConfigError, match="no arm 'rlpd'; valid: expo-N2"):
        expand("fig9", methods="rlpd")
    # The simple form keeps its meaning: methods= replaces the grid's list.
    assert {c["method"] for c in expand("quickstart", methods="rlpd", seeds=1)} == {"rlpd"}


def test_command_line_keys_win_except_over_what_defines_an_arm():
    runs = expand("fig10", tasks="lift", seeds=1, run_overrides={"dataset.name": "lift_scripted", "steps": 500})
    assert {c["dataset"]["name"] for c in runs} == {"lift_scripted"} and {c["steps"] for c in runs} == {500}
    with pytest.raises(ConfigError, match="agent.N is what arm expo-N2 of figure fig9 sets"):
        expand("fig9", run_overrides={"agent.N": 4})
    with pytest.raises(ConfigError, match="pretrain_steps is what arm expo of figure fig4 sets for pen"):
        expand("fig4", run_overrides={"pretrain_steps": 10})
    square = expand("fig4", tasks="square", seeds=1, run_overrides={"pretrain_steps": 10})
    assert {c["method"]: c["pretrain_steps"] for c in square} == {"expo": 10, "idql": 10, "calql": 10,
                                                                  "dac": 10, "rlpd": 0}  # RLPD never


def _grid(**changes):
    spec = {"tasks": ["lift"], "methods": ["expo"], "seeds": 1, "setting": "online", "scale": "mini",
            "overrides": {}}
    spec.update(changes)
    return {k: v for k, v in spec.items() if v is not None}


@pytest.mark.parametrize("spec, message", [
    (_grid(methods=["nope"]), "unknown method 'nope'"),
    (_grid(tasks=["nope"]), "unknown task 'nope'"),
    (_grid(overrides={"agent.bogus": 1}), "unknown or reserved override key 'agent.bogus'"),
    (_grid(overrides={"variant": "x"}), "reserved override key 'variant'"),
    (_grid(methods=None, arms=[{"method": "expo", "overrides": {"agent.N": 2}},
                               {"method": "expo", "overrides": {"agent.N": 4}}]), "would share run directories"),
    (_grid(methods=None, arms=[{"method": "expo", "variant": "a-b"}]), "may hold only letters"),
    (_grid(methods=None, arms=[{"method": "expo", "sweep": 1}]), "an arm has keys method, sweep"),
    (_grid(arms=[{"method": "expo"}]), "exactly one of methods"),
    (_grid(seeds=0), "seeds must be a count"),
    (_grid(task_overrides={"nope": {"steps": 1}}), "task_overrides names unknown task 'nope'"),
    (_grid(extra=1), "unknown GRID key(s) extra"),
    ({"derived_from": ["nope"]}, "derived_from names 'nope'"),
])
def test_malformed_grids_fail_with_one_line(spec, message):
    with pytest.raises(ConfigError) as info:
        grids.validate(spec, "custom")
    text = str(info.value)
    assert text.startswith("grid custom: ") and message in text and "\n" not in text


def test_existing_simple_grids_still_expand():
    assert len(expand("quickstart")) == 8 and len(expand("demo")) == 4 and len(expand("baselines")) == 24
    assert {c["method"]: c["steps"] for c in expand("demo")} == {"expo": 10_000, "bc": 0}


# ------------------------------------------------------------------------ compute estimate

def _cost_cfg(**changes):
    cfg = {"task": "lift", "method": "expo", "scale": "paper", "steps": 100, "start_training": 10,
           "eval_interval": 40, "eval_episodes": 2, "pretrain_steps": 50,
           "agent": {"N": 8, "utd": 20}, "protocol": {"horizon": 5},
           "dataset": {"num_demos": 10}}
    cfg.update(changes)
    return cfg


def test_run_seconds_on_a_hand_computed_case():
    # updates at steps 10..100 = 91 x update_s; policy actions 90 x act_s; 100 env steps at
    # 179 steps/s; 50 pretraining steps x update_s / 20; evaluations at steps 0, 40, 80, 100 =
    # 4 x 2 episodes x 5 steps = 40 x (act_s + 1/179 s).
    ref = cost.MEASURED["agents"]["expo.agents.expo"]["paper"]
    u, a = ref["update_s"], ref["act_s"]
    expected = 91 * u + 90 * a + 100 / 179 + 50 * u / 20 + 40 * (a + 1 / 179)
    assert cost.run_seconds(_cost_cfg()) == pytest.approx(expected, rel=1e-6)
    assert cost.estimate_hours([_cost_cfg(), _cost_cfg()]) == pytest.approx(2 * expected / 3600, rel=1e-6)


def test_cost_scales_expo_with_n_and_utd_but_not_the_baselines():
    base = cost.step_costs(_cost_cfg())
    doubled = cost.step_costs(_cost_cfg(agent={"N": 16, "utd": 20}))
    assert doubled["update_s"] == pytest.approx(2 * base["update_s"])
    assert doubled["act_s"] == pytest.approx(2 * base["act_s"])
    assert cost.step_costs(_cost_cfg(agent={"N": 8, "utd": 10}))["update_s"] == pytest.approx(base["update_s"] / 2)
    # an unmeasured baseline is charged EXPO's cost as it is; RLPD its own, scaled by its UTD
    assert cost.step_costs(_cost_cfg(method="calql", agent={"utd": 1}))["update_s"] == base["update_s"]
    assert cost.unmeasured_methods([_cost_cfg(method="calql"), _cost_cfg(method="rlpd"),
                                    _cost_cfg()]) == ["calql"]
    rlpd = cost.MEASURED["agents"]["baselines.rlpd"]["paper"]
    assert cost.step_costs(_cost_cfg(method="rlpd", agent={"utd": 20}))["update_s"] == rlpd["update_s"]
    assert cost.step_costs(_cost_cfg(method="rlpd", agent={"utd": 10}))["update_s"] == pytest.approx(
        rlpd["update_s"] / 2)
    assert cost.step_costs(_cost_cfg(method="rlpd", agent={"utd": 20}))["act_s"] == rlpd["act_s"]


def test_cost_counts_evaluations_as_the_training_loop_does():
    for steps, interval in [(0, 10), (10, 10), (25, 10), (1_000_000, 10_000), (7_500, 2_500)]:
        loop = 1 + sum(1 for s in range(1, steps + 1) if s % interval == 0 or s == steps)
        assert cost.evaluations({"steps": steps, "eval_interval": interval}) == loop


def test_cost_charges_the_warm_start_rollouts():
    kept = cost.run_seconds(_cost_cfg())
    dropped = cost.run_seconds(_cost_cfg(keep_offline_data=False, warm_start_episodes=None))
    per_step = cost.step_costs(_cost_cfg())
    assert dropped - kept == pytest.approx(10 * 5 * (per_step["act_s"] + per_step["env_s"]))
    for keep in (False, True):  # an explicit count applies either way
        explicit = cost.run_seconds(_cost_cfg(keep_offline_data=keep, warm_start_episodes=3))
        assert explicit - kept == pytest.approx(3 * 5 * (per_step["act_s"] + per_step["env_s"]))
    assert cost.run_seconds(_cost_cfg(keep_offline_data=True, warm_start_episodes=None)) == kept


def test_cost_of_real_grids_is_finite_and_says_what_it_rests_on(paper_runs):
    for name in PAPER_FIGURES:
        assert 0 < cost.estimate_hours(paper_runs[name]) < float("inf")
    line = cost.describe(paper_runs["fig4"])
    assert "hours on the 2-core x86-64 CPU of docs/MEASURED.md (no GPU) for 180 runs" in line
    assert "not GPU-hours" in line
    assert line.endswith("charged EXPO's per-step cost (not measured): calql, dac, idql")
    mini = cost.estimate_hours(expand("fig4", scale="mini"))
    assert mini < cost.estimate_hours(paper_runs["fig4"]) / 100
    with pytest.raises(ValueError, match="no measured simulator speed"):
        cost.env_seconds_per_step("nope")
    assert cost.run_seconds(build_config({"task": "threading", "method": "bc"})) > 0  # proxy simulator
