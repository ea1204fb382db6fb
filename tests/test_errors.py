"""Bad input: one clear line naming the key, the value and what is allowed,
exit code 2, no traceback, and no run directory left behind."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dlrun.cli import main
from tests.helpers import dlrun, write_people_csv


def run_main(capsys, tmp_path: Path, *overrides: str) -> tuple:
    run_dir = tmp_path / "run"
    rc = main(["train", "trainer.verbose=0", "trainer.epochs=2", *overrides, f"hydra.run.dir={run_dir}"])
    err = capsys.readouterr().err
    return rc, err, run_dir


CONFIG_CASES = [
    (["optimizer=adamm"], r"optimizer='adamm': unknown option; one of .*adam.* \(did you mean 'adam'\?\)"),
    (["experiment=digits_cnnn"], r"did you mean 'digits_cnn'"),
    (["optimizer.lr=0.1"], r"optimizer.lr: unknown key.*learning_rate"),
    (["+foo=1"], r"foo: unknown top-level key"),
    (["foo=1"], r"foo: unknown key"),
    (["optimizer.learning_rate=abc"], r"optimizer.learning_rate='abc': must be a number"),
    (["optimizer.learning_rate=0"], r"optimizer.learning_rate=0.0: must be > 0"),
    (["optimizer.learning_rate=-0.1"], r"optimizer.learning_rate=-0.1: must be > 0"),
    (["regularization=dropout", "regularization.dropout.rate=1.5"], r"regularization.dropout.rate=1.5: must be in \[0, 1\)"),
    (["regularization=dropout", "regularization.dropout.rate=-0.1"], r"regularization.dropout.rate=-0.1"),
    (["regularization.dropout.rate=0.3"], r"'dropout' is not enabled.*regularization=\[dropout"),
    (["regularization=l2", "regularization.noise.stddev=0.3"], r"'noise' is not enabled"),
    (["regularization=noise", "regularization.noise.stddev=abc"], r"regularization.noise.stddev='abc': must be a number"),
    (["trainer.batch_size=0"], r"trainer.batch_size=0: must be a positive integer or 'full'"),
    (["trainer.batch_size=lots"], r"trainer.batch_size='lots'"),
    (["trainer.batch_size=100000"], r"trainer.batch_size=100000: larger than the training split"),
    (["trainer.epochs=0"], r"trainer.epochs=0: must be > 0"),
    (["optimizer=[adam,sgd]"], r"optimizer='\[adam,sgd\]': takes one option.*-m optimizer=adam,sgd"),
    (["loss=mse"], r"loss='mse': does not fit a multiclass task"),
    (["data=diabetes", "loss=binary_crossentropy"], r"does not fit a regression task"),
    (["model=cnn", "data=iris"], r"data.image_shape=\(missing\): model=cnn needs image data"),
    (["data=csv"], r"data.path=\(missing\)"),
    (["trainer.metrics=[auc]"], r"trainer.metrics='auc': not a multiclass metric"),
    (["trainer.metrics=[acuracy]"], r"trainer.metrics='acuracy': one of .*top3_accuracy \(did you mean 'accuracy'\?\)$"),
    (["data=breast_cancer", "trainer.metrics=[top3_accuracy]"],
     r"trainer.metrics='top3_accuracy': not a binary metric; use auto or one of .* \(did you mean 'accuracy'\?\)$"),
    # configs may come from others: no import outside allowed_imports, no path in the name
    (["loss=custom", "loss.function=mypkg.losses.f"],
     r"loss.function='mypkg.losses.f': imports from 'mypkg', which allowed_imports does not list \(dlrun, keras\); "
     r"if you trust it, add allowed_imports=\[dlrun,keras,mypkg\]$"),
    (["allowed_imports=mypkg"], r"allowed_imports='mypkg': must be a list of module names"),
    (["+hydra.callbacks.evil._target_=os.system"], r"hydra.callbacks.evil._target_='os.system': imports from 'os'"),
    (["hydra/launcher=basic", "+hydra.launcher.x={_target_:subprocess.call}"], r"imports from 'subprocess'"),
    (["name=../../outside"], r"name='../../outside': must be a plain folder name \(no '/'"),
    (["name=a/b"], r"name='a/b': must be a plain folder name"),
    (["name=.."], r"name='..': must be a plain folder name"),
]


@pytest.mark.parametrize("overrides,message", CONFIG_CASES, ids=[" ".join(c[0]) for c in CONFIG_CASES])
def test_bad_config_value(capsys, tmp_path: Path, overrides, message) -> None:
    rc, err, run_dir = run_main(capsys, tmp_path, *overrides)
    assert rc == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("dlrun: error: ")
    assert __import__("re").search(message, lines[0]), lines[0]
    assert not run_dir.exists()


def _table(tmp_path: Path, name: str, edit) -> Path:
    path = write_people_csv(tmp_path / "people.csv")
    frame = pd.read_csv(path)
    frame = edit(frame)
    out = tmp_path / name
    frame.to_csv(out, index=False)
    return out


def _numeric_text(frame):
    frame["age"] = frame["age"].astype(object)
    frame.loc[3, "age"] = "abc"
    return frame


def _inf(frame):
    frame.loc[4, "income"] = np.inf
    return frame


DATA_CASES = [
    ("missing", lambda tmp: ["data.path=" + str(tmp / "nope.csv")], r"data.path=.*nope.csv.*: file not found"),
    ("directory", lambda tmp: [f"data.path={tmp}"], r"is a directory"),
    ("garbage", lambda tmp: [f"data.path={_garbage(tmp)}"], r"cannot be read|1 column|no rows|empty"),
    ("empty", lambda tmp: [f"data.path={_empty(tmp)}"], r"the file is empty"),
    ("target", lambda tmp: [f"data.path={write_people_csv(tmp / 'p.csv')}", "data.target=lable"],
     r"data.target='lable': no such column .*\(did you mean 'label'\?\)"),
    ("text-no-encoding", lambda tmp: [f"data.path={write_people_csv(tmp / 'p.csv')}", "data.categorical=error"],
     r"feature column 'city' holds text"),
    ("numeric-text", lambda tmp: [f"data.path={_table(tmp, 'n.csv', _numeric_text)}"],
     r"column 'age' is numeric except for 1 value\(s\) such as 'abc'"),
    ("inf", lambda tmp: [f"data.path={_table(tmp, 'i.csv', _inf)}"], r"feature column 'income' has infinite values"),
    ("nan-left", lambda tmp: [f"data.path={write_people_csv(tmp / 'p.csv')}", "data.missing=error"],
     r"column 'age' has \d+ missing value"),
    ("loss-task", lambda tmp: [f"data.path={write_people_csv(tmp / 'p.csv')}", "loss=mse"],
     r"loss='mse': does not fit a binary task"),
]


def _garbage(tmp: Path) -> Path:
    path = tmp / "blob.csv"
    path.write_bytes(bytes(range(256)) * 8)
    return path


def _empty(tmp: Path) -> Path:
    path = tmp / "empty.csv"
    path.write_text("")
    return path


@pytest.mark.parametrize("name,args,message", DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_bad_data(capsys, tmp_path: Path, name, args, message) -> None:
    rc, err, run_dir = run_main(capsys, tmp_path, "data=csv", "data.target=label", *args(tmp_path))
    assert rc == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert __import__("re").search(message, lines[0]), lines[0]
    assert not run_dir.exists()


def test_real_command_exits_2_without_traceback(tmp_path: Path) -> None:
    out = dlrun(["train", "optimizer.learning_rate=-1"], tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == ["dlrun: error: optimizer.learning_rate=-1.0: must be > 0"]
    assert "Traceback" not in out.stderr + out.stdout
    assert not (tmp_path / "experiments").exists()


def test_full_error_env_shows_the_traceback(tmp_path: Path) -> None:
    out = dlrun(["check", "optimizer.learning_rate=-1"], tmp_path, env_extra={"HYDRA_FULL_ERROR": "1"})
    assert out.returncode != 0
    assert "Traceback" in out.stderr and "ConfigError" in out.stderr


def test_unknown_command_suggests_the_closest(tmp_path: Path) -> None:
    out = dlrun(["trian"], tmp_path)
    assert out.returncode == 2
    assert "did you mean 'train'" in out.stderr


def test_bad_sweep_job_is_caught_before_any_job_runs(capsys, tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    rc = main(["train", "-m", "optimizer.learning_rate=0.01,-1", "trainer.verbose=0", "debug=fast",
               f"hydra.sweep.dir={sweep_dir}"])
    assert rc == 2
    assert "optimizer.learning_rate=-1.0: must be > 0" in capsys.readouterr().err
    assert not sweep_dir.exists()


def test_config_refusals_happen_before_tensorflow_is_imported(tmp_path: Path) -> None:
    code = ("import sys; from dlrun.cli import main; "
            "rc = main(['train', 'loss=custom', 'loss.function=mypkg.losses.f', 'hydra.run.dir=run']); "
            "assert rc == 2, rc; assert 'tensorflow' not in sys.modules; print('ok')")
    out = __import__("subprocess").run([__import__("sys").executable, "-c", code], cwd=tmp_path,
                                       capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
    assert "allowed_imports does not list" in out.stderr


def test_missing_data_file_is_reported_before_pandas_is_imported(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = ("import sys\nfrom dlrun.cli import main\n"
            "rc = main(['check', 'data=csv', 'data.path=nope.csv', 'data.target=y'])\n"
            "print(rc, 'pandas' in sys.modules, 'tensorflow' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["2", "False", "False"], out.stderr
    assert "data.path=nope.csv" in out.stderr and "file not found" in out.stderr


@pytest.mark.parametrize("args,key", [(["train"], "hydra.run.dir"), (["train", "-m", "optimizer=sgd,adam"], "hydra.sweep.dir")])
def test_output_folder_that_cannot_be_created_is_one_line(tmp_path: Path, args, key) -> None:
    out = dlrun([*args, f"{key}=/proc/nope/run"], tmp_path)  # /proc refuses new folders, root included
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines() == [f"dlrun: error: {key}='/proc/nope/run': cannot create a folder in "
                                               "/proc (No such file or directory); choose another output folder"]
    assert "Traceback" not in out.stderr + out.stdout
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not hasattr(__import__("os"), "geteuid") or __import__("os").geteuid() == 0,
                    reason="root ignores permission bits (the /proc case covers it)")
def test_output_folder_under_a_read_only_folder_is_refused(capsys, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        rc = main(["train", "trainer.verbose=0", f"hydra.run.dir={locked / 'a' / 'run'}"])
    finally:
        locked.chmod(0o755)
    err = capsys.readouterr().err
    assert rc == 2
    assert f"hydra.run.dir='{locked / 'a' / 'run'}': cannot create a folder in {locked} (Permission denied)" in err
    assert list(locked.iterdir()) == []


def test_checking_that_a_folder_can_be_created_leaves_nothing_behind(tmp_path: Path) -> None:
    from dlrun.results.rundir import uncreatable_dir

    assert uncreatable_dir(tmp_path / "a" / "b" / "run") is None
    assert uncreatable_dir(tmp_path) is None
    assert list(tmp_path.iterdir()) == []


def test_metric_typo_is_caught_by_the_schema_before_any_data() -> None:
    from dlrun.errors import ConfigError
    from tests.helpers import make_run  # compose and validate only: no data is loaded

    with pytest.raises(ConfigError, match=r"^trainer.metrics='precison': one of .* \(did you mean 'precision'\?\)$"):
        make_run("trainer.metrics=[auto,precison]")
    assert make_run("trainer.metrics=[auto,f1,pr_auc,r2]").trainer.metrics == ["auto", "f1", "pr_auc", "r2"]
