"""The verdict at the end of a run, for the terminal: the problem, its evidence and
the overrides to try, as lines rich prints."""
from __future__ import annotations

from typing import Any, List, Mapping

from rich.markup import escape

from dlrun.diagnostics.rules import OK

CHECKED = "gradients, dead and saturated units, stability, progress and overfitting look fine"


def overrides_text(alternatives: List[List[str]], most: int = 3) -> str:
    return " | ".join(" ".join(alt) for alt in alternatives[:most])


def verdict_lines(metrics: Mapping[str, Any]) -> List[str]:
    """Rich markup lines for a run's metrics.json; none when it has no verdict."""
    verdict = metrics.get("verdict")
    if verdict is None:
        return []
    if verdict == OK:
        return [f"[green]diagnosis: ok[/] ({CHECKED}; gradients.png)"]
    lines = [f"[bold red]diagnosis: {escape(verdict)}[/]"]
    for finding in metrics.get("findings", []):
        lines.append(f"  [bold]{escape(finding['problem'])}[/]: {escape(finding['evidence'])}")
        if finding.get("overrides"):
            lines.append(f"    try: [cyan]{escape(overrides_text(finding['overrides']))}[/]")
    return lines
