"""`dlrun results`: the registered runs as a table, newest first, filtered by name,
kind, status or config hash. Reads the registry only: no TensorFlow, no Hydra."""
from __future__ import annotations

import datetime as dt
import fnmatch
import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dlrun.errors import DlrunError, one_of
from dlrun.results import registry, rundir

USAGE = """\
usage: dlrun results [--name NAME] [--kind KIND] [--status STATUS] [--same-config RUN_DIR|HASH|last] [--last N]
                     [--columns KEYS|auto] [--metric NAME] [--sort METRIC|KEY] [--group-by KEYS]
                     [--export FILE]

The registered runs of dlrun train and dlrun tune, newest first: when, kind, name,
status, verdict (the diagnosis), config hash, seed, headline metric, duration and run folder. The registry is
$DLRUN_HOME/.registry (default: ./experiments/.registry).

options:
  --name NAME          runs of this experiment name (wildcards: --name 'digits*')
  --kind KIND          train or tune
  --status STATUS      running, completed, failed, interrupted or stopped
  --same-config X      runs that share a config hash with X: a run folder, a hash (or
                       its first characters), or last (the newest run); runs repeated with
                       other seeds share one
  --last N             the N newest matching runs (default 20; 0: all)
  --columns K1,K2      config values as columns, by dotted key into each run's config.yaml
                       (optimizer.learning_rate, trainer.batch_size); a section shows its name
                       (optimizer, model; regularization: its enabled parts joined by +, or
                       none), a tag its value (contender, study). auto: contender and up to 5
                       config keys that differ among the listed runs, the default when
                       --metric, --sort or --export is given
  --metric NAME        the metric shown (and aggregated by --group-by): <split>_<metric> from
                       each run's metrics.json, e.g. val_accuracy, test_loss, train_mae
                       (default: the registry's headline metric)
  --sort METRIC|KEY    rows best first by a metric (accuracy-like: highest first; losses and
                       errors: lowest), or by a config key; sorts every matching run, then
                       --last N keeps the first N (default: newest first)
  --group-by K1,K2     one row per combination of these keys' values (keys as in --columns):
                       n (runs with a value), mean, std, 95% Student-t interval of the mean
                       (ci_low, ci_high; blank for n=1), min and max of the metric, best mean
                       first; only completed runs count, all matching ones unless --last is given
  --export FILE        also write the table shown (its rows, numbers unrounded, run folders
                       absolute) to FILE.csv, FILE.md or FILE.parquet

Plain `dlrun results` reads the registry only; the last five options also read the listed
runs' config.yaml and metrics.json, when needed (a run folder without them: blank cells).

examples:
  dlrun results --name 'digits*' --columns optimizer,optimizer.learning_rate
  dlrun results --group-by contender --metric val_accuracy --export study.md
  dlrun results --sort test_loss --last 5
"""
COLORS = {"completed": "green", "failed": "red", "interrupted": "yellow", "running": "cyan", "stopped": "magenta"}
OPTIONS = ("--name", "--kind", "--status", "--same-config", "--last", "--columns", "--metric", "--sort",
           "--group-by", "--export")
EXTRA = ("columns", "metric", "sort", "group_by", "export")  # the options that build a table of values
EXPORTS = (".csv", ".md", ".parquet")


def parse(args: Sequence[str]) -> Dict[str, Any]:
    """The options of `dlrun results`. Raises DlrunError."""
    out: Dict[str, Any] = {}
    it = iter(args)
    for arg in it:
        name, eq, value = arg.partition("=")
        if name not in OPTIONS:
            raise DlrunError(f"dlrun results: unknown option {arg!r}; " + one_of(name, OPTIONS)
                             + "; see 'dlrun results --help'")
        if not eq:
            value = next(it, None)
            if value is None:
                raise DlrunError(f"dlrun results: {name} needs a value; see 'dlrun results --help'")
        out[name[2:].replace("-", "_")] = value
    out["last_given"] = "last" in out  # --group-by aggregates every matching run unless --last is given
    out.setdefault("last", 20)
    if out.get("kind") is not None and out["kind"] not in registry.KINDS:
        raise DlrunError(f"--kind {out['kind']!r}: " + one_of(out["kind"], registry.KINDS))
    if out.get("status") is not None and out["status"] not in registry.STATUSES:
        raise DlrunError(f"--status {out['status']!r}: " + one_of(out["status"], registry.STATUSES))
    raw = str(out["last"])
    if not raw.isdigit():
        raise DlrunError(f"--last {raw!r}: must be a whole number >= 0 (0: all runs)")
    out["last"] = int(raw)
    for key in ("columns", "group_by"):
        if out.get(key) is not None:
            out[key] = [k.strip() for k in out[key].split(",") if k.strip()]
            if not out[key]:
                raise DlrunError(f"--{key.replace('_', '-')}: give one or more keys, e.g. optimizer,trainer.batch_size")
    if out.get("columns") and out.get("group_by"):
        raise DlrunError("--columns does not go with --group-by: the groups' keys are its columns")
    for key in ("metric", "sort"):
        if out.get(key) is not None and not out[key].strip():
            raise DlrunError(f"--{key}: give a metric name{' or a config key' if key == 'sort' else ''}")
    if out.get("export") is not None:
        suffix = Path(out["export"]).suffix.lower()
        if suffix not in EXPORTS:
            raise DlrunError(f"--export {out['export']}: the file name must end in "
                             + one_of(suffix or "(none)", EXPORTS))
    return out


def config_of(target: str, runs: List[Dict[str, Any]]) -> str:
    """The config hash that `target` names: a run folder, a hash (or its first
    characters), or `last` (the newest registered run)."""
    path = Path(target).expanduser()
    if target == "last" and not path.is_dir():
        for entry in runs:
            if entry.get("config_hash"):
                return entry["config_hash"]
    if path.is_dir():
        resolved = str(path.resolve())
        for entry in runs:
            if entry["run_dir"] == resolved and entry.get("config_hash"):
                return entry["config_hash"]
        try:  # a run the registry does not know (another DLRUN_HOME): its own record
            return str(json.loads((path / "versions.json").read_text())["config_hash"])
        except (OSError, ValueError, KeyError, TypeError):
            raise DlrunError(f"--same-config {target}: no registered run in that folder, and no "
                             "versions.json there") from None
    hashes = sorted({e["config_hash"] for e in runs if str(e.get("config_hash") or "").startswith(target)})
    if len(target) < 4 or not hashes:
        raise DlrunError(f"--same-config {target!r}: no registered run has that config hash (give at least "
                         "4 characters of one, a run folder, or last)")
    if len(hashes) > 1:
        raise DlrunError(f"--same-config {target!r}: matches several config hashes ({', '.join(hashes)}); "
                         "give more characters")
    return hashes[0]


def select(runs: List[Dict[str, Any]], options: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The runs matching every filter in `options`, newest first (not yet cut to --last)."""
    chosen = runs
    if options.get("name") is not None:
        chosen = [e for e in chosen if fnmatch.fnmatchcase(str(e.get("name")), options["name"])]
    if options.get("kind") is not None:
        chosen = [e for e in chosen if e["kind"] == options["kind"]]
    if options.get("status") is not None:
        chosen = [e for e in chosen if e["status"] == options["status"]]
    if options.get("same_config") is not None:
        wanted = config_of(options["same_config"], runs)
        options["config_hash"] = wanted
        chosen = [e for e in chosen if e.get("config_hash") == wanted]
    return chosen


def _duration(entry: Dict[str, Any]) -> str:
    try:
        seconds = (dt.datetime.fromisoformat(entry["ended"]) - entry["_started"]).total_seconds()
    except (KeyError, TypeError, ValueError):
        return ""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _metric(entry: Dict[str, Any]) -> str:
    metric = entry.get("metric")
    if not isinstance(metric, dict) or metric.get("value") is None:
        return ""
    value = metric["value"]
    return f"{metric.get('name')} {value:.4g}" if isinstance(value, (int, float)) else f"{metric.get('name')} {value}"


def table(runs: List[Dict[str, Any]], title: str) -> Table:
    out = Table(title=title, title_justify="left")
    for name, justify in (("when", "left"), ("kind", "left"), ("name", "left"), ("status", "left"),
                          ("verdict", "left"), ("config", "left"), ("seed", "right"), ("metric", "left"),
                          ("took", "right"), ("run dir", "left")):
        out.add_column(name, justify=justify, overflow="fold", no_wrap=name != "run dir")
    for e in runs:
        status, verdict = e["status"], e.get("verdict") or ""
        out.add_row(e["_started"].strftime("%Y-%m-%d %H:%M:%S"), e["kind"], escape(str(e.get("name") or "")),
                    f"[{COLORS.get(status, 'white')}]{status}[/]",
                    f"[{'green' if verdict == 'ok' else 'yellow'}]{escape(verdict)}[/]",
                    str(e.get("config_hash") or ""),
                    "" if e.get("seed") is None else str(e["seed"]), escape(_metric(e)), _duration(e),
                    escape(rundir.shown_dir(e["run_dir"])))
    return out


def show(args: Sequence[str], console: Optional[Console] = None) -> int:
    """`dlrun results [options]`: print the table; returns the exit code."""
    if any(a in ("-h", "--help") for a in args):
        print(USAGE, end="")
        return 0
    options = parse(args)
    out = console or Console(highlight=False, soft_wrap=False,
                             width=None if os.isatty(1) else 400)  # a log or a pipe: never fold a row
    registry.reap()
    runs = registry.entries()
    where = registry.folder()
    if not runs:
        out.print(f"no runs registered in {where} yet; dlrun train and dlrun tune register theirs "
                  f"(set {registry.ENV_HOME} to read another registry)", soft_wrap=True)
        return 0
    chosen = select(runs, options)
    shown = chosen[:options["last"]] if options["last"] else chosen
    title = (f"runs with config hash {options['config_hash']}" if options.get("config_hash")
             else f"runs registered in {where}")
    if not shown:
        out.print(f"no registered run matches ({len(runs)} registered in {where})", soft_wrap=True)
        return 0
    if any(options.get(k) is not None for k in EXTRA):
        from dlrun.results.columns import Run
        from dlrun.results.views import show_values

        return show_values(out, [Run(e) for e in chosen], options, title, len(runs))
    out.print(table(shown, title))
    hidden = len(chosen) - len(shown)
    out.print(f"{len(shown)} of {len(chosen)} matching runs shown"
              + ("; --last 0 shows all" if hidden else "")
              + f" ({len(runs)} registered)", soft_wrap=True)
    return 0
