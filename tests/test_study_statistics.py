"""Study statistics and the per-contender comparison, on hand-computed numbers
(t-intervals, time to target, ranks, ties, the overfitting gap). No TensorFlow."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from dlrun.study import statistics as st
from dlrun.study.comparison import COLUMNS, compare_runs, comparison_markdown

INF, NAN = math.inf, math.nan
T975_2 = 4.302653   # t quantile 0.975, 2 degrees of freedom
T975_1 = 12.706205  # t quantile 0.975, 1 degree of freedom


def test_maximize_follows_the_metric_name() -> None:
    assert st.maximize("accuracy") and st.maximize("val_auc") and st.maximize("r2")
    assert not st.maximize("loss") and not st.maximize("val_mae")


def test_t_interval_on_three_seeds() -> None:
    mean, std, low, high = st.t_interval([0.9, 0.92, 0.94])
    half = T975_2 * 0.02 / math.sqrt(3)
    assert half == pytest.approx(0.049683, abs=1e-6)
    assert (mean, std, low, high) == pytest.approx((0.92, 0.02, 0.92 - half, 0.92 + half), abs=1e-6)


def test_t_interval_widens_with_confidence() -> None:
    _, _, low95, high95 = st.t_interval([1.0, 2.0, 4.0])
    _, _, low80, high80 = st.t_interval([1.0, 2.0, 4.0], confidence=0.8)
    assert low95 < low80 < high80 < high95


def test_t_interval_ignores_nan_and_has_no_interval_for_one_value() -> None:
    mean, std, low, high = st.t_interval([0.9, NAN, 0.94])
    assert (mean, std) == pytest.approx((0.92, math.sqrt(0.0008)))
    assert high - mean == pytest.approx(T975_1 * 0.02, rel=1e-6)  # std/√2 = 0.02
    one = st.t_interval([0.7])
    assert one[0] == 0.7 and all(math.isnan(v) for v in one[1:])
    assert all(math.isnan(v) for v in st.t_interval([]))


HISTORY = pd.DataFrame({"epoch": [1, 2, 3, 4], "val_accuracy": [0.5, 0.8, 0.7, 0.85],
                        "val_loss": [1.0, 0.6, 0.7, 0.4], "epoch_time_s": [2.0, 1.0, 1.5, 1.0]})


def test_curve_summary_reaches_the_target_at_the_first_epoch_at_or_past_it() -> None:
    got = st.curve_summary(HISTORY, "val_accuracy", maximize=True, target=0.8)
    assert got == {"best_val": 0.85, "final_val": 0.85, "epochs_to_target": 2.0, "seconds_to_target": 3.0}
    got = st.curve_summary(HISTORY, "val_loss", maximize=False, target=0.65)
    assert got == {"best_val": 0.4, "final_val": 0.4, "epochs_to_target": 2.0, "seconds_to_target": 3.0}


def test_curve_summary_never_reaching_the_target_is_inf_and_no_target_is_nan() -> None:
    never = st.curve_summary(HISTORY, "val_accuracy", maximize=True, target=0.9)
    assert never["epochs_to_target"] == INF and never["seconds_to_target"] == INF
    none = st.curve_summary(HISTORY, "val_accuracy", maximize=True, target=None)
    assert none["best_val"] == 0.85 and math.isnan(none["epochs_to_target"]) and math.isnan(none["seconds_to_target"])


def test_curve_summary_uses_the_epoch_column_and_skips_nan_epochs() -> None:
    resumed = pd.DataFrame({"epoch": [5, 6, 7], "val_accuracy": [0.5, NAN, 0.9], "epoch_time_s": [1.0, 1.0, 1.0]})
    got = st.curve_summary(resumed, "val_accuracy", maximize=True, target=0.6)
    assert got == {"best_val": 0.9, "final_val": 0.9, "epochs_to_target": 7.0, "seconds_to_target": 3.0}


@pytest.mark.parametrize("history", [HISTORY.drop(columns=["val_accuracy"]), HISTORY.iloc[:0], None])
def test_curve_summary_without_a_curve_is_all_nan(history) -> None:
    got = st.curve_summary(history, "val_accuracy", maximize=True, target=0.8)
    assert set(got) == {"best_val", "final_val", "epochs_to_target", "seconds_to_target"}
    assert all(math.isnan(v) for v in got.values())


@pytest.mark.parametrize("values,expected", [
    ([1, INF, INF], INF),       # most runs never got there
    ([3, 1, 2], 2),
    ([1, 2, 3, INF], 2.5),
    ([1, 2, INF, INF], INF),    # half never reached: the middle pair includes inf
    ([2, NAN], 2),              # a run without a curve does not count
    ([], NAN),
    ([NAN], NAN),
])
def test_median_with_inf(values, expected) -> None:
    got = st.median_with_inf(values)
    assert (math.isnan(got) and math.isnan(expected)) or got == expected


def test_reached_counts_finite_times() -> None:
    assert st.reached([3.0, INF, NAN, 7.0]) == 2
    assert st.reached([]) == 0


def test_ranks_best_first_ties_share_the_smaller_rank_and_nan_is_unranked() -> None:
    assert st.ranks([0.9, NAN, 0.95, 0.9], maximize=True) == [2, None, 1, 2]
    assert st.ranks([0.3, 0.1, 0.3, 0.5], maximize=False) == [2, 1, 2, 4]
    assert st.ranks([0.1 + 0.2, 0.3], maximize=True) == [1, 1]  # equal up to float rounding
    assert st.ranks([], maximize=True) == []


@pytest.mark.parametrize("interval,expected", [
    ((0.85, 0.88), True),   # overlaps
    ((0.80, 0.87), True),   # touches the best's low end
    ((0.80, 0.86), False),  # wholly below
    ((0.98, 0.99), False),  # wholly above
    ((NAN, NAN), None),     # n = 1: unknown
])
def test_tied_means_overlapping_intervals(interval, expected) -> None:
    assert st.tied(0.87, 0.97, *interval) is expected
    assert st.tied(NAN, NAN, 0.85, 0.88) is None


def test_overfit_gap_is_positive_when_train_beats_validation() -> None:
    assert st.overfit_gap(0.99, 0.90, maximize=True) == pytest.approx(0.09)
    assert st.overfit_gap(0.10, 0.30, maximize=False) == pytest.approx(0.20)
    assert st.overfit_gap(0.85, 0.90, maximize=True) == pytest.approx(-0.05)  # validation better: no overfitting
    assert math.isnan(st.overfit_gap(NAN, 0.9, maximize=True))


def run(contender: str, seed: int, status: str = "completed", test: float = NAN, *, phase: str = "final",
        lr: float = 1e-3, reason=None, train: float = NAN, val: float = NAN, to_target: float = NAN,
        epochs: float = NAN, seconds: float = NAN) -> dict:
    """One row of a study's runs frame."""
    return {"contender": contender, "seed": seed, "phase": phase, "learning_rate": lr, "status": status,
            "reason": reason, "run_dir": f"runs/{contender}/{phase}/{seed}", "epochs_run": epochs,
            "fit_time_s": seconds, "train_loss": NAN, "val_loss": NAN, "train_accuracy": train, "val_accuracy": val,
            "test_accuracy": test,
            "best_val": val, "final_val": val, "epochs_to_target": to_target, "seconds_to_target": to_target * 10}


RUNS = pd.DataFrame([
    run("sgd", 0, test=0.85, val=0.84, train=0.90, to_target=INF, lr=0.1),
    run("sgd", 1, "failed", reason="NaN loss at epoch 3", lr=0.1),
    run("sgd", 2, test=0.87, val=0.86, train=0.90, to_target=INF, lr=0.1),
    run("broken", 0, "failed", reason="out of memory"),
    run("broken", 1, "failed", reason="something else"),
    run("adam", 0, test=0.90, val=0.90, train=0.95, to_target=3, epochs=10, seconds=100),
    run("adam", 1, test=0.92, val=0.91, train=0.97, to_target=5, epochs=12, seconds=110),
    run("adam", 2, test=0.94, val=0.92, train=0.99, to_target=INF, epochs=14, seconds=120),
    run("adam", 0, test=0.99, val=0.99, train=0.99, to_target=1, phase="lr_search", lr=0.1),  # not compared
    run("solo", 0, test=0.80, val=0.79, train=0.81, to_target=7),
    run("later", 0, "pending"),
    run("slow", 0, test=0.50, val=0.50, train=0.50, to_target=INF),
    run("slow", 1, test=0.52, val=0.52, train=0.52, to_target=INF),
])


def test_compare_runs_ranks_contenders_and_marks_ties() -> None:
    table = compare_runs(RUNS, "test_accuracy", target=0.9)
    assert list(table.columns) == COLUMNS
    assert list(table["contender"]) == ["adam", "sgd", "solo", "slow", "broken", "later"]  # unranked last, in order
    assert list(table["rank"].astype(object).where(table["rank"].notna(), None)) == [1, 2, 3, 4, None, None]
    assert list(table["status"]) == ["completed", "partial", "completed", "completed", "failed", "pending"]
    assert list(table["n"]) == [3, 2, 1, 2, 0, 0]
    assert list(table["failed"]) == [0, 1, 0, 0, 2, 0]
    assert (table["metric"] == "test_accuracy").all()
    # sgd's interval (0.86 ± 12.706·0.01414/√2) overlaps adam's; slow's [0.383, 0.637] does not; solo has none
    assert list(table["tied_with_best"].astype(object).where(table["tied_with_best"].notna(), None)) == \
        [True, True, None, False, None, None]
    adam = table.iloc[0]
    half = T975_2 * 0.02 / math.sqrt(3)
    assert (adam["mean"], adam["std"], adam["ci_low"], adam["ci_high"]) == \
        pytest.approx((0.92, 0.02, 0.92 - half, 0.92 + half), abs=1e-6)
    assert adam["learning_rate"] == 1e-3  # the final runs' lr, not the search's 0.1
    assert (adam["test"], adam["best_val"], adam["gap"]) == pytest.approx((0.92, 0.91, 0.06))
    assert (adam["epochs_to_target"], adam["seconds_to_target"], adam["reached"]) == (5.0, 50.0, 2)
    assert (adam["epochs"], adam["seconds"], adam["reason"]) == (12.0, 110.0, "")
    sgd = table.iloc[1]
    assert sgd["ci_high"] - sgd["mean"] == pytest.approx(T975_1 * 0.01, rel=1e-5)
    assert (sgd["epochs_to_target"], sgd["reached"], sgd["reason"]) == (INF, 0, "NaN loss at epoch 3")
    solo = table.iloc[2]
    assert solo["mean"] == 0.80 and math.isnan(solo["std"]) and math.isnan(solo["ci_low"])
    broken = table.iloc[4]
    assert math.isnan(broken["mean"]) and broken["reason"] == "out of memory" and broken["learning_rate"] == 1e-3
    assert table.iloc[5]["reason"] == ""


def test_compare_runs_without_a_target_and_on_a_loss() -> None:
    runs = pd.DataFrame([run("a", 0, test=0.9), run("b", 0, test=0.9)])
    runs["val_loss"] = [0.4, 0.2]
    table = compare_runs(runs, "val_loss", target=None)
    assert list(table["contender"]) == ["b", "a"]  # lower loss ranks first
    assert table["epochs_to_target"].isna().all() and table["reached"].isna().all()


def test_compare_runs_when_the_metric_was_never_written() -> None:
    runs = pd.DataFrame([{"contender": "a", "seed": 0, "phase": "final", "learning_rate": 0.01, "status": "failed",
                          "reason": "bad shape", "run_dir": "r"}])
    table = compare_runs(runs, "test_accuracy", target=None)
    assert list(table["status"]) == ["failed"] and table["rank"].isna().all() and table["n"].tolist() == [0]


def test_comparison_markdown_explains_intervals_ties_and_inf() -> None:
    text = comparison_markdown(compare_runs(RUNS, "test_accuracy", target=0.9), ["lr chosen by a search"])
    lines = text.splitlines()
    assert lines[0].startswith("| rank | contender |") and len([l for l in lines if l.startswith("| ")]) == 7
    adam = next(l for l in lines if "| adam |" in l)
    assert "0.92 ± 0.02" in adam and "[0.8703, 0.9697]" in adam and "✓" in adam and "5 | 2/3" in adam
    assert "inf | 0/2" in next(l for l in lines if "| sgd |" in l)
    assert "out of memory" in next(l for l in lines if "| broken |" in l)
    assert "95% Student-t intervals over seeds" in text and "n = 1" in text and "inf = the target" in text
    assert lines[-1] == "- lr chosen by a search"
    two = comparison_markdown(compare_runs(RUNS[RUNS["contender"] != "solo"], "test_accuracy", None), [])
    assert "n = 1" not in two and "inf" not in two and "target" not in two


def test_a_float32_value_equal_to_the_target_reaches_it():
    import numpy as np

    history = pd.DataFrame({"epoch": [1, 2, 3], "val_accuracy": np.float32([0.9, 171 / 180, 0.96]).astype(float),
                            "epoch_time_s": [1.0, 2.0, 3.0]})
    assert history["val_accuracy"][1] < 0.95  # what Keras logs for 171 of 180 right
    summary = st.curve_summary(history, "val_accuracy", True, 0.95)
    assert summary["epochs_to_target"] == 2 and summary["seconds_to_target"] == 3.0
    low = pd.DataFrame({"epoch": [1, 2], "val_loss": np.float32([0.5, 0.1]).astype(float)})
    assert st.curve_summary(low, "val_loss", False, 0.1)["epochs_to_target"] == 2
    assert st.curve_summary(low, "val_loss", False, 0.0999)["epochs_to_target"] == math.inf
