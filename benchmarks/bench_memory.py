"""Memory across a long search: peak resident memory after trial 5 and after trial 30
of a 30-trial random search on digits (keras-tuner clears the Keras session between
trials; dlrun builds the data pipeline once). Target: growth under 15%.

    python benchmarks/bench_memory.py [--trials 30]
"""
from __future__ import annotations

import argparse
import contextlib
import os
import resource
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from common import scratch  # noqa: E402


def rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=30)
    args = ap.parse_args()
    from dlrun.config import compose, normalize_overrides
    from dlrun.search.config import validate_tune
    from dlrun.search.runner import tune

    ov = normalize_overrides(["space=units_lr", f"search.max_trials={args.trials}", "search.refit=false",
                              "trainer.epochs=5", "trainer.verbose=0"], "tune")
    samples = {}

    def listener(row: dict) -> None:
        done = len(samples) + 1
        samples[done] = (rss_mib(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)

    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(sys.stderr):
        tune(validate_tune(compose("tune", ov), ov), tmp, listener=listener)  # its console lines: not the report
    first, last = samples[5], samples[max(samples)]
    print(f"### Memory over a {args.trials}-trial search (digits, 5 epochs per trial)\n")
    print("| after trial | resident (MiB) | peak so far (MiB) |")
    print("|---|---|---|")
    for k in sorted(samples):
        if k in (1, 5, 10, 20, max(samples)):
            print(f"| {k} | {samples[k][0]:.0f} | {samples[k][1]:.0f} |")
    print(f"\n**peak growth from trial 5 to trial {max(samples)}: {(last[1] / first[1] - 1) * 100:.1f}%** "
          "(target: under 15%).\n")


if __name__ == "__main__":
    with scratch():  # runs and registry entries: a temporary folder
        main()
