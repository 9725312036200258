"""analysis.stats and analysis.curves.average_over_tasks on hand-built tables: final/best scores,
IQM with a stratified bootstrap (rliable's estimators), the sample-efficiency ratio and its ill-defined cases."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.curves import average_over_tasks
from analysis.stats import (aggregate_scores, final_and_best, interval_estimates, stratified_bootstrap,
                            sample_efficiency, steps_to_reach, summarize_sample_efficiency)
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
    # 3 ones (a pooled bootstrap would not), so the mean is exactly 3/5 in every resample.
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
    np.testing.assert_allclose([point[1], low[1], high[1]], 0.6)


def test_aggregate_scores_unequal_seeds_and_excluded_method():
    d = table({
        ("a", "expo"): {0: [(0, 0.0), (10, 0.2)], 1: [(0, 0.0), (10, 0.4)],
                        2: [(0, 0.0), (10, 0.9)]},
        ("b", "expo"): {0: [(0, 0.0), (10, 0.6)], 1: [(0, 0.0), (10, 1.0)]},   # 2 seeds only
        ("a", "rlpd"): {0: [(0, 0.0), (10, 0.1)]},                             # no run on b
    })
    t, excluded = aggregate_scores(d, reps=200, seed=0)
    assert excluded == {("f", "rlpd"): ["b"]}
    r = t.set_index("method").loc["expo"]
    assert (r["n_tasks"], r["n_runs"]) == (2, 5)
    # pooled final scores .2 .4 .9 .6 1.0 -> 25%-trimmed mean (scipy trims int(0.25*5)=1 each
    # side) = mean(.4, .6, .9)
    assert r["iqm"] == pytest.approx((0.4 + 0.6 + 0.9) / 3)
    assert r["mean"] == pytest.approx(3.1 / 5)
    assert r["iqm_low"] <= r["iqm"] <= r["iqm_high"]


# ----------------------------------------------------------------------------- sample efficiency

def test_steps_to_reach():
    assert steps_to_reach([0, 10, 20], [0.1, 0.5, 0.4], 0.5) == 10
    assert steps_to_reach([0, 10, 20], [0.1, 0.5, 0.4], 0.6) is None
    assert steps_to_reach([0, 10], [0.7, 0.8], 0.5) == 0


def test_sample_efficiency_hand_built_curves():
    d = table({
        # EXPO mean curve: 0, .2, .4, .6, .8 (two seeds averaging to it)
        ("t", "expo"): {0: curve([0.0, 0.1, 0.3, 0.5, 0.7]), 1: curve([0.0, 0.3, 0.5, 0.7, 0.9])},
        # final .4 at 40 -> EXPO reaches .4 at 20 -> ratio 40 / 20 = 2
        ("t", "rlpd"): {0: curve([0.0, 0.1, 0.2, 0.3, 0.4]), 1: curve([0.0, 0.1, 0.2, 0.3, 0.4])},
        # final .9 -> EXPO never reaches it
        ("t", "idql"): {0: curve([0.0, 0.5, 0.9, 0.9, 0.9])},
        # final .6 at 40 with one partial seed (last row at 30): target mean(.8, .4) = .6,
        # baseline steps 40, EXPO reaches .6 at 30 -> 4/3
        ("t", "dac"): {0: curve([0.0, 0.2, 0.4, 0.6, 0.8]), 1: curve([0.0, 0.1, 0.2, 0.4])},
        # final 0 -> ill-defined
        ("t", "qsm"): {0: curve([0.0, 0.0, 0.0, 0.0, 0.0])},
        # imitation only: a single evaluation at env_step 0
        ("t", "bc"): {0: [(0, 0.3)]},
    })
    se = sample_efficiency(d).set_index("baseline")
    assert se.loc["rlpd", "status"] == "ok"
    assert se.loc["rlpd", "expo_steps_to_reach"] == 20 and se.loc["rlpd", "baseline_steps"] == 40
    assert se.loc["rlpd", "ratio"] == pytest.approx(2.0)
    assert se.loc["idql", "status"] == "expo_never_reaches" and math.isnan(se.loc["idql", "ratio"])
    assert se.loc["dac", "baseline_final"] == pytest.approx(0.6)
    assert se.loc["dac", "ratio"] == pytest.approx(40 / 30)
    assert se.loc["qsm", "status"] == "baseline_final_zero" and math.isnan(se.loc["qsm", "ratio"])
    assert se.loc["bc", "status"] == "baseline_no_online_steps"
    assert se.loc["rlpd", "expo_final"] == pytest.approx(0.8)

    s = summarize_sample_efficiency(se.reset_index()).set_index("baseline")
    assert s.loc["rlpd", "median_ratio"] == pytest.approx(2.0)
    everything = s.loc["all"]
    assert (everything["n_tasks"], everything["n_finite"], everything["n_undefined"]) == (5, 2, 3)
    assert everything["median_ratio"] == pytest.approx((2.0 + 4 / 3) / 2)
    assert "t/idql (expo_never_reaches)" in everything["undefined_tasks"]


def test_sample_efficiency_infinite_and_smoothed():
    d = table({
        ("t", "expo"): {0: curve([0.5, 0.0, 0.9, 0.0, 0.9])},
        ("t", "rlpd"): {0: curve([0.0, 0.1, 0.2, 0.3, 0.4])},       # target .4
        ("u", "expo"): {0: curve([0.0, 0.6, 0.0, 0.6, 0.6])},
        ("u", "rlpd"): {0: curve([0.0, 0.1, 0.2, 0.3, 0.5])},       # target .5
    })
    se = sample_efficiency(d).set_index("task")
    assert se.loc["t", "status"] == "reached_at_step_0" and math.isinf(se.loc["t", "ratio"])
    assert se.loc["u", "ratio"] == pytest.approx(40 / 10)
    # trailing window 2: u's EXPO becomes 0, .3, .3, .3, .6 -> reaches .5 only at 40 -> ratio 1;
    # t's first point stays .5 (a trailing window never looks ahead) -> still infinite
    smoothed = sample_efficiency(d, window=2).set_index("task")
    assert smoothed.loc["u", "ratio"] == pytest.approx(1.0)
    assert math.isinf(smoothed.loc["t", "ratio"])
    s = summarize_sample_efficiency(sample_efficiency(d)).set_index("baseline").loc["rlpd"]
    assert (s["n_finite"], s["n_infinite"]) == (1, 1)
    assert math.isinf(s["median_ratio"]) and s["mean_ratio"] == pytest.approx(4.0)


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


def test_sweep_labels():
    assert parse_variant("N16") == ("N", 16.0)
    assert parse_variant("beta0.05") == ("beta", 0.05)
    assert parse_variant("demos200") == ("demos", 200.0)
    assert parse_variant("foo") is None and parse_variant("") is None
    assert variant_label("N16") == "N=16" and variant_label("beta0.05") == "\u03b2=0.05"
