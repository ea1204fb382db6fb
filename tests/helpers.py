"""Shared test helpers: tiny configs defined once, CLI runners, small tables."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, List, Sequence

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]
FAST = ["debug=fast", "trainer.verbose=0"]  # 1 epoch on 200 rows, no progress bar


def make_run(*overrides: str, fast: bool = True, config_dirs: Sequence[str] = ()):
    """Compose and validate a config, as the CLI does (no TensorFlow)."""
    from dlrun.config import compose, normalize_overrides, validate

    ov = [*(FAST if fast else []), *overrides]
    return validate(compose("train", normalize_overrides(ov, "train"), config_dirs))


def dlrun(args: List[str], cwd: Path, env_extra: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run the real `dlrun` command in a subprocess (exit codes, stderr, no traceback)."""
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env.update(env_extra or {})
    exe = Path(sys.executable).with_name("dlrun")
    return subprocess.run([str(exe), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def write_people_csv(path: Path, rows: int = 120) -> Path:
    """A small mixed-type table: numbers, a text column, a text target, some gaps."""
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"age": rng.normal(40, 10, rows), "city": rng.choice(["Paris", "Rome", "Oslo"], rows),
                          "income": rng.normal(50, 5, rows)})
    frame["label"] = np.where(frame["income"] + rng.normal(0, 2, rows) > 50, "yes", "no")
    frame.loc[::17, "age"] = np.nan
    frame.to_csv(path, index=False)
    return path


def resume_completes(args: List[str], cwd: Path, run_dir: Path, before, trials: int) -> None:
    """Re-running an interrupted search finishes it: every trial once, all completed,
    and the trials finished before the interruption kept with their objectives."""
    import pandas as pd
    import pytest

    out = dlrun(args, cwd)
    assert out.returncode == 0, out.stderr
    after = pd.read_csv(run_dir / "trials.csv")
    assert len(after) == trials and after["trial"].is_unique and set(after["status"]) == {"completed"}
    kept = before[before["status"] == "completed"].set_index("trial")["objective"]
    assert after.set_index("trial").loc[kept.index, "objective"].tolist() == pytest.approx(kept.tolist())


def kill_when(args: List[str], cwd: Path, run_dir: Path, ready: Callable[[object], bool], wait_s: float = 240) -> None:
    """Start `dlrun ARGS` and SIGKILL it (no chance to clean up) half a second after its
    trials table first satisfies `ready(table)`, or after `wait_s`."""
    import signal
    import time

    import pandas as pd

    exe = Path(sys.executable).with_name("dlrun")
    proc = subprocess.Popen([str(exe), *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + wait_s
    while time.time() < deadline:
        table = run_dir / "trials.csv"
        if table.exists() and ready(pd.read_csv(table)):
            time.sleep(0.5)
            break
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

