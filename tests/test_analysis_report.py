"""`make figures` on a small synthetic results tree in the real layout (a folder for each of
Figs. 3-10 written here): every expected file, the drawn numbers against the CSVs, the statistics,
and the report's run counts and missing runs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.completeness import NoGrid, folder_status, grid_runs
from analysis.curves import running_average
from analysis.figures import Options, iqm_panel_layout, make_figures
from analysis.runs import load_runs

REPO = Path(__file__).resolve().parents[1]
HEADER = "env_step,success,return,episodes,episode_length,wall_time_s"
STEPS = [0, 10_000, 20_000, 30_000, 40_000]


def write_run(root: Path, figure, task, label, seed, rows, setting="online", dataset=None):
    """One run directory as the training loop writes it: eval.csv, config.json, status.json."""
    method, _, variant = label.partition("-")
    d = root / figure / task / label / f"seed_{seed}"
    d.mkdir(parents=True)
    lines = [HEADER] + [f"{s},{v:.6g},{v:.6g},50,200,{i * 10.0}" for i, (s, v) in enumerate(rows)]
    (d / "eval.csv").write_text("\n".join(lines) + "\n")
    (d / "config.json").write_text(json.dumps({
        "task": task, "method": method, "variant": variant, "seed": seed, "figure": figure,
        "setting": setting, "protocol": {"metric": "success_rate"},
        **({"dataset": {"name": dataset, "num_demos": 10, "seed": seed}} if dataset else {})}))
    (d / "status.json").write_text(json.dumps({"finished": True, "env_steps": rows[-1][0]}))


def rising(final, seed, n=len(STEPS)):
    """A curve from 0 rising linearly to `final` (+ 0.1 per seed), on STEPS."""
    top = min(final + 0.1 * seed, 1.0)
    return list(zip(STEPS[:n], np.linspace(0.0, top, len(STEPS))[:n]))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic") / "results"
    for task in ("lift", "can"):                                  # Fig. 3: online
        for method, final in (("expo", 0.8), ("rlpd", 0.4), ("idql", 0.2)):
            for seed in range(3):
                if (task, method, seed) == ("can", "idql", 2):
                    continue                                      # a missing seed
                write_run(root, "fig3", task, method, seed, rising(final, seed))
    for task in ("lift", "square"):                               # Fig. 4: offline-to-online
        for method, final in (("expo", 0.9), ("calql", 0.5)):
            for seed in range(3):
                write_run(root, "fig4", task, method, seed, rising(final, seed),
                          "offline_to_online")
    for k, expo_final in ((10, 0.3), (50, 0.6), (200, 0.9)):      # Fig. 7: subsampling
        for seed in range(2):
            write_run(root, "fig7", "square", f"expo-demos{k}", seed, rising(expo_final, seed, 3),
                      "offline_to_online")
            write_run(root, "fig7", "square", f"expo_entropy_backup-demos{k}", seed,
                      rising(expo_final + 0.05, seed, 3), "offline_to_online")
            write_run(root, "fig7", "square", f"bc-demos{k}", seed, [(0, k / 400 + 0.05 * seed)],
                      "offline_to_online")
    for n, final in ((2, 0.3), (8, 0.7), (16, 0.8)):              # Fig. 9: N sweep
        for seed in range(2):
            write_run(root, "fig9", "lift", f"expo-N{n}", seed, rising(final, seed),
                      "offline_to_online")
    for figure, task, arms in (                                   # Figs. 5, 6, 8, 10: one seed each
            ("fig5", "can", (("expo", 0.8), ("expo_no_otf_backup", 0.4))),
            ("fig6", "square", (("expo", 0.7), ("expo_no_edit", 0.5))),
            ("fig8", "lift", (("expo", 0.6), ("calql_sac", 0.1))),
            ("fig10", "lift", (("expo-beta0.05", 0.6), ("expo-beta0.7", 0.2)))):
        for label, final in arms:
            write_run(root, figure, task, label, 0, rising(final, 0), "offline_to_online")
    return root


def fake_grid(figure):
    """fig3's grid: its 2 tasks x 3 methods x 3 seeds; no grid for the other folders."""
    if figure == "fig3":
        return {(t, m, s) for t in ("lift", "can") for m in ("expo", "rlpd", "idql")
                for s in range(3)}
    raise NoGrid(f"no grid named {figure}")


@pytest.fixture(scope="module")
def made(results, tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    outputs = make_figures(results, out, stream=open(os.devnull, "w"), expected_runs=fake_grid,
                           options=Options(bootstrap_reps=300, env_pictures="never"))
    return out, outputs


def last_rows_mean(results: Path, figure, task, label) -> tuple[float, float, float, int]:
    """(mean, min, max, n) over seeds of each seed's last eval.csv row, read from the files."""
    finals = [pd.read_csv(p)["success"].iloc[-1]
              for p in sorted((results / figure / task / label).glob("seed_*/eval.csv"))]
    return float(np.mean(finals)), float(min(finals)), float(max(finals)), len(finals)


FIGURES = ("fig1", "fig3", "fig4", "fig5", "fig6", "fig7", "fig8", "fig9", "fig10")


def test_every_expected_file(made):
    out, outputs = made
    for name in FIGURES:
        for suffix, magic in ((".png", b"\x89PNG\r\n\x1a\n"), (".pdf", b"%PDF-")):
            path = out / f"{name}{suffix}"
            assert path.is_file() and path.read_bytes()[:len(magic)] == magic, path
        assert (out / f"{name}_data.csv").is_file()
    for folder in FIGURES[1:]:
        assert (out / f"{folder}_summary.csv").is_file()
    for name in ("aggregate_iqm.csv", "aggregate_iqm.png", "aggregate_iqm.pdf",
                 "sample_efficiency.csv", "sample_efficiency_summary.csv", "REPORT.md",
                 "fig7_demos.png", "fig7_demos.pdf", "fig7_demos_data.csv"):
        assert (out / name).is_file(), name
    assert sorted(outputs.figures) == sorted(FIGURES)
    assert not list(out.glob(".*tmp*"))                   # atomic writes leave no temporaries


def test_learning_curve_data_matches_the_csvs(made, results):
    out, _ = made
    data = pd.read_csv(out / "fig3_data.csv")
    assert set(data["panel"]) == {"lift", "can"}
    summary = pd.read_csv(out / "fig3_summary.csv").set_index(["task", "method"])
    for (task, label), g in data.groupby(["panel", "series"]):
        g = g.sort_values("x")
        mean, lo, hi, n = last_rows_mean(results, "fig3", task, label)
        assert g["x"].tolist() == STEPS
        assert g["mean"].iloc[-1] == pytest.approx(mean)      # plotted final mean = CSV rows
        # smoothing does not move the final point: the line ends at the final score of the table
        assert g["line"].iloc[-1] == g["mean"].iloc[-1]
        assert g["line"].iloc[-1] == pytest.approx(summary.loc[(task, label), "final_mean"])
        assert (g["band_min"].iloc[-1], g["band_max"].iloc[-1]) == pytest.approx((lo, hi))
        assert set(g["n_seeds"]) == {n}
        # the line is the centred running average of the mean over the paper's window for
        # Robomimic (3); the band is not smoothed
        np.testing.assert_allclose(g["line"], running_average(g["mean"].to_numpy(), 3))
    assert set(data.loc[(data["panel"] == "can") & (data["series"] == "idql"), "n_seeds"]) == {2}


@pytest.mark.parametrize("figure", ["fig5", "fig6", "fig8", "fig10"])
def test_ablation_and_sweep_curves_match_the_csvs(made, results, figure):
    """Every curve of Figs. 5, 6, 8 and 10 ends at the mean of its runs' last eval.csv rows."""
    out, _ = made
    data = pd.read_csv(out / f"{figure}_data.csv")
    expected = {p.parent.name for p in (results / figure).glob("*/*/seed_0")}
    assert set(data["series"]) == expected
    for (task, label), g in data.groupby(["panel", "series"]):
        mean, _, _, n = last_rows_mean(results, figure, task, label)
        assert g.sort_values("x")["mean"].iloc[-1] == pytest.approx(mean)
        assert set(g["n_seeds"]) == {n}


def test_fig7_is_the_papers_fine_tuned_against_imitation(made, results):
    """Fig. 7 as the paper draws it: x = the imitation policy's success on a subsample (bc-demos<k>),
    y = the success after online RL on the same subsample, EXPO and EXPO + entropy backup."""
    out, _ = made
    data = pd.read_csv(out / "fig7_data.csv")
    assert set(data["series"]) == {"expo", "expo_entropy_backup"}      # bc is the x axis
    assert set(data["panel"]) == {"square"}
    for row in data.itertuples(index=False):
        k = int(row.point.removesuffix(" demos"))
        bc_mean, _, _, _ = last_rows_mean(results, "fig7", "square", f"bc-demos{k}")
        mean, lo, hi, n = last_rows_mean(results, "fig7", "square", f"{row.series}-demos{k}")
        assert row.x == pytest.approx(bc_mean)
        assert row.mean == pytest.approx(mean) and row.line == pytest.approx(mean)
        assert (row.band_min, row.band_max) == pytest.approx((lo, hi))
        assert row.n_seeds == n
    # bc-demos10 seeds 0, 1: 10 / 400 + 0.05 * seed -> x = 0.05; expo-demos10 ends at .3, .4
    expo10 = data[(data["series"] == "expo") & (data["point"] == "10 demos")].iloc[0]
    assert (expo10["x"], expo10["mean"]) == pytest.approx((0.05, 0.35 / 2))


def test_fig7_demos_keeps_final_against_number_of_demos(made, results):
    out, _ = made
    data = pd.read_csv(out / "fig7_demos_data.csv")
    assert set(data["series"]) == {"expo", "expo_entropy_backup", "bc"}
    for (base, k), row in data.set_index(["series", "x"]).iterrows():
        mean, lo, hi, n = last_rows_mean(results, "fig7", "square", f"{base}-demos{int(k)}")
        assert row["mean"] == pytest.approx(mean) and row["line"] == pytest.approx(mean)
        assert (row["band_min"], row["band_max"]) == pytest.approx((lo, hi))
        assert row["n_seeds"] == n
    assert sorted(data.loc[data["series"] == "expo", "x"]) == [10, 50, 200]


def test_fig9_one_line_per_n_in_numeric_order(made):
    out, _ = made
    data = pd.read_csv(out / "fig9_data.csv")
    assert list(dict.fromkeys(data["label"])) == ["N=2", "N=8", "N=16"]
    assert list(dict.fromkeys(data["series"])) == ["expo-N2", "expo-N8", "expo-N16"]


def test_fig1_averages_fig3_and_fig4(made, results):
    out, _ = made
    data = pd.read_csv(out / "fig1_data.csv")
    assert data["panel"].nunique() == 2
    online = data[data["panel"].str.startswith("Online")]
    expo = online[online["series"] == "expo"].sort_values("x")
    per_task = [last_rows_mean(results, "fig3", t, "expo")[0] for t in ("lift", "can")]
    assert expo["mean"].iloc[-1] == pytest.approx(np.mean(per_task))


def test_stats_outputs(made):
    out, _ = made
    se = pd.read_csv(out / "sample_efficiency.csv")
    # fig3 lift: EXPO mean curve 0, .225, .45, .675, .9; rlpd final mean .5 at 40k -> EXPO
    # reaches it at 30k -> ratio 40k / 30k
    r = se[(se["figure"] == "fig3") & (se["task"] == "lift") & (se["baseline"] == "rlpd")].iloc[0]
    assert r["baseline_final"] == pytest.approx(0.5) and r["expo_steps_to_reach"] == 30_000
    assert r["ratio"] == pytest.approx(4 / 3) and r["window"] == 3
    summary = pd.read_csv(out / "sample_efficiency_summary.csv")
    everything = summary[(summary["figure"] == "fig3") & (summary["baseline"] == "all")].iloc[0]
    assert everything["headline"].endswith("over 4 task-baseline pairs; EXPO lost 0 of 4")
    iqm = pd.read_csv(out / "aggregate_iqm.csv")
    fig3 = iqm[iqm["figure"] == "fig3"].set_index("method")
    assert fig3.loc["idql", "n_runs"] == 5 and fig3.loc["expo", "n_runs"] == 6
    assert (fig3["iqm_low"] <= fig3["iqm"]).all() and (fig3["iqm"] <= fig3["iqm_high"]).all()
    # idql's can seed 2 is missing: finals lift .2 .3 .4, can .2 .3. rliable's aggregate_mean is
    # the mean of the task means (.3 + .25) / 2 = .275 (pooling the 5 runs would say .28); the
    # IQM counts lift's runs twice and can's three times (12 entries, 3 cut from each end):
    # mean(.2, .2, .3, .3, .3, .3) = 1.6 / 6
    assert fig3.loc["idql", "mean"] == pytest.approx(0.275)
    assert fig3.loc["idql", "iqm"] == pytest.approx(1.6 / 6)
    assert fig3.loc["idql", "runs_per_task"] == "2-3" and fig3.loc["expo", "runs_per_task"] == "3"


def test_report_lists_counts_and_missing_runs(made):
    out, _ = made
    report = (out / "REPORT.md").read_text()
    for name in FIGURES:
        assert f"({name}.png)" in report
    assert "fig3/can/idql: seed 2" in report                       # the missing seed
    assert "| can | 3/3 | 3/3 | 2/3 (!) |" in report             # expo, rlpd, idql of fig3
    assert "18 runs, seeds 0-2" in report                          # expected from the grid
    assert "max seeds present (3 per task and method)" in report   # fig4 has no grid here
    assert "## Fig. 11: the environments" in report and "Not rendered: --env-pictures never" in report
    assert "## Tables 1-2" in report
    assert "Tables 1-2 come from the code's configs, not from results/" in report
    assert "Sample-efficiency ratio" in report and "ratio = baseline env steps / EXPO env steps" \
        in report
    assert "- EXPO vs all prior methods: median 1.67, mean 1.67 over 4 task-baseline pairs; EXPO " \
        "lost 0 of 4" in report
    assert "(fig7_demos.png)" in report


def test_tables_are_included_when_present(tmp_path):
    results = tmp_path / "results"
    write_run(results, "demo", "lift", "expo", 0, rising(0.5, 0))
    out = tmp_path / "figs"
    out.mkdir()
    (out / "table1.md").write_text("| hyperparameter | code | paper |\n|---|---|---|\n| N | 8 | 8 |\n")
    make_figures(results, out, stream=open(os.devnull, "w"), expected_runs=fake_grid,
                 options=Options(bootstrap_reps=50, env_pictures="never"))
    report = (out / "REPORT.md").read_text()
    assert "| N | 8 | 8 |" in report and "[table1.md](table1.md)" in report
    # figures without runs are listed as not drawn, never silently left out
    assert "Not drawn: no runs under results/fig1, fig3 or fig4." in report
    for absent in FIGURES[1:]:
        assert f"Not drawn: no runs under results/{absent}/" in report


def test_an_embedded_dataset_is_named_on_the_figure_and_in_the_report(tmp_path):
    results = tmp_path / "results"
    for seed in range(2):
        write_run(results, "demo", "lift", "expo", seed, rising(0.5, seed), dataset="lift_scripted")
    write_run(results, "demo", "square", "expo", 0, rising(0.5, 0), dataset="robomimic_square_ph")
    out = tmp_path / "figs"
    make_figures(results, out, stream=open(os.devnull, "w"), expected_runs=fake_grid,
                 options=Options(bootstrap_reps=50, env_pictures="never"))
    report = (out / "REPORT.md").read_text()
    assert ("Note: Robomimic Lift (lift): the runs use the embedded scripted dataset `lift_scripted` "
            "(50 demos of a noisy scripted expert") in report
    assert "square): the runs use" not in report               # the paper's data: no note
    from analysis.figures import learning_curve_panels
    panels = learning_curve_panels(load_runs(results).data, Options())
    assert [p.title for p in panels] == [
        "Robomimic Lift\nembedded scripted dataset (lift_scripted)", "Robomimic Square"]
    assert [p.key for p in panels] == ["lift", "square"]


def test_iqm_panels_in_numeric_order_and_rows():
    assert iqm_panel_layout(["fig10", "fig3", "fig4", "fig5", "demo"]) == (
        ["demo", "fig3", "fig4", "fig5", "fig10"], 2, 3)
    assert iqm_panel_layout(["fig9", "fig10"]) == (["fig9", "fig10"], 1, 2)


def test_completeness_fallback_and_unusable(tmp_path):
    root = tmp_path / "results"
    for seed in range(3):
        write_run(root, "adhoc", "lift", "expo", seed, rising(0.5, seed))
    write_run(root, "adhoc", "lift", "rlpd", 0, rising(0.5, 0))
    (root / "adhoc" / "lift" / "rlpd" / "seed_1").mkdir()          # crashed before evaluating
    st = folder_status("adhoc", load_runs(root), fake_grid)
    assert st.grid_error == "no grid named adhoc"
    assert st.missing == [("lift", "rlpd", 2)]
    assert st.unusable == [("lift", "rlpd", 1)]
    counts = st.counts().set_index("method")
    assert (counts.loc["rlpd", "drawn"], counts.loc["rlpd", "expected"]) == (1, 3)


def test_grid_runs_of_a_real_grid():
    runs = grid_runs("quickstart")
    assert ("lift", "expo", 0) in runs and ("lift", "bc", 1) in runs
    with pytest.raises(NoGrid):
        grid_runs("no_such_grid")


@pytest.mark.slow
def test_cli_like_make_figures(results, tmp_path):
    """The command `make figures` runs, on the synthetic tree (real grids, when they expand)."""
    out = tmp_path / "figures"
    proc = subprocess.run(
        [sys.executable, "-m", "analysis.figures", "--results", str(results), "--out", str(out),
         "--env-pictures", "never", "--bootstrap-reps", "100"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = (out / "REPORT.md").read_text()
    assert "fig3/can/idql: seed 2" in report
    assert {p.name for p in out.glob("fig*.png")} == {f"{name}.png" for name in FIGURES + ("fig7_demos",)}


def test_dynamics_section_lists_every_checked_dataset(tmp_path, monkeypatch):
    """REPORT.md's dynamics section: one table per <data root>/dynamics/*.json, with its numbers."""
    from analysis.report import dynamics_section

    monkeypatch.setenv("EXPO_DATA_ROOT", str(tmp_path))
    assert "No dataset checked" in "\n".join(dynamics_section())
    (tmp_path / "dynamics").mkdir()
    for key, err in (("lift_scripted", 1.5e-08), ("d4rl_antmaze_medium_play_v2", 0.0123)):
        (tmp_path / "dynamics" / f"{key}.json").write_text(json.dumps({
            "dataset": key, "format": "fmt", "env": "env", "state": "exact", "transitions": 200, "seed": 0,
            "tolerance": 1e-4, "groups": [{"name": "torso xy", "dims": 2, "median": err, "p95": err, "max": err,
                                           "within": 0.5}],
            "reward_compared": 200, "reward_agree": 0.995, "notes": ["a note"], "unmapped": ["env joint x"]}))
    text = "\n".join(dynamics_section())
    assert "### lift_scripted (fmt)" in text and "### d4rl_antmaze_medium_play_v2 (fmt)" in text
    assert "| torso xy | 2 | 1.5e-08 | 1.5e-08 | 1.5e-08 | 50.0% |" in text
    assert "| torso xy | 2 | 0.0123 | 0.0123 | 0.0123 | 50.0% |" in text
    assert "99.5% of 200" in text and "- not mapped: env joint x" in text and "- note: a note" in text


def test_report_has_the_dynamics_section(made):
    out, _ = made
    assert "## Offline data vs the online env (dynamics)" in (out / "REPORT.md").read_text()
