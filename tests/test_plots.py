"""Plots: the pure rules that shape them, tested on known numbers, and the panels
they produce (no TensorFlow)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from dlrun.results import plots


@pytest.mark.parametrize("curves,expected", [
    (([2.3, 0.5, 0.04], [2.0, 0.6, 0.05]), True),    # 2.3 / 0.04 = 57.5 > 50
    (([2.3, 0.5, 0.05], [2.0, 0.6, 0.05]), False),   # 2.3 / 0.05 = 46: linear is fine
    (([100.0, 1.0], [50.0, 2.0]), True),             # exactly 100x
    (([50.0, 1.0],), False),                         # exactly 50x is not over 50
    (([2.3, 0.01], [0.0, 0.5]), False),              # a zero: no log axis
    (([2.3, 0.01], [-1.0, 0.5]), False),             # a negative value (e.g. r2): no log axis
    (([0.9, 0.95, 0.97],), False),                   # accuracy
    (([10.0, float("nan"), 0.1],), True),            # a NaN epoch is ignored
    (([float("nan")],), False),
    ((), False),
])
def test_log_scale_rule(curves, expected) -> None:
    assert plots.log_scale_fits(*curves) is expected


def test_learning_curves_use_a_log_axis_only_for_a_wide_positive_panel(tmp_path: Path, monkeypatch) -> None:
    history = pd.DataFrame({"epoch": [1, 2, 3, 4], "loss": [30.0, 1.0, 0.2, 0.1], "val_loss": [20.0, 1.5, 0.4, 0.3],
                            "accuracy": [0.2, 0.8, 0.9, 0.95], "val_accuracy": [0.3, 0.7, 0.85, 0.9]})
    scales = {}
    save = plots._save

    def spy(fig, path):
        scales.update({ax.get_title(): ax.get_yscale() for ax in fig.axes})
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", spy)
    out = plots.learning_curves(history, tmp_path / "curves.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert scales == {"loss": "log", "accuracy": "linear"}
