"""Helpers shared by the benchmark scripts: timing whole commands, medians, and
the machine/versions header of RESULTS.md, and the scratch folder every run
and registry entry of a benchmark goes to."""
from __future__ import annotations

import contextlib
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Iterator, List, Sequence, Tuple

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
DLRUN = str(Path(sys.executable).with_name("dlrun"))


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    """A temporary folder for a benchmark's runs (pass hydra.run.dir under it) and,
    through $DLRUN_HOME, its registry entries; $TMPDIR too, so that the peers'
    mkdtemp folders go there as well. Removed at the end: `make bench` leaves
    nothing in the checkout but RESULTS.md."""
    saved = {k: os.environ.get(k) for k in ("DLRUN_HOME", "TMPDIR")}
    with tempfile.TemporaryDirectory(prefix="dlrun-bench-") as tmp:
        os.environ.update(DLRUN_HOME=str(Path(tmp) / "home"), TMPDIR=tmp)
        try:
            yield Path(tmp)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def timed(cmd: Sequence[str], cwd: Path = HERE, env: dict | None = None) -> Tuple[float, str]:
    """Wall time of a whole command (process start included) and its stdout."""
    start = time.perf_counter()
    out = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    elapsed = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr[-2000:]}")
    return elapsed, out.stdout


def median(values: List[float]) -> float:
    return statistics.median(values)


def machine() -> str:
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in ("tensorflow", "keras", "keras-tuner", "scikit-learn"))
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}; {versions}")
