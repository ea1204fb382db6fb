"""Text and attention (issue #14), measured on this machine's CPU:

1. Where word order decides (data=reviews: negations and "X but Y" contrasts), attention
   against an LSTM and a pooled embedding (a bag of words), 3 seeds each:
   `dlrun compare experiment=attention_comparison` timed whole, its comparison table
   (means and 95% intervals of test accuracy), beside two peers run on the same split:
   Keras's own "Text classification with Transformer" example (peer_keras_transformer.py,
   3 seeds) and a bag-of-words logistic regression (scikit-learn), which shows how far a
   model that ignores order gets.
2. Digits read as 8 rows of 8 pixels: `dlrun train data=digits model=attention` for seeds
   0-2, whole command timed (goal: test accuracy >= 0.95 in under 30 s on 2 cores), and
   `dlrun compare experiment=attention_comparison_digits`.
3. Interpretability: `dlrun explain RUN explain.methods=[attention] explain.n_rows=20` on
   the seed-0 attention run of each task: per test row, the Spearman rank correlation of
   attention (rollout and last layer) with |integrated gradients| token by token, and how
   often both rank the same token first.

    python benchmarks/bench_attention.py
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, List

import numpy as np
import pandas as pd

from common import DLRUN, HERE, PYTHON, scratch, timed

SEEDS = (0, 1, 2)


def comparison_rows(study: Path) -> List[str]:
    table = pd.read_csv(study / "comparison.csv")
    rows = []
    for _, r in table.iterrows():
        rows.append(f"| {r['contender']} | {r['mean']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}] | "
                    f"{int(r['rank']) if r['rank'] == r['rank'] else '-'} | {r.get('tied_with_best', '')} |")
    return rows


def run_seconds(study: Path) -> Dict[str, float]:
    """Median wall seconds of each contender's runs (metrics.json)."""
    runs = pd.read_csv(study / "runs.csv")
    times: Dict[str, List[float]] = {}
    for _, r in runs.iterrows():
        metrics = json.loads((Path(r["run_dir"]) / "metrics.json").read_text())
        times.setdefault(r["contender"], []).append(float(metrics["wall_time_s"]))
    return {k: float(np.median(v)) for k, v in times.items()}


def bag_of_words(frame: pd.DataFrame) -> float:
    """Test accuracy of a bag-of-words logistic regression on dlrun's split."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    from peer_keras_transformer import split

    labels, y = np.unique(frame["sentiment"], return_inverse=True)
    train, _, test = split(y)
    vectorizer = CountVectorizer(token_pattern=r"[^\s]+", ngram_range=(1, 1))
    x = vectorizer.fit_transform(frame["review"].fillna(""))
    model = LogisticRegression(max_iter=2000).fit(x[train], y[train])
    return float(np.mean(model.predict(x[test]) == y[test]))


def agreement(explained: Path) -> Dict[str, float]:
    """Median Spearman (rollout and last layer vs |IG|) and the share of rows with the same top token."""
    from scipy.stats import spearmanr

    table = pd.read_csv(explained / "attention.csv")
    rollout, last, same = [], [], []
    for _, rows in table.groupby("test_row"):
        credit = rows["integrated_gradients"].abs()
        if len(rows) < 3 or credit.nunique() < 2:
            continue
        rollout.append(spearmanr(rows["attention_rollout"], credit).statistic)
        last.append(spearmanr(rows["attention_last_layer"], credit).statistic)
        same.append(rows["attention_rollout"].to_numpy().argmax() == credit.to_numpy().argmax())
    return {"rows": len(rollout), "rollout": float(np.nanmedian(rollout)), "last": float(np.nanmedian(last)),
            "same_top": float(np.mean(same))}


def main() -> None:
    from dlrun.data.generated_text import reviews_table

    with scratch() as tmp:
        reviews = reviews_table()
        csv = tmp / "reviews.csv"
        reviews.to_csv(csv, index=False)
        study_time, _ = timed([DLRUN, "compare", "experiment=attention_comparison", f"hydra.run.dir={tmp / 'reviews'}"])
        runs = pd.read_csv(tmp / "reviews" / "runs.csv")
        first = json.loads((Path(runs["run_dir"].iloc[0]) / "metrics.json").read_text())
        length = first["data"]["text"]["sequence_length"]  # the peer reads as many words as dlrun chose
        peer = []
        for _ in SEEDS:
            _, out = timed([PYTHON, str(HERE / "peer_keras_transformer.py"), str(csv), "review", "sentiment", "200",
                            str(length)])
            found = re.search(r"test_accuracy=([0-9.]+) epoch_s=([0-9.]+) epochs=(\d+)", out)
            peer.append((float(found[1]), float(found[2]), int(found[3])))
        bow = bag_of_words(reviews)
        digit_runs = []
        for seed in SEEDS:
            folder = tmp / f"digits{seed}"
            seconds, _ = timed([DLRUN, "train", "data=digits", "model=attention", f"trainer.seed={seed}",
                                "trainer.verbose=0", f"hydra.run.dir={folder}"])
            metrics = json.loads((folder / "metrics.json").read_text())
            digit_runs.append((seed, metrics["test"]["accuracy"], seconds, metrics["fit_time_s"],
                               len(pd.read_csv(folder / "history.csv"))))
        digits_time, _ = timed([DLRUN, "compare", "experiment=attention_comparison_digits",
                                f"hydra.run.dir={tmp / 'digits'}"])
        found = {}
        for task, study in (("reviews", tmp / "reviews"), ("digits", tmp / "digits")):
            runs = pd.read_csv(study / "runs.csv")
            run = Path(runs[(runs["contender"] == "attention")].sort_values("seed")["run_dir"].iloc[0])
            timed([DLRUN, "explain", str(run), "explain.methods=[attention]", "explain.n_rows=20"])
            found[task] = agreement(run / "explain")
        review_rows, review_seconds = comparison_rows(tmp / "reviews"), run_seconds(tmp / "reviews")
        digit_rows, digit_seconds = comparison_rows(tmp / "digits"), run_seconds(tmp / "digits")

    print("### Text and attention (issue #14)\n")
    print(f"**Where order decides** (`dlrun compare experiment=attention_comparison`, data=reviews: 4,000 "
          f"generated reviews, 3 seeds; whole command {study_time:.0f} s). Test accuracy, mean [95% interval]:\n")
    print("| contender | test accuracy | rank | tied with the best |")
    print("|---|---|---|---|")
    print("\n".join(review_rows))
    print("\nMedian seconds per run: " + ", ".join(f"{k} {v:.1f}" for k, v in review_seconds.items()) + ".")
    accs = [p[0] for p in peer]
    print(f"\nPeers on the same split: Keras's Transformer example (peer_keras_transformer.py, {length} words, "
          f"early stopping as dlrun's) test accuracy {np.mean(accs):.3f} (3 runs: {', '.join(f'{a:.3f}' for a in accs)}; "
          f"{np.median([p[1] for p in peer]):.2f} s/epoch, {', '.join(str(p[2]) for p in peer)} epochs); "
          f"a bag-of-words logistic regression (scikit-learn) {bow:.3f}.\n")
    print("**Digits read as 8 rows** (`dlrun train data=digits model=attention`, defaults; goal >= 0.95 in under "
          "30 s on 2 cores):\n")
    print("| seed | test accuracy | whole command (s) | fit (s) | epochs |")
    print("|---|---|---|---|---|")
    for seed, acc, seconds, fit, epochs in digit_runs:
        print(f"| {seed} | {acc:.4f} | {seconds:.1f} | {fit:.1f} | {epochs} |")
    print(f"\n`dlrun compare experiment=attention_comparison_digits` ({digits_time:.0f} s):\n")
    print("| contender | test accuracy | rank | tied with the best |")
    print("|---|---|---|---|")
    print("\n".join(digit_rows))
    print("\nMedian seconds per run: " + ", ".join(f"{k} {v:.1f}" for k, v in digit_seconds.items()) + ".")
    print("\n**Attention against integrated gradients** (`dlrun explain RUN explain.methods=[attention] "
          "explain.n_rows=20`, the seed-0 attention run), per test row over its tokens:\n")
    print("| task | rows | median Spearman, rollout vs abs(IG) | median Spearman, last layer vs abs(IG) | same top token |")
    print("|---|---|---|---|---|")
    for task, f in found.items():
        print(f"| {task} | {f['rows']} | {f['rollout']:.2f} | {f['last']:.2f} | {f['same_top']:.0%} |")
    print()


if __name__ == "__main__":
    main()
