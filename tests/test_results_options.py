"""`dlrun results --columns/--metric/--sort/--group-by/--export` on a registry built
by hand: config values and tags as columns, the keys that differ by default, metrics
from metrics.json, sorting, grouped mean/std/t-interval checked against numbers
worked out by hand, exports that read back, and one-line errors. No training."""
from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path
from typing import Any, Dict, Optional

import pandas as pd
import pytest
import yaml
from rich.console import Console

from dlrun.cli import main
from dlrun.results import columns, grouping, registry
from dlrun.results.listing import show

T_975_2DOF = 4.302652729749462  # Student t, 97.5% quantile, 2 degrees of freedom
T_975_1DOF = 12.706204736174694


@pytest.fixture
def home(tmp_path: Path, monkeypatch) -> Path:
    """A registry of this test's own."""
    monkeypatch.setenv(registry.ENV_HOME, str(tmp_path / "home"))
    return tmp_path / "home"


def config(optimizer: str = "adam", lr: float = 0.001, seed: int = 0, dropout: Optional[float] = None,
           batch_size: int = 32) -> Dict[str, Any]:
    """A resolved config as `dlrun train` writes it (the parts the listing reads)."""
    opt = {"name": optimizer, "learning_rate": lr, **({"beta_1": 0.9} if optimizer == "adam" else {"momentum": 0.9})}
    return {"name": "study", "data": {"name": "digits", "test_size": 0.2},
            "model": {"name": "mlp", "units": [64, 32]}, "optimizer": opt, "schedule": {"name": "constant"},
            "loss": {"name": "auto"},
            "regularization": {"kernel": None, "dropout": None if dropout is None else {"rate": dropout},
                               "early_stopping": {"monitor": "val_loss", "patience": 10}},
            "trainer": {"epochs": 5, "batch_size": batch_size, "seed": seed, "verbose": 0},
            "allowed_imports": ["dlrun", "keras"]}


def add_run(tmp_path: Path, folder: str, minute: int, accuracy: Optional[float], cfg: Optional[Dict[str, Any]],
            status: str = "completed", tags: Optional[Dict[str, Any]] = None, kind: str = "train") -> Path:
    """Register a finished run started at 10:`minute`, with config.yaml and metrics.json
    in its folder (none when `cfg` is None, as a tune run may have)."""
    run_dir = tmp_path / "runs" / folder
    run_dir.mkdir(parents=True)
    if cfg is not None:
        (run_dir / "config.yaml").write_text("# The resolved config of this run.\n"
                                             + yaml.safe_dump(cfg, sort_keys=False))
        test = {} if accuracy is None else {"accuracy": accuracy, "loss": 1 - accuracy}
        (run_dir / "metrics.json").write_text(json.dumps({
            "status": status, "train": {"accuracy": 0.99, "loss": 0.05},
            "val": {"accuracy": (accuracy or 0) - 0.01, "loss": 0.3 + minute / 100}, "test": test}))
    started = f"2024-05-01T10:{minute:02d}:00+00:00"
    registry.folder().mkdir(parents=True, exist_ok=True)
    registry.write({"_path": registry.folder() / f"{minute:02d}-{folder}.json", "run_dir": str(run_dir.resolve()),
                    "kind": kind, "status": status, "name": "study", "config_hash": f"hash{folder}",
                    "seed": None if cfg is None else cfg["trainer"]["seed"], "started": started,
                    "ended": f"2024-05-01T10:{minute:02d}:30+00:00", "tags": tags or {},
                    "metric": {"name": "test_accuracy", "value": accuracy}})
    return run_dir


@pytest.fixture
def study(home: Path, tmp_path: Path) -> Path:
    """A study of two contenders (adam: 3 seeds, sgd: 2 seeds and a failed one), and a tune run."""
    for i, acc in enumerate((0.90, 0.92, 0.94)):
        add_run(tmp_path, f"adam{i}", i, acc, config("adam", 0.001, seed=i), tags={"study": "/s", "contender": "adam"})
    for i, acc in enumerate((0.85, 0.89)):
        add_run(tmp_path, f"sgd{i}", 10 + i, acc, config("sgd", 0.1, seed=i, dropout=0.2),
                tags={"study": "/s", "contender": "sgd"})
    add_run(tmp_path, "sgd_failed", 12, None, config("sgd", 0.1, seed=2, dropout=0.2), status="failed",
            tags={"study": "/s", "contender": "sgd"})
    add_run(tmp_path, "tune", 20, 0.5, None, kind="tune")
    return tmp_path


def results(*args: str) -> str:
    """What `dlrun results ARGS` prints (wide: no row folds)."""
    buf = io.StringIO()
    assert show(list(args), console=Console(file=buf, width=400, highlight=False)) == 0
    return buf.getvalue()


def exported(tmp_path: Path, *args: str, suffix: str = ".csv") -> pd.DataFrame:
    """The table `dlrun results ARGS --export` writes, read back."""
    target = tmp_path / "out" / f"table{suffix}"
    assert f"table written to {target}" in results(*args, "--export", str(target))
    return pd.read_parquet(target) if suffix == ".parquet" else pd.read_csv(target)


def errors(capsys, *args: str) -> str:
    """The single error line of a `dlrun results ARGS` that exits 2."""
    capsys.readouterr()
    assert main(["results", *args]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# ----------------------------------------------------------------- the statistics
def test_group_statistics_on_known_numbers() -> None:
    stats = grouping.summarize([0.90, None, 0.92, 0.94])  # None: a run without the metric
    half = T_975_2DOF * 0.02 / math.sqrt(3)
    assert half == pytest.approx(0.0497, abs=1e-4)
    assert stats == pytest.approx({"n": 3, "mean": 0.92, "std": 0.02, "ci_low": 0.92 - half, "ci_high": 0.92 + half,
                                   "min": 0.90, "max": 0.94})
    one = grouping.summarize([0.5])
    assert (one["n"], one["mean"], one["min"], one["max"]) == (1, 0.5, 0.5, 0.5)
    assert all(math.isnan(one[k]) for k in ("std", "ci_low", "ci_high"))  # one run: no spread, no interval
    none = grouping.summarize([None])
    assert none["n"] == 0 and all(math.isnan(none[k]) for k in grouping.STATS[1:])


def test_groups_come_best_mean_first_and_empty_groups_last() -> None:
    rows = [(("a",), 1.0), (("b",), 3.0), (("a",), 2.0), (("c",), None), (("b",), 5.0)]
    assert [k for k, _ in grouping.group(rows, "max")] == [("b",), ("a",), ("c",)]
    assert [k for k, _ in grouping.group(rows, "min")] == [("a",), ("b",), ("c",)]
    assert grouping.group(rows, "min")[2][1]["n"] == 0


# ----------------------------------------------------------------- --columns
def test_columns_show_config_values_sections_and_tags(study: Path) -> None:
    table = exported(study, "--columns", "optimizer,optimizer.learning_rate,regularization,contender,model.units",
                     "--last", "0")
    assert list(table.columns) == ["when", "kind", "name", "status", "config", "seed", "optimizer",
                                   "optimizer.learning_rate", "regularization", "contender", "model.units",
                                   "test_accuracy", "took", "run dir"]
    by_dir = table.set_index(table["run dir"].map(lambda p: Path(p).name))
    assert by_dir.loc["adam1", ["optimizer", "optimizer.learning_rate", "regularization", "contender",
                                "model.units"]].tolist() == ["adam", 0.001, "early_stopping", "adam", "[64, 32]"]
    assert by_dir.loc["sgd0", ["optimizer", "optimizer.learning_rate", "regularization"]].tolist() == [
        "sgd", 0.1, "dropout+early_stopping"]
    assert by_dir.loc["tune", ["optimizer", "contender"]].isna().all()  # a tune run without config.yaml: blank
    assert by_dir.loc["adam2", "test_accuracy"] == pytest.approx(0.94) and by_dir.loc["adam2", "took"] == "30s"
    assert list(table["run dir"].map(lambda p: Path(p).name)) == ["tune", "sgd_failed", "sgd1", "sgd0", "adam2",
                                                                    "adam1", "adam0"]  # newest first, as today
    out = results("--columns", "optimizer,regularization.dropout.rate", "--last", "0")
    assert re.search(r"optimizer\W+regularization\.dropout\.rate", out) and re.search(r"sgd\W+0\.2\W", out)


def test_default_columns_are_the_keys_that_differ(study: Path, tmp_path: Path) -> None:
    table = exported(study, "--metric", "val_loss", "--last", "0")
    # contender, the group whose choice differs, the leaves that differ among the runs having them;
    # not the seed (a column already), the name, nor adam's beta_1 / sgd's momentum (they come with the optimizer)
    assert list(table.columns)[6:-2] == ["contender", "optimizer", "regularization", "optimizer.learning_rate",
                                         "val_loss"]
    assert "more config keys differ" not in results("--columns", "auto")
    for i in range(8):  # data, its test_size, the learning rate and the batch size differ too: a note on the rest
        add_run(tmp_path, f"wide{i}", 30 + i, 0.8, {**config(lr=0.01 * i, batch_size=8 * i),
                                                    "data": {"name": f"d{i}", "test_size": 0.1 * i}})
    out = results("--columns", "auto", "--last", "0")
    assert "2 more config keys differ (optimizer.learning_rate, trainer.batch_size): --columns picks" in out
    header = next(line for line in out.splitlines() if line.lstrip("│┃ ").startswith("when"))
    assert [k for k in ("contender", "data", "optimizer", "regularization", "data.test_size") if k in header] == [
        "contender", "data", "optimizer", "regularization", "data.test_size"] and "trainer.batch_size" not in header


def test_plain_results_reads_only_the_registry(study: Path, monkeypatch) -> None:
    def refuse(path: Path) -> dict:
        raise AssertionError(f"read {path}")

    monkeypatch.setattr(columns, "read_record", refuse)
    out = results("--last", "0")
    assert "test_accuracy 0.94" in out and "7 of 7 matching runs shown" in out and "contender" not in out


# ----------------------------------------------------------------- --metric and --sort
def test_metric_is_read_from_metrics_json(study: Path) -> None:
    table = exported(study, "--metric", "val_loss", "--columns", "contender", "--last", "0")
    names = table["run dir"].map(lambda p: Path(p).name)
    assert dict(zip(names, table["val_loss"])) == pytest.approx(
        {"tune": float("nan"), "sgd_failed": 0.42, "sgd1": 0.41, "sgd0": 0.40, "adam2": 0.32, "adam1": 0.31,
         "adam0": 0.30}, nan_ok=True)
    assert "test_accuracy" not in table.columns
    assert re.search(r"val_accuracy\s", results("--metric", "val_accuracy", "--columns", "contender"))


def test_sort_by_metric_best_first_or_by_key(study: Path) -> None:
    def order(*args: str) -> list:
        table = exported(study, *args, "--columns", "contender")
        return list(table["run dir"].map(lambda p: Path(p).name))

    assert order("--sort", "test_accuracy", "--last", "0") == ["adam2", "adam1", "adam0", "sgd1", "sgd0", "tune",
                                                                "sgd_failed"]  # highest first, no value last
    assert order("--sort", "val_loss", "--last", "3") == ["adam0", "adam1", "adam2"]  # the 3 best of all
    assert order("--sort", "optimizer.learning_rate", "--last", "0")[:3] == ["adam2", "adam1", "adam0"]
    table = exported(study, "--sort", "val_loss", "--columns", "contender")
    assert "val_loss" in table.columns and "test_accuracy" in table.columns  # the sort metric is shown
    assert "sorted by val_loss, lowest first" in results("--sort", "val_loss")


# ----------------------------------------------------------------- --group-by
def test_group_by_gives_n_mean_std_and_t_interval(study: Path) -> None:
    table = exported(study, "--group-by", "contender", "--kind", "train")
    assert list(table.columns) == ["contender", "n", "mean", "std", "ci_low", "ci_high", "min", "max"]
    assert list(table["contender"]) == ["adam", "sgd"]  # best (highest) mean first
    adam, sgd = table.to_dict("records")
    half = T_975_2DOF * 0.02 / math.sqrt(3)
    assert adam == pytest.approx({"contender": "adam", "n": 3, "mean": 0.92, "std": 0.02, "ci_low": 0.92 - half,
                                  "ci_high": 0.92 + half, "min": 0.90, "max": 0.94})
    std = math.sqrt(((0.85 - 0.87) ** 2 + (0.89 - 0.87) ** 2) / 1)
    assert sgd == pytest.approx({"contender": "sgd", "n": 2, "mean": 0.87, "std": std,
                                 "ci_low": 0.87 - T_975_1DOF * std / math.sqrt(2),
                                 "ci_high": 0.87 + T_975_1DOF * std / math.sqrt(2), "min": 0.85, "max": 0.89})
    out = results("--group-by", "contender", "--kind", "train")
    assert "test_accuracy by contender" in out and "2 groups of 5 completed runs (1 not completed left out)" in out
    assert "highest mean first" in out and re.search(r"adam\W+3\W+0\.92\W+0\.02\W+0\.8703\W+0\.9697\W", out)
    everyone = exported(study, "--group-by", "contender")  # a run without the key: a group of its own, blank
    assert everyone["contender"].isna().tolist() == [False, False, True] and everyone["n"].tolist() == [3, 2, 1]


def test_group_by_counts_every_matching_run_unless_last_is_given(home: Path, tmp_path: Path) -> None:
    for i in range(25):  # more runs than the listing's default --last 20
        add_run(tmp_path, f"r{i}", i, 0.90 if i % 2 else 0.80, config("adam" if i % 2 else "sgd", seed=i))
    table = exported(tmp_path, "--group-by", "optimizer").set_index("optimizer")
    assert table.loc["adam", "n"] == 12 and table.loc["sgd", "n"] == 13
    assert exported(tmp_path, "--group-by", "optimizer", "--last", "10")["n"].sum() == 10


def test_group_by_another_metric_and_two_keys(study: Path) -> None:
    table = exported(study, "--group-by", "optimizer,regularization", "--metric", "test_loss", "--kind", "train")
    rows = table.to_dict("records")
    assert [(r["optimizer"], r["regularization"]) for r in rows] == [("adam", "early_stopping"),
                                                                     ("sgd", "dropout+early_stopping")]
    assert rows[0]["mean"] == pytest.approx(0.08) and rows[1]["mean"] == pytest.approx(0.13)  # lowest loss first
    table = exported(study, "--group-by", "trainer.seed")
    assert table["trainer.seed"].fillna(-1).tolist() == [2, 1, 0, -1] and table["n"].tolist() == [1, 2, 2, 1]
    assert table["mean"].tolist() == pytest.approx([0.94, 0.905, 0.875, 0.5])  # the tune run has no config
    assert table.loc[0, ["std", "ci_low", "ci_high"]].isna().all()  # one run: no spread, no interval
    assert "; sorted by contender" in results("--group-by", "contender", "--sort", "contender")


# ----------------------------------------------------------------- --export
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_export_round_trips(study: Path, suffix: str) -> None:
    table = exported(study, "--columns", "contender,optimizer.learning_rate", "--last", "0", suffix=suffix)
    assert len(table) == 7 and table["optimizer.learning_rate"].tolist()[:4] == pytest.approx(
        [float("nan"), 0.1, 0.1, 0.1], nan_ok=True)
    assert table["seed"].tolist()[1:4] == [2, 1, 0]
    if suffix == ".csv":
        assert ",2,hashsgd_failed," not in (study / "out" / "table.csv").read_text()  # whole numbers stay whole
        assert ",hashsgd_failed,2," in (study / "out" / "table.csv").read_text()
    groups = exported(study, "--group-by", "contender", "--kind", "train", suffix=suffix)
    assert groups["n"].tolist() == [3, 2] and groups["mean"].tolist() == pytest.approx([0.92, 0.87])
    assert not list((study / "out").glob(".*"))  # nothing temporary left behind


def test_export_markdown_is_the_table_shown(study: Path) -> None:
    target = study / "table.md"
    out = results("--group-by", "contender", "--kind", "train", "--export", str(target))
    assert f"table written to {target}" in out
    lines = target.read_text().splitlines()
    assert lines[0] == "| contender | n | mean | std | ci_low | ci_high | min | max |"
    assert lines[2].startswith("| adam | 3 | 0.92 | 0.02 | 0.8703 | 0.9697 | 0.9 | 0.94 |") and len(lines) == 4
    results("--columns", "contender", "--last", "2", "--export", str(target))
    listed = target.read_text().splitlines()
    assert len(listed) == 4 and "|  |" in listed[2]  # the rows shown; the tune run's blanks are empty cells


# ----------------------------------------------------------------- errors
@pytest.mark.parametrize("args,message", [
    (["--columns", "optimizer.learnig_rate"], r"--columns 'optimizer.learnig_rate': no listed run has that config "
                                              r"key or tag; did you mean 'optimizer.learning_rate'\?"),
    (["--group-by", "contendr"], r"--group-by 'contendr': .*did you mean 'contender'\?"),
    (["--sort", "optimizer.nam"], r"--sort 'optimizer.nam': .*did you mean 'optimizer.name'\?"),
    (["--metric", "val_acuracy"], r"--metric 'val_acuracy': no listed run has that metric; .*"
                                  r"did you mean 'val_accuracy'\?"),
    (["--sort", "test_f1"], r"--sort 'test_f1': no listed run has that metric"),
    (["--export", "table.xlsx"], r"--export table.xlsx: the file name must end in one of .csv, .md, .parquet"),
    (["--group-by", "contender", "--columns", "optimizer"], r"--columns does not go with --group-by"),
    (["--group-by", "contender", "--sort", "optimizer"], r"--sort 'optimizer' with --group-by: one of contender, "
                                                         r"test_accuracy"),
    (["--columns", ","], r"--columns: give one or more keys"),
])
def test_bad_options_are_one_line(study: Path, capsys, args, message) -> None:
    assert re.search(message, errors(capsys, *args))
    assert not list(study.glob("table.*"))


def test_help_lists_the_new_options(capsys) -> None:
    assert main(["results", "--help"]) == 0
    text = capsys.readouterr().out
    for option in ("--columns", "--metric", "--sort", "--group-by", "--export"):
        assert option in text


def test_group_by_without_completed_runs_says_so(study: Path) -> None:
    assert "no completed run to aggregate among the 1 matching runs" in results("--group-by", "contender",
                                                                                 "--status", "failed")


def test_options_import_no_tensorflow(study: Path) -> None:
    import subprocess
    import sys

    code = ("import sys; from dlrun.cli import main; "
            "assert main(['results', '--group-by', 'contender', '--export', 'g.parquet']) == 0; "
            "assert main(['results', '--sort', 'val_loss', '--columns', 'optimizer']) == 0; "
            "assert 'tensorflow' not in sys.modules")
    assert subprocess.run([sys.executable, "-c", code], cwd=study, capture_output=True).returncode == 0
    assert pd.read_parquet(study / "g.parquet")["n"].tolist() == [3, 2, 1]
