"""A study's outputs: the figures (written, non-empty, no crash on failed contenders
or missing histories), the mean-and-band rule behind them, the comparison files
(inf survives CSV) and the terminal table. No TensorFlow."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from dlrun.study import plots
from dlrun.study.comparison import compare_runs, write_comparison
from dlrun.study.display import comparison_table

FIGURES = ["curves_epochs.png", "curves_seconds.png", "final_metric.png", "train_vs_val.png"]


def history(epochs: int, level: float, seconds: float = 1.0) -> pd.DataFrame:
    """A run's history: accuracy rising to `level`, loss falling, `seconds` per epoch."""
    e = np.arange(1, epochs + 1)
    return pd.DataFrame({"epoch": e, "loss": 2 * np.exp(-e / 2), "val_loss": 2 * np.exp(-e / 3) + 0.1,
                         "accuracy": level * (1 - np.exp(-e / 2)) + 0.05, "val_accuracy": level * (1 - np.exp(-e / 2)),
                         "learning_rate": 1e-3, "epoch_time_s": seconds})


def row(contender: str, seed: int, status: str = "completed", phase: str = "final", lr: float = 1e-3,
        reason=None, final_val: float = math.nan) -> dict:
    return {"contender": contender, "seed": seed, "phase": phase, "learning_rate": lr, "status": status,
            "reason": reason, "run_dir": f"runs/{contender}/{phase}/{lr}/{seed}", "epochs_run": 5, "fit_time_s": 5.0,
            "train_accuracy": 0.9, "val_accuracy": 0.85, "test_accuracy": 0.8 + seed / 100 if status == "completed"
            else math.nan, "best_val": final_val, "final_val": final_val, "epochs_to_target": math.inf,
            "seconds_to_target": math.inf}


@pytest.fixture()
def study() -> tuple:
    """Runs of four contenders: adam (3 seeds, one stopped early), sgd (one failed
    seed, one run whose history is missing), broken (all failed), and lr-search rows
    (one diverged to NaN, one failed)."""
    runs = pd.DataFrame([row("adam", s) for s in range(3)]
                        + [row("sgd", 0), row("sgd", 1, "failed", reason="NaN loss"), row("sgd", 2)]
                        + [row("broken", s, "failed", reason="OOM") for s in range(2)]
                        + [row("adam", 0, "completed", "lr_search", lr, final_val=v)
                           for lr, v in [(1e-4, 0.6), (1e-3, 0.85), (1e-2, math.nan)]]
                        + [row("sgd", 0, "failed", "lr_search", 1.0, reason="diverged")])
    histories = {f"runs/adam/final/0.001/{s}": history(epochs, 0.9) for s, epochs in [(0, 6), (1, 6), (2, 4)]}
    histories["runs/sgd/final/0.001/0"] = history(6, 0.8, seconds=2.0)  # sgd seed 2's history is missing
    return runs, histories


def test_study_plots_writes_every_figure(study, tmp_path: Path) -> None:
    runs, histories = study
    comparison = compare_runs(runs, "test_accuracy", target=0.9)
    written = plots.study_plots(runs, histories, comparison, "test_accuracy", tmp_path)
    assert [p.name for p in written] == FIGURES + ["lr_sensitivity.png"]
    for path in written:
        assert path.parent == tmp_path and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_study_plots_without_search_or_any_completed_run(study, tmp_path: Path) -> None:
    runs, _ = study
    failed = runs[runs["phase"] == "final"].assign(status="failed", reason="OOM")
    written = plots.study_plots(failed, {}, compare_runs(failed, "test_accuracy", None), "test_accuracy", tmp_path)
    assert [p.name for p in written] == FIGURES and all(p.stat().st_size > 0 for p in written)
    assert not (tmp_path / "lr_sensitivity.png").exists()


def test_mean_band_averages_the_runs_that_reached_each_point() -> None:
    long = (np.array([1.0, 2.0, 3.0]), np.array([0.5, 0.7, 0.9]))
    short = (np.array([1.0, 2.0]), np.array([0.3, 0.5]))  # stopped early
    grid, mean, low, high = plots.mean_band([long, short])
    assert grid.tolist() == [1.0, 2.0, 3.0]
    assert mean.tolist() == pytest.approx([0.4, 0.6, 0.9]) and low.tolist() == pytest.approx([0.3, 0.5, 0.9])
    assert high.tolist() == pytest.approx([0.5, 0.7, 0.9])


def test_mean_band_on_seconds_interpolates_each_run_within_its_own_time() -> None:
    a = (np.array([1.0, 3.0]), np.array([0.0, 1.0]))
    b = (np.array([2.0, 4.0]), np.array([0.2, 0.6]))
    grid, mean, _, _ = plots.mean_band([a, b])
    assert grid.tolist() == [1.0, 2.0, 3.0, 4.0]
    assert mean.tolist() == pytest.approx([0.0, (0.5 + 0.2) / 2, (1.0 + 0.4) / 2, 0.6])


def test_curves_put_a_falling_loss_on_a_log_axis(study, tmp_path: Path, monkeypatch) -> None:
    runs, histories = study
    seen = {}
    save = plots._save

    def spy(fig, path):
        ax = fig.axes[0]
        seen[Path(path).name] = (ax.get_yscale(), ax.get_xlabel(), [t.get_text() for t in fig.legends[0].texts])
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", spy)
    for h in histories.values():
        h["val_loss"] = 10.0 ** -h["epoch"]
    plots.curves(runs, histories, "val_loss", "seconds", tmp_path / "loss.png")
    plots.curves(runs, histories, "val_accuracy", "epoch", tmp_path / "acc.png")
    assert seen["loss.png"][:2] == ("log", "seconds (cumulative epoch time)")
    assert seen["acc.png"][0] == "linear"
    assert seen["acc.png"][2] == ["adam (n=3)", "sgd (n=1)", "broken: no completed runs"]


def test_comparison_csv_keeps_inf_and_parquet_round_trips(study, tmp_path: Path) -> None:
    runs, _ = study
    comparison = compare_runs(runs, "test_accuracy", target=0.9)
    written = write_comparison(comparison, runs, tmp_path, ["a note"])
    assert sorted(p.name for p in written) == ["comparison.csv", "comparison.md", "comparison.parquet", "runs.csv"]
    back = pd.read_csv(tmp_path / "comparison.csv")
    assert back["epochs_to_target"].tolist()[:2] == [math.inf, math.inf] and math.isnan(back["epochs_to_target"][2])
    assert list(back["contender"]) == ["adam", "sgd", "broken"]
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "comparison.parquet"), comparison)
    assert len(pd.read_csv(tmp_path / "runs.csv")) == len(runs)
    assert "- a note" in (tmp_path / "comparison.md").read_text(encoding="utf-8")


def test_comparison_table_shows_ranks_ties_and_failures(study) -> None:
    runs, _ = study
    console = Console(width=200, record=True, color_system=None)
    console.print(comparison_table(compare_runs(runs, "test_accuracy", target=0.9)))
    text = console.export_text()
    assert "test_accuracy, ranked (95% t-interval over seeds)" in text
    adam = next(l for l in text.splitlines() if " adam " in l)
    assert "0.8100 ± 0.0100" in adam and "✓" in adam and "inf (0/3)" in adam
    assert "partial: NaN loss" in text and "failed: OOM" in text


def test_verdict_counts_most_frequent_first() -> None:
    from dlrun.study.comparison import verdict_counts

    assert verdict_counts(["ok", "overfitting", "ok", None, float("nan")]) == "ok x2, overfitting x1"
    assert verdict_counts([]) == ""


def test_gradient_depth_plots_each_contenders_profile_from_the_run_folders(tmp_path: Path) -> None:
    runs = []
    for contender, slope in (("deep", 1e-2), ("relu", 1.0)):
        for seed in range(2):
            d = tmp_path / contender / str(seed)
            d.mkdir(parents=True)
            layers = ["dense_1", "dense_2", "block1_skip", "output"]
            pd.DataFrame([{"epoch": e, "layer": name, "grad_norm": slope ** (3 - i) if name != "block1_skip" else 99.0}
                          for e in (0, 1, 2) for i, name in enumerate(layers)]).to_csv(d / "gradients.csv", index=False)
            runs.append({**row(contender, seed), "run_dir": str(d)})
    frame = pd.DataFrame(runs)
    stats = pd.read_csv(tmp_path / "deep" / "0" / "gradients.csv")
    assert plots.depth_profile(stats, 2).tolist() == pytest.approx([1e-6, 1e-4, 1.0])  # the skip is not a layer
    out = plots.gradient_depth(frame, tmp_path / "gradient_depth.png")
    assert out is not None and out.stat().st_size > 0
    assert plots.gradient_depth(pd.DataFrame([row("none", 0)]), tmp_path / "none.png") is None  # no statistics
