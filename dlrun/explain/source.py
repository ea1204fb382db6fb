"""Load a run folder for `dlrun explain`: its model, its config, its data split rebuilt and
checked against the run's, and the options. Every check that can fail runs before
TensorFlow is imported, so bad input answers at once with one line and exit code 2."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

from dlrun.config.schema import EXPLAIN_METHODS, SEQUENCE_MODELS, ExplainConfig, RunConfig
from dlrun.errors import ConfigError, DataError, DlrunError

DATA_KEYS = ("path",)  # data.KEY=VALUE that explain accepts: where the run's data now lies


class ExplainError(DlrunError):
    """The run folder cannot be explained as asked."""


@dataclass
class RunFiles:
    run_dir: Path
    model: Path                        # model.keras, or a search's best_model.keras
    config: Path                       # config.yaml, or a search's best.yaml
    search: bool                       # a dlrun tune folder (explained through its best model)


# ------------------------------------------------------------------ options
def parse_options(words: Sequence[str]) -> Tuple[ExplainConfig, Dict[str, str]]:
    """`explain.KEY=VALUE` and `data.path=FILE` words -> (validated options, data overrides)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from dlrun.config.validation import to_object

    explain, data = [], {}
    for word in words:
        key, eq, value = word.partition("=")
        if not eq or not key:
            raise ExplainError(f"{word!r}: expected KEY=VALUE, e.g. explain.methods=[shap] or data.path=FILE")
        if key.startswith("data."):
            name = key[len("data."):]
            if name not in DATA_KEYS:
                raise ConfigError(key, value, "explain rebuilds the run's own data; only data.path=FILE "
                                  "(where that data now lies) may change")
            data[name] = value
        elif key.startswith("explain."):
            explain.append(word)
        else:
            raise ConfigError(key, value, "dlrun explain takes explain.KEY=VALUE (see 'dlrun explain --help') "
                              "and data.path=FILE")
    try:
        node = OmegaConf.from_dotlist(explain).get("explain") or OmegaConf.create({})
    except OmegaConfBaseException as err:
        raise ExplainError(f"cannot read {' '.join(explain)}: {str(err).splitlines()[0]}") from None
    return to_object("explain", node, ExplainConfig), data


# ------------------------------------------------------------------ the run folder
def run_files(run_dir: Path) -> RunFiles:
    """The model and config of a train run or of a search folder. Raises ExplainError."""
    from dlrun.predict import PredictError, model_path

    run_dir = Path(run_dir)
    try:
        model = model_path(run_dir)
    except PredictError as err:
        raise ExplainError(str(err)) from None
    search = model.name == "best_model.keras"
    config = run_dir / ("best.yaml" if search else "config.yaml")
    if not config.is_file():
        raise ExplainError(f"{run_dir}: has {model.name} but no {config.name}, so its data cannot be rebuilt")
    return RunFiles(run_dir, model, config, search)


def run_config(files: RunFiles, data: Dict[str, str]) -> RunConfig:
    """The run's validated config, with `data` overrides (data.path=...)."""
    from omegaconf import OmegaConf

    from dlrun.config import validate
    from dlrun.results.rundir import read_record

    record = read_record(files.config)
    if not record:
        raise ExplainError(f"{files.config}: cannot be read as a dlrun config")
    for key in ("defaults", "search", "space", "study", "hydra"):  # a search's best.yaml composes `train`
        record.pop(key, None)
    cfg = OmegaConf.create(record)
    for key, value in data.items():
        cfg.data[key] = value
    try:
        return validate(cfg)
    except ConfigError as err:
        raise ExplainError(f"{files.config}: {err}") from None


NEEDS_OWN_CONV = ("grad_cam", "feature_visualization")  # methods that read conv layers of the model itself


def run_kind(run: RunConfig) -> str:
    """What the run's model reads: text (a text column's tokens), image or tabular."""
    from dlrun.preflight import uses_images

    return "text" if run.data.text is not None else "image" if uses_images(run) else "tabular"


def unfit(run: RunConfig) -> Dict[str, str]:
    """Methods of the run's kind that its model still cannot take, and why."""
    why: Dict[str, str] = {}
    if run.model.name == "transfer":
        why.update({m: "reads the model's own convolutional layers; a model=transfer run's are inside its "
                       "keras.applications backbone. Use saliency or integrated_gradients" for m in NEEDS_OWN_CONV})
    elif run.model.name in SEQUENCE_MODELS:
        why.update({m: f"reads convolutional layers; model={run.model.name} has none. Use saliency, "
                       "integrated_gradients or attention" for m in NEEDS_OWN_CONV})
    if run.model.name != "attention":
        why["attention"] = (f"reads attention weights; model={run.model.name} has no attention layer. "
                            "Train with model=attention")
    return why


def methods_for(options: ExplainConfig, run: RunConfig) -> List[str]:
    """The methods to run: `auto` -> every one that fits; a named one that does not fit
    the model (Grad-CAM on an MLP, SHAP of a CNN's pixels) is refused."""
    from dlrun.explain.registry import METHODS, defaults

    kind = run_kind(run)
    names = [m for m in dict.fromkeys(options.methods) if m != "auto"]
    excluded = unfit(run)
    fits = [m for m in defaults(kind) if m not in excluded]
    for name in names:
        if kind not in METHODS[name].kinds:
            what = {"image": "takes images", "text": "reads a text column's tokens",
                    "tabular": "takes table rows and has no convolutional layer"}[kind]
            raise ConfigError("explain.methods", name, f"{METHODS[name].needs}; this run's model "
                              f"(model={run.model.name}) {what}: use {', '.join(fits)}")
        if name in excluded:
            raise ConfigError("explain.methods", name, excluded[name])
    if "auto" in options.methods:
        names = list(dict.fromkeys([*fits, *names]))
    assert set(names) <= set(EXPLAIN_METHODS)
    return names


def rebuild(run: RunConfig, files: RunFiles, saved: Dict[str, Any], check_data: bool = True) -> Any:
    """The run's data split, rebuilt from its config, with the rows as read kept. Refuses
    data that moved or changed since the run: says which, and how to point to it.
    `saved`: the `data` section of the run's preprocessing.json ({} when it saved none)."""
    from dlrun.data import build_data
    from dlrun.preflight import uses_images
    from dlrun.results.rundir import read_record

    where = f"data.path={run.data.path}" if run.data.path else f"data={run.data.name}"
    try:
        bundle = build_data(run.data, image=uses_images(run), source=True)
    except DataError as err:
        moved = run.data.path is not None and not Path(str(run.data.path)).expanduser().exists()
        if moved:
            raise DataError(f"the run's data {run.data.path} is gone (moved or deleted); point to it with "
                            f"dlrun explain {files.run_dir} data.path=FILE") from None
        raise DataError(f"the run's data ({where}) cannot be rebuilt: {err}") from None
    metrics = read_record(files.run_dir / ("best_metrics.json" if files.search else "metrics.json"))
    rows = saved.get("rows") or (metrics.get("data") or {}).get("rows")
    fingerprint = saved.get("fingerprint") or (metrics.get("data") or {}).get("fingerprint")
    now = bundle.meta.rows
    if check_data and rows and {k: int(v) for k, v in rows.items()} != dict(now):
        raise DataError(f"the run's data ({where}) changed since the run: it now splits into "
                        f"{_split_text(now)} rows, the run had {_split_text(rows)}; point to the data it was "
                        f"trained on with dlrun explain {files.run_dir} data.path=FILE")
    if check_data and fingerprint and fingerprint != bundle.meta.report.get("fingerprint"):
        raise DataError(f"the run's data ({where}) changed since the run: same row counts, other values "
                        f"(fingerprint {bundle.meta.report.get('fingerprint')}, the run's {fingerprint}); point "
                        f"to the data it was trained on with dlrun explain {files.run_dir} data.path=FILE")
    return bundle


def _split_text(rows: Dict[str, Any]) -> str:
    return "/".join(str(rows.get(k, "?")) for k in ("train", "val", "test")) + " (train/val/test)"


def check_rows(options: ExplainConfig, n_test: int) -> None:
    if options.rows != "auto":
        bad = [r for r in options.rows if r >= n_test]
        if bad:
            raise ConfigError("explain.rows", options.rows, f"row {bad[0]} is out of range: the test split has "
                              f"{n_test} rows (0 to {n_test - 1})")


# ------------------------------------------------------------------ features as the user knows them
def feature_groups(transformer: Any, feature_names: List[str]) -> Tuple[List[str], Dict[str, List[int]]]:
    """Readable names of the model's input columns ('age', 'color = red', 'city #3' for a
    hashed one) and, per source column, the input columns it became."""
    names: List[str] = []
    groups: Dict[str, List[int]] = {}
    if transformer is None or not hasattr(transformer, "transformers_"):
        return list(feature_names), {n: [i] for i, n in enumerate(feature_names)}
    for part, step, columns in transformer.transformers_:
        if part == "remainder" or step == "drop" or not len(columns):
            continue
        steps = [s for _, s in getattr(step, "steps", [(None, step)])]
        onehot = next((s for s in steps if hasattr(s, "categories_") and hasattr(s, "sparse_output")), None)
        buckets = next((s.n_buckets for s in steps if hasattr(s, "n_buckets")), None)
        length = next((s.length_ for s in steps if hasattr(s, "length_")), None)  # a text column's token ids
        for i, col in enumerate(columns):
            col = str(col)
            if onehot is not None:
                labels = [f"{col} = {c}" for c in onehot.categories_[i]]
            elif length is not None:
                labels = [f"{col}[{k}]" for k in range(length)]
            elif buckets is not None:
                labels = [f"{col} #{k}" for k in range(buckets)]
            else:
                labels = [col]
            groups[col] = list(range(len(names), len(names) + len(labels)))
            names.extend(labels)
    if len(names) != len(feature_names):  # a layout this does not know: the transformer's own names
        return list(feature_names), {n: [i] for i, n in enumerate(feature_names)}
    return names, groups


def metric_for(run: RunConfig, task: str) -> Any:
    """The run's own metric (its first trainer.metrics entry; auto: accuracy or mae)."""
    from dlrun.explain.metrics import SCORES, metric

    name = next((m for m in run.trainer.metrics if m != "auto"), None) or (
        "mae" if task == "regression" else "accuracy")
    if name not in SCORES:  # a metric with no NumPy twin here: the task's default
        name = "mae" if task == "regression" else "accuracy"
    return metric(name)


def out_dir(options: ExplainConfig, run_dir: Path) -> Path:
    return Path(options.out).expanduser() if options.out else Path(run_dir) / "explain"
