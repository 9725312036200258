"""analysis.stats and analysis.curves.average_over_tasks on hand-built tables: final/best scores,
rliable's IQM and mean with a stratified bootstrap (a missing seed included), the sample-efficiency
ratio, its losses and its ill-defined cases, and the average over tasks on an even grid."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from analysis.curves import average_over_tasks, average_window, running_average
from analysis.stats import (aggregate_scores, final_and_best, interval_estimates, rliable_estimates,
                            run_weights, sample_efficiency, steps_to_stay_at_or_above,
                            stratified_bootstrap, summarize_sample_efficiency)
from analysis.style import parse_variant, variant_label


def table(curves, figure="f") -> pd.DataFrame:
    """curves: {(task, method): {seed: [(env_step, value), ...]}} -> tidy run table."""
    rows = []
    for (task, method), seeds in curves.items():
        for seed, points in seeds.items():
            for step, value in points:
                rows.append({"figure": figure, "task": task, "method": method, "seed": seed,
                             "env_step": step, "value": float(value), "setting": "online",
                             "metric": "success_rate"})
    return pd.DataFrame(rows)


def curve(values, steps=(0, 10, 20, 30, 40)):
    return list(zip(steps, values))


# ----------------------------------------------------------------------------- final and best

def test_final_and_best_hand_values():
    d = table({("t", "m"): {0: curve([0.0, 0.6, 0.2, 0.4, 0.5]),
                            1: curve([0.0, 0.8, 0.4, 0.6, 0.3])}})
    r = final_and_best(d).iloc[0]
    assert r["final_mean"] == pytest.approx(0.4)             # last rows 0.5 and 0.3
    assert (r["final_min"], r["final_max"]) == pytest.approx((0.3, 0.5))
    assert r["best_mean"] == pytest.approx(0.7) and r["best_step"] == 10   # mean curve max


# ----------------------------------------------------------------------------- IQM

def test_iqm_hand_computed_and_reproducible():
    # 4 runs x 2 tasks; pooled sorted: 0, .1, .2, .3, .4, .5, .6, 1 -> IQM drops 2 each side:
    # mean(.2, .3, .4, .5) = .35; mean of all = 3.1 / 8.
    scores = {"m": [np.array([0.0, 0.1, 0.2, 0.3]), np.array([0.4, 0.5, 0.6, 1.0])]}
    state = np.random.get_state()
    (point, low, high), = interval_estimates(scores, reps=300, seed=3).values()
    assert point[0] == pytest.approx(0.35) and point[1] == pytest.approx(3.1 / 8)
    assert low[0] <= 0.35 <= high[0] and low[0] < high[0]
    assert 0.0 <= low[0] and high[0] <= 1.0
    # the caller's global random state is left as it was, and the same seed gives the same CI
    after = np.random.get_state()
    assert np.array_equal(state[1], after[1]) and state[2] == after[2]
    (_, low2, high2), = interval_estimates(scores, reps=300, seed=3).values()
    np.testing.assert_array_equal(low, low2)
    np.testing.assert_array_equal(high, high2)
    (_, low3, _), = interval_estimates(scores, reps=300, seed=4).values()
    assert not np.array_equal(low, low3)


def test_stratified_bootstrap_resamples_within_each_task():
    # task 0 has two runs, both 0; task 1 has three runs, all 1: every resample keeps 2 zeros and
    # 3 ones (a pooled bootstrap would not), so the mean of the task means is exactly 1/2 in every
    # resample.
    draws = stratified_bootstrap([np.zeros(2), np.ones(3)], np.random.default_rng(0), reps=200)
    assert draws.shape == (200, 5)
    np.testing.assert_array_equal(draws[:, :2], 0.0)
    np.testing.assert_array_equal(draws[:, 2:], 1.0)
    # within a task the draws are with replacement from that task's runs only
    draws = stratified_bootstrap([np.array([0.0, 1.0]), np.array([5.0, 6.0, 7.0])],
                                 np.random.default_rng(1), reps=500)
    assert set(np.unique(draws[:, :2])) == {0.0, 1.0}
    assert set(np.unique(draws[:, 2:])) == {5.0, 6.0, 7.0}
    (point, low, high), = interval_estimates({"m": [np.zeros(2), np.ones(3)]}, reps=100).values()
    np.testing.assert_allclose([point[1], low[1], high[1]], 0.5)


def test_estimates_are_rliables_on_a_full_runs_x_tasks_matrix():
    # 3 runs x 2 tasks: aggregate_iqm = trim_mean over all 6 entries (cuts int(1.5) = 1 each
    # side): sorted .1 .2 .3 .5 .7 .9 -> mean(.2, .3, .5, .7) = .425; aggregate_mean = mean of the
    # task means (.2 and .7) = .45
    matrix = np.array([[0.1, 0.5], [0.2, 0.7], [0.3, 0.9]])
    point = rliable_estimates(matrix.T.ravel(), [3, 3])      # task-major order, as the runs are
    assert point[0] == pytest.approx(0.425) and point[1] == pytest.approx(0.45)
    assert point[0] == pytest.approx(scipy.stats.trim_mean(matrix, 0.25, axis=None))
    assert point[1] == pytest.approx(np.mean(np.mean(matrix, axis=0)))
    weights, total = run_weights([3, 3])
    np.testing.assert_array_equal(weights, np.ones(6))
    assert total == 6


def test_aggregate_scores_with_a_missing_seed_weighs_every_task_the_same():
    d = table({
        ("a", "expo"): {0: [(0, 0.0), (10, 0.2)], 1: [(0, 0.0), (10, 0.4)],
                        2: [(0, 0.0), (10, 0.9)]},
        ("b", "expo"): {0: [(0, 0.0), (10, 0.6)], 1: [(0, 0.0), (10, 1.0)]},   # seed 2 missing
        ("a", "rlpd"): {0: [(0, 0.0), (10, 0.1)]},                             # no run on b
    })
    t, excluded = aggregate_scores(d, reps=200, seed=0)
    assert excluded == {("f", "rlpd"): ["b"]}
    r = t.set_index("method").loc["expo"]
    assert (r["n_tasks"], r["n_runs"], r["runs_per_task"]) == (2, 5, "2-3")
    # rliable's aggregate_mean: mean of the task means (.5 and .8) = .65, not the pooled 3.1 / 5
    assert r["mean"] == pytest.approx(0.65)
    # IQM: every task weighs the same, as in a full matrix: lcm(3, 2) = 6 rows, a's runs twice,
    # b's three times: .2 .2 .4 .4 .6 .6 .6 .9 .9 1 1 1; trim_mean cuts int(0.25 * 12) = 3 each
    # side -> mean(.4, .6, .6, .6, .9, .9) = 4.0 / 6 (pooling the 5 runs would give 1.9 / 3)
    assert r["iqm"] == pytest.approx(4.0 / 6)
    assert r["iqm_low"] <= r["iqm"] <= r["iqm_high"]
    assert r["mean_low"] <= r["mean"] <= r["mean_high"]
    repeated = np.concatenate([np.repeat([0.2, 0.4, 0.9], 2), np.repeat([0.6, 1.0], 3)])
    assert r["iqm"] == pytest.approx(scipy.stats.trim_mean(repeated, 0.25))
    with pytest.raises(ValueError, match="at least one run"):
        run_weights([3, 0])


# ----------------------------------------------------------------------------- sample efficiency

def test_steps_to_stay_at_or_above():
    assert steps_to_stay_at_or_above([0, 10, 20, 30], [0.1, 0.5, 0.6, 0.7], 0.5) == 10
    # touching the target and falling back does not count: it stays above only from 30
    assert steps_to_stay_at_or_above([0, 10, 20, 30], [0.1, 0.5, 0.4, 0.6], 0.5) == 30
    assert steps_to_stay_at_or_above([0, 10, 20], [0.1, 0.6, 0.4], 0.5) is None
    assert steps_to_stay_at_or_above([0, 10], [0.7, 0.8], 0.5) == 0
    assert steps_to_stay_at_or_above([], [], 0.5) is None


def test_sample_efficiency_hand_built_curves():
    d = table({
        # EXPO mean curve: 0, .2, .4, .6, .8 (two seeds averaging to it; a straight line, so the
        # window-3 running average of a task outside the protocol table leaves it as it is)
        ("t", "expo"): {0: curve([0.0, 0.1, 0.3, 0.5, 0.7]), 1: curve([0.0, 0.3, 0.5, 0.7, 0.9])},
        # final .4 at 40 -> EXPO stays above .4 from 20 -> ratio 40 / 20 = 2
        ("t", "rlpd"): {0: curve([0.0, 0.1, 0.2, 0.3, 0.4]), 1: curve([0.0, 0.1, 0.2, 0.3, 0.4])},
        # final .9 -> EXPO never reaches it: lost, bound 40 / 40 = 1
        ("t", "idql"): {0: curve([0.0, 0.5, 0.9, 0.9, 0.9])},
        # final .6 at 40 with one partial seed (last row at 30): target mean(.8, .4) = .6,
        # baseline steps 40, EXPO stays above .6 from 30 -> 4/3
        ("t", "dac"): {0: curve([0.0, 0.2, 0.4, 0.6, 0.8]), 1: curve([0.0, 0.1, 0.2, 0.4])},
        # final 0 -> ill-defined
        ("t", "qsm"): {0: curve([0.0, 0.0, 0.0, 0.0, 0.0])},
        # imitation only: a single evaluation at env_step 0
        ("t", "bc"): {0: [(0, 0.3)]},
    })
    se = sample_efficiency(d).set_index("baseline")
    assert se.loc["rlpd", "status"] == "ok" and not se.loc["rlpd", "lost"]
    assert se.loc["rlpd", "expo_steps_to_reach"] == 20 and se.loc["rlpd", "baseline_steps"] == 40
    assert se.loc["rlpd", "ratio"] == pytest.approx(2.0) and se.loc["rlpd", "window"] == 3
    assert se.loc["idql", "status"] == "expo_never_reaches" and math.isnan(se.loc["idql", "ratio"])
    assert se.loc["idql", "lost"] and se.loc["idql", "ratio_or_bound"] == pytest.approx(1.0)
    assert se.loc["dac", "baseline_final"] == pytest.approx(0.6)
    assert se.loc["dac", "ratio"] == pytest.approx(40 / 30)
    assert se.loc["qsm", "status"] == "baseline_final_zero" and math.isnan(se.loc["qsm", "ratio"])
    assert se.loc["bc", "status"] == "baseline_no_online_steps"
    assert se.loc["rlpd", "expo_final"] == pytest.approx(0.8)

    s = summarize_sample_efficiency(se.reset_index()).set_index("baseline")
    assert s.loc["rlpd", "median_ratio"] == pytest.approx(2.0) and not s.loc["rlpd", "upper_bounds"]
    assert s.loc["rlpd", "headline"] == "median 2.00, mean 2.00 over 1 task; EXPO lost 0 of 1"
    everything = s.loc["all"]          # the prior methods: the imitation policy (bc) is not one
    assert (everything["n_tasks"], everything["n_decided"], everything["n_lost"],
            everything["n_undefined"]) == (4, 3, 1, 1)
    # the lost idql pair counts, at its bound 1: median(2, 1, 4/3), mean (2 + 1 + 4/3) / 3
    assert everything["median_ratio"] == pytest.approx(4 / 3)
    assert everything["mean_ratio"] == pytest.approx(13 / 9)
    assert everything["upper_bounds"]
    assert everything["headline"].startswith(
        "median \u2264 1.33, mean \u2264 1.44 over 3 task-baseline pairs; EXPO lost 1 of 3")
    assert "1 undefined, left out" in everything["headline"]
    assert "ablations" not in s.index                  # no EXPO variant among these baselines
    assert everything["lost_tasks"] == "t/idql (expo_never_reaches)"
    assert "t/qsm (baseline_final_zero)" in everything["undefined_tasks"]


def test_the_headline_pools_prior_methods_only_and_expo_variants_apart():
    """EXPO's own ablations and sweeps (expo_no_edit, expo-N8, ...) are not prior methods: the
    pooled "all" row leaves them out; they are pooled apart ("ablations")."""
    d = table({
        ("t", "expo"): {0: curve([0.0, 0.2, 0.4, 0.6, 0.8])},
        ("t", "rlpd"): {0: curve([0.0, 0.1, 0.2, 0.3, 0.4])},          # ratio 40 / 20 = 2
        ("t", "expo_no_edit"): {0: curve([0.0, 0.1, 0.1, 0.1, 0.2])},  # ratio 40 / 10 = 4
        ("t", "expo-N8"): {0: curve([0.0, 0.1, 0.1, 0.1, 0.2])},
    })
    s = summarize_sample_efficiency(sample_efficiency(d)).set_index("baseline")
    assert s.loc["all", "n_tasks"] == 1 and s.loc["all", "median_ratio"] == pytest.approx(2.0)
    assert s.loc["ablations", "n_tasks"] == 2
    assert s.loc["ablations", "median_ratio"] == pytest.approx(4.0)
    assert s.loc["ablations", "headline"].endswith("over 2 task-baseline pairs; EXPO lost 0 of 2")


def test_a_lost_task_pulls_the_summary_down_and_is_named_in_the_headline():
    """EXPO 2.5x faster on one task and never reaching the baseline on the other: the summary
    used to drop the second task and say "median 2.50, mean 2.50"."""
    steps = [0, 10, 20, 30, 40, 50]
    d = table({
        ("a", "expo"): {0: curve([0.0, 0.4, 0.8, 0.9, 0.9, 0.9], steps)},
        ("a", "rlpd"): {0: curve([0.0, 0.1, 0.2, 0.3, 0.4, 0.5], steps)},   # target .5 at 50
        ("b", "expo"): {0: curve([0.0, 0.1, 0.1, 0.2, 0.2, 0.2], steps)},
        ("b", "rlpd"): {0: curve([0.0, 0.2, 0.4, 0.6, 0.7, 0.8], steps)},   # target .8
    })
    se = sample_efficiency(d).set_index("task")
    # a: smoothed EXPO 0, .4, .7, .8667, .9, .9 -> at or above .5 from 20 -> 50 / 20
    assert se.loc["a", "expo_steps_to_reach"] == 20 and se.loc["a", "ratio"] == pytest.approx(2.5)
    # b: EXPO ends at .2 < .8: lost, entering the summary at its bound 50 / 50
    assert se.loc["b", "status"] == "expo_never_reaches" and se.loc["b", "lost"]
    assert se.loc["b", "ratio_or_bound"] == pytest.approx(1.0)
    s = summarize_sample_efficiency(se.reset_index()).set_index("baseline").loc["rlpd"]
    assert (s["n_decided"], s["n_lost"]) == (2, 1)
    assert s["median_ratio"] == pytest.approx(1.75) and s["mean_ratio"] == pytest.approx(1.75)
    assert s["headline"].startswith("median \u2264 1.75, mean \u2264 1.75 over 2 tasks; EXPO lost 1 of 2")
    assert s["lost_tasks"] == "b (expo_never_reaches)"


def test_a_lucky_evaluation_does_not_count_as_reaching_the_target():
    # EXPO's single evaluation at 10 jumps to .9 and falls back; it climbs for good only later.
    # Smoothed (window 3): 0, .3, .3667, .2333, .4333, .6, .6667, .7 -> at or above .5 from 50.
    # The old rule (first unsmoothed value >= target) said 10, a ratio of 7.
    steps = [0, 10, 20, 30, 40, 50, 60, 70]
    d = table({
        ("t", "expo"): {0: curve([0.0, 0.9, 0.0, 0.2, 0.5, 0.6, 0.7, 0.7], steps)},
        ("t", "rlpd"): {0: curve([0.0, 0.1, 0.2, 0.3, 0.3, 0.4, 0.4, 0.5], steps)},
    })
    r = sample_efficiency(d).iloc[0]
    assert r["expo_steps_to_reach"] == 50 and r["ratio"] == pytest.approx(70 / 50)
    # an explicit window replaces the task's: unsmoothed, the curve stays above .5 from 40 on
    assert sample_efficiency(d, window=1).iloc[0]["expo_steps_to_reach"] == 40


def test_sample_efficiency_infinite_and_slower():
    d = table({
        ("t", "expo"): {0: curve([0.5, 0.6, 0.7, 0.8, 0.9])},
        ("t", "rlpd"): {0: curve([0.0, 0.1, 0.2, 0.3, 0.4])},       # target .4: EXPO from 0
        # EXPO ran twice as long as this baseline and reaches its final .5 only at 60 > 40
        ("u", "expo"): {0: curve([0.0, 0.1, 0.2, 0.3, 0.4, 0.4, 0.5, 0.6, 0.7],
                                 [0, 10, 20, 30, 40, 50, 60, 70, 80])},
        ("u", "rlpd"): {0: curve([0.0, 0.1, 0.2, 0.3, 0.5])},
    })
    se = sample_efficiency(d).set_index("task")
    assert se.loc["t", "status"] == "reached_at_step_0" and math.isinf(se.loc["t", "ratio"])
    assert not se.loc["t", "lost"]
    # u: smoothed .3667 at 40, .4333 at 50, .5 at 60, .6, .7 -> 40 / 60
    assert se.loc["u", "status"] == "expo_slower" and se.loc["u", "lost"]
    assert se.loc["u", "ratio"] == pytest.approx(40 / 60)
    s = summarize_sample_efficiency(se.reset_index()).set_index("baseline").loc["rlpd"]
    assert (s["n_decided"], s["n_lost"], s["n_at_step_0"]) == (2, 1, 1)
    assert math.isinf(s["median_ratio"]) and s["mean_ratio"] == pytest.approx(2 / 3)
    assert not s["upper_bounds"]
    assert "1 reached at env_step 0 (infinite ratio: in the median, not the mean)" in s["headline"]


# ----------------------------------------------------------------------------- average over tasks

def test_average_over_tasks_same_budget():
    d = table({
        ("a", "expo"): {0: curve([0.0, 0.2, 0.4, 0.6, 0.8]), 1: curve([0.2, 0.4, 0.6, 0.8, 1.0])},
        ("b", "expo"): {0: curve([0.0, 0.0, 0.0, 0.2, 0.2]), 1: curve([0.0, 0.0, 0.2, 0.2, 0.4])},
        ("a", "rlpd"): {0: curve([0.0, 0.1, 0.2, 0.3, 0.4])},
    })
    avg = average_over_tasks(d, window=1)
    assert avg.x_unit == "env_step" and avg.excluded == {"rlpd": ["b"]}
    c = avg.curves[avg.curves["method"] == "expo"]
    assert c["x"].tolist() == [0, 10, 20, 30, 40]
    # task means: a = .1 .3 .5 .7 .9, b = 0 0 .1 .2 .3 -> average
    np.testing.assert_allclose(c["mean"], [0.05, 0.15, 0.3, 0.45, 0.6])
    # band over seed ids: seed 0 = avg(a0, b0) = 0 .1 .2 .4 .5; seed 1 = .1 .2 .4 .5 .7
    np.testing.assert_allclose(c["min"], [0.0, 0.1, 0.2, 0.4, 0.5])
    np.testing.assert_allclose(c["max"], [0.1, 0.2, 0.4, 0.5, 0.7])
    assert set(c["n_tasks"]) == {2} and set(c["n_band_seeds"]) == {2}


def test_average_over_tasks_different_budgets_uses_fractions():
    d = table({
        ("short", "expo"): {0: [(0, 0.0), (5, 0.5), (10, 1.0)]},
        ("long", "expo"): {0: [(0, 0.0), (20, 0.2), (40, 0.4)]},
    })
    avg = average_over_tasks(d, window=1)
    assert avg.x_unit == "fraction" and avg.budgets == {"long": 40, "short": 10}
    np.testing.assert_allclose(avg.curves["x"], [0.0, 0.5, 1.0])
    np.testing.assert_allclose(avg.curves["mean"], [0.0, 0.35, 0.7])


def test_average_over_tasks_keeps_a_straight_line_straight():
    """Tasks evaluated at different steps (every 20 and every 30 env steps): their curves are
    interpolated onto one even grid before the running average, so two straight lines average to a
    straight line, smoothed or not. Smoothing over the union of their steps as if it were evenly
    spaced (0, 20, 30, 40, 60) bent it by 0.042."""
    d = table({
        ("a", "expo"): {0: [(x, x / 60) for x in (0, 20, 40, 60)]},
        ("b", "expo"): {0: [(x, 0.5 * x / 60) for x in (0, 30, 60)]},
    })
    avg = average_over_tasks(d)                         # paper windows: 3 for these tasks
    c = avg.curves
    np.testing.assert_allclose(c["x"], [0, 20, 40, 60])  # the finer task's spacing, evenly
    np.testing.assert_allclose(c["mean"], 0.75 * c["x"] / 60, atol=1e-12)
    np.testing.assert_allclose(c["smoothed"], 0.75 * c["x"] / 60, atol=1e-12)
    # window: the narrower x-span of the tasks' own windows, (3 - 1) x 20 = 40, in grid points
    assert set(c["window"]) == {3} and avg.grid_step == {"expo": 20.0}
    union = np.array([0, 20, 30, 40, 60])
    bent = running_average(0.75 * union / 60, 3)
    assert np.max(np.abs(bent - 0.75 * union / 60)) == pytest.approx(0.25 - 0.625 / 3)


def test_average_window_matches_the_tasks_own_spans():
    # 5 evaluations 5k apart and 3 evaluations 10k apart both span 20k: 5 points of a 5k grid
    assert average_window({"antmaze": 5000.0, "square": 10000.0}, {"antmaze": 5, "square": 3},
                          5000.0) == 5
    # one task evaluated once (no span) does not count; no smoothing when no task has a span
    assert average_window({"a": 10.0, "bc": np.inf}, {"a": 3, "bc": 3}, 10.0) == 3
    assert average_window({"bc": np.inf}, {"bc": 3}, np.inf) == 1


def test_sweep_labels():
    assert parse_variant("N16") == ("N", 16.0)
    assert parse_variant("beta0.05") == ("beta", 0.05)
    assert parse_variant("demos200") == ("demos", 200.0)
    assert parse_variant("foo") is None and parse_variant("") is None
    assert variant_label("N16") == "N=16" and variant_label("beta0.05") == "\u03b2=0.05"
