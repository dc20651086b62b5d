"""Tests for the synthetic generator: contract, determinism, exact ground truth, planted signal, shift."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from core.contract import TABLES
from core.errors import PersonaError
from core.timegrid import snapshot_timestamps
from synthetic.config import GenerateConfig, ModelParams
from synthetic.generator import generate_dataset
from synthetic.orders import cumulative_orders, invert_cumulative
from synthetic.traits import draw_traits

if TYPE_CHECKING:
    from pathlib import Path

START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
HORIZON = pd.Timedelta(days=90)
DELIVERY_COMPLAINT = r"\b(?:deliver\w*|courier|parcel|tracking|late|driver|carrier)\b"


def _config(**overrides: object) -> GenerateConfig:
    values: dict[str, object] = dict(customers=300, days=120, seed=5, start=START)
    values.update(overrides)
    return GenerateConfig(**values)  # type: ignore[arg-type]


def _read(paths: dict[str, Path]) -> dict[str, pd.DataFrame]:
    return {name: pd.read_parquet(path) for name, path in paths.items() if path.suffix == ".parquet"}


def _orders_in_window(transactions: pd.DataFrame, snapshot: pd.Timestamp) -> pd.Series:
    """Orders per customer in (snapshot, snapshot + 90 days]."""
    ts = transactions["event_timestamp"]
    inside = transactions[(ts > snapshot) & (ts <= snapshot + HORIZON)]
    return inside.groupby("customer_id").size()


def _spend_in_window(transactions: pd.DataFrame, snapshot: pd.Timestamp) -> pd.Series:
    ts = transactions["event_timestamp"]
    inside = transactions[(ts > snapshot) & (ts <= snapshot + HORIZON)]
    return inside.groupby("customer_id")["amount"].sum()


@pytest.fixture(scope="module")
def year(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    """One year of 3,000 customers, generated once for the module."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PERSONA_HOME", str(home))
        paths = generate_dataset(_config(customers=3000, days=365, seed=11), home / "data")
    return _read(paths)


@pytest.fixture(scope="module")
def labelled(year: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Ground truth with realized orders, spend and churn on snapshots 91 days apart.

    Windows that do not overlap make the rows independent draws, so sums of them have
    binomial/Poisson spread.
    """
    gt = year["ground_truth"]
    end = pd.Timestamp(START) + pd.Timedelta(days=365)
    complete = sorted(t for t in gt["event_timestamp"].unique() if t + HORIZON <= end)
    picked = complete[::-13][:3]
    rows = []
    for snapshot in picked:
        part = gt[gt["event_timestamp"] == snapshot].set_index("customer_id")
        orders = _orders_in_window(year["transactions"], snapshot).reindex(part.index, fill_value=0)
        spend = _spend_in_window(year["transactions"], snapshot).reindex(part.index, fill_value=0.0)
        rows.append(part.assign(orders=orders, spend=spend, churned=orders == 0).reset_index())
    return pd.concat(rows, ignore_index=True)


# ------------------------------------------------------------------------------ determinism
def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    # given
    config = _config()

    # when
    first = generate_dataset(config, tmp_path / "a")
    second = generate_dataset(config, tmp_path / "b")

    # then
    for name in ("customers", "transactions", "sessions", "reviews", "ground_truth"):
        assert first[name].read_bytes() == second[name].read_bytes(), name


def test_different_seeds_give_different_data(tmp_path: Path) -> None:
    # given / when
    a = _read(generate_dataset(_config(seed=1), tmp_path / "a"))
    b = _read(generate_dataset(_config(seed=2), tmp_path / "b"))

    # then
    assert not a["transactions"]["amount"].equals(b["transactions"]["amount"])
    assert not a["reviews"]["text"].equals(b["reviews"]["text"])
    assert not a["ground_truth"]["true_churn_probability"].equals(b["ground_truth"]["true_churn_probability"])


# ------------------------------------------------------------------------------ contract
def test_tables_follow_the_data_contract(year: dict[str, pd.DataFrame]) -> None:
    # given
    frames = year

    # then
    for name, spec in TABLES.items():
        frame = frames[name]
        assert len(frame) > 0, name
        assert set(spec.required) <= set(frame.columns), name
        assert set(spec.optional) <= set(frame.columns), name
        assert frame["customer_id"].dtype == np.int64, name
        assert str(frame[spec.timestamp].dtype) == "datetime64[ns, UTC]", name
    tx = frames["transactions"]
    assert (tx["amount"] >= 0).all()
    assert tx["discount"].between(0.0, 1.0).all()
    assert tx["returned"].dtype == bool
    assert tx["order_id"].is_unique
    assert tx["event_timestamp"].is_monotonic_increasing
    assert set(frames["reviews"]["rating"].unique()) <= {1, 2, 3, 4, 5}
    assert (frames["reviews"]["text"].str.strip().str.len() > 0).all()
    assert (frames["sessions"]["page_views"] >= 1).all()
    assert set(tx["customer_id"]) <= set(frames["customers"]["customer_id"])
    signup = frames["customers"].set_index("customer_id")["signup_date"]
    assert (tx["event_timestamp"].to_numpy() >= signup.loc[tx["customer_id"]].to_numpy()).all()


def test_events_stay_inside_the_generated_period(year: dict[str, pd.DataFrame]) -> None:
    # given
    start, end = pd.Timestamp(START), pd.Timestamp(START) + pd.Timedelta(days=365)

    # then
    for name in ("transactions", "sessions", "reviews"):
        ts = year[name]["event_timestamp"]
        assert ts.min() >= start, name
        assert ts.max() < end, name


def test_review_texts_are_varied(year: dict[str, pd.DataFrame]) -> None:
    # given
    texts = year["reviews"]["text"]

    # when
    distinct = texts.nunique()
    most_common_share = texts.value_counts(normalize=True).iloc[0]

    # then
    assert len(texts) > 2000
    assert distinct > 0.6 * len(texts)
    assert most_common_share < 0.01


DELIVERY_COMPLAINTS = (
    "never showed up|nowhere to be found|Tracking said out for delivery|delivery window was missed"
    "|Parcel went to the wrong address|Delivery is .* unreliable|left my parcel in the rain"
)
ABOUT_DELIVERY = (f"{DELIVERY_COMPLAINTS}|deliver|courier|parcel|shipping|arrived|waiting for my|came in|order came"
                  r"|waited|\blate\b|tracking")


def test_ratings_agree_with_the_tone_of_the_text(year: dict[str, pd.DataFrame]) -> None:
    # given reviews outside the delivery topic (whose stars mostly rate the product instead)
    reviews = year["reviews"]
    reviews = reviews[~reviews["text"].str.contains(ABOUT_DELIVERY, case=False)]

    # when
    praised = reviews[reviews["text"].str.contains("Highly recommend|Five stars|Would buy again")]
    scolded = reviews[reviews["text"].str.contains("Never again|Avoid\\.|Very disappointed")]

    # then
    assert len(praised) > 50
    assert len(scolded) > 50
    assert praised["rating"].min() >= 3
    assert scolded["rating"].max() <= 3
    assert praised["rating"].mean() > 4.0 > 2.0 > scolded["rating"].mean()


def test_delivery_complaints_show_in_the_words_more_than_in_the_stars(year: dict[str, pd.DataFrame]) -> None:
    # given
    reviews = year["reviews"]
    params = ModelParams()

    # when: complaints about the delivery, and complaints signed off angrily about anything else
    delivery = reviews[reviews["text"].str.contains(DELIVERY_COMPLAINTS)]
    other = reviews[~reviews["text"].str.contains(ABOUT_DELIVERY, case=False)
                    & reviews["text"].str.contains("Never again|Avoid\\.|Very disappointed")]

    # then most delivery complaints carry the stars of the product (4-5 for most customers),
    # while other complaints stay at 1-3 stars
    assert len(delivery) > 100
    assert 0.5 < params.delivery_stars_rate_product <= 1.0
    assert (delivery["rating"] >= 4).mean() > 0.4
    assert other["rating"].max() <= 3
    assert delivery["rating"].mean() > other["rating"].mean() + 1.0


# ------------------------------------------------------------------------------ ground truth
def test_ground_truth_rows_follow_the_snapshot_grid(year: dict[str, pd.DataFrame]) -> None:
    # given
    gt, customers = year["ground_truth"], year["customers"]
    grid = snapshot_timestamps(pd.Timestamp(START), pd.Timestamp(START) + pd.Timedelta(days=364), 7)

    # then
    assert list(gt.columns) == ["customer_id", "event_timestamp", "true_churn_probability",
                                "true_expected_orders", "true_expected_spend", "horizon_days"]
    assert set(gt["event_timestamp"].unique()) == set(grid)
    assert not gt.duplicated(["customer_id", "event_timestamp"]).any()
    signup = customers.set_index("customer_id")["signup_date"].loc[gt["customer_id"]].to_numpy()
    assert (signup <= gt["event_timestamp"].to_numpy()).all()
    last = gt[gt["event_timestamp"] == grid[-1]]
    assert len(last) == (customers["signup_date"] <= grid[-1]).sum()
    assert gt["true_churn_probability"].between(0.0, 1.0).all()
    np.testing.assert_allclose(gt["true_churn_probability"], np.exp(-gt["true_expected_orders"]))
    assert (gt["true_expected_spend"] >= 0).all()
    assert (gt["horizon_days"] == 90).all()


def test_true_churn_probability_matches_realized_churn(labelled: pd.DataFrame) -> None:
    # given
    p, churned = labelled["true_churn_probability"], labelled["churned"]

    # when
    spread = np.sqrt((p * (1 - p)).sum())
    miss = abs(churned.sum() - p.sum())
    wrong_truth = np.exp(-0.85 * labelled["true_expected_orders"])  # rates 15% too low
    miss_of_wrong_truth = abs(churned.sum() - wrong_truth.sum())

    # then
    assert len(labelled) > 5000
    assert 0.2 < churned.mean() < 0.5
    assert miss < 4 * spread
    assert miss_of_wrong_truth > 4 * spread  # the check has the power to catch a wrong truth
    for _, part in labelled.groupby(pd.qcut(p, 5, duplicates="drop"), observed=True):
        q = part["true_churn_probability"]
        assert abs(part["churned"].sum() - q.sum()) < 4 * np.sqrt((q * (1 - q)).sum()) + 1


def test_true_expected_orders_and_spend_match_realized(labelled: pd.DataFrame) -> None:
    # given
    expected_orders, expected_spend = labelled["true_expected_orders"], labelled["true_expected_spend"]

    # when
    orders_miss = abs(labelled["orders"].sum() - expected_orders.sum())
    spend_miss = abs(labelled["spend"].sum() - expected_spend.sum())
    spend_spread = np.sqrt(((labelled["spend"] - expected_spend) ** 2).sum())

    # then
    assert orders_miss < 4 * np.sqrt(expected_orders.sum())
    assert spend_miss < 4 * spend_spread
    assert spend_miss < 0.05 * expected_spend.sum()


def test_delivery_complaint_writers_have_higher_true_churn(year: dict[str, pd.DataFrame]) -> None:
    # given
    reviews, gt = year["reviews"], year["ground_truth"]
    snapshot = gt["event_timestamp"].max() - pd.Timedelta(days=91)
    before = reviews[reviews["event_timestamp"] <= snapshot]
    complaint = before["text"].str.contains(DELIVERY_COMPLAINT, case=False) & (before["rating"] <= 2)
    writers = set(before.loc[complaint, "customer_id"])
    reviewers = set(before["customer_id"])

    # when
    at = gt[(gt["event_timestamp"] == snapshot) & gt["customer_id"].isin(reviewers)]
    complainers = at[at["customer_id"].isin(writers)]["true_churn_probability"]
    others = at[~at["customer_id"].isin(writers)]["true_churn_probability"]

    # then
    assert len(complainers) > 30
    assert complainers.mean() > others.mean() + 0.1


# ------------------------------------------------------------------------------ model internals
def test_cumulative_orders_integrates_the_rate_and_inverts() -> None:
    # given
    config = _config(customers=400, days=200, shift_days=60)
    traits = draw_traits(config, ModelParams(), np.random.default_rng(0))
    b = config.shift_start_day
    rows = np.arange(len(traits))
    grid = np.linspace(0.0, 400.0, 40_001)

    # when
    exact = cumulative_orders(traits, np.full(len(traits), 400.0), b) - cumulative_orders(
        traits, np.zeros(len(traits)), b)
    g = np.stack([cumulative_orders(traits, np.full(len(traits), day), b) for day in grid[::400]])
    day = np.full(len(traits), 150.0)
    back = invert_cumulative(traits, rows, cumulative_orders(traits, day, b), b)

    # then
    rate = np.diff(g, axis=0)  # expected orders per 4-day step is positive and sums up exactly
    assert (rate >= 0).all()
    np.testing.assert_allclose(g[-1] - g[0], exact, rtol=1e-9)
    alive = traits.signup_day < 150
    at_150 = cumulative_orders(traits, day, b)
    np.testing.assert_allclose(cumulative_orders(traits, back, b)[alive], at_150[alive], rtol=1e-12, atol=1e-12)
    # the day itself is pinned down as finely as the rate allows: where a customer still orders
    # (a delivery problem can fade the rate to ~0, leaving G flat), the inverse lands on the day
    rate_150 = (cumulative_orders(traits, day + 1e-3, b) - at_150) / 1e-3
    ordering = alive & (rate_150 > 1e-3)
    assert ordering.sum() > 0.8 * alive.sum()
    np.testing.assert_allclose(back[ordering], 150.0, atol=1e-6)


def test_shift_lowers_order_rate_and_raises_delivery_complaints(tmp_path: Path) -> None:
    # given: same customers, once with the last 100 days shifted
    plain = _read(generate_dataset(_config(customers=2000, days=300), tmp_path / "plain"))
    shifted_paths = generate_dataset(_config(customers=2000, days=200, shift_days=100), tmp_path / "shift")
    shifted = _read(shifted_paths)
    cut = pd.Timestamp(START) + pd.Timedelta(days=200)

    # when
    def orders(frame: pd.DataFrame, after: bool) -> int:
        return int(((frame["transactions"]["event_timestamp"] >= cut) == after).sum())

    def complaint_share(frame: pd.DataFrame) -> float:
        late = frame["reviews"][frame["reviews"]["event_timestamp"] >= cut]
        complaint = late["text"].str.contains(DELIVERY_COMPLAINT, case=False) & (late["rating"] <= 2)
        return float(complaint.mean())

    # then
    assert 0.9 < orders(shifted, after=False) / orders(plain, after=False) < 1.1
    assert 0.45 < orders(shifted, after=True) / orders(plain, after=True) < 0.75
    assert complaint_share(shifted) > complaint_share(plain) + 0.05
    described = json.loads(shifted_paths["generator"].read_text())
    assert described["period"]["shift_start"] == cut.isoformat()
    assert "price" in described["shift"]


# ------------------------------------------------------------------------------ formats and errors
def test_csv_format_writes_readable_tables(tmp_path: Path) -> None:
    # given
    config = _config(fmt="csv")

    # when
    paths = generate_dataset(config, tmp_path)

    # then
    for name in ("customers", "transactions", "sessions", "reviews", "ground_truth"):
        assert paths[name].suffix == ".csv"
        frame = pd.read_csv(paths[name])
        assert len(frame) > 0
        assert "customer_id" in frame.columns
    tx = pd.read_csv(paths["transactions"])
    assert pd.to_datetime(tx["event_timestamp"]).dt.tz is not None
    assert (paths["generator"].exists())
    assert (paths["readme"].exists())


@pytest.mark.parametrize("overrides", [{"fmt": "xlsx"}, {"customers": 0}, {"days": 0}, {"shift_days": -1}])
def test_bad_config_is_a_persona_error(overrides: dict[str, object]) -> None:
    # given / when / then
    with pytest.raises(PersonaError):
        _config(**overrides)


def test_start_is_normalized_to_utc_midnight() -> None:
    # given / when
    config = _config(start=dt.datetime(2024, 3, 5, 17, 30))

    # then
    assert pd.Timestamp(config.start) == pd.Timestamp("2024-03-05", tz="UTC")
