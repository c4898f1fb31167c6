"""Drift between training profiles and live windows: the measures, the decisions and the window."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from scipy import stats

from nebula_runtime.ml.drift import DEFAULT_WINDOW, EPSILON, Window, compare, profile


def _normal(seed: int, size: int, loc: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(loc=loc, size=size)


@pytest.fixture(scope="module")
def reference() -> dict:
    return profile({"x": _normal(0, 5000)})


# --- the profile ------------------------------------------------------------------------


def test_numeric_profile_has_quantile_bins_that_hold_equal_shares() -> None:
    found = profile({"x": np.arange(1000.0)}, bins=10)["features"]["x"]
    assert found["kind"] == "numeric"
    assert len(found["edges"]) == 9
    assert found["expected"] == pytest.approx([0.1] * 10)
    assert found["count"] == 1000
    assert found["mean"] == pytest.approx(499.5)
    assert found["std"] == pytest.approx(np.arange(1000.0).std())


def test_tied_values_make_fewer_bins_not_empty_duplicates() -> None:
    found = profile({"x": [0] * 70 + [1] * 30}, bins=10)["features"]["x"]
    assert found["edges"] == sorted(set(found["edges"]))
    assert len(found["expected"]) == len(found["edges"]) + 1
    assert sum(found["expected"]) == pytest.approx(1.0)


def test_profile_is_json_and_the_same_for_the_same_seed() -> None:
    columns = {"x": _normal(1, 20_000), "plan": ["basic", "pro", None] * 100 + ["basic"] * 19_700}
    first = profile(columns, sample=1000, seed=7)
    assert json.loads(json.dumps(first, allow_nan=False)) == first
    assert profile(columns, sample=1000, seed=7) == first
    assert profile(columns, sample=1000, seed=8)["features"]["x"]["sample"] != first["features"]["x"]["sample"]
    assert len(first["features"]["x"]["sample"]) == 1000


def test_a_profile_read_back_from_json_compares_the_same() -> None:
    saved = profile({"x": _normal(2, 5000), "plan": ["a", "b"] * 2500})
    loaded = json.loads(json.dumps(saved))
    live = {"x": _normal(3, 500, loc=0.3), "plan": ["a"] * 300 + ["b"] * 200}
    assert compare(loaded, live).as_dict() == compare(saved, live).as_dict()


def test_kinds_are_inferred_or_taken_from_the_column_types() -> None:
    columns = {
        "age": [30, 40, None, 50],
        "plan": ["a", "b", "a", None],
        "active": [True, False, True, True],
        "code": [1, 2, 1, 3],
        "signed_up": np.array(["2024-01-01"] * 4, dtype="datetime64[D]"),
    }
    found = profile(columns, kinds={"code": "category"})["features"]
    assert {name: feature["kind"] for name, feature in found.items()} == {
        "age": "numeric",
        "plan": "categorical",
        "active": "categorical",
        "code": "categorical",
    }
    assert found["active"]["categories"] == {"true": 0.75, "false": 0.25}
    with pytest.raises(ValueError, match="unknown kind 'text'"):
        profile(columns, kinds={"plan": "text"})


def test_rarest_categories_beyond_the_limit_count_as_other() -> None:
    found = profile({"c": ["a"] * 5 + ["b"] * 3 + ["c"] * 2}, max_categories=2)["features"]["c"]
    assert found["categories"] == {"a": 0.5, "b": 0.3}
    assert found["other"] == pytest.approx(0.2)


# --- the measures -----------------------------------------------------------------------


def test_identical_data_has_no_drift_and_a_fresh_sample_almost_none() -> None:
    data = _normal(4, 5000)
    saved = profile({"x": data})
    assert compare(saved, {"x": data}).features[0].psi == pytest.approx(0.0, abs=1e-12)
    fresh = compare(saved, {"x": _normal(5, 5000)})
    assert fresh.features[0].psi < 0.01
    assert not fresh.drifted


def test_a_known_shift_is_a_psi_above_the_default_threshold(reference: dict) -> None:
    report = compare(reference, {"x": _normal(6, 1000, loc=1.0)})
    assert report.features[0].psi > 0.2
    assert report.drifted
    assert report.drifted_features == ["x"]


def test_values_beyond_the_training_range_land_in_the_end_bins(reference: dict) -> None:
    expected = np.array([*reference["features"]["x"]["expected"], 0.0])
    live = np.zeros_like(expected)
    live[0] = live[-2] = 0.5  # below the smallest and above the largest training value
    by_hand = np.sum(
        (np.maximum(live, EPSILON) - np.maximum(expected, EPSILON))
        * np.log(np.maximum(live, EPSILON) / np.maximum(expected, EPSILON))
    )
    found = compare(reference, {"x": [-1e6] * 50 + [1e6] * 50}).features[0]
    assert found.psi == pytest.approx(by_hand)


def test_the_ks_and_wasserstein_figures_are_scipys(reference: dict) -> None:
    live = _normal(7, 800, loc=0.2).round(1)  # ties, as real data has
    found = compare(reference, {"x": live}, method="wasserstein").features[0]
    sample = np.array(reference["features"]["x"]["sample"])
    ks = stats.ks_2samp(live, sample, method="asymp")
    assert found.ks_statistic == pytest.approx(ks.statistic)
    assert found.ks_pvalue == pytest.approx(ks.pvalue)
    assert found.wasserstein == pytest.approx(stats.wasserstein_distance(live, sample))
    assert found.score == pytest.approx(found.wasserstein / reference["features"]["x"]["std"])
    assert compare(reference, {"x": live}, method="ks").features[0].score == pytest.approx(ks.statistic)


def test_chi2_scores_an_effect_size_near_zero_for_an_unchanged_stream(reference: dict) -> None:
    same = compare(reference, {"x": _normal(8, 500)}, method="chi2").features[0]
    moved = compare(reference, {"x": _normal(9, 500, loc=0.5)}, method="chi2").features[0]
    assert same.score is not None
    assert same.score < 0.1
    assert same.chi2_pvalue is not None
    assert same.chi2_pvalue > 0.01
    assert moved.score is not None
    assert moved.score > 0.3
    assert moved.chi2_pvalue is not None
    assert moved.chi2_pvalue < 1e-6


def test_unseen_categories_are_drift() -> None:
    saved = profile({"plan": ["basic"] * 600 + ["pro"] * 400})
    same = compare(saved, {"plan": ["basic"] * 300 + ["pro"] * 200})
    assert same.features[0].psi == pytest.approx(0.0, abs=1e-12)
    assert not same.drifted
    unseen = compare(saved, {"plan": ["basic"] * 150 + ["pro"] * 100 + ["enterprise"] * 250})
    assert unseen.drifted
    assert unseen.features[0].kind == "categorical"
    assert unseen.features[0].ks_statistic is None


@pytest.mark.parametrize("method", ["ks", "wasserstein"])
def test_categories_under_distance_methods_score_the_total_variation(method: str) -> None:
    saved = profile({"plan": ["a"] * 500 + ["b"] * 500})
    found = compare(saved, {"plan": ["a"] * 200 + ["c"] * 200}, method=method).features[0]
    assert found.score == pytest.approx(0.5)  # a lost 0.0, b lost 0.5, c gained 0.5


def test_missing_values_are_their_own_fraction() -> None:
    values = [1.0, None, 2.0, math.nan, 3.0] * 200
    saved = profile({"x": values, "c": ["a", None, "b", float("nan"), "a"] * 200})
    assert saved["features"]["x"]["missing"] == pytest.approx(0.4)
    assert saved["features"]["c"]["missing"] == pytest.approx(0.4)
    assert sum(saved["features"]["x"]["expected"]) == pytest.approx(0.6)
    assert not compare(saved, {"x": values, "c": ["a", None, "b", None, "a"] * 200}).drifted
    mostly_missing = compare(saved, {"x": [None] * 900 + [2.0] * 100, "c": [None] * 1000})
    assert mostly_missing.drifted_features == ["x", "c"]


def test_a_feature_the_live_data_lacks_is_all_missing() -> None:
    saved = profile({"x": _normal(10, 1000), "y": _normal(11, 1000)})
    report = compare(saved, {"x": _normal(12, 200)})
    assert report.drifted_features == ["y"]
    assert report.features[1].ks_statistic is None


def test_a_constant_feature_does_not_divide_by_zero() -> None:
    saved = profile({"x": [5.0] * 100})
    found = compare(saved, {"x": [6.0] * 100}, method="wasserstein").features[0]
    assert found.score == pytest.approx(1.0)
    assert found.drifted


def test_too_few_samples_flag_nothing_but_still_measure(reference: dict) -> None:
    report = compare(reference, {"x": _normal(13, 50, loc=3.0)}, min_samples=100)
    assert report.samples == 50
    assert not report.enough_data
    assert not report.drifted
    assert not report.features[0].drifted
    assert report.features[0].psi is not None
    assert report.features[0].psi > 1.0


def test_an_empty_window_measures_nothing(reference: dict) -> None:
    report = compare(reference, {})
    assert report.samples == 0
    assert report.features[0].psi is None
    assert report.features[0].score is None
    assert not report.drifted


def test_the_report_is_json_for_the_api(reference: dict) -> None:
    report = compare(reference, {"x": _normal(14, 200, loc=1.0)}, method="ks", threshold=0.1, features=["x"])
    body = json.loads(json.dumps(report.as_dict(), allow_nan=False))
    assert body["method"] == "ks"
    assert body["threshold"] == 0.1
    assert body["samples"] == 200
    assert body["enough_data"] is True
    assert body["drifted"] is True
    assert body["features"][0]["name"] == "x"
    assert body["features"][0]["score"] == body["features"][0]["ks_statistic"]


def test_bad_requests_are_refused(reference: dict) -> None:
    with pytest.raises(ValueError, match="unknown drift method"):
        compare(reference, {"x": [1.0]}, method="kl")
    with pytest.raises(ValueError, match="not in the training profile: 'age'"):
        compare(reference, {"x": [1.0]}, features=["age"])
    with pytest.raises(ValueError, match="columns differ in length"):
        compare(reference, {"x": [1.0], "y": [1.0, 2.0]})
    with pytest.raises(ValueError, match="not a drift profile"):
        compare({"features": {}}, {"x": [1.0]})


# --- how well the methods detect -------------------------------------------------------

STREAMS = 200


@pytest.mark.parametrize(
    ("method", "threshold", "shift"),
    [
        ("wasserstein", 0.2, 0.5),
        ("chi2", 0.2, 0.5),
        ("ks", 0.1, 0.5),
        ("psi", 0.1, 0.5),
        # a half deviation shift is a PSI of only 0.24 and a D of 0.2, too close to 0.2 for 95%
        ("psi", 0.2, 0.6),
        ("ks", 0.2, 0.6),
    ],
)
def test_a_shift_is_caught_95_percent_of_the_time_with_5_percent_false_alarms(
    reference: dict, method: str, threshold: float, shift: float
) -> None:
    rng = np.random.default_rng(2024)
    unchanged = rng.normal(size=(STREAMS, DEFAULT_WINDOW))
    shifted = rng.normal(loc=shift, size=(STREAMS, DEFAULT_WINDOW))
    caught = sum(compare(reference, {"x": live}, method, threshold).drifted for live in shifted)
    false_alarms = sum(compare(reference, {"x": live}, method, threshold).drifted for live in unchanged)
    assert caught / STREAMS >= 0.95
    assert false_alarms / STREAMS <= 0.05


def test_comparing_20_features_of_1000_rows_takes_well_under_50_ms() -> None:
    rng = np.random.default_rng(15)
    saved = profile({f"f{i}": rng.normal(size=20_000) for i in range(20)})
    live = {f"f{i}": rng.normal(loc=0.1, size=1000).tolist() for i in range(20)}
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        compare(saved, live)
        timings.append(time.perf_counter() - start)
    assert min(timings) < 0.05


# --- the live window --------------------------------------------------------------------


def test_the_window_keeps_the_latest_rows_as_columns() -> None:
    window = Window(maxlen=3)
    for i in range(5):
        window.add({"x": i, "plan": "a"} if i != 3 else {"x": i})
    assert len(window) == 3
    assert window.columns() == {"x": [2, 3, 4], "plan": ["a", None, "a"]}


def test_the_window_keeps_only_the_features_asked_for() -> None:
    window = Window(maxlen=10, features=["x"])
    window.extend([{"x": 1, "image": b"..."}, {"image": b"..."}])
    assert window.columns() == {"x": [1, None]}


def test_the_window_forgets_rows_older_than_its_duration() -> None:
    now = [1000.0]
    window = Window(maxlen=100, window_seconds=60, clock=lambda: now[0])
    window.add({"x": 1})
    now[0] += 30
    window.add({"x": 2})
    now[0] += 31
    assert window.columns() == {"x": [2]}
    now[0] += 30
    assert len(window) == 0
    assert window.columns() == {}


def test_a_window_feeds_compare(reference: dict) -> None:
    window = Window(maxlen=DEFAULT_WINDOW)
    window.extend({"x": value} for value in _normal(16, 2000, loc=1.0))
    report = compare(reference, window.columns())
    assert report.samples == DEFAULT_WINDOW
    assert report.drifted
