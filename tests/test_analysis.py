"""Tests of analysis/: run loading, seed aggregation, smoothing, figures and summaries.

Everything runs on small synthetic results trees written into tmp_path (no training needed).
"""
from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.curves import (aggregate, aggregate_seeds, common_steps, final_summary,
                             paper_window, running_average)
from analysis.completeness import NoGrid
from analysis.figures import Options, main, make_figures, method_color
from analysis.runs import load_runs, metric_column, split_label

HEADER = "env_step,success,return,episodes,wall_time_s"
REPO = Path(__file__).resolve().parents[1]


def write_run(root: Path, figure, task, method, seed, rows, metric="success_rate",
              config=True):
    """rows: [(env_step, success), ...]; writes eval.csv, train.csv and config.json."""
    d = root / figure / task / method / f"seed_{seed}"
    d.mkdir(parents=True, exist_ok=True)
    lines = [HEADER] + [f"{s},{v},{10 * v},50,{i * 1.5}" for i, (s, v) in enumerate(rows)]
    (d / "eval.csv").write_text("\n".join(lines) + "\n")
    (d / "train.csv").write_text("step,critic_loss\n0,1.0\n")
    if config:
        (d / "config.json").write_text(json.dumps({
            "task": task, "method": method, "seed": seed, "figure": figure,
            "setting": "online", "protocol": {"metric": metric, "eval_interval": 10}}))
    return d


def no_grid(figure):
    raise NoGrid(f"no grid named {figure}")


STEPS = [0, 10, 20, 30, 40]
# Hand-chosen success values: method -> seed -> values at STEPS.
EXPO = {0: [0.0, 0.2, 0.4, 0.6, 0.8],
        1: [0.1, 0.3, 0.5, 0.7, 0.9],
        2: [0.2, 0.4, 0.6, 0.8, 1.0]}
RLPD = {0: [0.0, 0.0, 0.1, 0.2, 0.3],
        1: [0.0, 0.1, 0.2, 0.3, 0.4],
        2: [0.0, 0.1, 0.1, 0.2]}            # partial seed: stops at env_step 30
BC = {0: 0.30, 1: 0.40, 2: 0.50}            # single row at env_step 0


@pytest.fixture
def results(tmp_path):
    root = tmp_path / "results"
    for seed, vals in EXPO.items():
        write_run(root, "fig5", "square", "expo", seed, list(zip(STEPS, vals)))
    for seed, vals in RLPD.items():
        write_run(root, "fig5", "square", "rlpd", seed, list(zip(STEPS, vals)))
    for seed, v in BC.items():
        write_run(root, "fig5", "square", "bc", seed, [(0, v)])
    # A second task and a second figure, so panels and figure folders are exercised.
    for seed in range(2):
        write_run(root, "fig5", "can", "expo", seed, [(0, 0.1), (10, 0.5), (20, 0.9)])
        write_run(root, "fig6", "pen-binary-v0", "expo_no_edit", seed,
                  [(0, 0.0), (10, 0.25), (20, 0.5)], metric="percent_solved_steps")
    # Corrupt: header only.
    d = write_run(root, "fig5", "square", "rlpd", 3, [])
    assert (d / "eval.csv").read_text().strip() == HEADER
    # Missing eval.csv (a run that crashed before its first evaluation).
    d = root / "fig5" / "square" / "expo" / "seed_7"
    d.mkdir(parents=True)
    (d / "config.json").write_text("{}")
    return root


# ---------------------------------------------------------------- smoothing (hand-computed)

def test_running_average_centered_window3():
    # interior points average their two neighbours; the end points have none on one side, so the
    # window shrinks to the point itself (a one-sided window would pull the final value inwards)
    out = running_average([0.0, 6.0, 0.0, 6.0, 0.6], window=3)
    np.testing.assert_allclose(out, [0.0, 2.0, 4.0, 2.2, 0.6])
    # a straight line stays straight, ends included
    np.testing.assert_allclose(running_average([0.0, 3.0, 6.0, 9.0, 12.0], 3),
                               [0.0, 3.0, 6.0, 9.0, 12.0])


def test_running_average_centered_window5():
    out = running_average([1.0, 2.0, 4.0, 8.0, 16.0], window=5)
    # i=0: 1; i=1: (1+2+4)/3 (half-width 1: one neighbour each side exists);
    # i=2: 31/5; i=3: (4+8+16)/3; i=4: 16
    np.testing.assert_allclose(out, [1.0, 7 / 3, 31 / 5, 28 / 3, 16.0])


def test_running_average_never_moves_the_end_points():
    rng = np.random.default_rng(0)
    values = rng.uniform(0, 1, size=9)
    for window in (3, 5, 7, 21):
        out = running_average(values, window)
        assert (out[0], out[-1]) == (values[0], values[-1])


def test_running_average_identity_and_bad_windows():
    np.testing.assert_allclose(running_average([0.1, 0.5, 0.2], 1), [0.1, 0.5, 0.2])
    assert running_average([], 3).shape == (0,)
    np.testing.assert_allclose(running_average([0.7], 5), [0.7])
    with pytest.raises(ValueError, match="odd window"):
        running_average([1, 2, 3], 4)
    with pytest.raises(ValueError, match="1-D"):
        running_average([[1, 2]], 3)


def test_paper_window_per_task():
    # 5 evaluations on the tasks evaluated every 5k env steps, 3 on those every 10k
    assert [paper_window(t) for t in ("antmaze-large-diverse-v2", "pen-binary-v0",
                                      "relocate-binary-v0")] == [5, 5, 5]
    assert [paper_window(t) for t in ("lift", "square", "threading", "stack")] == [3, 3, 3, 3]
    assert paper_window("not_a_protocol_task") == 3
    rows = []
    for task in ("pen-binary-v0", "square"):
        rows += [{"figure": "f", "task": task, "method": "expo", "seed": 0, "env_step": 10 * i,
                  "value": v} for i, v in enumerate([0.0, 1.0, 0.0, 1.0, 0.0, 1.0])]
    agg = aggregate(pd.DataFrame(rows)).set_index("task")
    # pen, window 5: i=1 (0+1+0)/3, i=2 (0+1+0+1+0)/5, i=3 (1+0+1+0+1)/5, i=4 (1+0+1)/3
    np.testing.assert_allclose(agg.loc["pen-binary-v0", "smoothed"],
                               [0.0, 1 / 3, 2 / 5, 3 / 5, 2 / 3, 1.0])
    # square, window 3
    np.testing.assert_allclose(agg.loc["square", "smoothed"],
                               [0.0, 1 / 3, 2 / 3, 1 / 3, 2 / 3, 1.0])
    assert set(agg.loc["pen-binary-v0", "window"]) == {5} and set(agg.loc["square", "window"]) == {3}
    # an explicit window applies to every task
    assert set(aggregate(pd.DataFrame(rows), window=1)["window"]) == {1}


def test_common_steps_is_intersection():
    assert common_steps([[0, 10, 20, 30], [0, 10, 20], [20, 10, 0, 40]]).tolist() == [0, 10, 20]
    assert common_steps([]).tolist() == []


def test_aggregate_seeds_hand_values():
    df = pd.DataFrame({
        "seed": [0, 0, 0, 1, 1, 1, 2, 2],
        "env_step": [0, 10, 20, 0, 10, 20, 0, 10],     # seed 2 partial
        "value": [0.0, 0.3, 0.9, 0.3, 0.6, 0.6, 0.6, 0.0],
    })
    agg = aggregate_seeds(df, window=3)
    assert agg["env_step"].tolist() == [0, 10]              # steps every seed has
    np.testing.assert_allclose(agg["mean"], [0.3, 0.3])
    np.testing.assert_allclose(agg["min"], [0.0, 0.0])
    np.testing.assert_allclose(agg["max"], [0.6, 0.6])
    np.testing.assert_allclose(agg["smoothed"], [0.3, 0.3])
    assert agg["n_seeds"].tolist() == [3, 3]

    full = aggregate_seeds(df[df["seed"] < 2], window=3)
    # means: [0.15, 0.45, 0.75]; centred window 3 leaves the ends and the (linear) middle as they
    # are; band NOT smoothed.
    np.testing.assert_allclose(full["mean"], [0.15, 0.45, 0.75])
    np.testing.assert_allclose(full["smoothed"], [0.15, 0.45, 0.75])
    bumpy = aggregate_seeds(pd.DataFrame({"seed": [0] * 4, "env_step": [0, 10, 20, 30],
                                          "value": [0.2, 0.8, 0.2, 0.5]}), window=3)
    np.testing.assert_allclose(bumpy["smoothed"], [0.2, 0.4, 0.5, 0.5])
    np.testing.assert_allclose(full["min"], [0.0, 0.3, 0.6])
    np.testing.assert_allclose(full["max"], [0.3, 0.6, 0.9])


# ---------------------------------------------------------------- loading

def test_load_runs_tidy_and_warnings(results):
    loaded = load_runs(results)
    df = loaded.data
    for col in ("figure", "task", "method", "seed", "env_step", "success", "return", "value",
                "metric", "setting", "episodes", "wall_time_s"):
        assert col in df.columns
    sq = df[(df["figure"] == "fig5") & (df["task"] == "square")]
    assert sorted(sq["method"].unique()) == ["bc", "expo", "rlpd"]
    assert sorted(sq[sq["method"] == "rlpd"]["seed"].unique()) == [0, 1, 2]   # corrupt skipped
    assert len(sq[(sq["method"] == "rlpd") & (sq["seed"] == 2)]) == 4          # partial kept
    text = "\n".join(loaded.warnings)
    assert "fig5/square/rlpd/seed_3" in text and "header only" in text
    assert "fig5/square/expo/seed_7: missing eval.csv" in text
    assert "fig5/square/rlpd/seed_2: partial run" in text
    pen = df[df["task"] == "pen-binary-v0"]
    assert set(pen["metric"]) == {"percent_solved_steps"}
    np.testing.assert_allclose(pen["value"], pen["success"])


def test_load_runs_other_corruptions(tmp_path):
    root = tmp_path / "results"
    write_run(root, "f", "t", "m", 0, [(0, 0.5), (10, 0.6)], config=False)
    d1 = write_run(root, "f", "t", "m", 1, [(0, 0.5)])
    (d1 / "eval.csv").write_text("")                                  # 0 bytes
    d2 = write_run(root, "f", "t", "m", 2, [(0, 0.5)])
    (d2 / "eval.csv").write_text("step,reward\n0,1\n")                # wrong columns
    d3 = write_run(root, "f", "t", "m", 3, [(0, 0.1), (10, 0.2)])
    (d3 / "config.json").write_text("{not json")
    with open(d3 / "eval.csv", "a") as f:
        f.write("20,nan,0,50,3\n10,0.4,0,50,4\n")                    # bad row + repeated step
    (root / "f" / "t" / "m" / "notes").mkdir()
    loaded = load_runs(root)
    text = "\n".join(loaded.warnings)
    assert "f/t/m/seed_0: missing config.json" in text
    assert "f/t/m/seed_1: empty eval.csv" in text
    assert "f/t/m/seed_2: corrupt eval.csv (missing column(s) env_step, success" in text
    assert "f/t/m/seed_3: unreadable config.json" in text
    assert "f/t/m/seed_3: dropped 1 row" in text
    assert "f/t/m/seed_3: repeated env_step(s) [10]" in text
    assert "f/t/m/notes: not a seed_<k> directory" in text
    s3 = loaded.data[loaded.data["seed"] == 3]
    assert s3["env_step"].tolist() == [0, 10] and s3["success"].tolist() == [0.1, 0.4]
    assert sorted(loaded.data["seed"].unique()) == [0, 3]


def test_metric_column():
    assert metric_column("success_rate", ["env_step", "success"]) == "success"
    assert metric_column("percent_solved_steps", ["success"]) == "success"
    assert metric_column("percent_solved_steps", ["success", "percent_solved_steps"]) == \
        "percent_solved_steps"


# ---------------------------------------------------------------- figures and summaries

def test_make_figures_end_to_end(results, tmp_path):
    out = tmp_path / "figures"
    stream = io.StringIO()
    outputs = make_figures(results, out, smooth=3, stream=stream,
                           options=Options(smooth=3, bootstrap_reps=200, env_pictures="never"),
                           expected_runs=no_grid)
    assert sorted(outputs.figures) == ["fig5", "fig6"]
    assert outputs.report == out / "REPORT.md" and outputs.report.is_file()
    for fig in ("fig5", "fig6"):
        for ext in ("png", "pdf"):
            p = out / f"{fig}.{ext}"
            assert p.is_file() and p.stat().st_size > 1000, p
    assert (out / "fig5.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "fig5.pdf").read_bytes()[:5] == b"%PDF-"

    summary = pd.read_csv(out / "fig5_summary.csv")
    sq = summary[summary["task"] == "square"].set_index("method")
    # Final = each seed's LAST row, by hand: expo 0.8, 0.9, 1.0; rlpd 0.3, 0.4, 0.2 (partial
    # seed's last row is at env_step 30); bc 0.3, 0.4, 0.5.
    assert sq.loc["expo", "final_mean"] == pytest.approx((0.8 + 0.9 + 1.0) / 3)
    assert sq.loc["rlpd", "final_mean"] == pytest.approx((0.3 + 0.4 + 0.2) / 3)
    assert sq.loc["bc", "final_mean"] == pytest.approx((0.3 + 0.4 + 0.5) / 3)
    assert (sq.loc["rlpd", "final_min"], sq.loc["rlpd", "final_max"]) == \
        pytest.approx((0.2, 0.4))
    assert (sq.loc["rlpd", "final_step_min"], sq.loc["rlpd", "final_step_max"]) == (30, 40)
    assert sq.loc["expo", "n_seeds"] == 3 and sq.loc["rlpd", "n_seeds"] == 3
    assert summary[summary["task"] == "can"].set_index("method").loc["expo", "final_mean"] == \
        pytest.approx(0.9)

    printed = stream.getvalue()
    assert "WARNING: fig5/square/rlpd/seed_3: empty eval.csv" in printed
    assert "WARNING: fig5/square/rlpd/seed_2: partial run" in printed
    assert "WARNING: fig5/square/expo/seed_7: missing eval.csv" in printed
    assert "final mean" in printed and "expo" in printed


def test_aggregate_on_loaded_tree(results):
    data = load_runs(results).data
    agg = aggregate(data, window=3)
    expo = agg[(agg["task"] == "square") & (agg["method"] == "expo")]
    np.testing.assert_allclose(expo["mean"], [0.1, 0.3, 0.5, 0.7, 0.9])
    # a straight line: the centred average leaves it as it is, first and last point included (the
    # old one-sided end windows drew 0.2 and 0.8 here while the tables said 0.1 and 0.9)
    np.testing.assert_allclose(expo["smoothed"], [0.1, 0.3, 0.5, 0.7, 0.9])
    np.testing.assert_allclose(expo["min"], EXPO[0])
    np.testing.assert_allclose(expo["max"], EXPO[2])
    rlpd = agg[(agg["task"] == "square") & (agg["method"] == "rlpd")]
    assert rlpd["env_step"].tolist() == [0, 10, 20, 30]           # aligned on common steps
    np.testing.assert_allclose(rlpd["mean"], [0.0, 0.2 / 3, 0.4 / 3, 0.7 / 3])
    bc = agg[(agg["task"] == "square") & (agg["method"] == "bc")]
    assert len(bc) == 1 and bc["mean"].iloc[0] == pytest.approx(0.4)
    fs = final_summary(data)
    assert set(fs.columns) >= {"n_seeds", "final_mean", "final_min", "final_max"}


def test_empty_results_dir(tmp_path, capsys):
    (tmp_path / "results").mkdir()
    rc = main(["--results", str(tmp_path / "results"), "--out", str(tmp_path / "figs")])
    assert rc == 0
    assert f"no runs found under {tmp_path / 'results'}/" in capsys.readouterr().out
    assert not (tmp_path / "figs").exists()
    # A results dir that does not exist at all is the same case.
    assert main(["--results", str(tmp_path / "nope"), "--out", str(tmp_path / "figs")]) == 0


def test_smooth_flag_takes_paper_or_an_odd_window(tmp_path, capsys):
    (tmp_path / "results").mkdir()
    for value in ("paper", "1", "5"):
        assert main(["--results", str(tmp_path / "results"), "--smooth", value]) == 0
    for value, message in (("4", "odd window"), ("0", "must be >= 1"), ("x", "'paper' or an odd")):
        with pytest.raises(SystemExit):
            main(["--results", str(tmp_path / "results"), "--smooth", value])
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert "--smooth" in err and message in err
    with pytest.raises(ValueError, match="odd window"):
        Options(smooth=2)


def test_cli_module_entry_point_empty(tmp_path):
    (tmp_path / "results").mkdir()
    proc = subprocess.run([sys.executable, "-m", "analysis.figures", "--results", "results",
                           "--out", "figures"], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin",
                               "MPLBACKEND": "Agg", "HOME": str(tmp_path)}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "no runs found under results/" in proc.stdout


def test_colours_fixed_and_distinct():
    assert method_color("expo") == method_color("EXPO") == "#d62728"
    assert method_color("some_new_method") == method_color("some_new_method")
    known = ["expo", "expo_no_edit", "expo_no_otf_backup", "expo_entropy_backup", "rlpd", "idql",
             "dipo", "qsm", "calql", "dac", "bc"]
    assert len({method_color(m) for m in known}) == len(known)


def test_fig7_methods_have_clearly_different_hues():
    """EXPO and EXPO + entropy backup are drawn side by side in Fig. 7: not two shades of red."""
    import colorsys

    from matplotlib.colors import to_rgb

    expo, entropy = (colorsys.rgb_to_hsv(*to_rgb(method_color(m)))[0] * 360
                     for m in ("expo", "expo_entropy_backup"))
    gap = abs(expo - entropy)
    assert min(gap, 360 - gap) >= 30, (expo, entropy)       # the old dark red was 4 degrees off



def test_every_paper_figure_has_a_drawer():
    """analysis/paper_figures.py describes the figures; analysis/figures.py draws each of them."""
    from analysis.figures import PAPER_DRAWERS
    from analysis.paper_figures import PAPER_FIGURES

    assert list(PAPER_DRAWERS) == [f.name for f in PAPER_FIGURES]


# ---------------------------------------------------------------- sweep labels (method-variant)

def test_split_label():
    assert split_label("expo-N16") == ("expo", "N16")
    assert split_label("expo_entropy_backup-demos50") == ("expo_entropy_backup", "demos50")
    assert split_label("expo_no_edit") == ("expo_no_edit", "")


def test_variant_runs_load_without_false_mismatch(tmp_path):
    root = tmp_path / "results"
    d = write_run(root, "fig9", "lift", "expo-N16", 0, [(0, 0.1), (10, 0.5)])
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**cfg, "method": "expo", "variant": "N16"}))
    write_run(root, "fig9", "lift", "expo", 0, [(0, 0.1)])     # config.json without "variant"
    d = write_run(root, "fig9", "lift", "expo-N4", 0, [(0, 0.1)])
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**cfg, "method": "expo", "variant": "N8"}))
    write_run(root, "fig9", "lift", "expo-N2", 0, [(0, 0.1)])  # config.json method "expo-N2"
    loaded = load_runs(root)
    text = "\n".join(loaded.warnings)
    assert "expo-N16" not in text                      # method + variant agree with the path
    assert "fig9/lift/expo-N2/seed_0: config.json method='expo-N2' but directory says 'expo'" \
        in text
    assert "fig9/lift/expo-N2/seed_0: config.json variant='' but directory says 'N2'" in text
    assert "fig9/lift/expo-N4/seed_0: config.json variant='N8' but directory says 'N4'" in text
    row = loaded.data[loaded.data["method"] == "expo-N16"].iloc[0]
    assert (row["base_method"], row["variant"]) == ("expo", "N16")
    # runs written before sweeps existed have no "variant" key: no warning for a plain label
    assert not [w for w in loaded.warnings if "fig9/lift/expo/" in w]


def test_a_diverged_run_is_left_out_of_everything_and_reported(results, tmp_path):
    """A run whose status.json records a divergence is never drawn as a failing run: not in the
    data, the summaries or the aggregates; REPORT.md lists it with its reason."""
    reason = "diverged at online step 30: critic_loss = nan"
    d = write_run(results, "fig5", "square", "expo", 5, [(0, 0.0), (10, 0.0), (20, 0.0)])
    (d / "status.json").write_text(json.dumps({"finished": False, "failed": True, "diverged": True,
                                               "reason": reason, "error": reason}))
    loaded = load_runs(results)
    assert 5 not in set(loaded.data.loc[loaded.data["method"] == "expo", "seed"])
    assert loaded.diverged == [f"fig5/square/expo/seed_5: {reason}"]
    out = tmp_path / "figures"
    make_figures(results, out, stream=io.StringIO(), expected_runs=no_grid,
                 options=Options(smooth=3, bootstrap_reps=200, env_pictures="never"))
    sq = pd.read_csv(out / "fig5_summary.csv").query("task == 'square'").set_index("method")
    assert sq.loc["expo", "n_seeds"] == 3 and sq.loc["expo", "final_mean"] == pytest.approx(0.9)
    iqm = pd.read_csv(out / "aggregate_iqm.csv")
    expo = iqm[(iqm["figure"] == "fig5") & (iqm["method"] == "expo")]
    assert expo["n_runs"].tolist() == [5]  # square seeds 0-2 and can seeds 0-1, not seed 5
    report = (out / "REPORT.md").read_text()
    assert "## Diverged runs (1): not drawn" in report
    assert f"- fig5/square/expo/seed_5: {reason}" in report
