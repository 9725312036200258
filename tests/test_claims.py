"""The claims table (analysis/claims.py): scores per run, effects and exact p-values against
hand-computed values, Holm, the smallest resolvable effect, the paper's ratio, verdicts in each
direction, unfinished runs left out, the verdicts' independence of the seed, the procedure's
simulated error rates, and the report/figure wiring."""
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


def test_run_scores_by_hand():
    data = _frame(_runs("f", "a", [[0.5, 0.2, 0.4, 0.9], [0.0, 1.0, 0.0, 0.5]]),
                  _runs("f", "b", [[0.1, 0.3]], finished=False))
    scores = claims.run_scores(data).set_index(["method", "seed"])
    assert scores.loc[("a", 0), "final"] == pytest.approx(0.9)
    assert scores.loc[("a", 0), "online_mean"] == pytest.approx((0.2 + 0.4 + 0.9) / 3)
    assert scores.loc[("a", 1), "online_mean"] == pytest.approx(0.5)
    assert scores.loc[("a", 0), "step0"] == 0.5 and scores.loc[("a", 0), "first_online"] == 0.2
    assert ("b", 0) not in scores.index      # still running: not read at the wrong step


CLAIM = claims.Claim("Fig. X", "a beats b", "T, 1M", "f", "a", ("b",), "final", "why")


def _verdict(a_finals, b_finals, claim=CLAIM, **kw):
    data = _frame(_runs("f", "a", [[0.0, v] for v in a_finals]),
                  _runs("f", "b", [[0.0, v] for v in b_finals]))
    return claims.evaluate_claims(data, [claim], reps=200, **kw).iloc[0]


def test_effect_is_the_mean_difference_and_the_exact_p_decides():
    row = _verdict([0.9, 0.8, 1.0, 0.9, 0.85], [0.2, 0.3, 0.1, 0.2, 0.25])
    assert row["arm_mean"] == pytest.approx(0.89) and row["other_mean"] == pytest.approx(0.21)
    assert row["effect"] == pytest.approx(0.68)
    # 5 against 5, fully separated: only the observed split of C(10, 5) = 252 is as extreme
    assert row["assignments"] == 252 and row["exact"]
    assert row["p"] == pytest.approx(1 / 252) and row["p_against"] == 1.0
    assert row["verdict"] == claims.HOLDS
    worse = _verdict([0.2, 0.3, 0.1, 0.2, 0.25], [0.9, 0.8, 1.0, 0.9, 0.85])
    assert worse["verdict"] == claims.DOES_NOT_HOLD and worse["p_against"] == pytest.approx(1 / 252)


def test_three_seeds_cannot_decide_but_show_effect_p_and_resolution():
    """3 against 3: at best p = 1/20 = 0.05; with fewer than MIN_SEEDS runs the row is not
    measured yet, and shows its effect, p and smallest resolvable effect all the same."""
    row = _verdict([0.9, 0.8, 1.0], [0.2, 0.3, 0.1])
    assert row["p"] == pytest.approx(1 / 20) and row["assignments"] == 20
    assert row["verdict"] == claims.NOT_MEASURED
    assert row["effect"] == pytest.approx(0.7) and np.isfinite(row["resolvable"])
    # with 4 rows under Holm, 0.05 / 4 is below 1/20: no effect can be resolved
    four = claims.Claim("Fig. X", "a beats all", "T", "f", "a", ("b", "c", "d", "e"), "final", "")
    data = _frame(*(_runs("f", label, [[0.0, v] for v in values]) for label, values in (
        ("a", [0.9, 0.8, 1.0]), *((x, [0.2, 0.3, 0.1]) for x in "bcde"))))
    table = claims.evaluate_claims(data, [four], reps=50)
    assert table["resolvable"].isna().all() and np.allclose(table["p_holm"], 0.2)


def test_overlapping_seeds_are_not_resolvable():
    row = _verdict([0.9, 0.2, 0.6, 0.5, 0.4], [0.7, 0.3, 0.5, 0.6, 0.4])
    assert 0.05 < row["p"] < 0.95
    assert row["verdict"] == claims.NOT_RESOLVABLE


def test_permutation_p_against_brute_force_and_stratified_by_task():
    """The p-value is the share of all splits of each task's pooled runs (tasks kept apart) whose
    mean over tasks of the mean difference is at least the observed one."""
    from itertools import combinations

    a = {"t1": [0.5, 0.7, 0.6], "t2": [0.1, 0.4]}
    b = {"t1": [0.4, 0.6, 0.3], "t2": [0.2, 0.0, 0.1]}
    rows = []
    for task in a:
        rows += _runs("f", "a", [[0.0, v] for v in a[task]], task=task)
        rows += _runs("f", "b", [[0.0, v] for v in b[task]], task=task)
    row = claims.evaluate_claims(pd.DataFrame(rows), [CLAIM], reps=50).iloc[0]

    def stat(split):
        return np.mean([np.mean(x) - np.mean(y) for x, y in split])

    per_task = []
    for task in a:
        pooled = a[task] + b[task]
        n = len(a[task])
        per_task.append([([pooled[i] for i in c], [pooled[i] for i in range(len(pooled))
                                                      if i not in c])
                         for c in combinations(range(len(pooled)), n)])
    observed = stat([(a[t], b[t]) for t in a])
    all_stats = [stat([s1, s2]) for s1 in per_task[0] for s2 in per_task[1]]
    assert row["assignments"] == len(all_stats) == 20 * 10
    assert row["effect"] == pytest.approx(observed)
    assert row["p"] == pytest.approx(np.mean([s >= observed - 1e-9 for s in all_stats]))
    assert row["p_against"] == pytest.approx(np.mean([s <= observed + 1e-9 for s in all_stats]))


def test_smallest_resolvable_effect_is_the_boundary_of_significance():
    """Shifting the arm so that the effect is just above the smallest resolvable effect makes the
    test significant at ALPHA; just below, not."""
    rng = np.random.default_rng(3)
    for _ in range(20):
        a, b = rng.uniform(0, 1, 5), rng.uniform(0, 1, 5)
        stat, coef = claims._two_sample(a, b)
        best = claims.smallest_significant(stat, coef, claims.ALPHA)
        for eps, significant in ((1e-6, True), (-1e-6, False)):
            shifted = a + (best - stat[0]) + eps
            p, _ = claims.p_values(claims._two_sample(shifted, b)[0])
            assert (p <= claims.ALPHA) == significant
        d = rng.normal(0, 1, 6)
        stat, coef = claims._paired(d)
        best = claims.smallest_significant(stat, coef, claims.ALPHA)
        for eps, significant in ((1e-6, True), (-1e-6, False)):
            p, _ = claims.p_values(claims._paired(d + (best - stat[0]) + eps)[0])
            assert (p <= claims.ALPHA) == significant
    # 3 against 3 at 0.05 / 2: out of reach
    stat, coef = claims._two_sample([1.0, 2.0, 3.0], [0.0, 0.5, 1.0])
    assert np.isnan(claims.smallest_significant(stat, coef, claims.ALPHA / 2))


def test_holm_adjusts_over_the_claims_rows():
    adjusted, divisors = claims.holm(np.array([0.01, 0.04, 0.03]))
    assert adjusted == pytest.approx([0.03, 0.06, 0.06])
    assert divisors.tolist() == [3, 1, 2]
    # a claim with two rows: the better row passes at 0.05 / 2 only when its raw p allows
    claim = claims.Claim("Fig. X", "a beats b and c", "T", "f", "a", ("b", "c"), "final", "")
    data = _frame(_runs("f", "a", [[0.0, v] for v in (0.9, 0.8, 1.0, 0.9, 0.85)]),
                  _runs("f", "b", [[0.0, v] for v in (0.2, 0.3, 0.1, 0.2, 0.25)]),
                  _runs("f", "c", [[0.0, v] for v in (0.9, 0.8, 0.7, 0.95, 0.6)]))
    table = claims.evaluate_claims(data, [claim], reps=50).set_index("other")
    assert table.loc["b", "p_holm"] == pytest.approx(2 / 252)
    assert table.loc["b", "verdict"] == claims.HOLDS
    assert table.loc["c", "verdict"] == claims.NOT_RESOLVABLE


def test_paired_rows_flip_signs_and_a_no_drop_claim_has_a_margin():
    """Two scores of the same runs: every sign flip of the per-run differences (2^5 = 32). A
    no-drop claim holds when the arm is above the other minus the margin."""
    curves = [[0.5, 0.55], [0.6, 0.6], [0.4, 0.45], [0.5, 0.5], [0.7, 0.65]]
    claim = claims.Claim("Fig. X", "\"no drop\"", "T", "f", "a",
                         (claims.Versus("a", "a", "first_online", "step0"),), "step0", "",
                         margin=claims.NO_DROP_MARGIN)
    row = claims.evaluate_claims(_frame(_runs("f", "a", curves)), [claim], reps=50).iloc[0]
    assert row["paired"] and row["assignments"] == 32 and row["arm_seeds"] == 5
    assert row["effect"] == pytest.approx(0.01)
    # every difference + 0.1 is positive: only the identity is as large
    assert row["p"] == pytest.approx(1 / 32) and row["verdict"] == claims.HOLDS
    drop = claims.Claim("Fig. X", "drops", "T", "f", "a",
                        (claims.Versus("a", "a", "step0", "first_online"),), "step0", "")
    row = claims.evaluate_claims(_frame(_runs("f", "a", curves)), [drop], reps=50).iloc[0]
    assert row["effect"] == pytest.approx(-0.01) and row["verdict"] == claims.NOT_RESOLVABLE


def test_online_mean_score_reads_the_whole_curve():
    claim = claims.Claim("Fig. X", "a learns faster", "T", "f", "a", ("b",), "online_mean", "")
    # same final success, but a gets there first
    data = _frame(_runs("f", "a", [[0.2, 0.9, 0.9, 0.9]] * 5),
                  _runs("f", "b", [[0.2, 0.2, 0.5, 0.9]] * 5))
    row = claims.evaluate_claims(data, [claim], reps=50).iloc[0]
    assert row["effect"] == pytest.approx(0.9 - (0.2 + 0.5 + 0.9) / 3)
    assert row["verdict"] == claims.HOLDS


def test_smooth_rows_is_the_figures_running_average():
    from analysis.curves import running_average

    rng = np.random.default_rng(0)
    for n, window in ((5, 3), (7, 5), (4, 1), (1, 3)):
        x = rng.uniform(0, 1, (3, n))
        expected = np.stack([running_average(row, window) for row in x])
        np.testing.assert_allclose(claims.smooth_rows(x, window), expected)


def test_steps_to_target_and_the_papers_ratio():
    """Per run: the first step from which its smoothed curve stays at or above the other arm's
    final mean; the row also gives stats.sample_efficiency's ratio on the mean curves."""
    steps = np.array([0, 100, 200, 300, 400])
    values = np.array([[0.0, 0.2, 0.4, 0.6, 0.8], [0.0, 0.0, 0.0, 0.0, 0.1]])
    assert claims.steps_to_target(steps, values, 0.4, 1).tolist() == [200, 500]
    claim = claims.Claim("Fig. X", "a is faster", "T", "f", "a", ("b",), "steps_to_target", "")
    a = [[0.0, 0.1, 0.3, 0.5, 0.7], [0.0, 0.3, 0.5, 0.7, 0.9]]      # mean 0, .2, .4, .6, .8
    b = [[0.0, 0.1, 0.2, 0.3, 0.4]] * 2                             # final .4 at 400
    data = _frame(_runs("f", "a", a), _runs("f", "b", b))
    row = claims.evaluate_claims(data, [claim], reps=300).iloc[0]
    assert row["ratio"] == pytest.approx(2.0)                       # 400 / 200, as stats says
    assert row["ratio_low"] <= 2.0 <= row["ratio_high"]
    se = stats_ratio(data)
    assert se == pytest.approx(row["ratio"])
    # per run, window 3 (a task outside the protocol): a reaches .4 at 300 and 200; b at 400
    assert row["arm_mean"] == pytest.approx(250) and row["other_mean"] == pytest.approx(400)
    assert row["effect"] == pytest.approx(150)                      # steps fewer
    zero = _frame(_runs("f", "a", a), _runs("f", "b", [[0.0] * 5] * 2))
    row = claims.evaluate_claims(zero, [claim], reps=50).iloc[0]
    assert np.isnan(row["ratio"]) and "final success is 0" in row["ratio_note"]
    assert "ratio undefined: baseline final 0" in claims.compact_markdown(
        claims.evaluate_claims(zero, [claim], reps=50))[2]


def stats_ratio(data):
    from analysis import stats

    se = stats.sample_efficiency(data.rename(columns={}), expo="a")
    return float(se.loc[se["baseline"] == "b", "ratio"].iloc[0])


def test_monte_carlo_beyond_the_exact_limit_agrees(monkeypatch):
    a, b = [0.9, 0.7, 0.8, 0.6, 0.75, 0.5], [0.5, 0.6, 0.4, 0.55, 0.3, 0.65]
    exact = _verdict(a, b)
    monkeypatch.setattr(claims, "EXACT_LIMIT", 10)
    monkeypatch.setattr(claims, "MONTE_CARLO_DRAWS", 20_000)
    drawn = _verdict(a, b)
    assert exact["exact"] and not drawn["exact"]
    assert drawn["p"] == pytest.approx(exact["p"], abs=0.01)


def test_committed_verdicts_do_not_depend_on_the_seed():
    """The same verdicts, p-values and resolvable effects for 20 seeds of the procedure's own
    randomness (which draws only the ratios' bootstrap intervals)."""
    from pathlib import Path

    from analysis.runs import load_runs

    data = load_runs(Path(__file__).resolve().parents[1] / "results").data
    tables = [claims.evaluate_claims(data, reps=100, seed=s) for s in range(20)]
    for t in tables[1:]:
        assert t["verdict"].tolist() == tables[0]["verdict"].tolist()
        for col in ("p_holm", "p_against_holm", "resolvable", "effect"):
            np.testing.assert_array_equal(t[col].to_numpy(float), tables[0][col].to_numpy(float))


def _committed_table():
    from pathlib import Path

    from analysis.runs import load_runs

    return claims.evaluate_claims(
        load_runs(Path(__file__).resolve().parents[1] / "results").data, reps=50)


def test_error_rates_on_the_committed_spreads():
    """The decision procedure's error rates, simulated with the spreads of the committed runs
    (MIN_SEEDS runs per arm): with no effect, a wrong "holds" or "does not hold" at most ALPHA
    (exact tests; 3 standard errors of simulation slack); with unequal spreads and equal means
    (where a permutation test is not exact) at most twice that; with an effect in the paper's
    direction a wrong "does not hold" at most ALPHA."""
    sims = 2000
    rates = claims.simulate_error_rates(_committed_table(), sims=sims, seed=1)
    assert set(rates["claim"]) == set(range(1, len(claims.CLAIMS) + 1))
    slack = 3 * np.sqrt(claims.ALPHA * (1 - claims.ALPHA) / sims)
    by = rates.set_index(["scenario", "claim"])
    assert (by.loc["no effect", ["holds", "does_not_hold"]] <= claims.ALPHA + slack).all().all()
    unequal = by.loc["no effect, unequal spreads", ["holds", "does_not_hold"]]
    assert (unequal <= 2 * claims.ALPHA + slack).all().all()
    assert (by.loc["effect", "does_not_hold"] <= claims.ALPHA).all()
    assert (by.loc["effect", "holds"] > 0.5).sum() >= len(claims.CLAIMS) - 1   # not vacuous


def test_steps_to_target_test_keeps_its_rate_though_the_target_is_the_others_mean():
    """The steps-to-target target is the other arm's own final mean, so its runs are not
    exchangeable with the arm's under no effect; simulated learning curves (binomial evaluations
    of 20 episodes) show the test keeps its rate all the same (it is conservative)."""
    rng = np.random.default_rng(0)
    steps = np.array([0, 2500, 5000, 7500, 10_000])
    rise = np.array([0.3, 0.5, 0.7, 0.85, 1.0])

    def curves(n):
        level = np.clip(0.3 + 0.15 * rng.standard_normal((n, 1)), 0.02, 0.98)
        return rng.binomial(20, level * rise) / 20

    wrong = 0
    sims = 600
    for _ in range(sims):
        a, b = curves(claims.MIN_SEEDS), curves(claims.MIN_SEEDS)
        target = b[:, -1].mean()
        stat, _ = claims._two_sample(-claims.steps_to_target(steps, a, target, 3),
                                     -claims.steps_to_target(steps, b, target, 3))
        up, down = claims.p_values(stat)
        wrong += (up <= claims.ALPHA) + (down <= claims.ALPHA)
    assert wrong / sims <= 2 * claims.ALPHA


def test_every_claim_names_runs_its_grid_launches():
    """A claim's labels are arms of its folder's grid, so the grid's runs can decide it."""
    from experiments import grids

    for claim in claims.CLAIMS:
        labels = {grids.label(a) for a in grids.arms_of(grids.load(claim.folder))}
        assert set(claim.labels) <= labels, claim
        assert claim.panel.startswith("Fig.") and claim.reason and claim.paper
        for row in claim.rows:
            assert row.arm_score in claims.SCORES and row.other_score in claims.SCORES


def test_every_claim_quotes_the_paper_or_says_it_is_the_suites_reading():
    for claim in claims.CLAIMS:
        assert claim.quoted or claim.words.endswith(claims.SUITE), claim.words
        assert claim.quoted == claim.words.startswith("\"")


def test_markdown_has_one_row_per_comparison():
    data = _frame(*(_runs("cpu4", label, [[0.1, 0.5]] * 5) for label in ("expo", "idql", "rlpd")))
    table = claims.evaluate_claims(data, reps=50)
    for lines in (claims.markdown(table), claims.compact_markdown(table)):
        assert len(lines) == 2 + len(table)
    measured = table[(table["verdict"] != claims.NOT_MEASURED) & ~table["paired"].astype(bool)]
    assert set(measured["other"]) == {"idql", "rlpd"}
    assert (measured["verdict"] == claims.NOT_RESOLVABLE).all()   # identical runs: effect 0
    assert np.allclose(measured["effect"], 0.0)


def test_make_figures_draws_claim_panels_and_reports_the_claims(tmp_path):
    """A cpu3 folder: one "Fig. 3" panel with its five methods, claims.csv, and the report's claims
    section with the verdict of each comparison and the simulated error rates; a run without status
    'finished' is not counted."""
    import json

    from analysis.figures import Options, make_figures

    root = tmp_path / "results"
    finals = {"expo": [0.9, 0.8, 1.0, 0.9, 0.85], "rlpd": [0.3] * 5,
              "idql": [0.2, 0.3, 0.1, 0.4, 0.2], "dipo": [0.8, 0.9, 1.0, 0.85, 0.95],
              "qsm": [0.95, 1.0, 1.0, 0.9, 0.9]}
    for method, values in finals.items():
        for seed, v in enumerate(values):
            d = root / "cpu3" / "lift" / method / f"seed_{seed}"
            d.mkdir(parents=True)
            (d / "eval.csv").write_text("env_step,success,return,episodes,wall_time_s\n"
                                        f"0,0.0,0,20,1\n10,{v / 2},0,20,2\n20,{v},0,20,3\n")
            (d / "config.json").write_text(json.dumps({
                "task": "lift", "method": method, "seed": seed, "figure": "cpu3",
                "setting": "online", "protocol": {"metric": "success_rate"}}))
            finished = not (method == "qsm" and seed == 4)
            (d / "status.json").write_text(json.dumps({"finished": finished}))
    out = tmp_path / "figures"
    make_figures(root, out, stream=open("/dev/null", "w"),
                 options=Options(bootstrap_reps=200, env_pictures="never"))
    drawn = pd.read_csv(out / "cpu3_data.csv")
    assert drawn["panel"].str.contains("Fig. 3").all()
    table = pd.read_csv(out / "claims.csv")
    rows = table[table["folder"] == "cpu3"].set_index("other")
    # every EXPO run stays at or above RLPD's final .3 from step 10, every RLPD run from step 20:
    # 10 steps fewer, p = 1/252, 4/252 after Holm over the claim's four rows; ratio 20 / 10
    assert rows.loc["rlpd", "effect"] == pytest.approx(10)
    assert rows.loc["rlpd", "p_holm"] == pytest.approx(4 / 252)
    assert rows.loc["rlpd", "verdict"] == claims.HOLDS
    assert rows.loc["rlpd", "ratio"] == pytest.approx(2.0)
    assert rows.loc["dipo", "verdict"] == claims.NOT_RESOLVABLE
    assert rows.loc["qsm", "verdict"] == claims.NOT_MEASURED        # 4 finished runs of 5
    assert rows.loc["qsm", "other_seeds"] == 4 and not np.isnan(rows.loc["qsm", "p"])
    report = (out / "REPORT.md").read_text()
    assert "## Claims tested at CPU scale" in report and "expo vs rlpd" in report
    assert "Error rates of this procedure, simulated" in report


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


def test_the_papers_budget_is_read_from_the_protocol(monkeypatch):
    import dataclasses

    from expo import protocol

    assert claims.paper_budget() == "12 tasks, 0.3-1M steps"
    assert claims.paper_budget(("pen-binary-v0", "square"), "10-200 demos") == \
        "pen-binary, Square, 10-200 demos, 1M steps"
    monkeypatch.setitem(protocol.TASKS, "can", dataclasses.replace(protocol.TASKS["can"], train_steps=500_000))
    assert claims.paper_budget(("can", "square")) == "Can, Square, 0.5-1M steps"
