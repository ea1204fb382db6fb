"""`dlrun results` with --columns, --metric, --sort, --group-by or --export: tables of
config values and metrics read from the listed runs' folders (config.yaml, metrics.json),
one row per run or per group, and the file a table is exported to. No TensorFlow."""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Tuple

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dlrun.errors import DlrunError, one_of
from dlrun.results import columns, grouping
from dlrun.results.listing import COLORS, _duration
from dlrun.results.rundir import shown_dir

if TYPE_CHECKING:
    import pandas as pd

Rows = Tuple[List[str], List[List[Any]]]  # column names, rows of cells (numbers unrounded)


BASE = ("when", "kind", "name", "status", "config", "seed")  # the columns before the values


def _order(runs: List[columns.Run], sort: str) -> Tuple[List[columns.Run], str]:
    """`runs` sorted by metric or key `sort`: a metric best first, a key ascending,
    runs without a value last, ties newest first. Returns (runs, what the order is)."""
    if columns.is_metric(sort, runs):
        columns.check_metric("--sort", sort, runs)
        from dlrun.results.sweep import metric_direction

        best = metric_direction(sort)
        sign = -1 if best == "max" else 1
        values = [columns.metric(r, sort) for r in runs]
        ranked = sorted(range(len(runs)), key=lambda i: (values[i] is None, sign * (values[i] or 0.0)))
        return [runs[i] for i in ranked], f"sorted by {sort}, {'highest' if best == 'max' else 'lowest'} first"
    columns.check_keys("--sort", [sort], runs)
    cells = [columns.value(r, sort) for r in runs]
    ranked = sorted(range(len(runs)), key=lambda i: _ascending(cells[i]))
    return [runs[i] for i in ranked], f"sorted by {sort}"


def _ascending(cell: Any) -> Tuple[int, Any]:
    """A sort key for a cell of any type: numbers, then text, then blanks."""
    if cell is None:
        return 2, ""
    if isinstance(cell, (int, float)) and not isinstance(cell, bool):
        return 0, cell
    return 1, str(cell)


def run_rows(runs: List[columns.Run], options: Dict[str, Any]) -> Tuple[Rows, List[str]]:
    """The listing with --columns, --metric and --sort: one row per run shown.
    Returns ((names, rows), notes for the caption)."""
    last, sort, wanted = options["last"], options.get("sort"), options.get("metric")
    notes: List[str] = []
    by_metric = sort is not None and columns.is_metric(sort, runs)
    if sort is not None:
        runs, order = _order(runs, sort)  # every matching run: --last then keeps the best
        notes.append(order)
    shown = runs[:last] if last else runs
    if options.get("columns") in (None, ["auto"]):
        keys, more = columns.differing_keys(shown)
        if more:
            notes.append(f"{len(more)} more config keys differ ({', '.join(more[:3])}"
                         f"{', ...' if len(more) > 3 else ''}): --columns picks")
    else:
        keys = list(options["columns"])
        columns.check_keys("--columns", keys, shown)
    if sort is not None and not by_metric:
        keys.append(sort)
    keys = [k for k in dict.fromkeys(keys) if k not in BASE]  # `name` is a column already
    if wanted is not None:
        columns.check_metric("--metric", wanted, shown)
        metrics = [wanted]
    else:
        names = {n for n in (columns.headline(r)[0] for r in shown) if n}
        metrics = [names.pop()] if len(names) == 1 else []
    if by_metric and sort not in metrics:
        metrics.append(sort)
    head = [*BASE, *keys,
            *(metrics or ["metric", "value"]), "took", "run dir"]
    rows = []
    for r in shown:
        e = r.entry
        values = ([columns.metric(r, m) for m in metrics] if metrics else list(columns.headline(r)))
        rows.append([e["_started"].strftime("%Y-%m-%d %H:%M:%S"), e["kind"], e.get("name"), e["status"],
                     e.get("config_hash"), e.get("seed"), *(columns.value(r, k) for k in keys), *values,
                     _duration(e), e["run_dir"]])
    return (head, rows), notes


def group_rows(runs: List[columns.Run], options: Dict[str, Any]) -> Tuple[Rows, str, str]:
    """The --group-by table: one row per combination of the keys' values over the
    completed runs among `runs` (every matching run unless --last is given), best
    mean first. Returns ((names, rows), the title, a note for the caption)."""
    if options["last_given"] and options["last"]:
        runs = runs[:options["last"]]
    keys = options["group_by"]
    columns.check_keys("--group-by", keys, runs)
    done = [r for r in runs if r.entry["status"] == "completed"]
    if not done:
        return (keys, []), "", ""
    name = options.get("metric") or columns.default_metric(done)
    if name is None:
        raise DlrunError("--group-by: no completed run reports a headline metric; name one with --metric")
    columns.check_metric("--metric", name, done)
    from dlrun.results.sweep import metric_direction

    best = metric_direction(name)
    groups = grouping.group([(tuple(columns.value(r, k) for k in keys), columns.metric(r, name)) for r in done], best)
    sort = options.get("sort")
    if sort is not None and sort != name:
        if sort not in keys:
            raise DlrunError(f"--sort {sort!r} with --group-by: " + one_of(sort, [*keys, name]))
        at = keys.index(sort)
        groups = sorted(groups, key=lambda g: _ascending(g[0][at]))
    left = len(runs) - len(done)
    note = (f"{len(groups)} groups of {len(done)} completed runs"
            + (f" ({left} not completed left out)" if left else "")
            + f"; n: runs with {name}, std with ddof 1, ci: 95% Student-t interval of the mean; "
            + (f"sorted by {sort}" if sort is not None and sort != name
               else f"{'highest' if best == 'max' else 'lowest'} mean first"))
    rows = [[*k, *(stats[s] for s in grouping.STATS)] for k, stats in groups]
    return ([*keys, *grouping.STATS], rows), f"{name} by {', '.join(keys)}", note


def _cell(column: str, value: Any) -> str:
    if value is None or isinstance(value, float) and math.isnan(value):
        return ""
    if column == "status":
        return f"[{COLORS.get(value, 'white')}]{escape(str(value))}[/]"
    if column == "run dir":
        return escape(shown_dir(value))
    if isinstance(value, float):
        return f"{value:.4g}"
    return escape(str(value))


def render(rows: Rows, title: str) -> Table:
    """A Rich table of `rows`: numbers right-aligned and shown to 4 significant digits."""
    names, cells = rows
    out = Table(title=title, title_justify="left")
    for i, name in enumerate(names):
        numeric = any(isinstance(r[i], (int, float)) and not isinstance(r[i], bool) for r in cells)
        out.add_column(name, justify="right" if numeric or name == "took" else "left", overflow="fold",
                       no_wrap=name != "run dir")
    for row in cells:
        out.add_row(*(_cell(n, v) for n, v in zip(names, row)))
    return out


def frame(rows: Rows) -> pd.DataFrame:
    """`rows` as a DataFrame that CSV, Markdown and Parquet all take: a column mixing
    numbers and text becomes text, whole numbers with blanks stay whole (Int64)."""
    import pandas as pd

    names, cells = rows
    out = pd.DataFrame(cells, columns=names)
    for i, name in enumerate(names):
        kinds = {type(r[i]) for r in cells if r[i] is not None and not (isinstance(r[i], float) and math.isnan(r[i]))}
        if len(kinds) > 1 and not kinds <= {int, float}:
            out[name] = [None if r[i] is None else str(r[i]) for r in cells]
        elif kinds == {int}:
            out[name] = out[name].astype("Int64")
    return out


def export(rows: Rows, target: str) -> Path:
    """Write `rows` to `target` (.csv, .md or .parquet), atomically. Raises rundir.OutputError."""
    from dlrun.results.tables import write_table

    path = Path(target).expanduser()
    fmt = path.suffix.lower()[1:]
    data = frame(rows)
    if fmt == "md":  # blanks as empty cells, not <NA>
        data = data.astype(object).where(data.notna(), None)
    (written,) = write_table(data, path.with_suffix(""), [fmt])
    return written


def show_values(out: Console, runs: List[columns.Run], options: Dict[str, Any], title: str, registered: int) -> int:
    """`dlrun results` with --columns, --metric, --sort, --group-by or --export."""
    if options.get("group_by"):
        rows, title, note = group_rows(runs, options)
        if not rows[1]:
            out.print(f"no completed run to aggregate among the {len(runs)} matching runs", soft_wrap=True)
            return 0
        out.print(render(rows, title))
        out.print(note, soft_wrap=True)
    else:
        rows, notes = run_rows(runs, options)
        out.print(render(rows, title))
        hidden = len(runs) - len(rows[1])
        out.print("; ".join([f"{len(rows[1])} of {len(runs)} matching runs shown"
                             + ("; --last 0 shows all" if hidden else "") + f" ({registered} registered)",
                             *notes]), soft_wrap=True)
    if options.get("export") is not None:
        out.print(f"table written to {export(rows, options['export'])}", soft_wrap=True)
    return 0
