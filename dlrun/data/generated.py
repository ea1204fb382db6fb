"""Data sets dlrun generates itself, deterministically (no download), for lessons
that need a property no bundled set has.

`loans` (data=loans): 10,000 credit-card customers, of whom about 3.3% default,
modelled on the `Default` table of James, Witten, Hastie and Tibshirani's "An
Introduction to Statistical Learning" (ISLR), with its published logistic-regression
coefficients. Columns:
- `customer_id`: a unique text id per row (dlrun drops it as an identifier);
- `student`: Yes (29%) / No;
- `balance`: average monthly card balance in dollars (students carry more);
- `income`: yearly income in dollars (students earn less), 2% missing;
- `age`: 18-80 years (no effect on default);
- `card`: classic / gold / platinum (no effect on default);
- `default` (the target): Yes / No, drawn with
  logit P(default) = -10.87 + 0.005737 * balance - 0.6468 * student.

`cart_abandonment` (data=cart_abandonment): 20,000 online-shop sessions in which the
customer put at least one item in the cart; about 67% of them (documented range 60-70%;
real shops see about 70%) ended without a purchase. Columns:
- `session_id`: a unique text id per row (dlrun drops it as an identifier);
- `pages_viewed`: pages seen in the session, 1 + NegativeBinomial(2, p) with p = 0.25 on
  mobile and 0.18 otherwise (right-skewed; median about 7);
- `time_on_site_min`: minutes on the site, pages_viewed times a lognormal time per page
  (median 0.9 min, log-sd 0.6), rounded to 0.1 (at least 0.1); 2% missing (tracking lost);
- `items_in_cart`: 1 + Poisson(1.6 for returning customers, 1.0 otherwise);
- `cart_value`: cart total in dollars, Gamma(shape 2 * items_in_cart, scale 16), about $32 an item;
- `device`: desktop (38%) / mobile (52%) / tablet (10%);
- `returning_customer`: Yes (35%) / No;
- `traffic_source`: search (35%) / ads (20%) / email (10%) / social (15%) / direct (20%);
- `hour`: 0-23, the hour the session started (peaks around 12:30 and 20:00);
- `discount_code`: Yes / No (40% of email sessions, 12% of the others);
- `shipping_cost`: 0 for free shipping when cart_value >= $50, else the delivery zone's
  rate: 3.99 (50%), 5.99 (35%) or 8.99 (15%);
- `abandoned` (the target): Yes / No, drawn with P(Yes) = 1 / (1 + exp(-logit)),
  logit = 1.6 + 0.5 * mobile + 0.2 * tablet - 0.9 * returning
          + source (search 0, ads +0.4, email -0.6, social +0.7, direct -0.3)
          - 1.0 * discount + 0.12 * shipping_cost + 0.30 * mobile * shipping_cost
          - 0.8 * ln(pages_viewed)
          + 2.0 * max(0, ln(time_on_site_min / pages_viewed / 1.5))
          + 0.8 * night + 0.5 * ln(cart_value / 60) ** 2
  where mobile, tablet, returning, discount are 0/1, night is 1 for hours 23-5, and the
  time term uses the minutes before any are blanked. Beyond the linear part a model has
  to find: mobile shoppers leaving at a shipping charge (interaction), idle sessions of
  more than 1.5 minutes a page (long sessions with few pages), the night hours (not
  monotone in `hour`) and a U-shape in cart value (small and large carts left more).
The seeds are fixed: every call returns the same table.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
import pandas as pd

from dlrun.config.schema import DataConfig

LOANS_ROWS = 10_000
LOANS_SEED = 2013  # the year ISLR appeared


def loans_table(rows: int = LOANS_ROWS, seed: int = LOANS_SEED) -> pd.DataFrame:
    """The `loans` table (see the module docstring)."""
    rng = np.random.default_rng(seed)
    student = rng.random(rows) < 0.294
    balance = np.clip(rng.normal(np.where(student, 988.0, 772.0), 480.0), 0.0, None).round(2)
    income = np.clip(rng.normal(np.where(student, 17_950.0, 40_010.0), np.where(student, 4_500.0, 10_000.0)),
                     770.0, None).round(2)
    logit = -10.87 + 0.005737 * balance - 0.6468 * student
    default = rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))
    frame = pd.DataFrame({
        "customer_id": [f"C{100000 + i}" for i in rng.permutation(rows)],
        "student": np.where(student, "Yes", "No"),
        "balance": balance,
        "income": income,
        "age": rng.integers(18, 81, rows),
        "card": rng.choice(["classic", "gold", "platinum"], rows, p=[0.6, 0.3, 0.1]),
        "default": np.where(default, "Yes", "No"),
    })
    frame.loc[rng.random(rows) < 0.02, "income"] = np.nan
    return frame


def load_loans(cfg: DataConfig) -> Tuple[pd.DataFrame, str, str]:
    return loans_table(), "default", "binary"


CART_ROWS = 20_000
CART_SEED = 70  # about 70% of real online-shop carts are abandoned
FREE_SHIPPING_FROM = 50.0  # dollars of cart value
SOURCE_EFFECT = {"search": 0.0, "ads": 0.4, "email": -0.6, "social": 0.7, "direct": -0.3}  # on the logit
_SOURCE_SHARE = (0.35, 0.20, 0.10, 0.15, 0.20)  # in SOURCE_EFFECT's order


def _hour_weights() -> np.ndarray:
    """How sessions spread over the day: a base level, a lunch peak and an evening peak."""
    h = np.arange(24)
    w = 0.15 + np.exp(-((h - 20) / 3.0) ** 2) + 0.6 * np.exp(-((h - 12.5) / 2.5) ** 2)
    return w / w.sum()


def cart_abandonment_logit(frame: pd.DataFrame) -> np.ndarray:
    """logit P(abandoned) of each session of a `cart_abandonment` table, by the formula
    of the module docstring (NaN where `time_on_site_min` is missing)."""
    mobile = (frame["device"] == "mobile").to_numpy()
    tablet = (frame["device"] == "tablet").to_numpy()
    returning = (frame["returning_customer"] == "Yes").to_numpy()
    discount = (frame["discount_code"] == "Yes").to_numpy()
    source = frame["traffic_source"].map(SOURCE_EFFECT).to_numpy(float)
    pages = frame["pages_viewed"].to_numpy(float)
    minutes = frame["time_on_site_min"].to_numpy(float)
    value = frame["cart_value"].to_numpy(float)
    shipping = frame["shipping_cost"].to_numpy(float)
    hour = frame["hour"].to_numpy()
    night = (hour >= 23) | (hour <= 5)
    return (1.6 + 0.5 * mobile + 0.2 * tablet - 0.9 * returning + source
            - 1.0 * discount + 0.12 * shipping + 0.30 * mobile * shipping
            - 0.8 * np.log(pages)
            + 2.0 * np.maximum(0.0, np.log(minutes / pages / 1.5))
            + 0.8 * night + 0.5 * np.log(value / 60.0) ** 2)


def cart_abandonment_table(rows: int = CART_ROWS, seed: int = CART_SEED) -> pd.DataFrame:
    """The `cart_abandonment` table (see the module docstring)."""
    rng = np.random.default_rng(seed)
    device = rng.choice(np.array(["desktop", "mobile", "tablet"]), rows, p=[0.38, 0.52, 0.10])
    mobile = device == "mobile"
    returning = rng.random(rows) < 0.35
    source = rng.choice(np.array(list(SOURCE_EFFECT)), rows, p=_SOURCE_SHARE)
    hour = rng.choice(24, rows, p=_hour_weights())
    pages = 1 + rng.negative_binomial(2, np.where(mobile, 0.25, 0.18))
    minutes = np.maximum((pages * rng.lognormal(np.log(0.9), 0.6, rows)).round(1), 0.1)
    items = 1 + rng.poisson(np.where(returning, 1.6, 1.0))
    value = rng.gamma(2.0 * items, 16.0).round(2)
    discount = rng.random(rows) < np.where(source == "email", 0.40, 0.12)
    zone_rate = rng.choice(np.array([3.99, 5.99, 8.99]), rows, p=[0.50, 0.35, 0.15])
    frame = pd.DataFrame({
        "session_id": [f"S{1_000_000 + i}" for i in rng.permutation(rows)],
        "pages_viewed": pages.astype("int64"),
        "time_on_site_min": minutes,
        "items_in_cart": items.astype("int64"),
        "cart_value": value,
        "device": device,
        "returning_customer": np.where(returning, "Yes", "No"),
        "traffic_source": source,
        "hour": hour.astype("int64"),
        "discount_code": np.where(discount, "Yes", "No"),
        "shipping_cost": np.where(value >= FREE_SHIPPING_FROM, 0.0, zone_rate),
    })
    abandoned = rng.random(rows) < 1.0 / (1.0 + np.exp(-cart_abandonment_logit(frame)))
    frame["abandoned"] = np.where(abandoned, "Yes", "No")
    frame.loc[rng.random(rows) < 0.02, "time_on_site_min"] = np.nan
    return frame


def load_cart_abandonment(cfg: DataConfig) -> Tuple[pd.DataFrame, str, str]:
    return cart_abandonment_table(), "abandoned", "binary"
