"""Start-up: `dlrun --help` and a config error must answer in under a second
(TensorFlow is not imported before validation).

    python benchmarks/bench_startup.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path

from common import DLRUN, median, scratch


def wall(cmd: list, cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, capture_output=True, cwd=cwd)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    cases = [("dlrun --help", [DLRUN, "--help"]),
             ("dlrun train --help", [DLRUN, "train", "--help"]),
             ("dlrun check optimizer.learning_rate=abc (config error)", [DLRUN, "check", "optimizer.learning_rate=abc"]),
             ("dlrun train data=csv data.path=missing.csv data.target=y (data error)",
              [DLRUN, "train", "data=csv", "data.path=missing.csv", "data.target=y"])]
    print("### Start-up and config errors\n")
    print("| command | median wall time (s) | target |")
    print("|---|---|---|")
    for name, cmd in cases:
        with scratch() as tmp:  # started there, so that nothing lands in the checkout
            times = [wall(cmd, tmp) for _ in range(args.repeats)]
        print(f"| `{name}` | {median(times):.2f} | < 1 s |")
    print()


if __name__ == "__main__":
    main()
