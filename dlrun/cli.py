"""The `dlrun` command: parse, compose, validate, call one task function, say
where the results are. Nothing here imports TensorFlow before the config (and
the data it names) has been checked."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from dlrun import __version__
from dlrun.errors import DlrunError, one_of

USAGE = """\
usage: dlrun COMMAND [key=value ...] [Hydra options]

Describe an experiment in YAML (conf/), run it with one command.

commands:
  train   train one model from the composed config and write a run directory
  tune    search hyperparameters with keras-tuner (search=random|grid|bayesian|hyperband)
  check   compose and validate a config, build the model and print it; train nothing
  compare run a study: contenders x seeds as ordinary runs, ranked with intervals (study=..., presets)
  results list the runs of train and tune, newest first (--group-by, --columns, --metric, --export)
  predict apply a trained run to the rows of a CSV/Parquet file: dlrun predict RUN_DIR FILE
  explain why a trained run predicts what it does: permutation, SHAP, LIME; saliency, IG, Grad-CAM

examples:
  dlrun train                                  MLP on scikit-learn's digits (the default)
  dlrun train +optimizer=momentum optimizer.learning_rate=0.05
  dlrun train regularization=[l2,dropout] regularization.dropout.rate=0.3
  dlrun train data=csv data.path=my.csv data.target=label
  dlrun train experiment=digits_cnn debug=fast
  dlrun train -m optimizer=sgd,adam,rmsprop    a sweep: one run directory per job
  dlrun tune search=random search.max_trials=20    keras-tuner search over space=default
  dlrun tune search=grid space=units_lr search.objective=val_accuracy
  dlrun compare experiment=optimizer_comparison    10 optimizers x 3 seeds, ranked, with curves
  dlrun train experiment=deep_sigmoid diagnostics.repair=true   a diagnosis, then reruns with its fixes
  dlrun train logger=tensorboard trainer.checkpoint=true       TensorBoard event files; resumable after a crash
  dlrun check model=cnn                        validate and show the model only
  dlrun results --same-config last             the runs that share the newest run's config
  dlrun explain experiments/default/<time>     permutation importance, SHAP and LIME of a run

Run 'dlrun COMMAND --help' for the config groups, their options and the full config.
Options: -h/--help, -V/--version. Set HYDRA_FULL_ERROR=1 for full tracebacks.
"""

# Hydra's own flags: those that take a value, and those that only show something.
VALUE_FLAGS = {"--config-dir", "-cd", "--config-name", "-cn", "--config-path", "-cp", "--cfg", "-c",
               "--package", "-p", "--experimental-rerun"}
SHOW_FLAGS = {"--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i", "--shell-completion", "-sc"}


@dataclass
class Args:
    """A command's arguments, split into Hydra flags and config overrides."""
    flags: List[str] = field(default_factory=list)
    overrides: List[str] = field(default_factory=list)
    config_dirs: List[str] = field(default_factory=list)
    config_name: Optional[str] = None
    multirun: bool = False
    show_only: bool = False

    @property
    def wants_help(self) -> bool:
        return any(f in ("--help", "-h") for f in self.flags)

    def hydra_argv(self) -> List[str]:
        return [*self.flags, *self.overrides]


def parse(args: Sequence[str], config_name: str) -> Args:
    from dlrun.config import normalize_overrides

    out = Args()
    it = iter(args)
    for arg in it:
        name, eq, inline = arg.partition("=")
        if arg.startswith("-") and (name in VALUE_FLAGS or name in SHOW_FLAGS or arg in ("-m", "--multirun",
                                                                                       "--run", "-r", "--resolve")):
            out.flags.append(arg)
            value = inline if eq else None
            if name in VALUE_FLAGS and not eq:
                value = next(it, None)
                if value is not None:
                    out.flags.append(value)
            if name in ("--config-dir", "-cd") and value:
                out.config_dirs.append(value)
            if name in ("--config-name", "-cn") and value:
                out.config_name = value
            if arg in ("-m", "--multirun"):
                out.multirun = True
            if name in SHOW_FLAGS:
                out.show_only = True
        elif arg.startswith("-") and "=" not in arg:
            raise DlrunError(f"unknown option {arg!r}; see 'dlrun --help'")
        else:
            out.overrides.append(arg)
    out.overrides = normalize_overrides(out.overrides, config_name)
    return out


def sweep_jobs(overrides: List[str], params: Optional[Dict[str, Any]] = None) -> List[List[str]]:
    """The override list of every job a `-m` sweep will run, made as Hydra's BasicSweeper
    makes them: the sweeper's `params` from the config (hydra.sweeper.params, e.g. in a
    preset), then the command line's overrides. With a sweeper plugin's syntax
    (interval(...), tag(log, ...)) only the fixed part is known: one job of that."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    items = [f"{key}={value}" for key, value in (params or {}).items()] + list(overrides)
    try:
        parsed = parser.parse_overrides(items)
    except Exception:  # noqa: BLE001 - params that are not override syntax: the command line only
        items = list(overrides)
        try:
            parsed = parser.parse_overrides(items)
        except Exception:  # noqa: BLE001 - compose() reports the override that cannot be parsed
            return [items]
    try:
        return BasicSweeper.split_arguments(parsed, None)[0]
    except Exception:  # noqa: BLE001 - a sweeper plugin's syntax: validate the fixed part only
        fixed = {p.get_key_element(): o for o, p in zip(items, parsed) if not p.is_sweep_override()}
        return [list(fixed.values())]


def sweeper_params(config_name: str, parsed: Args) -> Optional[Dict[str, Any]]:
    """hydra.sweeper.params of the config that the sweep's fixed overrides compose (what
    Hydra's sweepers read besides the command line), or None."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    from dlrun.config import compose

    try:  # Hydra composes a sweep's own config without the swept overrides
        fixed = [o for o, p in zip(parsed.overrides, OverridesParser.create().parse_overrides(parsed.overrides))
                 if not p.is_sweep_override()]
    except Exception:  # noqa: BLE001 - compose() reports the override that cannot be parsed
        fixed = parsed.overrides
    cfg = compose(config_name, fixed, parsed.config_dirs, keep_hydra=True)
    try:
        params = OmegaConf.select(cfg, "hydra.sweeper.params")
        return OmegaConf.to_container(params, resolve=True) if params else None
    except Exception:  # noqa: BLE001 - what Hydra cannot resolve either: its sweeper says so
        return None


def check_train(cfg, overrides: List[str], config_dirs: List[str]):
    from dlrun.config import validate
    from dlrun.preflight import checked

    run = validate(cfg)
    return run, checked(run)[1]


def check_tune(cfg, overrides: List[str], config_dirs: List[str]):
    from dlrun.search.config import preflight_tune, validate_tune
    from dlrun.search.distributed import check_environment

    check_environment()
    tune = validate_tune(cfg, overrides, config_dirs)
    return tune, preflight_tune(tune)[1]


def validated(config_name: str, parsed: Args, check: Callable = check_train) -> list:
    """Compose and validate every job the command will run, and check its data,
    before Hydra creates any run directory."""
    from dlrun.config import compose
    from dlrun.config.compose import drop_hydra
    from dlrun.display import warn

    name = parsed.config_name or config_name
    jobs = sweep_jobs(parsed.overrides, sweeper_params(name, parsed)) if parsed.multirun else [parsed.overrides]
    checked_jobs, notes = [], []
    for job in jobs:
        cfg = compose(name, job, parsed.config_dirs, keep_hydra=True)
        check_output_dir(cfg, parsed.multirun)
        if parsed.multirun:
            from dlrun.results.sweep import direction_note
            notes += [n for n in [direction_note(cfg)] if n and n not in notes]
        obj, job_notes = check(drop_hydra(cfg), job, parsed.config_dirs)
        notes += [n for n in job_notes if n not in notes]
        checked_jobs.append(obj)
    for note in notes:
        warn(note)
    return checked_jobs


def check_output_dir(cfg, multirun: bool) -> None:
    """The run (or sweep) folder must be a folder that can be created: refuse a path
    that is, or lies inside, a file, or where no folder can be made (no permission,
    a read-only or virtual file system), before Hydra tries to create it."""
    from omegaconf import OmegaConf

    from dlrun.errors import ConfigError
    from dlrun.results.rundir import uncreatable_dir, unusable_dir

    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    try:
        value = OmegaConf.select(cfg, key)
    except Exception:  # noqa: BLE001 - an interpolation only Hydra's job can resolve: Hydra checks it
        return
    reason = (unusable_dir(value) or uncreatable_dir(value)) if value else None
    if reason:
        raise ConfigError(key, str(value), f"{reason}; choose another output folder")


_exit_code = 0


HELP_HEADERS = {
    "train": "dlrun train: train one model from the composed config and write a run directory.",
    "tune": "dlrun tune: search hyperparameters with keras-tuner over the space group, with the\n"
            "search group's algorithm. Rerun with the same hydra.run.dir to resume.",
    "check": "dlrun check: compose and validate a config, build the model and print it; train nothing.",
    "compare": "dlrun compare: a study. Each contender (study.contenders: name -> overrides) runs once per\n"
               "seed (study.seeds) as an ordinary run; runs.csv, comparison.csv/.md/.parquet and plots go to\n"
               "the study folder, ranked by study.metric with 95% t-intervals. The same command again\n"
               "resumes (finished runs kept). Presets: experiment=optimizer_comparison,\n"
               "regularization_comparison, learning_rate_sweep, batch_size_comparison, cart_abandonment,\n"
               "vanishing_gradients, exploding_gradients.",
}
HELP_FOOTER = """\
Choose one option per group (group=option), set any key (optimizer.learning_rate=0.05).
regularization takes a list: regularization=[l2,dropout]. search and space are read by dlrun tune, study by dlrun compare.
Show the composed config: dlrun {command} --cfg job [overrides]. Sweep: dlrun train -m optimizer=sgd,adam
Your own config folder (same layout): --config-dir DIR. Hydra's own options: --hydra-help"""


def print_help(command: str, config_name: str, parsed: Args) -> None:
    """Config groups with their options, then the composed config. (Hydra's own --help
    builds the same listing but copies its config repository once per group: 3 s here.)"""
    from omegaconf import OmegaConf

    from dlrun.config import compose
    from dlrun.config.compose import group_options

    print(HELP_HEADERS[command] + "\n\n== Config groups ==")
    for group, options in sorted(group_options(parsed.config_dirs).items()):
        print(f"{group}: {', '.join(sorted(options))}")
    cfg = compose(parsed.config_name or config_name, parsed.overrides, parsed.config_dirs)
    print("\n== Config ==\n" + OmegaConf.to_yaml(cfg) + HELP_FOOTER.format(command=command))


def run_hydra(config_name: str, parsed: Args, task: Callable, prog: str) -> int:
    """Hand over to hydra.main: it owns the run directory (hydra.run.dir), -m sweeps,
    --help/--cfg/--info, and user config folders (--config-dir)."""
    import hydra

    from dlrun.config import conf_dir
    from dlrun.config.schema import register_configs

    global _exit_code
    _exit_code = 0
    register_configs()
    saved = sys.argv
    sys.argv = [prog, *parsed.hydra_argv()]
    try:
        entry = hydra.main(version_base="1.3", config_path=conf_dir(), config_name=config_name)(task)
        entry()
    finally:
        sys.argv = saved
    return _exit_code


def _fail(code: int) -> None:
    """Set the exit code for a failed job: a single run or a job of a basic sweep (each one
    asked for); a sweeper that optimizes counts it as a failed trial and searches on."""
    from dlrun.results.sweep import sweeper_name

    global _exit_code
    if sweeper_name() in (None, "basic"):
        _exit_code = code


def _task(body: Callable) -> Callable:
    """Wrap a task so that our own errors end the job with one line (not Hydra's traceback),
    and hand its return value (the objective) to Hydra's sweeper. A job that fails (an
    invalid value sampled by a sweeper) returns a failed objective, so a -m sweep goes on."""
    def task(cfg) -> Any:
        try:
            return body(cfg)
        except DlrunError as err:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            from dlrun.display import error
            from dlrun.results.sweep import failed_objective, sweeper_name
            error(str(err))
            _fail(err.exit_code)
            if sweeper_name() is not None:  # the sweep summary reads why this job stopped
                from hydra.core.hydra_config import HydraConfig

                from dlrun.results.rundir import write_text
                write_text(Path(HydraConfig.get().runtime.output_dir) / "error.txt", str(err) + "\n")
            return failed_objective(str(err))
    task.__module__ = body.__module__
    task.__name__ = body.__name__
    return task


def _train_job(cfg) -> Any:
    """Train one run; return the value of its optimized_metric (what a -m sweeper optimizes)."""
    from hydra.core.hydra_config import HydraConfig

    from dlrun.config import validate
    from dlrun.results.sweep import objective
    from dlrun.training import is_chief, train

    run = validate(cfg)
    result = train(run, HydraConfig.get().runtime.output_dir)
    if not is_chief(run):  # a multi-worker run's other worker: the chief has the results; drop Hydra's record too
        _drop_hydra_record(Path(HydraConfig.get().runtime.output_dir))
        return objective(run.optimized_metric, result.status, result.metrics)
    show_run(result)
    if run.diagnostics.repair and result.metrics.get("verdict", "ok") != "ok":
        from dlrun.diagnostics.repair import repair

        result = repair(run, result, list(HydraConfig.get().overrides.task), job_config, show_run)
    if result.status != "completed":
        _fail(1)
    return objective(run.optimized_metric, result.status, result.metrics)


def _drop_hydra_record(folder: Path) -> None:
    """Remove a job folder that holds nothing but Hydra's .hydra/ record."""
    import shutil

    if folder.is_dir() and {p.name for p in folder.iterdir()} <= {".hydra"}:
        shutil.rmtree(folder, ignore_errors=True)


def job_config(overrides: Sequence[str]) -> Any:
    """The validated config of this Hydra job's config with `overrides` (a repair attempt)."""
    from hydra.core.hydra_config import HydraConfig

    from dlrun.config import compose, validate

    hc = HydraConfig.get()
    dirs = [s.path.replace("file://", "", 1) for s in hc.runtime.config_sources
            if s.provider == "command-line" and s.path.startswith("file://")]
    return validate(compose(hc.job.config_name, list(overrides), dirs))


def show_run(result: Any) -> None:
    """A finished run for the terminal: metrics, baseline, diagnosis, where it is."""
    from dlrun.diagnostics.report import verdict_lines
    from dlrun.display import console, metrics_table, run_verdict_lines

    out = console()
    m = result.metrics
    if result.status == "completed":
        out.print(metrics_table(m))
        for line in run_verdict_lines(m):
            out.print(line, soft_wrap=True)
        kept = f"; kept the weights of epoch {m['kept_best_epoch']}" if m.get("kept_best_epoch") else ""
        resumed = f"; resumed from epoch {m['resumed_from_epoch']}" if m.get("resumed_from_epoch") else ""
        out.print(f"[green]done[/] {m['epochs_run']} epochs in {m['fit_time_s']:.1f}s "
                  f"(best epoch {m['best_epoch']}{kept}{resumed}), {m['params']:,} parameters")
    else:
        out.print(f"[bold red]{result.status}[/]: {m['failure_reason']}")
    for line in verdict_lines(m):
        out.print(line, soft_wrap=True)
    out.print(f"results: [bold]{result.run_dir}[/]")


def _tune_job(cfg) -> None:
    global _exit_code
    from hydra.core.hydra_config import HydraConfig

    from dlrun.search.config import validate_tune
    from dlrun.search.report import print_report
    from dlrun.search.runner import tune

    hydra_cfg = HydraConfig.get()
    dirs = [s.path.removeprefix("file://") for s in hydra_cfg.runtime.config_sources if s.provider == "command-line"]
    result = tune(validate_tune(cfg, list(hydra_cfg.overrides.task), dirs, hydra_cfg.job.config_name),
                  Path(hydra_cfg.runtime.output_dir))
    print_report(result)
    if result.status not in ("completed", "worker"):
        _exit_code = 1


def check_compare(cfg, overrides: List[str], config_dirs: List[str]):
    from dlrun.study.plan import check_study, validate_study

    study = validate_study(cfg, overrides, config_dirs)
    return study, check_study(study)


def _compare_job(cfg) -> None:
    from hydra.core.hydra_config import HydraConfig

    from dlrun.study.plan import check_study, validate_study
    from dlrun.study.report import print_report
    from dlrun.study.runner import StudyInterrupted, compare

    hydra_cfg = HydraConfig.get()
    dirs = [s.path.removeprefix("file://") for s in hydra_cfg.runtime.config_sources if s.provider == "command-line"]
    study = validate_study(cfg, list(hydra_cfg.overrides.task), dirs, hydra_cfg.job.config_name)
    check_study(study)  # the data is prepared already (the CLI's check): this resolves study.metric
    try:
        result = compare(study, Path(hydra_cfg.runtime.output_dir))
    except StudyInterrupted as stop:
        print_report(stop.result)
        raise KeyboardInterrupt from None
    print_report(result)
    if not (result.runs["status"] == "completed").any():
        _fail(1)


def study_dir_override(parsed: Args, study) -> Args:
    """Where the study runs: hydra.run.dir when given; otherwise the newest folder next to
    the default one (experiments/<name>/) that holds this same study, so that the same
    command resumes it (study.resume=false: a fresh folder)."""
    from omegaconf import OmegaConf

    from dlrun.config import compose
    from dlrun.study.folder import find_resumable

    if not study.settings.resume or any(o.lstrip("+").startswith("hydra.run.dir=") for o in parsed.overrides):
        return parsed
    cfg = compose(parsed.config_name or "compare", parsed.overrides, parsed.config_dirs, keep_hydra=True)
    found = find_resumable(Path(str(OmegaConf.select(cfg, "hydra.run.dir"))).parent, study.fingerprint())
    if found is not None:
        from dlrun.display import console

        console().print(f"resuming the study in [bold]{found}[/] (finished runs are kept; "
                        "study.resume=false starts a new one)", soft_wrap=True)
        parsed.overrides = [*parsed.overrides, f"hydra.run.dir={found}"]
    return parsed


def _hydra_command(command: str, args: Sequence[str], check: Callable, job: Callable,
                   before_run: Optional[Callable] = None, no_multirun: Optional[str] = None) -> int:
    """Help, or validate every job and then hand over to hydra.main (config name = command).
    `before_run(parsed, first checked job)` may add overrides (compare: the study folder);
    `no_multirun`: why the command refuses -m."""
    parsed = parse(args, command)
    if parsed.wants_help:
        print_help(command, command, parsed)
        return 0
    if parsed.multirun and no_multirun:
        raise DlrunError(no_multirun)
    if not parsed.show_only:
        checked = validated(command, parsed, check)
        if before_run is not None:
            parsed = before_run(parsed, checked[0])
    return run_hydra(command, parsed, _task(job), f"dlrun {command}")


def cmd_compare(args: Sequence[str]) -> int:
    return _hydra_command("compare", args, check_compare, _compare_job, before_run=study_dir_override,
                          no_multirun="dlrun compare takes no -m: a study runs its contenders itself "
                                      "(study.contenders)")


def cmd_train(args: Sequence[str]) -> int:
    return _hydra_command("train", args, check_train, _train_job)


def cmd_tune(args: Sequence[str]) -> int:
    return _hydra_command("tune", args, check_tune, _tune_job)


def cmd_check(args: Sequence[str]) -> int:
    parsed = parse(args, "train")
    if parsed.wants_help:
        print_help("check", "train", parsed)
        return 0
    if parsed.show_only:
        return run_hydra("train", parsed, _task(lambda cfg: None), "dlrun check")
    if parsed.multirun:
        raise DlrunError("dlrun check takes no -m; it checks one config")
    run = validated("train", parsed)[0]
    from dlrun.check import show


    show(run)
    return 0


def cmd_results(args: Sequence[str]) -> int:
    from dlrun.results.listing import show

    return show(args)


PREDICT_USAGE = """\
usage: dlrun predict RUN_DIR FILE [--out PATH] [--allow-unseen]

Apply a trained run (dlrun train, or the best model of dlrun tune) to the rows of
FILE (.csv, .tsv or .parquet): the same preprocessing, then the model. FILE needs
the run's feature columns (any order; other columns, the target too, are carried
through). Predictions are in the target's own labels and units: predicted_<target>,
and probability_<class> per class.

options:
  --out PATH       where to write (.csv or .parquet; default RUN_DIR/predictions/<FILE stem>.csv)
  --allow-unseen   predict rows whose text values the run never saw (as no known category)
                   instead of refusing them
"""


def cmd_predict(args: Sequence[str]) -> int:
    from dlrun.predict import predict

    words, out, allow_unseen = [], None, False
    it = iter(args)
    for arg in it:
        if arg in ("-h", "--help"):
            print(PREDICT_USAGE, end="")
            return 0
        if arg == "--allow-unseen":
            allow_unseen = True
        elif arg == "--out" or arg.startswith("--out="):
            out = arg.partition("=")[2] if "=" in arg else next(it, None)
            if not out:
                raise DlrunError("--out needs a path; see 'dlrun predict --help'")
        elif arg.startswith("-"):
            raise DlrunError(f"unknown option {arg!r}; " + one_of(arg, ("--out", "--allow-unseen", "--help")))
        else:
            words.append(arg)
    if len(words) != 2:
        raise DlrunError("dlrun predict takes a run folder and a file: dlrun predict RUN_DIR FILE [--out PATH]")
    from dlrun.display import predictions_report

    predictions_report(predict(Path(words[0]), words[1], out, allow_unseen))
    return 0


EXPLAIN_USAGE = """\
usage: dlrun explain RUN_DIR [explain.KEY=VALUE ...] [data.path=FILE]

Explain a trained run (dlrun train, or the best model of a dlrun tune folder) on its
test split, in the target's own units and class names. The run's data split is
rebuilt from its config; if the data file moved, point to it with data.path=FILE.
Results go to RUN_DIR/explain/ (summary.md, tables, figures).

methods (explain.methods=[...]; auto: all that fit the model):
{methods}
options (explain.KEY=VALUE):
{options}
examples:
  dlrun explain RUN_DIR
  dlrun explain RUN_DIR explain.methods=[permutation,shap] explain.repeats=10
  dlrun explain RUN_DIR explain.methods=[lime] explain.rows=[0,7,12]
  dlrun explain CNN_RUN_DIR explain.methods=[grad_cam,feature_visualization] explain.units=[0,1,2,3]
"""


def explain_usage() -> str:
    import dataclasses
    import inspect

    from dlrun.config.schema import ExplainConfig
    from dlrun.explain.registry import METHODS

    comments = {}
    for line in inspect.getsource(ExplainConfig).splitlines():
        name, _, rest = line.strip().partition(":")
        if "#" in rest and name.isidentifier():
            comments[name] = rest.split("#", 1)[1].strip()
    methods = "\n".join(f"  {n:<22} ({', '.join(m.kinds)}) {m.writes}" for n, m in METHODS.items())
    options = "\n".join(f"  {f.name}={_shown(f)}".ljust(30) + comments.get(f.name, "")
                        for f in dataclasses.fields(ExplainConfig))
    return EXPLAIN_USAGE.format(methods=methods, options=options)


def _shown(f: Any) -> str:
    import dataclasses

    value = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    return "null" if value is None else str(value).replace("'", "").replace(" ", "")


def cmd_explain(args: Sequence[str]) -> int:
    from dlrun.explain.source import parse_options

    if any(a in ("-h", "--help") for a in args):
        print(explain_usage(), end="")
        return 0
    words = [a for a in args if "=" not in a]
    if len(words) != 1 or any(a.startswith("-") for a in words):
        raise DlrunError("dlrun explain takes one run folder and explain.KEY=VALUE options: "
                         "dlrun explain RUN_DIR [explain.methods=[shap]]; see 'dlrun explain --help'")
    options, data = parse_options([a for a in args if "=" in a])
    from dlrun.explain.report import print_report
    from dlrun.explain.task import explain

    result = explain(Path(words[0]), options, data)
    print_report(result)
    return 1 if result.failed else 0


COMMANDS: Dict[str, Callable[[Sequence[str]], int]] = {"train": cmd_train, "tune": cmd_tune, "check": cmd_check,
                                                       "compare": cmd_compare, "results": cmd_results,
                                                       "predict": cmd_predict, "explain": cmd_explain}


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0
    if args[0] in ("-V", "--version"):
        print(f"dlrun {__version__}")
        return 0
    from dlrun.display import error

    from dlrun.results import rundir

    rundir.COMMAND = ["dlrun", *args]
    command = COMMANDS.get(args[0])
    if command is None:
        error(f"unknown command {args[0]!r}: " + one_of(args[0], COMMANDS) + "; see 'dlrun --help'")
        return 2
    try:
        return command(args[1:])
    except DlrunError as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        error(str(err))
        return err.exit_code
    except KeyboardInterrupt:
        error("interrupted; finished results are on disk")
        return 130


if __name__ == "__main__":
    sys.exit(main())
