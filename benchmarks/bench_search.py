"""Search overhead: the same random search (digits, TRIALS trials x EPOCHS epochs,
same space, batch size 32, a 20% validation split, Adam) run by `dlrun tune` and
by peer_handwritten_tune.py (keras-tuner's tutorial style), alternately, each a
whole process (start-up included). Prints a Markdown section for RESULTS.md.

    python benchmarks/bench_search.py [--repeats 3] [--trials 8] [--epochs 10]
"""
from __future__ import annotations

import argparse
import json
import re
import tempfile
from pathlib import Path

from common import DLRUN, HERE, PYTHON, median, scratch, timed


def dlrun_cmd(trials: int, epochs: int, out: Path) -> list:
    return [DLRUN, "tune", "--config-dir", str(HERE / "conf"), "space=handwritten", "search=random",
            f"search.max_trials={trials}", "search.seed=0", "search.objective=val_accuracy", "search.refit=false",
            f"trainer.epochs={epochs}", "trainer.batch_size=32", "trainer.verbose=0", "regularization=dropout",
            "optimizer=adam", "model.units=[128]", "data.val_size=0.2", "data.test_size=0.01",
            f"hydra.run.dir={out}"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=10)
    args = ap.parse_args()
    hand, ours, hand_acc, our_acc = [], [], [], []
    for _ in range(args.repeats):
        t, out = timed([PYTHON, str(HERE / "peer_handwritten_tune.py"), str(args.trials), str(args.epochs)])
        hand.append(t)
        hand_acc.append(float(re.search(r"best_val_acc ([0-9.]+)", out).group(1)))
        with tempfile.TemporaryDirectory() as tmp:
            t, _ = timed(dlrun_cmd(args.trials, args.epochs, Path(tmp) / "run"))
            ours.append(t)
            our_acc.append(json.loads((Path(tmp) / "run" / "best_metrics.json").read_text())["value"])
    ratio = median(ours) / median(hand)
    print(f"### Search overhead ({args.trials} trials x {args.epochs} epochs, random search on digits)\n")
    print("| runner | median wall time (s) | runs (s) | best val accuracy |")
    print("|---|---|---|---|")
    print(f"| hand-written keras-tuner (peer) | {median(hand):.2f} | {', '.join(f'{t:.1f}' for t in hand)} "
          f"| {median(hand_acc):.4f} |")
    print(f"| `dlrun tune` | {median(ours):.2f} | {', '.join(f'{t:.1f}' for t in ours)} | {median(our_acc):.4f} |")
    print(f"\n**dlrun / hand-written = {ratio:.2f}x** (target: at most 0.80x), whole processes, start-up included.")
    print("dlrun: `" + " ".join(["dlrun", *dlrun_cmd(args.trials, args.epochs, Path('RUN'))[1:]])
          .replace(str(HERE), "benchmarks") + "`\n")


if __name__ == "__main__":
    with scratch():  # runs and registry entries: a temporary folder
        main()
