"""A non-editable install works from another folder: the configs ship inside the package."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO


def test_non_editable_install_runs_from_another_folder(tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                    str(REPO)], check=True, capture_output=True, text=True, timeout=600)
    env = {**os.environ, "PYTHONPATH": str(target)}
    env.pop("HYDRA_FULL_ERROR", None)
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = subprocess.run([sys.executable, "-c", "import dlrun, dlrun.config as c; print(dlrun.__file__); "
                            "print(c.conf_dir())"], cwd=work, env=env, capture_output=True, text=True, check=True)
    module_file, conf = where.stdout.split()
    assert module_file.startswith(str(target)) and conf.startswith(str(target))
    assert (Path(conf) / "optimizer" / "adam.yaml").is_file()

    out = subprocess.run([str(target / "bin" / "dlrun"), "train", "debug=fast", "trainer.verbose=0"], cwd=work,
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    (run_dir,) = (work / "experiments" / "default").iterdir()
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "completed"


def test_every_config_group_is_packaged() -> None:
    import tomllib

    packages = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    groups = {p.name for p in (REPO / "conf").iterdir() if p.is_dir() and not p.name.startswith("_")}
    assert {f"dlrun.conf.{g}" for g in groups} <= packages


def test_every_python_package_is_packaged() -> None:
    import tomllib

    packages = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "dlrun").rglob("__init__.py")}
    assert found <= packages, found - packages
