"""Fused trials (`search.fuse=K`, issue #15): the same search on digits run one trial at a
time (`search.fuse=1`, keras-tuner's way: one model per trial) and with K trials trained
as branches of one Keras model, each a whole `dlrun tune` command timed side by side in
one run (the modes alternate, so drift hits each alike).

Reports trials per minute of the whole command and of the search itself, the best
objective each found (the same trials are proposed for random search; the objectives
differ by initialization noise only), and the peak memory of the command (ru_maxrss of
the process, from wait4). Then the speed-up as a function of K and of the model's width,
and a Bayesian search. Goal: 16 trials x 10 epochs, fuse=8 >= 2.5x the trials per minute
of fuse=1.

    python benchmarks/bench_fused.py [--trials 16] [--epochs 10] [--repeats 2] [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Sequence

import pandas as pd

from common import DLRUN, median, scratch

SEARCH = ["data=digits", "space=units_lr", "search.seed=0", "search.refit=false", "trainer.verbose=0",
          "regularization=none"]


STUDY = ["experiment=optimizer_comparison", "trainer.epochs=10", "study.seeds=3"]


def run(settings: Sequence[str]) -> Dict[str, float]:
    """One whole `dlrun tune` command (`dlrun compare` when the settings start with
    "compare"): wall seconds, search seconds, peak RSS (MiB), best objective."""
    with tempfile.TemporaryDirectory() as tmp:
        if settings and settings[0] == "compare":
            cmd = [DLRUN, "compare", *STUDY, *settings[1:], f"hydra.run.dir={tmp}/run"]
        else:
            cmd = [DLRUN, "tune", *SEARCH, *settings, f"hydra.run.dir={tmp}/run"]
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr.read()[-2000:] if proc.stderr else ''}")
        if cmd[1] == "compare":
            state = json.loads((Path(tmp) / "run" / "study.json").read_text())
            comparison = pd.read_csv(Path(tmp) / "run" / "comparison.csv")
            best = comparison.dropna(subset=["rank"]).iloc[0]
            return {"wall": wall, "search": wall, "completed": state["runs"]["finished"], "best": float(best["mean"]),
                    "peak_mib": usage.ru_maxrss / 1024, "trials": state["runs"]["planned"]}
        summary = json.loads((Path(tmp) / "run" / "search_summary.json").read_text())
        trials = pd.read_csv(Path(tmp) / "run" / "trials.csv")
    return {"wall": wall, "search": summary["search_time_s"], "completed": summary["completed"],
            "best": summary["best"]["value"] if summary.get("best") else float("nan"),
            "peak_mib": usage.ru_maxrss / 1024, "trials": len(trials)}


def compare(label: str, base: List[str], modes: Dict[str, List[str]], repeats: int) -> Dict[str, Dict]:
    """Every mode `repeats` times, alternating; medians per mode."""
    runs: Dict[str, List[Dict[str, float]]] = {name: [] for name in modes}
    for _ in range(repeats):
        for name, extra in modes.items():
            runs[name].append(run([*base, *extra]))
    out = {}
    for name, rs in runs.items():
        wall, search = median([r["wall"] for r in rs]), median([r["search"] for r in rs])
        out[name] = {"wall": wall, "search": search, "rate": rs[0]["trials"] / wall * 60,
                     "search_rate": rs[0]["trials"] / search * 60, "best": [r["best"] for r in rs],
                     "peak_mib": max(r["peak_mib"] for r in rs), "completed": [r["completed"] for r in rs],
                     "walls": [r["wall"] for r in rs]}
    return out


def table(title: str, results: Dict[str, Dict], base: str, objective: str = "val_loss") -> None:
    print(f"#### {title}\n")
    print(f"| mode | wall time (s) | trials per minute | speed-up (whole command) | speed-up (search) "
          f"| best {objective} | completed | peak memory (MiB) |")
    print("|---|---|---|---|---|---|---|---|")
    ref = results[base]
    for name, r in results.items():
        print(f"| {name} | {', '.join(f'{w:.1f}' for w in r['walls'])} | {r['rate']:.1f} "
              f"| **{r['rate'] / ref['rate']:.2f}x** | {r['search_rate'] / ref['search_rate']:.2f}x "
              f"| {', '.join(f'{b:.4f}' for b in r['best'])} | {', '.join(str(c) for c in r['completed'])} "
              f"| {r['peak_mib']:.0f} |")
    print()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="skip the K and width sweeps")
    args = ap.parse_args()
    n, e = args.trials, args.epochs
    base = [f"search.max_trials={n}", f"trainer.epochs={e}"]
    print(f"### Fused trials ({n} trials x {e} epochs on digits, `space=units_lr`, whole `dlrun tune` commands)\n")
    print("`search.fuse=1` trains one model per trial, as keras-tuner does; `search.fuse=K` trains K trials as "
          "branches of one Keras model. Each row is a whole command (start-up, data, search; refit off); "
          f"{args.repeats} runs per mode, alternating; speed-ups from medians.\n")
    fuse = {"`search.fuse=1`": ["search.fuse=1"], "`search.fuse=8`": ["search.fuse=8"],
            "`search.fuse=auto`": ["search.fuse=auto"]}
    table("Random search", compare("random", ["search=random", *base], fuse, args.repeats), "`search.fuse=1`")
    bayes = {"`search.fuse=1`": ["search.fuse=1"], "`search.fuse=8`": ["search.fuse=8"]}
    table("Bayesian search (4 random initial points)",
          compare("bayesian", ["search=bayesian", "search.num_initial_points=4", *base], bayes, args.repeats),
          "`search.fuse=1`")
    study = {"`study.fuse=1`": ["compare", "study.fuse=1"], "`study.fuse=auto`": ["compare", "study.fuse=auto"]}
    table("`dlrun compare experiment=optimizer_comparison` (10 optimizers x 3 seeds x 10 epochs; "
          "\"trials\" are runs; best: the winner's mean test accuracy)",
          compare("study", [], study, args.repeats), "`study.fuse=1`", objective="test_accuracy")
    if args.quick:
        return
    ks = {f"`search.fuse={k}`": [f"search.fuse={k}"] for k in (1, 2, 4, 8, 16)}
    table("Speed-up against K (random search; peak memory of the whole command)",
          compare("k", ["search=random", *base], ks, 1), "`search.fuse=1`")
    for width in (32, 256, 1024):
        fixed = ["~space.model.units", f"+space.model.units={{type:Fixed,value:{width}}}"]
        table(f"Width {width} (one hidden layer of {width} units; learning rate searched)",
              compare(f"w{width}", ["search=random", *base, *fixed],
                      {"`search.fuse=1`": ["search.fuse=1"], "`search.fuse=8`": ["search.fuse=8"]}, 1),
              "`search.fuse=1`")


if __name__ == "__main__":
    with scratch():  # runs and registry entries: a temporary folder
        main()
