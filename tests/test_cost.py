"""The compute estimate (experiments/cost.py) with a user's per-step costs: hours on the machine the
costs were measured on, never called GPU-hours when they are not; a step_costs file checked entry by
entry with one-line errors; the launcher's dry run using it."""
import pytest

from experiments import cost, launch
from tests.test_grids import _cost_cfg  # the run config the grid tests estimate

A100 = """machine = "1x A100 40GB, 8 CPU cores"
[expo.paper]
update_s = 0.05
act_s = 0.002
[env_steps_per_s]
lift = 200.0
"""


@pytest.fixture
def a100(tmp_path):
    path = tmp_path / "step_costs.toml"
    path.write_text(A100)
    return cost.load_step_costs(path)


def test_a_users_costs_give_hours_on_their_machine(a100):
    # updates at steps 10..100 = 91 x 0.05 s; 90 policy actions x 0.002 s; 100 env steps at the
    # file's 200 steps/s; 50 pretraining steps x 0.05 / 20 (the paper-scale EXPO config's UTD);
    # evaluations at 0, 40, 80, 100 = 4 x 2 episodes x 5 steps x (0.002 + 1/200)
    expected = 91 * 0.05 + 90 * 0.002 + 100 / 200 + 50 * 0.05 / 20 + 40 * (0.002 + 1 / 200)
    assert expected == pytest.approx(5.635)
    assert cost.run_seconds(_cost_cfg(), a100) == pytest.approx(expected)
    assert cost.estimate_hours([_cost_cfg()] * 2, a100) == pytest.approx(2 * expected / 3600)
    # the bench measured at the method's own config (N 8, UTD 20): other N / UTD scale from there
    assert cost.step_costs(_cost_cfg(agent={"N": 16, "utd": 10}), a100)["update_s"] == \
        pytest.approx(0.05)
    assert cost.step_costs(_cost_cfg(agent={"N": 16, "utd": 20}), a100)["act_s"] == \
        pytest.approx(0.004)
    # a task the file does not list keeps the built-in simulator speed
    assert cost.step_costs(_cost_cfg(task="can"), a100)["env_s"] == pytest.approx(1 / 144)


def test_methods_without_an_entry_are_charged_their_modules_or_expos(a100):
    # expo_no_edit shares EXPO's agent module: its entry, scaled by its own N
    no_edit = cost.step_costs(_cost_cfg(method="expo_no_edit", agent={"N": 16, "utd": 20}), a100)
    assert no_edit["update_s"] == pytest.approx(0.1)
    # rlpd has no entry and another module: EXPO's cost as it is, and named
    rlpd = cost.step_costs(_cost_cfg(method="rlpd", agent={"utd": 10}), a100)
    assert rlpd["update_s"] == pytest.approx(0.05)
    assert cost.unmeasured_methods([_cost_cfg(), _cost_cfg(method="rlpd")], a100) == ["rlpd"]
    with pytest.raises(cost.CostError, match="no measured cost for scale 'mini' of expo"):
        cost.step_costs(_cost_cfg(scale="mini"), a100)


def test_the_line_names_the_machine_and_never_says_gpu_hours_for_cpu_costs(a100):
    line = cost.describe([_cost_cfg(), _cost_cfg(method="rlpd")], a100)
    assert line.startswith("estimated compute: 0.0 hours on 1x A100 40GB, 8 CPU cores for 2 runs ")
    assert "per-step costs from " in line and "GPU-hours" not in line
    assert line.endswith("charged EXPO's per-step cost (not measured): rlpd")
    built_in = cost.describe([_cost_cfg()])
    assert "hours on the 2-core x86-64 CPU of docs/MEASURED.md (no GPU)" in built_in
    assert "not GPU-hours" in built_in and "step_costs=<file>" in built_in


@pytest.mark.parametrize("text, message", [
    ('[expo.paper]\nupdate_s = 0.05\nact_s = 0.002\n', "`machine = \"...\"` is required"),
    ('machine = "m"\n[expoo.paper]\nupdate_s = 0.05\nact_s = 0.002\n', "unknown key or method 'expoo'"),
    ('machine = "m"\n[expo.huge]\nupdate_s = 0.05\nact_s = 0.002\n', "expo.huge: unknown scale"),
    ('machine = "m"\n[expo.paper]\nupdate_s = 0.05\n', "expo.paper: needs exactly update_s and act_s"),
    ('machine = "m"\n[expo.paper]\nupdate_s = -1\nact_s = 0.002\n', "update_s must be a positive number"),
    ('machine = "m"\n[expo.paper]\nupdate_s = true\nact_s = 0.002\n', "update_s must be a positive number"),
    ('machine = "m"\n[expo.paper]\nupdate_s = 0.05\nact_s = 0.002\n[env_steps_per_s]\nnope = 3.0\n',
     "env_steps_per_s.nope: unknown task"),
    ('machine = "m"\n', "no [<method>.<scale>] entry"),
    ('machine = "m"\n[expo.paper\n', "cannot read"),
])
def test_a_bad_step_costs_file_is_a_one_line_error(tmp_path, text, message):
    path = tmp_path / "costs.toml"
    path.write_text(text)
    with pytest.raises(cost.CostError) as info:
        cost.load_step_costs(path)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert str(path) in str(info.value)


def test_a_missing_step_costs_file_is_a_one_line_error(tmp_path):
    with pytest.raises(cost.CostError, match="step_costs: cannot read .*nope.toml"):
        cost.load_step_costs(tmp_path / "nope.toml")


def test_the_dry_run_uses_the_step_costs_file(tmp_path, capsys):
    path = tmp_path / "step_costs.toml"
    path.write_text(A100)
    results = tmp_path / "results"
    # the demo grid runs at mini scale, which this file does not cover: one line, before any run
    with pytest.raises(SystemExit) as info:
        launch.main(["figure=demo", "dry_run=true", f"results_dir={results}", f"step_costs={path}"])
    assert str(info.value).startswith("error: no measured cost for scale 'mini' of expo; measured: "
                                      "paper (per-step costs from ")
    path.write_text(A100 + "[expo.mini]\nupdate_s = 0.01\nact_s = 0.001\n")
    capsys.readouterr()
    launch.main(["figure=demo", "dry_run=true", f"results_dir={results}", f"step_costs={path}"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("estimated compute: ") and "hours on 1x A100 40GB, 8 CPU cores" in last
    assert f"per-step costs from {path}" in last and "not measured" not in last  # bc: EXPO's module
    with pytest.raises(SystemExit) as info:
        launch.main(["figure=demo", "dry_run=true", f"results_dir={results}",
                     f"step_costs={tmp_path / 'nope.toml'}"])
    assert str(info.value).startswith("error: step_costs: cannot read ")
