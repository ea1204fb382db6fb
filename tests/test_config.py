"""Every config group option composes and validates; CLI override forms agree."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tests.helpers import REPO, dlrun, make_run, write_people_csv
from dlrun.config.schema import SCHEMAS, TEXT_SETS

CONF = REPO / "conf"
SIMPLE_GROUPS = ["model", "optimizer", "schedule", "trainer"]


def options(group: str):
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize("group", SIMPLE_GROUPS)
def test_every_option_of_group_validates(group: str) -> None:
    for option in options(group):
        run = make_run(f"{group}={option}")
        if "name" in [f.name for f in dataclasses.fields(getattr(run, group))]:
            assert getattr(run, group).name == option


@pytest.mark.parametrize("option", [o for o in options("data") if o not in ("csv", "images")])
def test_bundled_data_options_validate(option: str) -> None:
    text_model = ["model=attention"] if option in TEXT_SETS else []  # a text column needs a sequence model
    assert make_run(f"data={option}", *text_model).data.name == option


def test_a_text_column_needs_a_sequence_model() -> None:
    from dlrun.errors import ConfigError

    with pytest.raises(ConfigError, match=r"model='mlp': cannot read the text column data.text=review; use "
                                          r"model=attention, rnn or pooled_embedding"):
        make_run("data=reviews")
    with pytest.raises(ConfigError, match=r"model='attention': reads sequences; data=wine has neither a text "
                                          r"column nor images. Set data.text=COLUMN"):
        make_run("data=wine", "model=attention")
    with pytest.raises(ConfigError, match=r"data.text='review': data=wine has no text column"):
        make_run("data=wine", "data.text=review", "model=attention")
    with pytest.raises(ConfigError, match=r"augmentation='standard': changes images; model=attention reads text"):
        make_run("data=reviews", "model=attention", "augmentation=standard")
    assert make_run("data=digits", "model=attention", "augmentation=standard").augmentation.active


@pytest.mark.parametrize("words, message", [
    (["model.heads=5"], r"model.heads=5: must divide model.dim=96 .*; e.g. heads=4"),
    (["model.heads=7"], r"model.heads=7: must divide model.dim=96 \(each head gets dim/heads dimensions\); e.g. heads=6"),
    (["model.dim=64", "model.heads=3"], r"model.heads=3: must divide model.dim=64 .*; e.g. heads=2"),
    (["model.dim=0"], r"model.dim=0: must be > 0"),
    (["model.patch_size=[4]"], r"model.patch_size=\[4\]: must be \[height, width\]"),
    (["data.max_tokens=0"], r"data.max_tokens=0: must be >= 3"),
    (["data.sequence_length=0"], r"data.sequence_length=0: must be >= 1"),
])
def test_sequence_settings_are_checked(words: list, message: str) -> None:
    from dlrun.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        make_run("data=reviews", "model=attention", *words)


def test_images_data_option_needs_a_folder(tmp_path: Path) -> None:
    from dlrun.errors import ConfigError

    with pytest.raises(ConfigError, match=r"data.path=\(missing\): data=images needs data.path=DIR"):
        make_run("data=images")
    assert make_run("data=images", f"data.path={tmp_path}").data.path == str(tmp_path)


def test_csv_data_option_validates(tmp_path: Path) -> None:
    path = write_people_csv(tmp_path / "people.csv")
    run = make_run("data=csv", f"data.path={path}", "data.target=label")
    assert (run.data.name, run.data.target) == ("csv", "label")


@pytest.mark.parametrize("option", options("loss"))
def test_every_loss_option_validates(option: str) -> None:
    extra = ["loss.function=tests.losses.mine", "allowed_imports=[dlrun,keras,tests]"] if option == "custom" else []
    assert make_run(f"loss={option}", *extra).loss.name == option


@pytest.mark.parametrize("option", options("regularization"))
def test_every_regularization_option_validates(option: str) -> None:
    reg = make_run(f"regularization={option}").regularization
    sections = {k for k, v in dataclasses.asdict(reg).items() if v is not None}
    expected = {"none": set(), "l1": {"kernel"}, "l2": {"kernel"}, "l1l2": {"kernel"},
                "standard": {"kernel", "dropout", "early_stopping"}}.get(option, {option})
    assert sections == expected


def test_regularization_list_combines_sections() -> None:
    reg = make_run("regularization=[l2,dropout,batchnorm]", "regularization.dropout.rate=0.3").regularization
    assert reg.kernel.l2 == pytest.approx(1e-4)
    assert reg.dropout.rate == 0.3
    assert reg.batchnorm.position == "before"
    assert reg.early_stopping is None


@pytest.mark.parametrize("option", options("experiment"))
def test_every_experiment_preset_validates(option: str) -> None:
    run = make_run(f"experiment={option}")
    assert run.name == option


def test_plus_form_means_the_same_as_plain_override() -> None:
    assert make_run("+optimizer=momentum") == make_run("optimizer=momentum")
    assert make_run("+optimizer=adam", "+schedule=cosine") == make_run("optimizer=adam", "schedule=cosine")


def test_override_values_reach_the_validated_config() -> None:
    run = make_run("optimizer=rmsprop", "optimizer.rho=0.8", "trainer.batch_size=full", "model.units=[32,16]")
    assert (run.optimizer.rho, run.trainer.batch_size, run.model.units) == (0.8, "full", [32, 16])


def test_every_schema_has_a_yaml_option() -> None:
    """Registry and YAML files stay in step: each named schema has its config file."""
    for group in ("model", "optimizer", "schedule"):
        assert set(SCHEMAS[group]) == set(options(group)), group


def test_user_config_folder_adds_options(tmp_path: Path) -> None:
    (tmp_path / "optimizer").mkdir()
    (tmp_path / "optimizer" / "my_sgd.yaml").write_text(
        "defaults:\n  - /schema/optimizer/momentum@_here_\n  - _self_\nname: momentum\nlearning_rate: 0.2\n")
    run = make_run("optimizer=my_sgd", config_dirs=[str(tmp_path)])
    assert (run.optimizer.name, run.optimizer.learning_rate, run.optimizer.momentum) == ("momentum", 0.2, 0.9)


def test_user_config_without_schema_line_is_still_validated(tmp_path: Path) -> None:
    from dlrun.errors import ConfigError

    (tmp_path / "optimizer").mkdir()
    (tmp_path / "optimizer" / "bad.yaml").write_text("name: adam\nlearning_rate: -1\n")
    with pytest.raises(ConfigError, match=r"optimizer.learning_rate=-1.*must be > 0"):
        make_run("optimizer=bad", config_dirs=[str(tmp_path)])


def test_config_error_answers_without_importing_tensorflow(tmp_path: Path) -> None:
    probe = ("import sys\nfrom dlrun.cli import main\nrc = main(['check', 'optimizer.learning_rate=abc'])\n"
             "print(rc, 'tensorflow' in sys.modules)\n")
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["2", "False"], out.stderr


def test_cfg_job_prints_the_composed_config(tmp_path: Path) -> None:
    out = dlrun(["train", "--cfg", "job", "+optimizer=nesterov", "optimizer.momentum=0.8"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "name: nesterov" in out.stdout and "momentum: 0.8" in out.stdout
    assert not (tmp_path / "experiments").exists()


def test_train_help_lists_groups_and_options(tmp_path: Path) -> None:
    out = dlrun(["train", "--help"], tmp_path)
    assert out.returncode == 0
    assert "optimizer: adadelta, adagrad, adam, adamw, momentum, nadam, nesterov, rmsprop, sgd" in out.stdout
    assert "regularization: " in out.stdout and "schema/" not in out.stdout
