"""Study speed: the full optimizer comparison (10 optimizers x 3 seeds x 30 epochs on
digits) run three ways, each a whole process (start-up included), alternately:
- `dlrun compare experiment=optimizer_comparison`: one process, the data prepared once,
  every run an ordinary run folder, then comparison tables and plots;
- the same 30 runs as Hydra sweeps, `dlrun train -m` (what a user could do before
  `dlrun compare`: two sweeps, as full-batch GD needs its own batch size; no comparison);
- peer_optimizer_loop.py: the loop a notebook writes (model.fit on NumPy arrays; writes
  nothing). Goal (issue #10): dlrun compare under 60 s on 2 cores.

    python benchmarks/bench_compare.py [--repeats 1]
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import pandas as pd

from common import DLRUN, HERE, PYTHON, median, scratch, timed

OPTIMIZERS = "sgd,momentum,nesterov,adagrad,adadelta,rmsprop,adam,adamw,nadam"


def compare_cmd(out: Path) -> list:
    return [DLRUN, "compare", "experiment=optimizer_comparison", f"hydra.run.dir={out}"]


def sweep_cmds(out: Path) -> list:
    common = [DLRUN, "train", "-m", "experiment=optimizer_comparison", "trainer.seed=0,1,2", "trainer.verbose=0"]
    return [[*common, f"optimizer={OPTIMIZERS}", f"hydra.sweep.dir={out / 'minibatch'}"],
            [*common, "optimizer=sgd", "trainer.batch_size=full", f"hydra.sweep.dir={out / 'gd'}"]]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    ours, sweeps, loop, peer_acc = [], [], [], {}
    comparison = None
    with scratch() as tmp:
        for k in range(args.repeats):
            t, out = timed([PYTHON, str(HERE / "peer_optimizer_loop.py"), "30"])
            loop.append(t)
            for name, acc in re.findall(r"^(\w+) seed \d test_acc ([0-9.]+)", out, re.M):
                peer_acc.setdefault(name, []).append(float(acc))
            t = sum(timed(cmd)[0] for cmd in sweep_cmds(tmp / f"sweep{k}"))
            sweeps.append(t)
            t, _ = timed(compare_cmd(tmp / f"study{k}"))
            ours.append(t)
            comparison = pd.read_csv(tmp / f"study{k}" / "comparison.csv")
    print("### Study speed (optimizer_comparison: 10 optimizers x 3 seeds x 30 epochs on digits)\n")
    print("| runner | median wall time (s) | runs (s) | what it leaves |")
    print("|---|---|---|---|")
    print(f"| `dlrun compare experiment=optimizer_comparison` | {median(ours):.1f} | "
          f"{', '.join(f'{t:.1f}' for t in ours)} | 30 run folders, comparison.csv/.md/.parquet, runs.csv, 4 plots |")
    print(f"| `dlrun train -m` (2 sweeps, same 30 runs) | {median(sweeps):.1f} | "
          f"{', '.join(f'{t:.1f}' for t in sweeps)} | 30 run folders, 2 sweep summaries; no comparison |")
    print(f"| notebook loop, `model.fit(numpy)` (peer) | {median(loop):.1f} | {', '.join(f'{t:.1f}' for t in loop)} "
          "| printed accuracies |")
    goal = "met" if median(ours) < 60 else "NOT met"
    print(f"\n**Goal (< 60 s on 2 cores): {goal}.** dlrun compare / notebook loop = {median(ours) / median(loop):.2f}x; "
          f"dlrun compare / `dlrun train -m` = {median(ours) / median(sweeps):.2f}x.\n")
    if comparison is not None:
        print("Test accuracy, mean over 3 seeds (dlrun's 95% interval | the notebook loop's mean):\n")
        print("| rank | optimizer | dlrun mean | 95% interval | tied with best | notebook mean |")
        print("|---|---|---|---|---|---|")
        for _, r in comparison.iterrows():
            peer = peer_acc.get(r["contender"], [])
            print(f"| {r['rank']} | {r['contender']} | {r['mean']:.4f} | [{r['ci_low']:.4f}, {r['ci_high']:.4f}] | "
                  f"{'yes' if r['tied_with_best'] else 'no'} | {sum(peer) / len(peer):.4f} |" if peer else "")
        print("\nCommands: `" + " ".join(["dlrun", *compare_cmd(Path("STUDY"))[1:]]) + "`; `python benchmarks/"
              "peer_optimizer_loop.py 30`\n")


if __name__ == "__main__":
    main()
