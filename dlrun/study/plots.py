"""A study's figures (PNG, matplotlib Agg): mean curves with a min–max band over
seeds per contender, the final metric with its 95% interval, train vs validation
per contender, and the learning-rate search. Each contender keeps one colour in
every figure; missing histories and contenders without completed runs are shown
as such, never an error."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd

from dlrun.results.plots import _pyplot, _save, log_scale_fits
from dlrun.study.comparison import split_metric
from dlrun.study.statistics import maximize

Curve = Tuple[np.ndarray, np.ndarray]
BAND = "band: min–max over seeds"
PathLike = Union[str, Path]


def colours(contenders: Sequence[str]) -> Dict[str, tuple]:
    """One colour per contender, in order: tab10 up to 10 contenders, tab20 beyond."""
    cmap = _pyplot().get_cmap("tab10" if len(contenders) <= 10 else "tab20")
    return {c: cmap(i % cmap.N) for i, c in enumerate(contenders)}


def _contenders(runs: pd.DataFrame) -> List[str]:
    return list(dict.fromkeys(runs["contender"].astype(str))) if "contender" in runs.columns else []


def _done(runs: pd.DataFrame, contender: str) -> pd.DataFrame:
    """A contender's completed final runs."""
    return runs[(runs["contender"].astype(str) == contender) & (runs["phase"] == "final")
                & (runs["status"] == "completed")]


def _curve(history: Optional[pd.DataFrame], column: str, x: str) -> Optional[Curve]:
    """(x, y) of one run: x is the epoch or the elapsed seconds (cumulative epoch_time_s)."""
    if history is None or history.empty or column not in history.columns:
        return None
    if x == "seconds":
        if "epoch_time_s" not in history.columns:
            return None
        xs = pd.to_numeric(history["epoch_time_s"], errors="coerce").fillna(0).cumsum().to_numpy(float)
    else:
        xs = history["epoch"].to_numpy(float) if "epoch" in history.columns else np.arange(1.0, len(history) + 1)
    ys = pd.to_numeric(history[column], errors="coerce").to_numpy(float)
    order = np.argsort(xs, kind="stable")
    return xs[order], ys[order]


def _runs_curves(runs: pd.DataFrame, histories: Dict[str, pd.DataFrame], contender: str, column: str,
                 x: str = "epoch") -> List[Curve]:
    curves = [_curve(histories.get(str(d)), column, x) for d in _done(runs, contender)["run_dir"]]
    return [c for c in curves if c is not None]


def mean_band(curves: List[Curve]) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(grid, mean, low, high) over runs: each run interpolated onto the union of all
    runs' x values, within its own range only, so a point averages the runs that got
    there (early-stopped runs drop out); low/high are the min and max over those runs."""
    grid = np.unique(np.concatenate([xs for xs, _ in curves])) if curves else np.empty(0)
    stack = np.full((len(curves), grid.size), np.nan)
    for i, (xs, ys) in enumerate(curves):
        inside = (grid >= xs[0]) & (grid <= xs[-1])
        stack[i, inside] = np.interp(grid[inside], xs, ys)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN point (diverged everywhere) stays NaN
        return grid, np.nanmean(stack, 0), np.nanmin(stack, 0), np.nanmax(stack, 0)


def _no_data(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")


def curves(runs: pd.DataFrame, histories: Dict[str, pd.DataFrame], column: str, x: str, path: PathLike,
           title: str = "") -> Path:
    """Mean of `column` (e.g. val_accuracy) over each contender's completed final
    runs, with a min–max band, against the epoch (x="epoch") or elapsed training
    seconds (x="seconds")."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2), layout="constrained")
    colour, plotted = colours(_contenders(runs)), []
    for contender in _contenders(runs):
        found = _runs_curves(runs, histories, contender, column, x)
        if not found:
            ax.plot([], [], color=colour[contender], ls=":", label=f"{contender}: no completed runs")
            continue
        grid, mean, low, high = mean_band(found)
        ax.plot(grid, mean, color=colour[contender], marker="o" if grid.size == 1 else None,
                label=f"{contender} (n={len(found)})")
        ax.fill_between(grid, low, high, color=colour[contender], alpha=0.18, lw=0)
        plotted.append(mean)
    if not plotted:
        _no_data(ax, f"no completed run has {column}")
    elif log_scale_fits(*plotted):
        ax.set_yscale("log")
    ax.set_xlabel("epoch" if x == "epoch" else "seconds (cumulative epoch time)")
    ax.set_ylabel(f"{column} (mean over seeds)")
    ax.set_title(title or f"{column} by {x}")
    ax.grid(alpha=0.3)
    fig.legend(loc="outside right upper", title=BAND, fontsize="small", title_fontsize="small")
    return _save(fig, path)


def final_metric(comparison: pd.DataFrame, path: PathLike, colour: Optional[Dict[str, tuple]] = None) -> Path:
    """Each contender's mean with its 95% t-interval, best at top; filled marker =
    tied with the best, hollow = worse, square = no interval (n = 1); contenders
    without completed runs listed with their status and reason."""
    from matplotlib.lines import Line2D

    plt = _pyplot()
    rows = comparison.reset_index(drop=True)
    metric = rows["metric"].iloc[0] if len(rows) else "metric"
    colour = colour or colours(list(rows["contender"].astype(str)))
    fig, ax = plt.subplots(figsize=(7.5, 1.4 + 0.45 * max(1, len(rows))), layout="constrained")
    ys = np.arange(len(rows))[::-1]
    ranked = rows[rows["mean"].notna()]
    best_band = bool(len(ranked)) and pd.notna(ranked["ci_low"].iloc[0])
    if best_band:
        ax.axvspan(ranked["ci_low"].iloc[0], ranked["ci_high"].iloc[0], color="0.85", zorder=0)
    for y, (_, r) in zip(ys, rows.iterrows()):
        c = colour.get(str(r["contender"]), "black")
        if pd.isna(r["mean"]):
            note = f"{r['status']}" + (f": {r['reason']}" if r["reason"] else "")
            ax.text(0.01, y, note[:70], transform=ax.get_yaxis_transform(), va="center",
                    color="tab:red" if r["status"] != "pending" else "0.4")
            continue
        has_ci = pd.notna(r["ci_low"])
        err = [[r["mean"] - r["ci_low"]], [r["ci_high"] - r["mean"]]] if has_ci else None
        tie = r["tied_with_best"]
        fill = "full" if not has_ci or (pd.notna(tie) and bool(tie)) else "none" if pd.notna(tie) else "left"
        ax.errorbar([r["mean"]], [y], xerr=err, fmt="o" if has_ci else "s", color=c, capsize=4, ms=8,
                    fillstyle=fill, mfc=c if fill != "none" else "white", mfcalt="white", mew=1.5)
    ax.set_yticks(ys, [f"{'' if pd.isna(r) else f'{r}. '}{c}" for r, c in zip(rows["rank"], rows["contender"])])
    ax.set_ylim(-0.7, len(rows) - 0.3)
    better = "higher" if maximize(split_metric(metric)[1]) else "lower"
    ax.set_xlabel(f"{metric}: mean and 95% t-interval over seeds ({better} is better)")
    ax.grid(axis="x", alpha=0.3)
    if not len(ranked):
        _no_data(ax, "no completed runs")
    grey = "0.3"
    handles = [Line2D([], [], marker="o", color=grey, ls="", label="tied with best"),
               Line2D([], [], marker="o", color=grey, mfc="white", ls="", label="worse than best"),
               Line2D([], [], marker="o", color=grey, fillstyle="left", mfcalt="white", ls="", label="tie unknown"),
               Line2D([], [], marker="s", color=grey, ls="", label="n = 1: no interval")]
    if best_band:
        handles.append(Line2D([], [], color="0.85", lw=8, label="best's interval"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize="small", frameon=False)
    return _save(fig, path)


def train_vs_val(runs: pd.DataFrame, histories: Dict[str, pd.DataFrame], name: str, path: PathLike) -> Path:
    """One panel per contender: mean training `name` and mean val_`name` over seeds by
    epoch (bands min–max), shared y-axis, so overfitting shows as a widening gap."""
    plt = _pyplot()
    contenders = _contenders(runs) or ["(none)"]
    cols = min(4, len(contenders))
    rows = -(-len(contenders) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.8 * rows + 0.6), sharey=True, squeeze=False,
                             layout="constrained")
    for ax in axes.flat[len(contenders):]:
        ax.set_visible(False)
    plotted = []
    for ax, contender in zip(axes.flat, contenders):
        n = 0
        for column, c, label in [(name, "tab:blue", "train"), (f"val_{name}", "tab:orange", "validation")]:
            found = _runs_curves(runs, histories, contender, column) if contender in _contenders(runs) else []
            if found:
                grid, mean, low, high = mean_band(found)
                ax.plot(grid, mean, color=c, label=label, marker="o" if grid.size == 1 else None)
                ax.fill_between(grid, low, high, color=c, alpha=0.18, lw=0)
                plotted.append(mean)
                n = max(n, len(found))
        if not n:
            _no_data(ax, "no completed runs")
        ax.set_title(f"{contender} (n={n})", fontsize="medium")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    if plotted and log_scale_fits(*plotted):
        axes[0][0].set_yscale("log")
    axes[0][0].set_ylabel(name)
    handles, labels = next(((h, l) for h, l in (a.get_legend_handles_labels() for a in axes.flat) if h), ([], []))
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=2, title=f"mean over seeds; {BAND}",
                   fontsize="small", title_fontsize="small", frameon=False)
    fig.suptitle(f"{name}: train vs validation")
    return _save(fig, path)


def lr_sensitivity(runs: pd.DataFrame, metric_column: str, path: PathLike, label: str = "") -> Path:
    """The learning-rate search (phase == "lr_search"): `metric_column` against the
    learning rate (log axis), one line per contender; failed or diverged (NaN)
    points as x at the bottom; the learning rate the final runs use circled."""
    from matplotlib.lines import Line2D

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2), layout="constrained")
    colour = colours(_contenders(runs))
    search = runs[(runs["phase"] == "lr_search") & (runs["status"] != "pending")]
    for contender in _contenders(runs):
        mine = search[search["contender"].astype(str) == contender]
        if mine.empty:
            continue
        c = colour[contender]
        lr = pd.to_numeric(mine["learning_rate"], errors="coerce")
        y = pd.to_numeric(mine[metric_column], errors="coerce") if metric_column in mine.columns else lr * np.nan
        ok = (mine["status"] == "completed") & np.isfinite(y)
        points = pd.DataFrame({"lr": lr[ok], "y": y[ok]}).groupby("lr")["y"].mean()  # mean over search seeds
        ax.plot(points.index, points.values, "o-", color=c, label=contender)
        bad = lr[~ok].dropna()
        ax.plot(bad, np.full(len(bad), 0.03), "x", color=c, ms=9, mew=2, transform=ax.get_xaxis_transform())
        chosen = pd.to_numeric(runs.loc[(runs["contender"].astype(str) == contender) & (runs["phase"] == "final"),
                                        "learning_rate"], errors="coerce").dropna()
        if len(chosen):
            hit = [v for v in points.index if np.isclose(v, chosen.iloc[0], rtol=1e-6)]
            if hit:
                ax.plot(hit[:1], [points[hit[0]]], "o", ms=16, mfc="none", mec=c, mew=1.5)
            else:
                ax.axvline(chosen.iloc[0], color=c, ls=":")
    if search.empty:
        _no_data(ax, "no learning-rate search")
    else:
        ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel(label or metric_column)
    ax.set_title("learning-rate search")
    ax.grid(alpha=0.3)
    handles, _ = ax.get_legend_handles_labels()
    handles += [Line2D([], [], marker="x", color="0.3", ls="", mew=2, label="failed or diverged"),
                Line2D([], [], marker="o", color="0.3", mfc="none", ms=12, ls="", label="chosen learning rate")]
    fig.legend(handles=handles, loc="outside right upper", fontsize="small")
    return _save(fig, path)


def depth_profile(stats: pd.DataFrame, epoch: int) -> np.ndarray:
    """Gradient norm by layer (input to output) at `epoch` of one run's gradients.csv;
    a residual block's skip projection is not a layer of the depth."""
    rows = stats[(stats["epoch"] == epoch) & ~stats["layer"].astype(str).str.endswith("_skip")]
    return rows["grad_norm"].astype(float).to_numpy()


def gradient_depth(runs: pd.DataFrame, path: PathLike) -> Optional[Path]:
    """gradient_depth.png: each contender's gradient norm by layer depth, before and
    after training (median over seeds, from each run's gradients.csv), log scale: a
    vanishing gradient is a line that falls towards the input. None when no run has
    gradient statistics."""
    profiles: Dict[str, Dict[str, List[np.ndarray]]] = {}
    for contender in _contenders(runs):
        for run_dir in _done(runs, contender)["run_dir"].dropna():
            file = Path(str(run_dir)) / "gradients.csv"
            if not file.is_file():
                continue
            stats = pd.read_csv(file)
            for when, epoch in (("before training", 0), ("after training", int(stats["epoch"].max()))):
                profiles.setdefault(contender, {}).setdefault(when, []).append(depth_profile(stats, epoch))
    if not profiles:
        return None
    plt = _pyplot()
    colour = colours(_contenders(runs))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True, layout="constrained")
    for ax, when in zip(axes, ("before training", "after training")):
        for contender, by_when in profiles.items():
            found = [p for p in by_when.get(when, []) if p.size]
            if not found:
                continue
            depth = min(p.size for p in found)
            median = np.nanmedian(np.vstack([p[:depth] for p in found]), axis=0)
            shown = np.where(median > 0, median, np.nan)
            ax.plot(np.arange(1, depth + 1), shown, "o-", color=colour[contender], label=f"{contender} (n={len(found)})")
        ax.set_yscale("log")
        ax.set_title(when)
        ax.set_xlabel("layer, input to output (last: the output layer)")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("||d loss / d kernel|| (median over seeds)")
    handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize="small")
    fig.suptitle("gradient norm by layer depth")
    return _save(fig, path)


def study_plots(runs: pd.DataFrame, histories: Dict[str, pd.DataFrame], comparison: pd.DataFrame, metric: str,
                study_dir: PathLike, lr_column: str = "final_val") -> List[Path]:
    """Every figure of a study into `study_dir`: curves_epochs.png and
    curves_seconds.png (val_<name> of `metric`), final_metric.png, train_vs_val.png
    (the metric, not the loss: Keras adds L1/L2 penalties to the loss, on both splits,
    which would hide overfitting behind the penalty), and lr_sensitivity.png when the
    study searched learning rates."""
    study_dir = Path(study_dir)
    column = f"val_{split_metric(metric)[1]}"
    written = [curves(runs, histories, column, "epoch", study_dir / "curves_epochs.png",
                      f"{column} by epoch (mean over seeds)"),
               curves(runs, histories, column, "seconds", study_dir / "curves_seconds.png",
                      f"{column} by training time (mean over seeds)"),
               final_metric(comparison, study_dir / "final_metric.png", colours(_contenders(runs))),
               train_vs_val(runs, histories, split_metric(metric)[1], study_dir / "train_vs_val.png")]
    depth = gradient_depth(runs, study_dir / "gradient_depth.png")  # when the runs have diagnostics on
    written += [depth] if depth is not None else []
    if "phase" in runs.columns and (runs["phase"] == "lr_search").any():
        label = f"{column} ({lr_column.replace('_val', '')} epoch)" if lr_column in ("best_val", "final_val") else ""
        written.append(lr_sensitivity(runs, lr_column, study_dir / "lr_sensitivity.png", label))
    return written
