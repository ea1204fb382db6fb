"""`dlrun check`: show the validated config, the data and the built model; train nothing."""
from __future__ import annotations

import dataclasses
from typing import Any

from rich.panel import Panel
from rich.table import Table
from rich.tree import Tree

from dlrun.config.schema import RunConfig
from dlrun.display import console
from dlrun.preflight import preflight


def config_tree(run: RunConfig) -> Tree:
    tree = Tree(f"[bold]{run.name}[/]")

    def add(node: Tree, value: Any, label: str) -> None:
        if isinstance(value, dict):
            branch = node.add(f"[cyan]{label}[/]")
            for k, v in value.items():
                if v is not None:
                    add(branch, v, k)
        else:
            node.add(f"{label}: [green]{value}[/]")

    for key, value in dataclasses.asdict(run).items():
        if key != "name":
            add(tree, value, key)
    return tree


def show(run: RunConfig) -> int:
    """Print config, data summary and model summary; return the parameter count."""
    out = console()
    bundle = preflight(run)
    out.print(Panel(config_tree(run), title="config (validated)", expand=False))
    meta = bundle.meta
    table = Table(title="data", title_justify="left", show_header=False)
    if meta.report.get("path"):
        table.add_row("file", meta.report["path"])
    table.add_row("task", meta.task)
    table.add_row("rows (train/val/test)", "/".join(str(meta.rows[s]) for s in ("train", "val", "test")))
    table.add_row("input shape", str(meta.input_shape))
    table.add_row("outputs", str(meta.n_outputs))
    if meta.classes:
        table.add_row("classes", ", ".join(map(str, meta.classes[:12])) + (" ..." if len(meta.classes) > 12 else ""))
    for key in ("dropped_rows", "filled_values", "text_columns"):
        if meta.report.get(key):
            table.add_row(key.replace("_", " "), str(meta.report[key]))
    text = meta.report.get("text")
    if text:
        chosen = " (95th percentile of the training texts)" if text.get("sequence_length_auto") else ""
        table.add_row("text column", f"{text['column']}: {text['vocabulary_size']:,} words in the vocabulary, "
                      f"{text['sequence_length']} per text{chosen}; {text['empty_rows']} empty, {text['cut_rows']} "
                      f"cut; {text['test_oov_share']:.1%} of test words out of vocabulary")
    for item in meta.report.get("dropped_columns", []):
        table.add_row("dropped columns" if item is meta.report["dropped_columns"][0] else "",
                      f"{item['column']}: {item['reason']}")
    for col, how in meta.report.get("high_cardinality", {}).items():
        table.add_row("high cardinality", f"{col}: {how}")
    if meta.target_scale:
        table.add_row("target scaling", f"(y - {meta.target_scale[0]:.4g}) / {meta.target_scale[1]:.4g}; "
                      "the model answers in the target's units")
    if meta.report.get("resampled"):
        r = meta.report["resampled"]
        table.add_row("resampled", f"{r['method']}: {r['rows_before']} -> {r['rows_after']} training rows "
                      f"{r['class_counts_after']}")
    out.print(table)

    from dlrun.training import make_datasets, compile_model, setup_runtime
    from dlrun.losses import resolved_name

    setup_runtime(run.trainer)
    data = make_datasets(bundle, run, resolved_name(run, meta))
    model = compile_model(run, meta, data.steps_per_epoch)
    model.summary(line_length=min(100, max(70, out.width)))
    params = int(model.count_params())
    out.print(f"[bold]{params:,}[/] parameters; optimizer {type(model.optimizer).__name__}, "
              f"loss {resolved_name(run, meta)}, {data.steps_per_epoch} steps per epoch. Nothing was trained.")
    return params
