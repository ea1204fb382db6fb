"""`explain(run_dir, options)`: load a run, run the chosen methods, write their tables,
figures and a summary into RUN_DIR/explain/ (or explain.out).

Files land only once every method has run: they are written into a temporary folder
beside the output and then moved in one by one (each move atomic), so a crash or a
bad option leaves the folder as it was. Files of methods not run this time are kept."""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from dlrun.config.schema import ExplainConfig, RunConfig
from dlrun.errors import DlrunError
from dlrun.explain.base import Explained, MethodResult
from dlrun.explain.source import ExplainError, RunFiles


@dataclass
class ExplainResult:
    run_dir: Path
    out: Path
    run: RunConfig
    search: bool                       # a dlrun tune folder, explained through its best model
    kind: str                          # tabular | image | text
    task: str
    target: str
    rows: List[int]                    # test rows explained one by one
    results: Dict[str, MethodResult] = field(default_factory=dict)
    failed: Dict[str, str] = field(default_factory=dict)  # method -> why it failed
    seconds: Dict[str, float] = field(default_factory=dict)
    files: List[Path] = field(default_factory=list)
    agreement: Optional[Dict[str, Any]] = None  # permutation vs SHAP ranks (report.agreement)
    row_lines: List[str] = field(default_factory=list)  # the explained rows, one line each


def explain(run_dir: Path, options: ExplainConfig, data: Optional[Dict[str, str]] = None) -> ExplainResult:
    """Explain the run in `run_dir` (a train run, or a tune folder's best model)."""
    from dlrun.explain import report, source
    from dlrun.preflight import uses_images
    from dlrun.results.rundir import uncreatable_dir, unusable_dir

    files = source.run_files(Path(run_dir))
    run = source.run_config(files, data or {})
    methods = source.methods_for(options, run)
    out = source.out_dir(options, files.run_dir)
    reason = unusable_dir(out) or uncreatable_dir(out)
    if reason:
        raise ExplainError(f"explain.out={out}: {reason}; choose another output folder")
    info = _saved_preprocessing(files.run_dir)
    bundle = source.rebuild(run, files, (info or {}).get("data") or {}, options.check_data)
    source.check_rows(options, len(bundle.x_test))
    explained = _explained(run, files, bundle, info, options, image=uses_images(run))
    result = ExplainResult(files.run_dir, out, run, files.search, source.run_kind(run),
                           explained.task, explained.target, explained.rows)
    result.row_lines = report.row_lines(explained)
    for name in methods:
        started = time.perf_counter()
        try:
            result.results[name] = _method(name)(explained, options)
        except DlrunError:
            raise  # a bad option (explain.layer=...): one line, exit 2, nothing written
        except Exception as err:  # noqa: BLE001 - one method failing must not lose the others
            result.failed[name] = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}".strip()
        result.seconds[name] = round(time.perf_counter() - started, 2)
    result.agreement = report.agreement(result.results)
    result.files = _write(result, report.summary_markdown(result))
    return result


def _method(name: str) -> Any:
    from dlrun.explain.registry import METHODS

    return METHODS[name].load()


def _saved_preprocessing(run_dir: Path) -> Optional[Dict[str, Any]]:
    """The run's own fitted preprocessing (what its model saw), where it saved one."""
    from dlrun.data.saved import INFO_FILE, load

    if not (run_dir / INFO_FILE).is_file():
        return None
    return load(run_dir)


def _explained(run: RunConfig, files: RunFiles, bundle: Any, info: Optional[Dict[str, Any]],
               options: ExplainConfig, image: bool) -> Explained:
    """Load the model (TensorFlow is imported here, after every check) and pair it with its data."""
    from dlrun.explain.source import feature_groups, metric_for
    from dlrun.predict import load_model
    from dlrun.runtime import import_tensorflow

    meta = bundle.meta
    prep = bundle.preprocessing  # None for a folder of images: its pixels need no fitted preprocessing
    transformer = (info or {}).get("transformer") or (prep.transformer if prep is not None else None)
    if image:
        names = list(meta.feature_names)
        groups = {n: [i] for i, n in enumerate(names)}
    else:
        names, groups = feature_groups(transformer, list(meta.feature_names))
    import_tensorflow()

    try:
        model = load_model(files.model)
    except Exception as err:  # noqa: BLE001 - a torn or foreign file: say which
        raise ExplainError(f"{files.model}: cannot be loaded as a Keras model ({type(err).__name__}: "
                           f"{str(err).splitlines()[0] if str(err) else ''})") from None
    expected = tuple(int(d) for d in model.inputs[0].shape[1:])
    if expected != tuple(meta.input_shape):
        raise ExplainError(f"{files.model}: the model takes rows of shape {expected}, the rebuilt data has "
                           f"{tuple(meta.input_shape)}; was the run's data changed? point to it with data.path=")
    shape = tuple(meta.input_shape)
    columns = prep.columns if prep is not None else []

    def transform(frame: Any) -> np.ndarray:
        return np.asarray(transformer.transform(frame[columns]), dtype="float32").reshape(-1, *shape)

    threshold = (info or {}).get("threshold")
    if threshold is None and isinstance(run.trainer.threshold, (int, float)) and meta.task == "binary":
        threshold = float(run.trainer.threshold)
    output = (info or {}).get("output") or ("margin" if run.loss.name == "hinge" else "probability")
    explained = Explained(
        model=model, task=meta.task, target=meta.target, classes=[str(c) for c in meta.classes], image=image,
        input_shape=shape, feature_names=names, groups=groups, x_train=bundle.x_train, x_test=bundle.x_test,
        y_test=np.asarray(bundle.y_test), rows=[], data_rows=bundle.source.data_rows("test") if bundle.source is not None else np.arange(1, len(bundle.y_test) + 1),
        metric=metric_for(run, meta.task),
        seed=options.seed, threshold=threshold, output=output,
        source_train=None if image else bundle.source.rows("train"),
        source_test=None if image else bundle.source.rows("test"), transform=None if image else transform,
        text=meta.text)
    explained.rows = list(options.rows) if options.rows != "auto" else auto_rows(explained, options.n_rows)
    return explained


def auto_rows(model: Explained, n: int) -> List[int]:
    """A few test rows worth explaining: classification: the first misclassified row, then
    the first correctly classified row of each class in turn; regression: the worst
    prediction, then rows spread over the predicted range."""
    outputs = model.outputs(model.x_test)
    predicted = model.predicted(outputs)
    n = min(n, len(predicted))
    if model.task == "regression":
        error = np.abs(predicted - model.y_test)
        chosen = [int(np.argmax(error))]
        order = np.argsort(predicted, kind="stable")
        for q in np.linspace(0, len(order) - 1, num=max(n, 2)):
            row = int(order[int(round(q))])
            if row not in chosen and len(chosen) < n:
                chosen.append(row)
        return chosen
    wrong = np.flatnonzero(predicted != model.y_test)
    chosen = [int(wrong[0])] if len(wrong) else []
    right = {c: list(np.flatnonzero((predicted == model.y_test) & (model.y_test == c)))
             for c in range(len(model.classes))}
    while len(chosen) < n and any(right.values()):
        for c in range(len(model.classes)):
            if right[c] and len(chosen) < n:
                chosen.append(int(right[c].pop(0)))
    rest = [i for i in range(len(predicted)) if i not in chosen]
    return chosen + rest[: n - len(chosen)]


def _write(result: ExplainResult, summary: str) -> List[Path]:
    """Every table, figure and the summary, into a temporary folder, then moved into place."""
    import matplotlib.pyplot as plt

    from dlrun.results.rundir import make_dir

    out = result.out
    make_dir(out.parent)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        names: List[str] = []
        for method in result.results.values():
            for name, table in method.tables.items():
                table.to_csv(tmp / name, index=False)
                names.append(name)
            for name, figure in method.figures.items():
                figure.savefig(tmp / name, dpi=110, bbox_inches="tight")
                plt.close(figure)
                names.append(name)
        (tmp / "summary.md").write_text(summary, encoding="utf-8")
        names.append("summary.md")
        make_dir(out)
        for name in names:
            os.replace(tmp / name, out / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [out / n for n in names]
