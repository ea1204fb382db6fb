"""Does Hyperband pay? A random search with a fixed budget (TRIALS trials x EPOCHS
epochs) against Hyperband (max_epochs=EPOCHS) over the same space on digits: the
total epochs each trained, and the epochs Hyperband needed to match random's best.

    python benchmarks/bench_hyperband.py [--trials 12] [--epochs 27]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd

from common import DLRUN, scratch, timed

COMMON = ["space=units_lr", "search.objective=val_accuracy", "search.refit=false", "trainer.verbose=0",
          "regularization=none", "search.seed=0"]


def trials(args: list) -> pd.DataFrame:
    with tempfile.TemporaryDirectory() as tmp:
        timed([DLRUN, "tune", *COMMON, *args, f"hydra.run.dir={tmp}/run"])
        return pd.read_csv(Path(tmp) / "run" / "trials.csv")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--epochs", type=int, default=27)
    args = ap.parse_args()
    rnd = trials(["search=random", f"search.max_trials={args.trials}", f"trainer.epochs={args.epochs}"])
    hb = trials(["search=hyperband", f"search.max_epochs={args.epochs}", "search.factor=3"])
    best_random = rnd["objective"].max()
    hb = hb.sort_values("trial")
    cumulative = hb["epochs_run"].cumsum()
    reached = hb.index[hb["objective"] >= best_random]
    epochs_to_match = int(cumulative.loc[reached[0]]) if len(reached) else None
    print(f"### Hyperband against a fixed random-search budget (digits, space=units_lr)\n")
    print("| search | trials | total epochs | best val accuracy |")
    print("|---|---|---|---|")
    print(f"| random, {args.trials} x {args.epochs} epochs | {len(rnd)} | {int(rnd['epochs_run'].sum())} | {best_random:.4f} |")
    print(f"| hyperband, max_epochs={args.epochs}, factor=3 | {len(hb)} | {int(hb['epochs_run'].sum())} | "
          f"{hb['objective'].max():.4f} |")
    if epochs_to_match is None:
        print("\n**Hyperband did not reach random search's best objective in this run.**\n")
    else:
        print(f"\n**Hyperband matched random search's best ({best_random:.4f}) after {epochs_to_match} epochs "
              f"of training, against {int(rnd['epochs_run'].sum())} for random search.**\n")


if __name__ == "__main__":
    with scratch():  # runs and registry entries: a temporary folder
        main()
