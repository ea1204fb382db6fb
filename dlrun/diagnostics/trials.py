"""The verdict of a search trial, kept in keras-tuner's trial folder (diagnosis.json)
so that trials.csv shows it, in-process and in distributed mode alike."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List, Optional

from dlrun.diagnostics.rules import severity

FILE = "diagnosis.json"


def write_diagnosis(trial_dir: Path, diagnoses: List[Any]) -> None:
    """The most severe verdict of the trial's fits (executions, folds) with its findings."""
    from dlrun.results.rundir import write_json

    if diagnoses:
        worst = min(diagnoses, key=lambda d: severity(d.verdict))
        write_json(Path(trial_dir) / FILE, worst.as_dict())


def read_verdict(trial_dir: Path) -> Optional[str]:
    try:
        return json.loads((Path(trial_dir) / FILE).read_text()).get("verdict")
    except (OSError, ValueError):
        return None
