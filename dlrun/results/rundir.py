"""The run directory and everything written into it. Every file is written to
a temporary file in the same folder and renamed into place, so a crash never
leaves a torn file behind."""
from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Union

from dlrun.errors import DlrunError

PACKAGES = ("dlrun", "tensorflow", "keras", "keras-tuner", "hydra-core", "omegaconf", "numpy", "pandas",
            "scikit-learn", "imbalanced-learn", "skops", "rich", "matplotlib")


class OutputError(DlrunError):
    """The output folder cannot be written."""


@contextlib.contextmanager
def atomic_path(path: Union[str, Path]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it onto `path`.
    Nothing is left behind on failure; an OSError (disk full, no permission)
    becomes an OutputError that names `path`."""
    path = Path(path)
    try:
        make_dir(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
        os.close(fd)
    except OSError as err:
        raise _cannot_write(path, err) from None
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise _cannot_write(path, err) from None
        raise


def _cannot_write(path: Path, err: OSError) -> OutputError:
    return OutputError(f"cannot write {path}: {err.strerror or err}")


def unusable_dir(path: Union[str, Path]) -> Optional[str]:
    """Why folder `path` cannot be used (it or a parent is a file), or None."""
    path = Path(path)
    for part in (path, *path.parents):
        if part.exists() or part.is_symlink():
            if not part.is_dir():
                return "is a file, not a folder" if part == path else f"is inside {part}, which is a file"
            return None
    return None


def uncreatable_dir(path: Union[str, Path]) -> Optional[str]:
    """Why folder `path` cannot be created (or written into, if it exists), or None.
    Tried, not guessed from permission bits (root ignores them; /proc refuses
    everyone): a temporary folder is made in `path` or its nearest existing parent
    and removed at once, so nothing is left behind."""
    path = Path(path).absolute()
    base = next(p for p in (path, *path.parents) if os.path.isdir(p))
    try:
        probe = tempfile.mkdtemp(prefix=".dlrun-probe-", dir=base)
    except OSError as err:
        return f"cannot create a folder in {base} ({err.strerror or err})"
    with contextlib.suppress(OSError):
        os.rmdir(probe)
    return None


def make_dir(path: Union[str, Path]) -> Path:
    """Create folder `path` (and its parents). Raises OutputError, naming the culprit,
    when it or a parent is a file, or when it cannot be created."""
    path = Path(path)
    reason = unusable_dir(path)
    if reason:
        raise OutputError(f"{path}: {reason}; choose another output folder (hydra.run.dir)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create the folder {path}: {err.strerror or err}") from None
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: Union[str, Path], text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: Union[str, Path], data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2, sort_keys=False, default=_jsonable) + "\n")


def read_record(path: Union[str, Path]) -> Dict[str, Any]:
    """A run folder's JSON or YAML file (metrics.json, versions.json, config.yaml) as a
    dict; {} when it is missing, unreadable or not a mapping (a run that died early)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError):  # missing, unreadable, not UTF-8
        return {}
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except ValueError:
            return {}
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            return {}
    return data if isinstance(data, dict) else {}


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    return str(value)


def versions() -> Dict[str, Optional[str]]:
    """Versions of Python and of the libraries a result depends on."""
    out: Dict[str, Optional[str]] = {"python": platform.python_version(), "platform": platform.platform()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_state(cwd: Union[str, Path, None] = None) -> Optional[Dict[str, Any]]:
    """The git commit (and whether the tree has changes) of `cwd`, if it is a repository."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                                timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(dirty)}


HASH_IGNORES = ("name", "output_dir", "allowed_imports", "optimized_metric")  # keys that do not change a result
HASH_IGNORES_TRAINER = ("seed", "verbose")  # runs repeated with other seeds share a config hash


def config_hash(config: Dict[str, Any]) -> str:
    """A short, stable hash of a resolved config. It ignores what does not change the
    experiment (name, output folder, allowed_imports, progress display) and the seed,
    so that the same config run with several seeds shares one hash."""
    body = {k: v for k, v in config.items() if k not in HASH_IGNORES}
    if isinstance(body.get("trainer"), dict):
        body["trainer"] = {k: v for k, v in body["trainer"].items() if k not in HASH_IGNORES_TRAINER}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:12]


def shown_dir(path: Union[str, Path]) -> str:
    """A folder as the user should see it: relative to the current folder when it lies
    inside it, absolute otherwise."""
    path = str(path)
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive
        return path
    return path if relative.startswith("..") else relative


def default_run_dir(name: str, root: Union[str, Path] = "experiments") -> Path:
    """experiments/<name>/<timestamp>/ for runs started without Hydra's run directory."""
    stamp = dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
    return Path(root) / name / stamp


COMMAND: Optional[list] = None  # set by the CLI to the words the user typed


def command_line() -> str:
    """The command that started this run, as the user typed it."""
    import shlex

    if COMMAND is not None:
        return shlex.join(COMMAND)
    return shlex.join([Path(sys.argv[0]).name if sys.argv else "python", *sys.argv[1:]])


LOCK_FILE = ".dlrun.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def run_lock(run_dir: Union[str, Path]) -> Iterator[Path]:
    """Hold `run_dir` for this process: a second run in the same folder is refused
    while the first is alive; the lock of a dead process is taken over."""
    import socket

    path = Path(run_dir) / LOCK_FILE
    host = socket.gethostname()
    me = {"pid": os.getpid(), "host": host, "started": dt.datetime.now().isoformat(timespec="seconds")}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except OSError as err:
            if not isinstance(err, FileExistsError):
                raise _cannot_write(path, err) from None
            try:
                owner = json.loads(path.read_text() or "{}")
            except (OSError, ValueError):
                owner = {}
            pid, where = owner.get("pid"), owner.get("host")
            if isinstance(pid, int) and (where != host or _alive(pid)):
                raise OutputError(f"{run_dir} is in use by another run (pid {pid} on {where}, started "
                                  f"{owner.get('started')}); wait for it, or choose another hydra.run.dir"
                                  + (f" (if that run is gone, delete {path})" if where != host else "")) from None
            path.unlink(missing_ok=True)  # a stale lock: its process is gone
            continue
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(me, fh)
        except OSError as err:
            path.unlink(missing_ok=True)
            raise _cannot_write(path, err) from None
        break
    try:
        yield path
    finally:
        with contextlib.suppress(OSError, ValueError):
            if json.loads(path.read_text()).get("pid") == me["pid"]:
                path.unlink()
