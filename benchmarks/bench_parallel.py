"""Parallel trials: the same random search (digits, TRIALS trials x EPOCHS epochs) run
in one process, with one worker process and with N worker processes
(`search.workers`, keras-tuner's distributed mode), each a whole `dlrun tune` command.
Reports trials per minute of the whole command (start-up included) and of the search
itself (`search_time_s`: from the oracle's start to the last trial, workers' start-up
included), and the ratio of N workers to one. Target: 2 workers on 2 cores >= 1.6x one.

A control measures what the machine itself allows: the mean trial duration of a
one-thread search alone, and of two such searches started at once as independent
processes (no dlrun distribution involved). 2 x alone / together is the most that
two workers can gain on this machine.

    python benchmarks/bench_parallel.py [--trials 16] [--epochs 20] [--workers 2] [--repeats 1]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import pandas as pd

from common import DLRUN, median, scratch, timed

SEARCH = ["space=units_lr", "search=random", "search.seed=0", "search.refit=false", "trainer.verbose=0",
          "regularization=none"]


def run(trials: int, epochs: int, settings: list) -> tuple:
    """(wall seconds of the whole command, search seconds, completed trials)."""
    with tempfile.TemporaryDirectory() as tmp:
        wall, _ = timed([DLRUN, "tune", *SEARCH, f"search.max_trials={trials}", f"trainer.epochs={epochs}",
                         *settings, f"hydra.run.dir={tmp}/run"])
        summary = json.loads((Path(tmp) / "run" / "search_summary.json").read_text())
    return wall, summary["search_time_s"], summary["completed"]


def control(trials: int, epochs: int) -> tuple:
    """(mean trial seconds of one one-thread search alone, of two run at once)."""
    with tempfile.TemporaryDirectory() as tmp:
        def cmd(name: str) -> list:
            return [DLRUN, "tune", *SEARCH, f"search.max_trials={trials}", f"trainer.epochs={epochs}",
                    "trainer.threads=1", f"hydra.run.dir={tmp}/{name}"]

        def durations(name: str) -> float:
            return float(pd.read_csv(f"{tmp}/{name}/trials.csv")["duration_s"].mean())

        timed(cmd("alone"))
        both = [subprocess.Popen(cmd(name), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                for name in ("a", "b")]
        assert all(p.wait() == 0 for p in both)
        return durations("alone"), (durations("a") + durations("b")) / 2


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    modes = {"in one process (`search.workers=0`)": ["search.workers=0"],
             "1 worker process, all cores (`search.workers=1`)": ["search.workers=1"],
             "1 worker process, 1 thread (`search.workers=1 search.worker_threads=1`)":
                 ["search.workers=1", "search.worker_threads=1"],
             f"{args.workers} worker processes (`search.workers={args.workers}`)": [f"search.workers={args.workers}"]}
    walls: dict = {name: [] for name in modes}
    searches: dict = {name: [] for name in modes}
    for _ in range(args.repeats):  # alternate the modes so that drift hits each alike
        for name, workers in modes.items():
            wall, search, done = run(args.trials, args.epochs, workers)
            assert done == args.trials, f"{name}: {done} of {args.trials} trials completed"
            walls[name].append(wall)
            searches[name].append(search)
    rate = {name: args.trials / median(w) * 60 for name, w in walls.items()}
    search_rate = {name: args.trials / median(w) * 60 for name, w in searches.items()}
    names = list(modes)
    print(f"### Parallel trials ({args.trials} trials x {args.epochs} epochs, random search on digits)\n")
    print("| mode | wall time (s) | trials per minute | search time (s) | trials per minute of search |")
    print("|---|---|---|---|---|")
    for name in names:
        print(f"| {name} | {', '.join(f'{t:.1f}' for t in walls[name])} | {rate[name]:.1f} "
              f"| {', '.join(f'{t:.1f}' for t in searches[name])} | {search_rate[name]:.1f} |")
    local, one, single, many = names

    def ratios(base: str) -> str:
        return f"{search_rate[many] / search_rate[base]:.2f}x (search), {rate[many] / rate[base]:.2f}x (whole command)"

    print(f"\n{args.workers} workers, trials per minute against: one process {ratios(local)}; one worker on all "
          f"cores {ratios(one)}; **one worker on one thread {ratios(single)}** (target: at least 1.6x).\n")
    alone, together = control(max(2, args.trials // 2), args.epochs)
    print(f"Control (no dlrun distribution): a one-thread search's trials take {alone:.2f} s alone and "
          f"{together:.2f} s while a second one runs in another process, so two processes can gain at most "
          f"**{2 * alone / together:.2f}x** on this machine.\n")


if __name__ == "__main__":
    with scratch():  # runs and registry entries: a temporary folder
        main()
