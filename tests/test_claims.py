"""The claims table (analysis/claims.py): scores per run, IQM effects against hand-computed values,
verdicts in each direction, unfinished runs left out, and the report/figure wiring."""
import numpy as np
import pandas as pd
import pytest

from analysis import claims


def _runs(folder, label, curves, finished=True, task="lift"):
    """Rows of the tidy run table: one run per curve (values at env steps 0, 100, 200, ...)."""
    rows = []
    for seed, values in enumerate(curves):
        for i, v in enumerate(values):
            rows.append(dict(figure=folder, task=task, method=label, seed=seed, env_step=100 * i,
                             value=float(v), finished=finished))
    return rows


def _frame(*groups):
    return pd.DataFrame([r for g in groups for r in g])


def test_run_scores_final_and_online_mean_by_hand():
    data = _frame(_runs("f", "a", [[0.5, 0.2, 0.4, 0.9], [0.0, 1.0, 0.0, 0.5]]),
                  _runs("f", "b", [[0.1, 0.3]], finished=False))
    scores = claims.run_scores(data).set_index(["method", "seed"])
    assert scores.loc[("a", 0), "final"] == pytest.approx(0.9)
    assert scores.loc[("a", 0), "online_mean"] == pytest.approx((0.2 + 0.4 + 0.9) / 3)
    assert scores.loc[("a", 1), "online_mean"] == pytest.approx(0.5)
    assert ("b", 0) not in scores.index      # still running: not read at the wrong step


CLAIM = claims.Claim("Fig. X", "a beats b", "f", "a", ("b",), "final")


def _verdict(a_finals, b_finals, claim=CLAIM, **kw):
    data = _frame(_runs("f", "a", [[0.0, v] for v in a_finals]),
                  _runs("f", "b", [[0.0, v] for v in b_finals]))
    return claims.evaluate_claims(data, [claim], reps=2000, **kw).iloc[0]


def test_effect_is_the_iqm_difference_and_clear_gaps_decide():
    row = _verdict([0.9, 0.8, 1.0], [0.2, 0.3, 0.1])
    # 3 runs on one task: trim_mean(., 0.25) cuts int(0.75) = 0 runs per end, i.e. the mean.
    assert row["arm_iqm"] == pytest.approx(0.9)
    assert row["other_iqm"] == pytest.approx(0.2)
    assert row["effect"] == pytest.approx(0.7)
    # every resample of a lies in [0.8, 1.0] and of b in [0.1, 0.3]
    assert 0.5 - 1e-9 <= row["effect_low"] <= row["effect"] <= row["effect_high"] <= 0.9 + 1e-9
    assert row["verdict"] == claims.HOLDS
    assert _verdict([0.2, 0.3, 0.1], [0.9, 0.8, 1.0])["verdict"] == claims.DOES_NOT_HOLD


def test_iqm_trims_with_four_seeds():
    row = _verdict([0.0, 0.5, 0.6, 1.0], [0.1, 0.1, 0.1, 0.1])
    # trim_mean(., 0.25) of 4 runs cuts one from each end: mean of 0.5 and 0.6.
    assert row["arm_iqm"] == pytest.approx(0.55)


def test_overlapping_seeds_are_not_resolvable():
    row = _verdict([0.9, 0.2, 0.6], [0.7, 0.3, 0.5])
    assert row["effect_low"] < 0 < row["effect_high"]
    assert row["verdict"] == claims.NOT_RESOLVABLE


def test_too_few_finished_seeds_is_not_measured_and_deterministic_otherwise():
    assert _verdict([0.9, 0.8], [0.2, 0.3, 0.1])["verdict"] == claims.NOT_MEASURED
    a = _verdict([0.9, 0.2, 0.6], [0.7, 0.3, 0.5])
    b = _verdict([0.9, 0.2, 0.6], [0.7, 0.3, 0.5])
    assert a["effect_low"] == b["effect_low"] and a["effect_high"] == b["effect_high"]


def test_online_mean_score_reads_the_whole_curve():
    claim = claims.Claim("Fig. X", "a learns faster", "f", "a", ("b",), "online_mean")
    # same final success, but a gets there first
    data = _frame(_runs("f", "a", [[0.2, 0.9, 0.9, 0.9]] * 3),
                  _runs("f", "b", [[0.2, 0.2, 0.5, 0.9]] * 3))
    row = claims.evaluate_claims(data, [claim], reps=500).iloc[0]
    assert row["effect"] == pytest.approx(0.9 - (0.2 + 0.5 + 0.9) / 3)
    assert row["verdict"] == claims.HOLDS


def test_every_claim_names_runs_its_grid_launches():
    """A claim's labels are arms of its folder's grid, so the grid's runs can decide it."""
    from experiments import grids

    for claim in claims.CLAIMS:
        labels = {grids.label(a) for a in grids.arms_of(grids.load(claim.folder))}
        assert {claim.arm, *claim.against, *claim.shown} <= labels, claim
        assert claim.score in claims.SCORES and claim.panel.startswith("Fig.")


def test_markdown_has_one_row_per_comparison():
    data = _frame(*(_runs("cpu4", label, [[0.1, 0.5]] * 3) for label in ("expo", "idql", "rlpd")))
    table = claims.evaluate_claims(data, reps=100)
    lines = claims.markdown(table)
    assert len(lines) == 2 + len(table)
    measured = table[table["verdict"] != claims.NOT_MEASURED]
    assert set(measured["other"]) == {"idql", "rlpd"}
    assert (measured["verdict"] == claims.NOT_RESOLVABLE).all()   # identical runs: effect 0
    assert np.allclose(measured["effect"], 0.0)


def test_make_figures_draws_claim_panels_and_reports_the_claims(tmp_path):
    """A cpu3 folder: one "Fig. 3" panel with its five methods, claims.csv, and the report's claims
    section with the verdict of each comparison; a run without status 'finished' is not counted."""
    import json

    from analysis.figures import Options, make_figures

    root = tmp_path / "results"
    finals = {"expo": [0.9, 0.8, 1.0], "rlpd": [0.1, 0.2, 0.0], "idql": [0.2, 0.3, 0.1],
              "dipo": [0.8, 0.9, 1.0], "qsm": [0.95, 1.0, 1.0]}
    for method, values in finals.items():
        for seed, v in enumerate(values):
            d = root / "cpu3" / "lift" / method / f"seed_{seed}"
            d.mkdir(parents=True)
            (d / "eval.csv").write_text("env_step,success,return,episodes,wall_time_s\n"
                                        f"0,0.0,0,20,1\n10,{v / 2},0,20,2\n20,{v},0,20,3\n")
            (d / "config.json").write_text(json.dumps({
                "task": "lift", "method": method, "seed": seed, "figure": "cpu3",
                "setting": "online", "protocol": {"metric": "success_rate"}}))
            finished = not (method == "qsm" and seed == 2)
            (d / "status.json").write_text(json.dumps({"finished": finished}))
    out = tmp_path / "figures"
    make_figures(root, out, stream=open("/dev/null", "w"),
                 options=Options(bootstrap_reps=500, env_pictures="never"))
    drawn = pd.read_csv(out / "cpu3_data.csv")
    assert drawn["panel"].str.contains("Fig. 3").all()
    table = pd.read_csv(out / "claims.csv")
    rows = table[table["folder"] == "cpu3"].set_index("other")
    assert rows.loc["rlpd", "verdict"] == claims.HOLDS
    assert rows.loc["rlpd", "effect"] == pytest.approx(0.9 * 0.75 - 0.1 * 0.75)   # online means
    assert rows.loc["dipo", "verdict"] == claims.NOT_RESOLVABLE
    assert rows.loc["qsm", "verdict"] == claims.NOT_MEASURED        # 2 finished runs of 3
    report = (out / "REPORT.md").read_text()
    assert "## Claims tested at CPU scale" in report and "expo vs rlpd" in report


def test_claim_panels_tell_variants_from_their_method():
    """In a claim panel a sweep variant (EXPO, N=8; imitation on 3 demos) is drawn in a paler shade
    of its method's colour and a line style of its own; no two variants of a method share a style
    (they share the legend); a label keeps one style in every panel."""
    from analysis.draw import line_style
    from analysis.figures import Options, draw_claim_panels
    from analysis.style import method_color

    curve = [0.1, 0.5, 0.9]
    data = _frame(*(_runs("cpu4", label, [curve] * 3)
                    for label in ("expo", "expo-N2", "expo-N8", "expo-demos3")),
                  *(_runs("cpu4", label, [[0.6]] * 3) for label in ("bc", "bc-demos3")))
    data["metric"] = "success_rate"
    panels, _ = draw_claim_panels("cpu4", data, None, Options(bootstrap_reps=10))
    styles = {}
    for panel in panels:
        for s in panel.series:
            style = (s.color, line_style(s))
            assert styles.setdefault(s.key, style) == style, s.key
    assert styles["expo"] == (method_color("expo"), "-")
    assert styles["bc"] == (method_color("bc"), "--")
    assert len({styles[k] for k in ("expo", "expo-N2", "expo-N8", "expo-demos3")}) == 4
    assert styles["expo-N2"][0] != method_color("expo")
    assert styles["bc-demos3"] not in (styles["bc"],) and styles["bc-demos3"][1] != "--"
