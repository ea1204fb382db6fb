"""The study folder: `study.json` says which study it holds, so that the same command
run again resumes there (finished runs kept) and a different study never mixes its
runs into it. No TensorFlow here: the CLI picks the folder before Hydra creates one."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional

from dlrun.results import registry, rundir
from dlrun.study.plan import Study, StudyError

STATE_FILE = "study.json"


def read_state(study_dir: Path) -> Optional[Dict[str, Any]]:
    try:
        state = json.loads((Path(study_dir) / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def find_resumable(parent: Path, fingerprint: str) -> Optional[Path]:
    """The newest study folder under `parent` that holds this same study, or None."""
    if not parent.is_dir():
        return None
    found = [p for p in parent.iterdir() if p.is_dir() and (read_state(p) or {}).get("fingerprint") == fingerprint]
    return max(found, key=lambda p: (read_state(p) or {}).get("started", ""), default=None)


def check_folder(study_dir: Path, study: Study) -> None:
    """Refuse a folder that holds another study (other contenders or shared config)."""
    state = read_state(study_dir)
    if state is not None and state.get("fingerprint") != study.fingerprint():
        raise StudyError(f"{study_dir} holds another study ({state.get('name')}: other contenders or another "
                         "shared config); resuming it would mix their runs. Choose another hydra.run.dir")


def write_state(study_dir: Path, study: Study, status: str, counts: Dict[str, int],
                previous: Optional[Dict[str, Any]] = None) -> None:
    s = study.settings
    rundir.write_json(Path(study_dir) / STATE_FILE, {
        "name": study.name, "fingerprint": study.fingerprint(), "status": status,
        "started": (previous or {}).get("started") or registry.now(), "updated": registry.now(),
        "command": rundir.command_line(), "metric": study.metric, "seeds": s.seeds, "tune_lr": s.tune_lr,
        "target": s.target, "contenders": {c.name: c.overrides for c in study.contenders}, "runs": counts,
    })
