"""The run registry: one small JSON file per run start under
$DLRUN_HOME/.registry/ (default ./experiments/.registry/), so that `dlrun results`
lists every run wherever its run directory is (hydra.run.dir=/elsewhere included).

Each entry is written atomically when the run starts (status 'running') and again
when it ends (completed, failed, interrupted or stopped). A run killed outright
cannot update its entry: every start (and `dlrun results`) marks the 'running'
entries whose process is gone from this host as 'interrupted'. A corrupt or
partial entry is skipped. No TensorFlow here."""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import socket
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple, Type, Union

from dlrun.results import rundir

ENV_HOME = "DLRUN_HOME"     # where the registry lives: $DLRUN_HOME/.registry
DEFAULT_HOME = "experiments"  # relative to the folder dlrun is started from
FOLDER = ".registry"
KINDS = ("train", "tune")
STATUSES = ("running", "completed", "failed", "interrupted", "stopped")
REQUIRED = ("run_dir", "kind", "status", "started")


def home() -> Path:
    """dlrun's home folder: $DLRUN_HOME, or ./experiments."""
    return Path(os.environ.get(ENV_HOME) or DEFAULT_HOME).expanduser()


def folder(root: Union[str, Path, None] = None) -> Path:
    """The registry folder under `root` (default: home())."""
    return Path(root if root is not None else home()) / FOLDER


def now() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _proc_start(pid: int) -> Optional[str]:
    """When process `pid` started (Linux clock ticks since boot), to tell a reused pid
    from the registered one; None where /proc cannot say."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
        return text.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def alive(entry: Dict[str, Any]) -> bool:
    """Whether the process that registered `entry` may still be running (True when
    it ran on another host: that cannot be checked from here)."""
    pid = entry.get("pid")
    if entry.get("host") != socket.gethostname() or not isinstance(pid, int):
        return True
    if not rundir._alive(pid):
        return False
    then, current = entry.get("pid_start"), _proc_start(pid)
    return then is None or current is None or then == current


def read(path: Path) -> Optional[Dict[str, Any]]:
    """One entry, or None when it is unreadable, corrupt or partial."""
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or any(not isinstance(entry.get(k), str) for k in REQUIRED):
        return None
    try:
        entry["_started"] = dt.datetime.fromisoformat(entry["started"])
    except ValueError:
        return None
    if entry["_started"].tzinfo is None:
        entry["_started"] = entry["_started"].astimezone()
    entry["_path"] = path
    return entry


def entries(root: Union[str, Path, None] = None) -> List[Dict[str, Any]]:
    """Every readable entry, newest first (`_path` and `_started` added)."""
    base = folder(root)
    if not base.is_dir():
        return []
    found = [e for e in (read(p) for p in base.glob("*.json")) if e is not None]
    # file names start with the start time to the microsecond: they order runs started in one second
    return sorted(found, key=lambda e: (e["_started"], e["_path"].name), reverse=True)


def write(entry: Dict[str, Any]) -> None:
    """Rewrite `entry` in place (atomically). Raises rundir.OutputError."""
    rundir.write_json(entry["_path"], {k: v for k, v in entry.items() if not k.startswith("_")})


def reap(root: Union[str, Path, None] = None) -> int:
    """Mark the 'running' entries of processes gone from this host as interrupted.
    Returns how many were marked."""
    count = 0
    for entry in entries(root):
        if entry["status"] == "running" and not alive(entry):
            entry.update(status="interrupted",
                         message=f"the process (pid {entry.get('pid')}) ended without finishing: killed or crashed")
            with contextlib.suppress(OSError, rundir.OutputError):
                write(entry)
                count += 1
    return count


def _finite(value: Any) -> Optional[float]:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


class Recorder:
    """The entry of one run in progress; `finish` records how it ended."""

    def __init__(self, entry: Optional[Dict[str, Any]]) -> None:
        self.entry = entry
        self.outcome: Dict[str, Any] = {}

    def finish(self, status: str, metric: Optional[Tuple[str, Any]] = None, message: Optional[str] = None,
               verdict: Optional[str] = None) -> None:
        self.outcome = {"status": status, "message": message}
        if verdict is not None:  # the diagnosis (dlrun.diagnostics): ok or the most severe problem
            self.outcome["verdict"] = verdict
        if metric is not None:
            self.outcome["metric"] = {"name": metric[0], "value": _finite(metric[1])}

    def _close(self, status: str, message: Optional[str] = None) -> None:
        if self.entry is None:
            return
        self.entry.update(status=status, ended=now(), message=message)
        self.entry.update({k: v for k, v in self.outcome.items() if k not in ("status", "message")})
        _safe_write(self.entry)


def _safe_write(entry: Dict[str, Any]) -> bool:
    """Write `entry`; a registry that cannot be written warns but never stops a run."""
    try:
        write(entry)
        return True
    except (OSError, rundir.OutputError) as err:
        from dlrun.display import warn

        warn(f"run registry not updated ({err}); set {ENV_HOME} to a writable folder")
        return False


@contextlib.contextmanager
def record(kind: str, run_dir: Union[str, Path], name: str, config_hash: str, seed: Optional[int],
           refused: Tuple[Type[BaseException], ...] = (), tags: Optional[Dict[str, Any]] = None) -> Iterator[Recorder]:
    """Register a run for the duration of the block: 'running' at once, then the status
    given to `Recorder.finish` (default completed), 'interrupted' on Ctrl-C, 'failed'
    on an exception. `tags` (e.g. a study run's study folder and contender) are kept
    in the entry for `dlrun results --columns/--group-by`. An exception of a `refused` type (nothing ran: e.g. a resume
    refused) removes the entry instead."""
    reap()
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    pid = os.getpid()
    entry: Optional[Dict[str, Any]] = {
        "_path": folder() / f"{stamp}-{pid}-{uuid.uuid4().hex[:6]}.json",
        "run_dir": str(Path(run_dir).resolve()), "kind": kind, "status": "running", "name": name,
        "config_hash": config_hash, "seed": seed, "pid": pid, "pid_start": _proc_start(pid),
        "host": socket.gethostname(), "started": now(), "ended": None, "metric": None, "message": None,
        "command": rundir.command_line(), "tags": dict(tags or {}),
    }
    if not _safe_write(entry):
        entry = None
    recorder = Recorder(entry)
    try:
        yield recorder
    except KeyboardInterrupt:
        recorder._close("interrupted", "stopped by the user (Ctrl-C)")
        raise
    except refused:
        if entry is not None:
            with contextlib.suppress(OSError):
                Path(entry["_path"]).unlink()
        raise
    except BaseException as err:
        text = str(err).strip().splitlines()
        recorder._close("failed", f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": "))
        raise
    recorder._close(recorder.outcome.get("status", "completed"), recorder.outcome.get("message"))


def find(run_dir: Union[str, Path], root: Union[str, Path, None] = None) -> List[Dict[str, Any]]:
    """The entries of `run_dir` (a run resumed in the same folder has several), newest first."""
    target = str(Path(run_dir).resolve())
    return [e for e in entries(root) if e["run_dir"] == target]
