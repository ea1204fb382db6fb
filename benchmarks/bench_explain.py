"""`dlrun explain`, measured (issue #12). Goals on 2 cores: every tabular method on a
digits or breast-cancer run in under 20 s; the image methods for 8 rows of a digits
CNN in under 20 s.

Each run is trained with `dlrun train` (the preset's defaults), then explained with
the real command; the table gives each method's own time (from its summary line) and
the whole command's wall time (process start, TensorFlow import, data rebuild, model
load and writing included). Peer: the notebook way of permutation importance,
scikit-learn's `permutation_importance` around `model.predict` (one Keras predict
call per shuffle), on the same rows with the same repeats.

    python benchmarks/bench_explain.py
"""
from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path
from typing import Dict, List

from common import DLRUN, HERE, scratch, timed

GOAL_S = 20.0
sys.path.insert(0, str(HERE.parent))
CASES = [  # (name, train overrides, explain options)
    ("digits MLP (64 pixels, 10 classes)", ["data=digits"], []),
    ("breast_cancer MLP (30 features, 2 classes)", ["data=breast_cancer"], []),
    ("digits CNN, 8 rows", ["experiment=digits_cnn"], ["explain.rows=[0,1,2,3,4,5,6,7]"]),
]


def method_seconds(stdout: str) -> Dict[str, float]:
    line = next(ln for ln in stdout.splitlines() if ln.startswith("explained with"))
    return {m: float(s) for m, s in re.findall(r"(\w+) ([\d.]+)s", line)}


def peer_permutation(run_dir: Path) -> float:
    """scikit-learn's permutation_importance with model.predict, as a notebook does it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np
    from sklearn.inspection import permutation_importance

    from dlrun.config.schema import ExplainConfig
    from dlrun.explain.source import rebuild, run_config, run_files

    files = run_files(run_dir)
    bundle = rebuild(run_config(files, {}), files, {})
    model = keras.models.load_model(files.model, compile=False)

    class Wrapped:
        def fit(self, x, y):  # noqa: D401 - scikit-learn's protocol
            return self

        def predict(self, x):
            return model.predict(x, verbose=0)

    def accuracy(est, x, y):
        out = est.predict(x)
        guess = out.argmax(axis=1) if out.shape[1] > 1 else (out[:, 0] >= 0.5).astype(int)
        return float(np.mean(guess == y))

    started = time.perf_counter()
    permutation_importance(Wrapped(), bundle.x_test, bundle.y_test, scoring=accuracy,
                           n_repeats=ExplainConfig().repeats, random_state=0)
    return time.perf_counter() - started


def main() -> None:
    rows: List[str] = []
    with scratch() as tmp:
        for name, train, options in CASES:
            run = tmp / re.sub(r"\W+", "_", name)
            timed([DLRUN, "train", *train, "trainer.verbose=0", f"hydra.run.dir={run}"])
            wall, out = timed([DLRUN, "explain", str(run), *options])
            seconds = method_seconds(out)
            total = sum(seconds.values())
            peer = ""
            if "permutation" in seconds:
                took = peer_permutation(run)
                peer = f"{took:.1f} s ({took / seconds['permutation']:.0f}x slower)"
            verdict = "**yes**" if total < GOAL_S else "no"
            rows.append(f"| {name} | " + ", ".join(f"{m} {s:.1f}" for m, s in seconds.items())
                        + f" | {total:.1f} | {wall:.1f} | {verdict} | {peer or '-'} |")
    print("### Explanations (`dlrun explain`)\n")
    print("| run | seconds per method | methods (s) | whole command (s) | under 20 s | peer: permutation "
          "with model.predict |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    print("\nMethods' time is what the goal counts; the whole command adds process start, the "
          "TensorFlow/shap imports, rebuilding the split, loading the model and writing the figures.\n")


if __name__ == "__main__":
    main()
