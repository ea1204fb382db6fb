"""What a study will run: each contender's validated config (the shared config
composed with the contender's overrides, exactly as `dlrun train` would compose it)
and the planned runs (contender x seed, and the learning-rate grid with
study.tune_lr). Built and checked before TensorFlow is imported; a contender whose
overrides are wrong stops the study before anything runs, naming the contender."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

from omegaconf import DictConfig

from dlrun.config.compose import compose, normalize_overrides
from dlrun.config.schema import RunConfig, StudyConfig
from dlrun.config.validation import to_object, validate
from dlrun.errors import UNSET, ConfigError, DlrunError
from dlrun.results import rundir

if TYPE_CHECKING:
    from dlrun.data import DataBundle

RUNS = "runs"            # <study>/runs/<contender>/seed<k>/: the runs compared
LR_SEARCH = "lr_search"  # <study>/lr_search/<contender>/lr<value>/: study.tune_lr's grid


@dataclass
class Contender:
    name: str
    overrides: List[str]
    run: RunConfig                     # the shared config with the contender's overrides
    chosen: bool = True                # False: left out by study.only (its finished runs still count)


@dataclass
class Study:
    settings: StudyConfig
    base: RunConfig                    # the shared config (no contender's overrides)
    contenders: List[Contender]        # every contender, in the preset's order (study.only: chosen)
    metric: str                        # what ranks them: <split>_<metric>, resolved
    notes: List[str]

    @property
    def name(self) -> str:
        return self.base.name

    def planned(self) -> int:
        """How many runs the study trains (the lr grid's seed-0 run at the chosen rate is
        also the first final run, so it is not counted twice)."""
        per = self.settings.seeds + (len(self.settings.lr_grid) - 1 if self.settings.tune_lr else 0)
        return per * sum(c.chosen for c in self.contenders)

    def fingerprint(self) -> str:
        """What makes two studies the same study (a rerun resumes in the earlier folder):
        the shared config, every contender's overrides and the lr protocol. Not the seeds,
        study.only, the metric or the target: more seeds or another subset extend the same
        study, and the metric and target only change how runs are read."""
        s = self.settings
        return rundir.config_hash({"base": dataclasses.asdict(self.base), "contenders": s.contenders,
                                   "tune_lr": s.tune_lr, "lr_grid": list(s.lr_grid) if s.tune_lr else None,
                                   "vary_split": s.vary_split})


@dataclass
class PlannedRun:
    contender: str
    seed: int
    phase: str                         # lr_search | final
    run: RunConfig
    folder: Path                       # relative to the study folder

    @property
    def learning_rate(self) -> float:
        return float(self.run.optimizer.learning_rate)

    @cached_property
    def config_hash(self) -> str:  # compared for every run a study keeps or reuses: computed once
        return rundir.config_hash(dataclasses.asdict(self.run))


@lru_cache(maxsize=256)
def contender_config(config_name: str, overrides: Tuple[str, ...], extra_dirs: Tuple[str, ...]) -> RunConfig:
    """The validated config of the shared overrides plus a contender's (cached: the CLI's
    check and the study that follows compose the same ones)."""
    return validate(compose(config_name, list(overrides), extra_dirs))


def study_settings(cfg: DictConfig) -> StudyConfig:
    node = cfg.get("study")
    if node is None:
        raise ConfigError("study", None, "required: dlrun compare needs a study section (see conf/study/)")
    return to_object("study", node)


def validate_study(cfg: DictConfig, overrides: Sequence[str] = (), extra_dirs: Sequence[str] = (),
                   config_name: str = "compare") -> Study:
    """The shared config, the study settings and each contender's config. Raises ConfigError."""
    base = validate(cfg)
    settings = study_settings(cfg)
    chosen = settings.chosen()
    if not settings.contenders:
        raise ConfigError("study.contenders", UNSET, "no contenders to compare: choose a preset "
                          "(dlrun compare experiment=optimizer_comparison) or set them, e.g. "
                          "'study.contenders={sgd:[optimizer=sgd],adam:[optimizer=adam]}'")
    # a contender's run is the shared config plus its overrides; Hydra's and the study's own keys are not part of it
    shared = [o for o in normalize_overrides(overrides, config_name)
              if not o.lstrip("+~").startswith(("hydra.", "study.", "study="))]
    contenders = []
    for name, own in settings.contenders.items():
        items = tuple([*shared, *normalize_overrides(own, config_name)])
        try:
            run = contender_config(config_name, items, tuple(extra_dirs))
        except ConfigError as err:
            raise ConfigError(f"study.contenders.{name}", UNSET, str(err)) from None
        contenders.append(Contender(name, list(own), run, name in chosen))
    return Study(settings, base, contenders, settings.metric, [])


# ------------------------------------------------------------------ data
_BUNDLES: Dict[str, "DataBundle"] = {}   # the prepared data of this process's study, by data config


def bundle_for(run: RunConfig) -> "DataBundle":
    """The prepared data `run` names, prepared once per distinct data config: every run
    of a study (and the CLI's check before it) shares it."""
    from dlrun.preflight import prepared, uses_images

    key = repr((run.data, uses_images(run)))
    if key not in _BUNDLES:
        _BUNDLES[key] = prepared(run)
    return _BUNDLES[key]


def forget_data() -> None:
    """Drop the prepared data (the end of a study)."""
    _BUNDLES.clear()


def check_study(study: Study) -> List[str]:
    """Check every contender against its data (as dlrun train does before it trains) and
    resolve study.metric. Returns the notes worth showing. Raises ConfigError/DataError."""
    from dlrun.preflight import checked, check_produced, metric_names, optimized_names

    notes: List[str] = []
    for contender in [c for c in study.contenders if c.chosen]:
        for seed_run in {repr(r.data): r for r in seeded_runs(study, contender)}.values():
            try:
                bundle, found = checked(seed_run, bundle_for(seed_run))
            except ConfigError as err:
                raise ConfigError(f"study.contenders.{contender.name}", UNSET, str(err)) from None
            notes += [n for n in found if n not in notes and "early stopping cannot trigger" not in n]
        task = bundle.meta.task
        if study.metric == "auto":
            study.metric = f"test_{metric_names(contender.run, task)[0]}"
        check_produced("study.metric", study.metric, optimized_names(contender.run, task))
    study.notes = notes
    return notes


# ------------------------------------------------------------------ runs
def with_seed(run: RunConfig, seed: int, vary_split: bool, learning_rate: Optional[float] = None) -> RunConfig:
    """`run` with trainer.seed (and with study.vary_split, data.split_seed) set to `seed`,
    its own progress display off (the study shows one bar over runs), and the learning
    rate replaced when the lr grid chose it."""
    trainer = dataclasses.replace(run.trainer, seed=seed, verbose=0)
    data = dataclasses.replace(run.data, split_seed=seed) if vary_split else run.data
    optimizer = run.optimizer if learning_rate is None else \
        dataclasses.replace(run.optimizer, learning_rate=float(learning_rate))
    return dataclasses.replace(run, trainer=trainer, data=data, optimizer=optimizer)


def seeds(study: Study) -> List[int]:
    """trainer.seed, trainer.seed + 1, ...: one per study.seeds."""
    first = study.base.trainer.seed
    return [first + k for k in range(study.settings.seeds)]


def seeded_runs(study: Study, contender: Contender) -> List[RunConfig]:
    return [with_seed(contender.run, s, study.settings.vary_split) for s in seeds(study)]


def lr_runs(study: Study, contender: Contender) -> List[PlannedRun]:
    """study.tune_lr's grid: the contender at each learning rate, with the first seed."""
    first = seeds(study)[0]
    return [PlannedRun(contender.name, first, "lr_search",
                       with_seed(contender.run, first, study.settings.vary_split, lr),
                       Path(LR_SEARCH) / contender.name / f"lr{lr:g}") for lr in study.settings.lr_grid]


def final_runs(study: Study, contender: Contender, learning_rate: Optional[float] = None) -> List[PlannedRun]:
    """The contender once per seed (at the chosen learning rate when the grid ran)."""
    return [PlannedRun(contender.name, s, "final", with_seed(contender.run, s, study.settings.vary_split,
                                                             learning_rate),
                       Path(RUNS) / contender.name / f"seed{s}") for s in seeds(study)]


class StudyError(DlrunError):
    """The study folder holds another study: resuming it would mix results."""
