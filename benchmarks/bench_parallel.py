"""Parallel trials: the same random search (digits, TRIALS trials x EPOCHS epochs) run
in one process, with one worker process and with N worker processes
(`search.workers`, keras-tuner's distributed mode), each a whole `dlrun tune` command.
Reports trials per minute of wall time (start-up included) and the ratio of N
workers to one. Target: 2 workers on 2 cores >= 1.6x one worker.

    python benchmarks/bench_parallel.py [--trials 16] [--epochs 20] [--workers 2] [--repeats 2]
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from common import DLRUN, median, timed

SEARCH = ["space=units_lr", "search=random", "search.seed=0", "search.refit=false", "trainer.verbose=0",
          "regularization=none"]


def run(trials: int, epochs: int, workers: int) -> tuple:
    """(wall seconds of the whole command, search seconds, completed trials)."""
    with tempfile.TemporaryDirectory() as tmp:
        wall, _ = timed([DLRUN, "tune", *SEARCH, f"search.max_trials={trials}", f"trainer.epochs={epochs}",
                         f"search.workers={workers}", f"hydra.run.dir={tmp}/run"])
        summary = json.loads((Path(tmp) / "run" / "search_summary.json").read_text())
    return wall, summary["search_time_s"], summary["completed"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    modes = {"in one process (`search.workers=0`)": 0, "1 worker process (`search.workers=1`)": 1,
             f"{args.workers} worker processes (`search.workers={args.workers}`)": args.workers}
    walls: dict = {name: [] for name in modes}
    for _ in range(args.repeats):  # alternate the modes so that drift hits each alike
        for name, workers in modes.items():
            wall, _, done = run(args.trials, args.epochs, workers)
            assert done == args.trials, f"{name}: {done} of {args.trials} trials completed"
            walls[name].append(wall)
    rate = {name: args.trials / median(w) * 60 for name, w in walls.items()}
    names = list(modes)
    print(f"### Parallel trials ({args.trials} trials x {args.epochs} epochs, random search on digits)\n")
    print("| mode | median wall time (s) | runs (s) | trials per minute |")
    print("|---|---|---|---|")
    for name in names:
        print(f"| {name} | {median(walls[name]):.2f} | {', '.join(f'{t:.1f}' for t in walls[name])} "
              f"| {rate[name]:.1f} |")
    print(f"\n**{args.workers} workers / 1 worker = {rate[names[2]] / rate[names[1]]:.2f}x trials per minute** "
          f"(target: at least 1.6x); {args.workers} workers / one process = "
          f"{rate[names[2]] / rate[names[0]]:.2f}x. Whole commands, start-up included.\n")


if __name__ == "__main__":
    main()
