"""Time to target: how long `dlrun train` (default levers: cached, prefetched tf.data,
steps_per_execution = one epoch) takes to reach a validation accuracy on digits,
against plain `model.fit` on NumPy arrays with Keras defaults (peer_time_to_target.py,
same model Dense(128), Adam 1e-3, batch 32, seed 0, 20% validation split), and
scikit-learn's MLPClassifier (peer_sklearn_peer.py) for fit time and test accuracy.

    python benchmarks/bench_time_to_target.py [--target 0.97] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import re
import tempfile
from pathlib import Path

import pandas as pd

from common import DLRUN, HERE, PYTHON, median, scratch, timed


def dlrun_time_to_target(target: float) -> tuple:
    """(seconds of training until val_accuracy >= target, epoch, fit seconds, test accuracy)."""
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        timed([DLRUN, "train", "model.units=[128]", "data.val_size=0.2", "data.test_size=0.01",
               "trainer.verbose=0", "trainer.save_model=false", f"hydra.run.dir={run}"])
        history = pd.read_csv(run / "history.csv")
        metrics = json.loads((run / "metrics.json").read_text())
        reached = history[history["val_accuracy"] >= target]
        if reached.empty:
            return float("nan"), None, metrics["fit_time_s"], metrics["test"]["accuracy"]
        epoch = int(reached["epoch"].iloc[0])
        return float(history["epoch_time_s"].iloc[:epoch].sum()), epoch, metrics["fit_time_s"], metrics["test"]["accuracy"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", type=float, default=0.97)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    plain, levers, ours, epochs = [], [], [], []
    for _ in range(args.repeats):
        _, out = timed([PYTHON, str(HERE / "peer_time_to_target.py"), str(args.target)])
        found = re.findall(r"steps_per_execution=\s*(\d+) tf.data=(\w+)\s+reached .* at epoch (\S+) in ([0-9.]+)s", out)
        plain.append(float(found[0][3]))
        levers.append(float(found[2][3]))
        seconds, epoch, _, _ = dlrun_time_to_target(args.target)
        ours.append(seconds)
        epochs.append(epoch)
    _, sk_out = timed([PYTHON, str(HERE / "peer_sklearn_peer.py")])
    sk = [(float(a), float(t)) for a, t in re.findall(r"test_acc ([0-9.]+) fit ([0-9.]+)s", sk_out)]
    with tempfile.TemporaryDirectory() as tmp:
        timed([DLRUN, "train", "trainer.verbose=0", "trainer.save_model=false", f"hydra.run.dir={tmp}/d"])
        default = json.loads((Path(tmp) / "d" / "metrics.json").read_text())
    print(f"### Time to {args.target:.0%} validation accuracy on digits\n")
    print("| runner | median seconds of training | runs (s) |")
    print("|---|---|---|")
    print(f"| plain `model.fit` on NumPy, Keras defaults (peer) | {median(plain):.2f} | {', '.join(f'{t:.2f}' for t in plain)} |")
    print(f"| peer with cache/prefetch + steps_per_execution | {median(levers):.2f} | {', '.join(f'{t:.2f}' for t in levers)} |")
    print(f"| `dlrun train` (defaults; model.units=[128], 20% validation) | {median(ours):.2f} | "
          f"{', '.join(f'{t:.2f}' for t in ours)} (epoch {epochs}) |")
    print(f"\n**plain fit / dlrun = {median(plain) / median(ours):.2f}x** (target: at least 2x).\n")
    print("| runner | fit time (s) | test accuracy |")
    print("|---|---|---|")
    for seed, (acc, t) in enumerate(sk):
        print(f"| scikit-learn MLPClassifier(128), seed {seed} | {t:.2f} | {acc:.4f} |")
    print(f"| `dlrun train` defaults (`make run`): {default['epochs_run']} epochs, early stopping | "
          f"{default['fit_time_s']:.2f} | {default['test']['accuracy']:.4f} |")
    ratio = default["fit_time_s"] / median([t for _, t in sk])
    print(f"\n**dlrun fit time / MLPClassifier = {ratio:.2f}x** (target: within 1.5x at equal or better accuracy).\n")


if __name__ == "__main__":
    with scratch():  # runs and registry entries: a temporary folder
        main()
