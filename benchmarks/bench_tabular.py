"""Tabular data: `dlrun train` with its DEFAULT config (only the data chosen) against
scikit-learn pipelines on the same train/validation/test split, on every bundled
table (iris, wine, breast_cancer, digits, diabetes, loans), five generated ones
written as CSV (shop prices, salaries, an animal-body-mass survey, a target of
1,000 +- 2, a passenger-survival table with a name per row) and any user CSV.

The goal: every regression table within 10% of the better of scikit-learn's Ridge
and MLPRegressor MAE; classification tables on par. dlrun runs over several seeds
(the split stays the same: data.split_seed=0) and the median is reported, as is
the median of MLPRegressor/MLPClassifier over random_state 0..N-1.

scikit-learn sees exactly dlrun's rows: the script loads the table with dlrun's
own `load_frame` and cuts it with `dlrun.data.prepare`'s `_select`/`_split`, as
`prepare` does. It fits on train + validation (dlrun uses validation only to stop
early) and scores on test, with one ColumnTransformer for every table: numbers
median-imputed and standardised, text columns with at most 50 values imputed
(most frequent) and one-hot encoded, wider text columns dropped.

    python benchmarks/bench_tabular.py [--seeds 3] [--only diabetes,shop]
                                       [--csv FILE --target COL]...
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

from common import median, scratch

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

MAX_ONEHOT = 50   # scikit-learn side: text columns with more distinct values are dropped
GOAL = 1.10       # regression: dlrun MAE / better of Ridge and MLPRegressor
BUNDLED = ["iris", "wine", "breast_cancer", "digits", "diabetes", "loans"]


# ----------------------------------------------------------------- generated tables
def shop_table(rows: int = 2000, seed: int = 11) -> Tuple[pd.DataFrame, str]:
    """Product prices (about 20-500): category x brand x size multiply a base price."""
    rng = np.random.default_rng(seed)
    base = {"socks": 25.0, "hats": 40.0, "shirts": 55.0, "jeans": 80.0, "shoes": 110.0,
            "bags": 140.0, "jackets": 190.0, "watches": 260.0}
    brands = [f"brand_{i:02d}" for i in range(30)]
    brand_factor = dict(zip(brands, np.exp(rng.normal(0.0, 0.35, len(brands)))))
    size_factor = {"S": 0.9, "M": 1.0, "L": 1.08, "XL": 1.18}
    category = rng.choice(list(base), rows)
    brand = rng.choice(brands, rows, p=rng.dirichlet(np.full(len(brands), 2.0)))
    size = rng.choice(list(size_factor), rows, p=[0.2, 0.35, 0.3, 0.15])
    rating = np.clip(rng.normal(3.9, 0.6, rows), 1.0, 5.0).round(1)
    weight = np.exp(rng.normal(-0.5, 0.6, rows)).round(3)
    warranty = rng.choice([0, 6, 12, 24], rows, p=[0.3, 0.3, 0.3, 0.1])
    age_days = rng.integers(0, 730, rows)
    price = (np.array([base[c] for c in category]) * np.array([brand_factor[b] for b in brand])
             * np.array([size_factor[s] for s in size]) * np.exp(0.12 * (rating - 3.9) + 0.08 * np.log(weight)
                                                               + 0.01 * warranty - 0.0003 * age_days)
             * np.exp(rng.normal(0.0, 0.1, rows)))
    frame = pd.DataFrame({"category": category, "brand": brand, "size": size, "rating": rating,
                          "weight_kg": weight, "warranty_months": warranty, "age_days": age_days,
                          "price": np.clip(price, 20.0, 500.0).round(2)})
    return frame, "price"


def salaries_table(rows: int = 2500, seed: int = 12) -> Tuple[pd.DataFrame, str]:
    """Salaries (about 50,000 +- 15,000) from experience, education, department, level,
    city; 10% of every feature's values missing."""
    rng = np.random.default_rng(seed)
    departments = {"engineering": 0.6, "sales": 0.1, "marketing": 0.0, "finance": 0.3, "support": -0.7,
                   "operations": -0.3}
    levels = {"junior": -1.0, "mid": 0.0, "senior": 0.9, "lead": 1.6}
    cities = {"Berlin": 0.1, "Paris": 0.2, "Madrid": -0.4, "Lisbon": -0.6, "Milan": -0.1, "Vienna": 0.0,
              "Zurich": 0.9, "Dublin": 0.4}
    experience = np.clip(rng.gamma(2.0, 4.5, rows), 0.0, 40.0).round(1)
    education = rng.choice([10, 12, 14, 16, 18, 21], rows, p=[0.05, 0.2, 0.15, 0.35, 0.2, 0.05])
    age = np.clip(education + 6 + experience + rng.normal(2.0, 3.0, rows), 18, 70).round()
    hours = np.clip(rng.normal(39.0, 5.0, rows), 15, 60).round()
    dept = rng.choice(list(departments), rows)
    level = np.select([experience < 3, experience < 8, experience < 15], ["junior", "mid", "senior"], "lead")
    level = np.where(rng.random(rows) < 0.2, rng.choice(list(levels), rows), level)
    city = rng.choice(list(cities), rows)
    remote = rng.choice(["yes", "no"], rows, p=[0.3, 0.7])
    score = (0.45 * np.log1p(experience) + 0.08 * (education - 15) + 0.02 * (hours - 39)
             + np.array([departments[d] for d in dept]) * 0.5 + np.array([levels[v] for v in level]) * 0.45
             + np.array([cities[c] for c in city]) * 0.5 + 0.1 * (remote == "yes")
             + rng.normal(0.0, 0.3, rows))
    salary = 50_000 + 15_000 * (score - score.mean()) / score.std()
    frame = pd.DataFrame({"years_experience": experience, "education_years": education, "age": age,
                          "hours_per_week": hours, "department": dept, "level": level, "city": city,
                          "remote": remote})
    for col in frame.columns:
        frame[col] = frame[col].where(rng.random(rows) >= 0.1)  # 10% missing in every feature
    frame["salary"] = salary.round(-1)
    return frame, "salary"


def survey_table(rows: int = 600, seed: int = 13) -> Tuple[pd.DataFrame, str]:
    """Animal body mass in grams (mean about 4,200, sd about 800) from species, island,
    sex and bill/flipper measurements (a few missing), penguin-like."""
    rng = np.random.default_rng(seed)
    species = rng.choice(["Adelie", "Chinstrap", "Gentoo"], rows, p=[0.44, 0.2, 0.36])
    islands = {"Adelie": (["Biscoe", "Dream", "Torgersen"], [0.35, 0.35, 0.3]),
               "Chinstrap": (["Dream"], [1.0]), "Gentoo": (["Biscoe"], [1.0])}
    island = np.array([rng.choice(islands[s][0], p=islands[s][1]) for s in species])
    sex = rng.choice(["male", "female"], rows)
    male = sex == "male"
    mass_mean = {"Adelie": 3700.0, "Chinstrap": 3730.0, "Gentoo": 5080.0}
    mass = (np.array([mass_mean[s] for s in species]) + np.where(male, 320.0, -320.0)
            + rng.normal(0.0, 380.0, rows))
    size = (mass - mass.mean()) / mass.std() + rng.normal(0.0, 0.6, rows)  # body size seen by the measurements
    bill_len = {"Adelie": 38.8, "Chinstrap": 48.8, "Gentoo": 47.5}
    bill_dep = {"Adelie": 18.3, "Chinstrap": 18.4, "Gentoo": 15.0}
    flipper = {"Adelie": 190.0, "Chinstrap": 196.0, "Gentoo": 217.0}
    frame = pd.DataFrame({
        "species": species, "island": island, "sex": sex,
        "bill_length_mm": (np.array([bill_len[s] for s in species]) + 1.5 * size
                           + rng.normal(0.0, 1.8, rows)).round(1),
        "bill_depth_mm": (np.array([bill_dep[s] for s in species]) + 0.6 * size
                          + rng.normal(0.0, 0.7, rows)).round(1),
        "flipper_length_mm": (np.array([flipper[s] for s in species]) + 4.0 * size
                              + rng.normal(0.0, 4.0, rows)).round(),
        "year": rng.choice([2007, 2008, 2009], rows),
    })
    for col in ("bill_length_mm", "bill_depth_mm", "flipper_length_mm"):
        frame[col] = frame[col].where(rng.random(rows) >= 0.02)
    frame["sex"] = frame["sex"].where(rng.random(rows) >= 0.03)
    frame["body_mass_g"] = mass.round(-1)
    return frame, "body_mass_g"


def offset_table(rows: int = 1500, seed: int = 14) -> Tuple[pd.DataFrame, str]:
    """A target of 1,000 +- 2 driven by numeric features (Friedman #1, scaled) plus noise:
    a model that does not centre and scale the target has to learn the offset first."""
    rng = np.random.default_rng(seed)
    x = rng.random((rows, 6))
    f = (10 * np.sin(np.pi * x[:, 0] * x[:, 1]) + 20 * (x[:, 2] - 0.5) ** 2 + 10 * x[:, 3] + 5 * x[:, 4])
    y = 1000.0 + 2.0 * (f - f.mean()) / f.std() + rng.normal(0.0, 0.3, rows)
    frame = pd.DataFrame(x.round(4), columns=[f"x{i + 1}" for i in range(6)])
    frame["y"] = y.round(3)
    return frame, "y"


def passengers_table(rows: int = 900, seed: int = 15) -> Tuple[pd.DataFrame, str]:
    """Survival (0/1), Titanic-like: a unique Name per row, a ticket id, class, sex,
    age (20% missing), fare, relatives aboard, port."""
    rng = np.random.default_rng(seed)
    first = {"male": ["John", "William", "James", "George", "Thomas", "Henry", "Charles", "Arthur"],
             "female": ["Mary", "Anna", "Elizabeth", "Margaret", "Alice", "Emily", "Helen", "Edith"]}
    pclass = rng.choice([1, 2, 3], rows, p=[0.24, 0.21, 0.55])
    sex = rng.choice(["male", "female"], rows, p=[0.65, 0.35])
    age = np.clip(rng.normal(30.0, 14.0, rows), 0.5, 80.0).round(1)
    sibsp = rng.choice([0, 1, 2, 3], rows, p=[0.68, 0.23, 0.06, 0.03])
    parch = rng.choice([0, 1, 2], rows, p=[0.76, 0.14, 0.10])
    fare = (np.array([0, 84.0, 21.0, 13.5])[pclass] * np.exp(rng.normal(0.0, 0.5, rows))
            * (1 + 0.3 * (sibsp + parch))).round(2)
    embarked = rng.choice(["S", "C", "Q"], rows, p=[0.72, 0.19, 0.09])
    logit = (1.1 + 2.5 * (sex == "female") - 1.0 * (pclass - 1) - 0.03 * (age - 30) + 0.004 * fare
             - 0.3 * sibsp + 0.6 * (age < 10) + 0.3 * (embarked == "C"))
    survived = (rng.random(rows) < 1 / (1 + np.exp(-(logit - 1.4)))).astype(int)
    name = [f"Passenger{i:04d}, {'Mrs.' if s == 'female' else 'Mr.'} {rng.choice(first[s])}"
            for i, s in enumerate(sex)]
    ticket = [f"{rng.choice(['A/5', 'PC', 'STON/O2.', 'C.A.', ''])} {n}".strip()
              for n in rng.permutation(np.arange(100_000, 100_000 + rows))]
    frame = pd.DataFrame({"PassengerName": name, "Ticket": ticket, "Pclass": pclass, "Sex": sex, "Age": age,
                          "SibSp": sibsp, "Parch": parch, "Fare": fare, "Embarked": embarked,
                          "Survived": survived})
    frame["Age"] = frame["Age"].where(rng.random(rows) >= 0.2)
    return frame[["PassengerName", "Survived", *[c for c in frame.columns if c not in ("PassengerName", "Survived")]]], \
        "Survived"


GENERATED: Dict[str, Callable[[], Tuple[pd.DataFrame, str]]] = {
    "shop": shop_table, "salaries": salaries_table, "survey": survey_table, "offset": offset_table,
    "passengers": passengers_table}


# ----------------------------------------------------------------- one table, both sides
@dataclass
class Table:
    name: str
    overrides: List[str]
    source: str                          # how it is described in the report


@dataclass
class Outcome:
    table: Table
    task: str = ""
    rows: Tuple[int, int, int] = (0, 0, 0)
    dropped: List[str] = field(default_factory=list)   # feature columns dlrun dropped
    target_sd: float = float("nan")
    mean_mae: float = float("nan")      # predicting the training mean
    # method -> list of per-seed {metric: value}, and per-seed fit seconds
    scores: Dict[str, List[Dict[str, float]]] = field(default_factory=dict)
    fit_s: Dict[str, List[float]] = field(default_factory=dict)
    error: Optional[str] = None

    def score(self, method: str, metric: str) -> float:
        values = [s[metric] for s in self.scores.get(method, []) if metric in s]
        return median(values) if values else float("nan")

    def seconds(self, method: str) -> float:
        values = self.fit_s.get(method, [])
        return median(values) if values else float("nan")


def compose_run(overrides: List[str]):
    from dlrun.config import compose, normalize_overrides, validate

    return validate(compose("train", normalize_overrides(overrides, "train")))


def dlrun_split(run) -> Tuple[pd.DataFrame, np.ndarray, str, np.ndarray, np.ndarray, np.ndarray, List[str]]:
    """The rows dlrun trains, validates and tests on, as `dlrun.data.prepare.prepare`
    cuts them: (features after dlrun's column choice, encoded target, task, train,
    val, test positions, dropped columns)."""
    from dlrun.data.prepare import _encode_target, _select, _split, infer_task, prepare
    from dlrun.data.sources import load_frame

    cfg = run.data
    frame, target, natural = load_frame(cfg)
    if cfg.max_rows is not None and len(frame) > cfg.max_rows:
        frame = frame.sample(n=cfg.max_rows, random_state=cfg.split_seed).sort_index()
    x, y, report = _select(frame, cfg, target)
    task = infer_task(y, cfg.task, natural)
    y_codes, _ = _encode_target(y, task)
    train, val, test, _ = _split(len(x), y_codes if task != "regression" else np.zeros(len(x), "int32"), task, cfg)
    dropped = [str(d["column"]) for d in report.get("dropped_columns", [])]
    bundle = prepare(frame, target, natural, cfg)  # dlrun's own cut: the reproduction must agree with it
    if not (np.array_equal(bundle.y_train, y_codes[train]) and np.array_equal(bundle.y_val, y_codes[val])
            and np.array_equal(bundle.y_test, y_codes[test])):
        raise RuntimeError(f"{cfg.name}: the reproduced split differs from dlrun.data.prepare.prepare's")
    return x, y_codes, task, train, val, test, dropped


def sklearn_features(x: pd.DataFrame):
    """The one preprocessing every scikit-learn model here gets."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from dlrun.data.columns import is_text

    text = [c for c in x.columns if is_text(x[c])]
    numeric = [c for c in x.columns if c not in text]
    narrow = [c for c in text if x[c].nunique() <= MAX_ONEHOT]
    parts = []
    if numeric:
        parts.append(("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric))
    if narrow:
        parts.append(("text", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                            OneHotEncoder(handle_unknown="ignore")), narrow))
    return ColumnTransformer(parts, remainder="drop", sparse_threshold=0)  # dense: HistGB takes no sparse input


def sklearn_models(task: str, seeds: int) -> Dict[str, List]:
    """Method name -> one estimator per random_state (one for deterministic ones)."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.preprocessing import StandardScaler

    if task == "regression":
        return {"Ridge": [Ridge()],
                "MLP": [TransformedTargetRegressor(MLPRegressor(random_state=s, max_iter=500, early_stopping=True),
                                                   transformer=StandardScaler()) for s in range(seeds)],
                "HistGB": [HistGradientBoostingRegressor(random_state=0)]}
    return {"LogReg": [LogisticRegression(max_iter=2000)],
            "MLP": [MLPClassifier(random_state=s, max_iter=500, early_stopping=True) for s in range(seeds)],
            "HistGB": [HistGradientBoostingClassifier(random_state=0)]}


def sklearn_scores(model, x_test, y_test: np.ndarray, task: str) -> Dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, roc_auc_score

    if task == "regression":
        return {"mae": float(mean_absolute_error(y_test, model.predict(x_test)))}
    out = {"accuracy": float(accuracy_score(y_test, model.predict(x_test)))}
    if task == "binary":
        out["auc"] = float(roc_auc_score(y_test, model.predict_proba(x_test)[:, 1]))
        out["f1"] = float(f1_score(y_test, model.predict(x_test), pos_label=1))
    return out


def run_table(table: Table, seeds: int, workdir: Path) -> Outcome:
    from sklearn.base import clone
    from sklearn.pipeline import make_pipeline

    from dlrun.training import train

    out = Outcome(table)
    runs = [compose_run([*table.overrides, "trainer.verbose=0", "trainer.save_model=false", f"trainer.seed={s}"])
            for s in range(seeds)]
    x, y, task, train_rows, val_rows, test_rows, out.dropped = dlrun_split(runs[0])
    out.task, out.rows = task, (len(train_rows), len(val_rows), len(test_rows))
    fit_rows = np.concatenate([train_rows, val_rows])
    x_fit, y_fit, x_test, y_test = x.iloc[fit_rows], y[fit_rows], x.iloc[test_rows], y[test_rows]
    if task == "regression":
        out.target_sd = float(np.std(y))
        out.mean_mae = float(np.mean(np.abs(y_test - np.mean(y[train_rows]))))
    for method, estimators in sklearn_models(task, seeds).items():
        for estimator in estimators:
            model = make_pipeline(sklearn_features(x_fit), clone(estimator))
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ConvergenceWarning and friends
                model.fit(x_fit, y_fit)
            out.fit_s.setdefault(method, []).append(time.perf_counter() - start)
            out.scores.setdefault(method, []).append(sklearn_scores(model, x_test, y_test, task))
    for seed, run in enumerate(runs):
        with contextlib.redirect_stdout(sys.stderr):  # dlrun's notes stay out of the Markdown
            result = train(run, workdir / f"{table.name}-{seed}")
        if result.status != "completed":
            raise RuntimeError(f"dlrun run {table.name} seed {seed}: {result.status} "
                               f"({result.metrics.get('failure_reason')})")
        test = result.metrics["test"]
        rows = result.metrics["data"]["rows"]
        if (rows["train"], rows["val"], rows["test"]) != out.rows:
            raise RuntimeError(f"{table.name}: dlrun split {rows} differs from the reproduced one {out.rows}")
        wanted = {"regression": ("mae",), "binary": ("accuracy", "auc", "f1"), "multiclass": ("accuracy",)}[task]
        out.scores.setdefault("dlrun", []).append({k: float(test[k]) for k in wanted if k in test})
        out.fit_s.setdefault("dlrun", []).append(float(result.metrics["fit_time_s"]))
        del result
    return out


# ----------------------------------------------------------------- report
def fmt_num(value: float) -> str:
    if not np.isfinite(value):
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}"


def goal_ratio(o: Outcome) -> float:
    return o.score("dlrun", "mae") / min(o.score("Ridge", "mae"), o.score("MLP", "mae"))


def seed_range(seeds: int) -> str:
    return "0" if seeds == 1 else f"0..{seeds - 1}"


def report(outcomes: List[Outcome], seeds: int, wall: float) -> None:
    reg = [o for o in outcomes if o.error is None and o.task == "regression"]
    cls = [o for o in outcomes if o.error is None and o.task in ("binary", "multiclass")]
    failed = [o for o in outcomes if o.error is not None]
    print("### Tabular data: dlrun defaults against scikit-learn\n")
    print(f"`dlrun train data=...` with nothing else changed (`trainer.verbose=0 trainer.save_model=false`), "
          f"median over trainer.seed={seed_range(seeds)}, against scikit-learn on the same split (fitted on "
          "train + validation, scored on test): numbers median-imputed and standardised, text columns with "
          f"at most {MAX_ONEHOT} values one-hot encoded, wider ones dropped; MLP = median over "
          f"random_state={seed_range(seeds)} (`early_stopping=True`, regression target standardised by "
          "`TransformedTargetRegressor`). Fit times in seconds (dlrun: `fit_time_s`).\n")
    if reg:
        print("| regression table | rows train/val/test | target sd | predict-the-mean MAE | dlrun MAE (seeds) "
              "| Ridge | MLPRegressor (random states) | HistGB | **dlrun / better of Ridge, MLP** | fit s: dlrun / Ridge / MLP / HistGB |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for o in reg:
            seeds_text = ", ".join(fmt_num(s["mae"]) for s in o.scores["dlrun"])
            mlp_text = ", ".join(fmt_num(s["mae"]) for s in o.scores["MLP"])
            print(f"| {o.table.source} | {'/'.join(str(r) for r in o.rows)} | {fmt_num(o.target_sd)} | "
                  f"{fmt_num(o.mean_mae)} | **{fmt_num(o.score('dlrun', 'mae'))}** ({seeds_text}) | "
                  f"{fmt_num(o.score('Ridge', 'mae'))} | {fmt_num(o.score('MLP', 'mae'))} ({mlp_text}) | "
                  f"{fmt_num(o.score('HistGB', 'mae'))} | **{goal_ratio(o):.2f}** | "
                  + " / ".join(f"{o.seconds(m):.2f}" for m in ("dlrun", "Ridge", "MLP", "HistGB")) + " |")
        print()
    if cls:
        print("| classification table | task | rows train/val/test | metric | dlrun (seeds) | LogisticRegression "
              "| MLPClassifier (random states) | HistGB | fit s: dlrun / LogReg / MLP / HistGB |")
        print("|---|---|---|---|---|---|---|---|---|")
        for o in cls:
            metrics = ("accuracy", "auc", "f1") if o.task == "binary" else ("accuracy",)
            labels = {"accuracy": "accuracy", "auc": "ROC AUC", "f1": "F1 (positive class)"}
            for i, metric in enumerate(metrics):
                seeds_text = ", ".join(f"{s[metric]:.3f}" for s in o.scores["dlrun"])
                mlp_text = ", ".join(f"{s[metric]:.3f}" for s in o.scores["MLP"])
                head = (f"| {o.table.source} | {o.task} | {'/'.join(str(r) for r in o.rows)} |" if i == 0
                        else "| | | |")
                times = (" / ".join(f"{o.seconds(m):.2f}" for m in ("dlrun", "LogReg", "MLP", "HistGB"))
                         if i == 0 else "")
                print(f"{head} {labels[metric]} | **{o.score('dlrun', metric):.3f}** ({seeds_text}) | "
                      f"{o.score('LogReg', metric):.3f} | {o.score('MLP', metric):.3f} ({mlp_text}) | "
                      f"{o.score('HistGB', metric):.3f} | {times} |")
        print()
        gaps = []
        for o in cls:
            best = max(o.score("LogReg", "accuracy"), o.score("MLP", "accuracy"))
            gaps.append(f"{o.table.name} {round(o.score('dlrun', 'accuracy') - best, 3) + 0.0:+.3f}")
        print("Classification, dlrun's test accuracy minus the better of LogisticRegression and MLPClassifier: "
              + ", ".join(gaps) + ".\n")
    dropped = [f"{o.table.name} ({', '.join(o.dropped)})" for o in reg + cls if o.dropped]
    if dropped:
        print("Feature columns dlrun dropped (scikit-learn sees the same columns): " + "; ".join(dropped) + ".\n")
    for o in failed:
        print(f"{o.table.source}: **failed**: `{o.error}`\n")
    if reg:
        missed = [o for o in reg if not goal_ratio(o) <= GOAL]
        line = (f"**{len(reg) - len(missed)} of {len(reg)} regression tables within 10% of the better of Ridge "
                f"and MLPRegressor**")
        if missed:
            line += " (not: " + ", ".join(f"{o.table.name} {goal_ratio(o):.2f}x" for o in missed) + ")"
        print(line + f"; whole script {wall:.0f} s.\n")
    else:
        print(f"**No regression table in this run**; whole script {wall:.0f} s.\n")


# ----------------------------------------------------------------- main
def tables(args: argparse.Namespace, folder: Path) -> List[Table]:
    """The bundled tables, the generated ones (written as CSV into `folder` when chosen)
    and the user's, filtered by --only."""
    out = [Table(name, [f"data={name}"], f"`data={name}`") for name in BUNDLED]
    out += [Table(name, [], f"{name} (generated)") for name in GENERATED]
    csvs, targets = args.csv or [], args.target or []
    if csvs and len(targets) not in (1, len(csvs)):
        raise SystemExit("--target: give one, or one per --csv")
    for i, path in enumerate(csvs):
        col = targets[0] if len(targets) == 1 else targets[i]
        full = Path(path).expanduser().resolve()
        out.append(Table(full.stem, ["data=csv", f"data.path={full}", f"data.target={col}"],
                         f"`{full.name}` ({col})"))
    if args.only:
        wanted = {n.strip() for n in args.only.split(",") if n.strip()}
        unknown = wanted - {t.name for t in out}
        if unknown:
            raise SystemExit(f"--only: unknown table(s) {', '.join(sorted(unknown))}; "
                             f"choose from {', '.join(t.name for t in out)}")
        out = [t for t in out if t.name in wanted]
    for t in out:
        if not t.overrides:  # a generated table: write it now
            frame, target = GENERATED[t.name]()
            path = folder / f"{t.name}.csv"
            frame.to_csv(path, index=False)
            t.overrides = ["data=csv", f"data.path={path}", f"data.target={target}"]
            t.source = f"{t.name} (generated)"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--csv", action="append", help="a table of your own (repeatable)")
    ap.add_argument("--target", action="append", help="its target column (once for all, or one per --csv)")
    ap.add_argument("--only", help="run only these tables, comma-separated (names as in the report)")
    ap.add_argument("--seeds", type=int, default=3, help="dlrun seeds and MLP random states per table")
    args = ap.parse_args()
    if args.target and not args.csv:
        raise SystemExit("--target needs --csv")
    started = time.perf_counter()
    with scratch() as tmp:  # $DLRUN_HOME and every run directory: a temporary folder
        data_dir, run_dir = tmp / "tables", tmp / "runs"
        data_dir.mkdir()
        run_dir.mkdir()
        outcomes = []
        for table in tables(args, data_dir):
            print(f"{table.name} ...", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            try:
                outcomes.append(run_table(table, args.seeds, run_dir))
            except Exception as err:  # noqa: BLE001 - one bad table is reported, the others still run
                from dlrun.errors import DataError

                if not isinstance(err, (DataError, RuntimeError)):
                    import traceback

                    traceback.print_exc()
                outcomes.append(Outcome(table, error=f"{type(err).__name__}: {err}".splitlines()[0]))
            print(f"{table.name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
        report(outcomes, args.seeds, time.perf_counter() - started)


if __name__ == "__main__":
    main()
