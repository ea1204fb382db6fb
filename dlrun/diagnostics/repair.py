"""`diagnostics.repair=true`: a run whose verdict is a problem is run again with the
diagnosis's suggested overrides, one attempt at a time, up to diagnostics.max_repairs.
Each attempt is an ordinary run (its own folder, RUN_DIR/repair_<n>/, and registry
entry) built from the user's overrides plus the change. An attempt that cures the
problem (its verdict is ok or a less severe one) becomes the base of the next; one that
does not is dropped and the problem's next suggestion is tried. repair.md in the first
run's folder says problem -> change -> result (AUTOTRAINER repairs the same way, but
inside one process and without leaving the attempts behind)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple

from dlrun.config.schema import RunConfig
from dlrun.diagnostics.rules import OK, severity

SKIP_KEYS = ("hydra.",)


@dataclass
class Attempt:
    number: int
    problem: str
    change: Tuple[str, ...]
    overrides: Tuple[str, ...]
    result: Any


def override_key(item: str) -> str:
    return item.lstrip("+~").split("=", 1)[0]


def combined(base: Sequence[str], change: Sequence[str]) -> Tuple[str, ...]:
    """`base` with `change` applied: an override of the same key is replaced, not repeated."""
    keys = {override_key(o) for o in change}
    return tuple([o for o in base if override_key(o) not in keys and not o.startswith(SKIP_KEYS)] + list(change))


def suggestions(metrics: dict) -> List[Tuple[str, ...]]:
    findings = metrics.get("findings") or []
    return [tuple(alt) for alt in findings[0].get("overrides", [])] if findings else []


def repair(run: RunConfig, first: Any, overrides: Sequence[str], compose_run: Callable[[Sequence[str]], RunConfig],
           show: Optional[Callable[[Any], None]] = None, out: Any = None) -> Any:
    """Repair attempts for the run `first` (a training.RunResult); returns the result the
    repair ended with (the first attempt whose verdict is ok, else the best one).
    `out`: the rich console to report on (default dlrun's)."""
    from dlrun.display import console
    from dlrun.training import train

    out = out or console()
    base, current = tuple(o for o in overrides if not o.startswith(SKIP_KEYS)), first
    queue, tried, attempts = suggestions(first.metrics), set(), []
    for number in range(1, run.diagnostics.max_repairs + 1):
        change = next((c for c in queue if combined(base, c) not in tried), None)
        if change is None:
            break
        queue = [c for c in queue if c != change]
        candidate = combined(base, change)
        tried.add(candidate)
        problem = current.metrics.get("verdict")
        out.print(f"[bold]repair {number}/{run.diagnostics.max_repairs}[/]: {problem} -> trying "
                  f"[cyan]{' '.join(change)}[/]")
        result = train(compose_run(candidate), Path(first.run_dir) / f"repair_{number}",
                       tags={"repair_of": str(first.run_dir), "repair_attempt": number})
        attempts.append(Attempt(number, problem, change, candidate, result))
        if show is not None:
            show(result)
        verdict = result.metrics.get("verdict", OK)
        if result.status == "completed" and severity(verdict) > severity(problem):
            base, current = candidate, result  # cured: the next problem starts from here
            queue = suggestions(result.metrics)
        if result.status == "completed" and verdict == OK:
            break
    write_report(Path(first.run_dir) / "repair.md", run, first, attempts)
    best = max([first] + [a.result for a in attempts],
               key=lambda r: (r.status == "completed", severity(r.metrics.get("verdict"))))
    out.print(f"repair: {len(attempts)} attempt(s); ended with [bold]{best.metrics.get('verdict')}[/] in "
              f"{best.run_dir}; see {Path(first.run_dir) / 'repair.md'}")
    return best


def _headline(result: Any) -> str:
    m = result.metrics
    for split in ("val", "test"):
        values = m.get(split) or {}
        name = next((k for k in values if k != "loss"), None)
        if name:
            return f"{split} {name} {values[name]:.4g}"
    return m.get("failure_reason") or ""


def write_report(path: Path, run: RunConfig, first: Any, attempts: List[Attempt]) -> None:
    from dlrun.results.rundir import write_text

    lines = [f"# Repair of {first.run_dir}", "",
             f"The run's verdict was **{first.metrics.get('verdict')}**. Each attempt below is an ordinary run "
             "(its folder is in the last column) of the original overrides plus the change.", "",
             "| attempt | problem | change | status | verdict | result | folder |",
             "|---|---|---|---|---|---|---|",
             f"| original | {first.metrics.get('verdict')} | | {first.status} | {first.metrics.get('verdict')} | "
             f"{_headline(first)} | {first.run_dir} |"]
    for a in attempts:
        lines.append(f"| {a.number} | {a.problem} | `{' '.join(a.change)}` | {a.result.status} | "
                     f"{a.result.metrics.get('verdict')} | {_headline(a.result)} | {a.result.run_dir} |")
    cured = [a for a in attempts if a.result.status == "completed" and a.result.metrics.get("verdict") == OK]
    lines.append("")
    if cured:
        lines.append(f"Repaired by attempt {cured[0].number}. Run it again with:")
        lines += ["", "```", "dlrun train " + " ".join(cured[0].overrides), "```"]
    else:
        lines.append(f"No attempt ended with verdict ok within diagnostics.max_repairs={run.diagnostics.max_repairs}; "
                     "each attempt's findings (metrics.json) say what is still wrong.")
    write_text(path, "\n".join(lines) + "\n")
