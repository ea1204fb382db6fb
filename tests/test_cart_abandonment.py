"""The generated `cart_abandonment` set (dlrun/data/generated.py): deterministic, with
the documented columns, rate and missing values, a signal a linear model finds part of,
and a binary task once dlrun has prepared it. pandas and scikit-learn only."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from dlrun.config.schema import DataConfig
from dlrun.data import build_data
from dlrun.data.generated import FREE_SHIPPING_FROM, cart_abandonment_logit, cart_abandonment_table

NUMERIC_INT = ["pages_viewed", "items_in_cart", "hour"]
NUMERIC_FLOAT = ["time_on_site_min", "cart_value", "shipping_cost"]
TEXT = ["session_id", "device", "returning_customer", "traffic_source", "discount_code", "abandoned"]
COLUMNS = ["session_id", "pages_viewed", "time_on_site_min", "items_in_cart", "cart_value", "device",
           "returning_customer", "traffic_source", "hour", "discount_code", "shipping_cost", "abandoned"]


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return cart_abandonment_table()


def test_the_table_is_the_same_every_call_and_quick(table: pd.DataFrame) -> None:
    start = time.perf_counter()
    again = cart_abandonment_table()
    assert time.perf_counter() - start < 0.2
    pd.testing.assert_frame_equal(table, again)
    other = cart_abandonment_table(seed=1)
    assert not other["abandoned"].equals(table["abandoned"])  # the seed decides the draw
    assert len(cart_abandonment_table(rows=500)) == 500


def test_abandonment_rate_is_in_the_documented_range(table: pd.DataFrame) -> None:
    rate = float((table["abandoned"] == "Yes").mean())
    assert 0.60 <= rate <= 0.70, rate
    assert rate == pytest.approx(0.67, abs=0.01)  # "about 67%"
    assert set(table["abandoned"]) == {"Yes", "No"}
    # the documented formula is the one the target was drawn from: its mean probability
    # matches the observed rate, and sessions it scores high are abandoned far more often
    p = 1.0 / (1.0 + np.exp(-cart_abandonment_logit(table)))
    known = ~np.isnan(p)
    assert float(p[known].mean()) == pytest.approx(float((table["abandoned"][known] == "Yes").mean()), abs=0.01)
    yes = (table["abandoned"] == "Yes").to_numpy()[known]
    assert yes[p[known] > 0.9].mean() > 0.9 and yes[p[known] < 0.4].mean() < 0.4


def test_columns_dtypes_and_ranges_are_as_documented(table: pd.DataFrame) -> None:
    assert list(table.columns) == COLUMNS and len(table) == 20_000
    for col in NUMERIC_INT:
        assert pd.api.types.is_integer_dtype(table[col]), col
    for col in NUMERIC_FLOAT:
        assert pd.api.types.is_float_dtype(table[col]), col
    for col in TEXT:
        assert pd.api.types.is_string_dtype(table[col]) and not pd.api.types.is_numeric_dtype(table[col]), col
    assert table["session_id"].is_unique and table["session_id"].str.fullmatch(r"S\d{7}").all()
    assert table["pages_viewed"].min() >= 1 and table["pages_viewed"].mean() > table["pages_viewed"].median()
    assert table["items_in_cart"].min() >= 1
    assert table["hour"].between(0, 23).all() and table["hour"].nunique() == 24
    assert (table["time_on_site_min"].dropna() >= 0.1).all()
    assert (table["cart_value"] > 0).all()
    # cart value grows with the items in the cart (about $32 an item)
    per_item = table.groupby("items_in_cart")["cart_value"].mean()
    assert per_item.loc[1] == pytest.approx(32, rel=0.1) and per_item.loc[3] > 2.5 * per_item.loc[1]
    assert set(table["device"]) == {"desktop", "mobile", "tablet"}
    assert set(table["traffic_source"]) == {"search", "ads", "email", "social", "direct"}
    assert set(table["returning_customer"]) == set(table["discount_code"]) == {"Yes", "No"}
    free = table["cart_value"] >= FREE_SHIPPING_FROM
    assert (table.loc[free, "shipping_cost"] == 0).all()
    assert set(table.loc[~free, "shipping_cost"]) == {3.99, 5.99, 8.99}


def test_only_time_on_site_has_missing_values_about_two_percent(table: pd.DataFrame) -> None:
    missing = table.isna().mean()
    assert missing.drop("time_on_site_min").eq(0).all()
    assert 0.015 <= missing["time_on_site_min"] <= 0.025


def _features(frame: pd.DataFrame) -> pd.DataFrame:
    """Numbers as they are, text columns one-hot (the session id left out)."""
    return pd.get_dummies(frame.drop(columns=["session_id", "abandoned"]), dtype=float)


def _held_out_scores(x: pd.DataFrame, y: np.ndarray):
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    model = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), LogisticRegression(max_iter=1000))
    p = model.fit(x_tr, y_tr).predict_proba(x_te)[:, 1]
    majority = max(y_te.mean(), 1 - y_te.mean())
    return accuracy_score(y_te, p > 0.5), roc_auc_score(y_te, p), majority


def test_logistic_regression_clearly_beats_the_majority_class(table: pd.DataFrame) -> None:
    y = (table["abandoned"] == "Yes").to_numpy()
    accuracy, auc, majority = _held_out_scores(_features(table), y)
    assert majority == pytest.approx(0.67, abs=0.02)
    assert accuracy >= majority + 0.04, (accuracy, majority)
    assert auc > 0.75, auc


def test_the_nonlinear_terms_hold_signal_a_linear_model_misses(table: pd.DataFrame) -> None:
    """Adding the documented interaction and nonlinear terms to the same logistic
    regression lifts it: there is something for a network to learn beyond a linear model."""
    y = (table["abandoned"] == "Yes").to_numpy()
    x = _features(table)
    _, plain_auc, _ = _held_out_scores(x, y)
    mobile = (table["device"] == "mobile").astype(float)
    richer = x.assign(
        mobile_shipping=mobile * table["shipping_cost"],
        idle=np.maximum(0.0, np.log(table["time_on_site_min"] / table["pages_viewed"] / 1.5)),
        night=((table["hour"] >= 23) | (table["hour"] <= 5)).astype(float),
        cart_u=np.log(table["cart_value"] / 60.0) ** 2,
    )
    _, rich_auc, _ = _held_out_scores(richer, y)
    assert rich_auc > plain_auc + 0.015, (plain_auc, rich_auc)
    # the interaction on its own: a shipping charge costs mobile shoppers more than desktop ones
    paid, yes = table["shipping_cost"] > 0, table["abandoned"] == "Yes"
    lift = {d: yes[(table["device"] == d) & paid].mean() - yes[(table["device"] == d) & ~paid].mean()
            for d in ("desktop", "mobile")}
    assert lift["mobile"] > lift["desktop"] + 0.05, lift


def test_dlrun_prepares_a_binary_task_without_the_session_id() -> None:
    from tests.helpers import make_run

    cfg = make_run("data=cart_abandonment", fast=False).data  # conf/data/cart_abandonment.yaml composes
    assert cfg == DataConfig(name="cart_abandonment")
    b = build_data(cfg)
    assert b.meta.task == "binary" and b.meta.n_outputs == 1
    assert b.meta.classes == ["No", "Yes"] and b.meta.positive_class == "Yes"
    assert b.meta.target == "abandoned"
    dropped = {d["column"]: d["reason"] for d in b.meta.report["dropped_columns"]}
    assert list(dropped) == ["session_id"] and "an identifier?" in dropped["session_id"]
    names = b.meta.feature_names
    assert not any(n.startswith("session_id") for n in names)
    assert {"pages_viewed", "time_on_site_min", "hour", "device_mobile", "traffic_source_email",
            "returning_customer_Yes"} <= set(names)
    assert sum(b.meta.rows.values()) == 20_000 and b.meta.report["filled_values"] > 0
    assert not np.isnan(b.x_train).any()  # the missing minutes are imputed
    assert 0.6 < float(np.mean(b.y_train)) < 0.7  # code 1 is 'Yes': abandoned
