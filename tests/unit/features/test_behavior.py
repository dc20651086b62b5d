"""Behavior features: hand-computed windows, leakage, and a brute-force cross-check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import PersonaError
from features.transforms.behavior import (
    BEHAVIOR_FEATURES,
    build_entity_snapshots,
    compute_behavior_features,
)

T = pd.Timestamp("2024-06-30", tz="UTC")
DAY = pd.Timedelta(days=1)


def ts(*values: object) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(list(values), utc=True))


def tx_frame(rows: list[tuple], **extra: list) -> pd.DataFrame:
    """rows: (customer_id, timestamp, amount)."""
    frame = pd.DataFrame(rows, columns=["customer_id", "event_timestamp", "amount"])
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    frame["amount"] = frame["amount"].astype(float)
    for name, values in extra.items():
        frame[name] = values
    return frame


def events(rows: list[tuple], columns: tuple[str, ...] = ("customer_id", "event_timestamp")) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(columns))
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    return frame


def entities(*rows: tuple[int, pd.Timestamp]) -> pd.DataFrame:
    return pd.DataFrame(
        {"customer_id": [r[0] for r in rows], "event_timestamp": pd.DatetimeIndex([r[1] for r in rows])}
    )


def one_row(features: pd.DataFrame) -> pd.Series:
    assert len(features) == 1
    return features.iloc[0]


# ---------------------------------------------------------------- hand-computed


def test_window_edges_event_at_t_counts_at_t_minus_30d_does_not_after_t_never() -> None:
    # given: orders exactly at t, exactly at t-30d, exactly at t-90d, at t-365d, and just after t
    tx = tx_frame(
        [
            (1, T, 1.0),
            (1, T - 30 * DAY, 10.0),
            (1, T - 90 * DAY, 100.0),
            (1, T - 365 * DAY, 1000.0),
            (1, T + pd.Timedelta(nanoseconds=1), 10_000.0),
        ]
    )
    # when
    row = one_row(compute_behavior_features(entities((1, T)), tx))
    # then
    assert (row.orders_30d, row.orders_90d, row.orders_365d) == (1, 2, 3)
    assert (row.spend_30d, row.spend_90d, row.spend_365d) == (1.0, 11.0, 111.0)
    assert row.recency_days == 0.0


def test_recency_tenure_and_mean_gap() -> None:
    # given: signup on day 0, orders on days 10, 20 and 40; snapshot on day 50
    signup = pd.Timestamp("2020-01-01", tz="UTC")
    customers = pd.DataFrame({"customer_id": [7], "signup_date": [signup]})
    tx = tx_frame([(7, signup + 10 * DAY, 5.0), (7, signup + 20 * DAY, 5.0), (7, signup + 40 * DAY, 5.0)])
    # when
    row = one_row(compute_behavior_features(entities((7, signup + 50 * DAY)), tx, customers=customers))
    # then
    assert row.recency_days == pytest.approx(10.0)
    assert row.tenure_days == pytest.approx(50.0)
    assert row.mean_days_between_orders == pytest.approx(15.0)  # gaps 10 and 20


def test_tenure_without_customers_uses_first_event_of_any_table() -> None:
    # given: a session 12 h before the first order
    tx = tx_frame([(1, T - 2 * DAY, 3.0)])
    sessions = events([(1, T - 2.5 * DAY)])
    # when
    row = one_row(compute_behavior_features(entities((1, T)), tx, sessions=sessions))
    # then
    assert row.tenure_days == pytest.approx(2.5)


def test_customer_without_orders_gets_zero_counts_and_nan_ratios() -> None:
    # given: customer 2 has no events at all, customer 1 only orders after t
    tx = tx_frame([(1, T + DAY, 3.0)], returned=[True], discount=[0.5])
    # when
    features = compute_behavior_features(entities((1, T), (2, T)), tx)
    # then
    for _, row in features.iterrows():
        assert (row.orders_30d, row.orders_90d, row.orders_365d, row.sessions_30d, row.review_count_365d) == (
            0,
            0,
            0,
            0,
            0,
        )
        assert row.spend_365d == 0.0
        assert row.order_trend == 1.0
        for name in (
            "recency_days",
            "tenure_days",
            "avg_order_value_365d",
            "mean_days_between_orders",
            "return_share_365d",
            "discount_share_365d",
            "mean_rating_365d",
        ):
            assert np.isnan(row[name]), name


def test_order_trend_avg_value_and_shares() -> None:
    # given: 3 orders in the last 30 days, 4 in (t-90d, t-30d]; 2 returned, 1 discounted
    recent = [(1, T - k * DAY, 10.0 * k) for k in (1, 2, 3)]
    older = [(1, T - k * DAY, 1.0) for k in (31, 40, 50, 89)]
    tx = tx_frame(
        recent + older,
        returned=[True, False, None, False, True, False, False],
        discount=[0.0, 0.2, np.nan, 0.0, 0.0, 0.0, 0.0],
    )
    # when
    row = one_row(compute_behavior_features(entities((1, T)), tx))
    # then
    assert row.order_trend == pytest.approx((3 + 1) / (4 / 2 + 1))
    assert row.avg_order_value_365d == pytest.approx((60.0 + 4.0) / 7)
    assert row.return_share_365d == pytest.approx(2 / 7)
    assert row.discount_share_365d == pytest.approx(1 / 7)


def test_shares_are_nan_when_columns_absent() -> None:
    # given: orders but neither returned nor discount columns
    tx = tx_frame([(1, T - DAY, 10.0)])
    # when
    row = one_row(compute_behavior_features(entities((1, T)), tx))
    # then
    assert np.isnan(row.return_share_365d)
    assert np.isnan(row.discount_share_365d)


def test_sessions_and_reviews_windows() -> None:
    # given: sessions at t, t-30d, t-60d, t+1d; reviews at t (rating 4), t-100d (no rating), t-365d (rating 1)
    sessions = events([(1, T), (1, T - 30 * DAY), (1, T - 60 * DAY), (1, T + DAY)])
    reviews = events(
        [(1, T, "ok", 4.0), (1, T - 100 * DAY, "meh", np.nan), (1, T - 365 * DAY, "bad", 1.0)],
        ("customer_id", "event_timestamp", "text", "rating"),
    )
    # when
    row = one_row(
        compute_behavior_features(entities((1, T)), tx_frame([]), sessions=sessions, reviews=reviews)
    )
    # then
    assert (row.sessions_30d, row.sessions_90d) == (1, 3)
    assert row.review_count_365d == 2
    assert row.mean_rating_365d == pytest.approx(4.0)


def test_reviews_without_rating_column_give_nan_mean() -> None:
    # given
    reviews = events([(1, T - DAY, "fine")], ("customer_id", "event_timestamp", "text"))
    # when
    row = one_row(compute_behavior_features(entities((1, T)), tx_frame([]), reviews=reviews))
    # then
    assert row.review_count_365d == 1
    assert np.isnan(row.mean_rating_365d)


def test_output_keeps_order_index_and_dtypes() -> None:
    # given: unsorted entities with a custom index
    tx = tx_frame([(2, T - DAY, 1.0), (1, T - 2 * DAY, 2.0)])
    ents = entities((2, T), (1, T), (2, T - 10 * DAY)).set_axis([10, 5, 7])
    # when
    features = compute_behavior_features(ents, tx)
    # then
    assert list(features.index) == [10, 5, 7]
    assert list(features.customer_id) == [2, 1, 2]
    assert list(features.columns) == ["customer_id", "event_timestamp", *BEHAVIOR_FEATURES]
    assert list(features.spend_30d) == [1.0, 2.0, 0.0]
    for name, kind in BEHAVIOR_FEATURES.items():
        assert features[name].dtype == (np.int64 if kind == "int" else np.float32), name
    assert str(features.event_timestamp.dtype).startswith("datetime64")
    assert features.event_timestamp.dt.tz


def test_dataset_from_1997() -> None:
    # given: a 1997 log with microsecond-unit timestamps and naive signup dates
    t = pd.Timestamp("1997-03-01", tz="UTC")
    tx = tx_frame([(1, "1997-02-20", 20.0), (1, "1997-01-01", 5.0), (2, "1996-11-15", 7.5)])
    tx["event_timestamp"] = tx["event_timestamp"].dt.as_unit("us")
    customers = pd.DataFrame(
        {"customer_id": [1, 2], "signup_date": pd.to_datetime(["1996-12-01", "1996-11-01"])}
    )
    snaps = pd.DatetimeIndex([t - 7 * DAY, t])
    # when
    ents = build_entity_snapshots(customers, tx, snaps)
    features = compute_behavior_features(ents, tx, customers=customers)
    # then
    last = features[features.event_timestamp == t].set_index("customer_id")
    assert last.loc[1, "orders_90d"] == 2
    assert last.loc[1, "recency_days"] == pytest.approx(9.0)
    assert last.loc[1, "tenure_days"] == pytest.approx(90.0)
    assert last.loc[2, "orders_90d"] == 0
    assert last.loc[2, "orders_365d"] == 1
    assert last.loc[2, "spend_365d"] == pytest.approx(7.5)


def test_missing_column_raises_persona_error() -> None:
    # given
    tx = tx_frame([(1, T, 1.0)]).drop(columns="amount")
    # when / then
    with pytest.raises(PersonaError, match="amount"):
        compute_behavior_features(entities((1, T)), tx)


# ---------------------------------------------------------------- entity snapshots


def test_entity_snapshots_follow_signup_or_first_transaction() -> None:
    # given: 1 signs up before snapshot 2; 2 is not in customers and buys before snapshot 3;
    # 3 signs up after the last snapshot; 4 signs up exactly at snapshot 1
    snaps = ts("2024-01-07", "2024-01-14", "2024-01-21")
    customers = pd.DataFrame(
        {
            "customer_id": [1, 3, 4],
            "signup_date": pd.to_datetime(["2024-01-10", "2024-02-01", "2024-01-07"], utc=True),
        }
    )
    tx = tx_frame([(2, "2024-01-20", 1.0), (1, "2024-01-12", 1.0)])
    # when
    ents = build_entity_snapshots(customers, tx, snaps)
    # then
    got = list(zip(ents.customer_id, ents.event_timestamp.dt.strftime("%m-%d"), strict=True))
    assert got == [(1, "01-14"), (1, "01-21"), (2, "01-21"), (4, "01-07"), (4, "01-14"), (4, "01-21")]


def test_entity_snapshots_without_customers_use_first_transaction() -> None:
    # given
    snaps = ts("2024-01-07", "2024-01-14")
    tx = tx_frame([(5, "2024-01-07", 1.0), (6, "2024-01-08", 1.0), (6, "2024-01-01", 1.0)])
    # when
    ents = build_entity_snapshots(None, tx, snaps)
    # then
    assert list(ents.customer_id) == [5, 5, 6, 6]
    assert ents.event_timestamp.dt.tz is not None


# ---------------------------------------------------------------- brute force


def naive_features(
    ents: pd.DataFrame,
    tx: pd.DataFrame,
    sessions: pd.DataFrame | None,
    reviews: pd.DataFrame | None,
    customers: pd.DataFrame | None,
) -> pd.DataFrame:
    """Row-by-row reference built from the definitions with plain pandas filtering."""
    rows = []
    for c, t in zip(ents.customer_id, ents.event_timestamp, strict=True):
        mine = tx[(tx.customer_id == c) & (tx.event_timestamp <= t)].sort_values("event_timestamp")

        def last(days: int, frame: pd.DataFrame = mine, t: pd.Timestamp = t) -> pd.DataFrame:
            return frame[frame.event_timestamp > t - pd.Timedelta(days=days)]

        o30, o90, o365 = last(30), last(90), last(365)
        starts = [mine.event_timestamp.min()]
        for table in (sessions, reviews):
            if table is not None:
                starts.append(
                    table[(table.customer_id == c) & (table.event_timestamp <= t)].event_timestamp.min()
                )
        if customers is not None:
            signup = customers.loc[customers.customer_id == c, "signup_date"]
            starts += [s for s in signup if s <= t]
        starts = [s for s in starts if pd.notna(s)]
        gaps = mine.event_timestamp.diff().dropna() / pd.Timedelta(days=1)
        row = {
            "recency_days": (t - mine.event_timestamp.max()) / pd.Timedelta(days=1) if len(mine) else np.nan,
            "tenure_days": (t - min(starts)) / pd.Timedelta(days=1) if starts else np.nan,
            "orders_30d": len(o30),
            "orders_90d": len(o90),
            "orders_365d": len(o365),
            "orders_total": len(mine),
            "first_order_days": (t - mine.event_timestamp.min()) / pd.Timedelta(days=1) if len(mine) else np.nan,
            "spend_30d": o30.amount.sum(),
            "spend_90d": o90.amount.sum(),
            "spend_365d": o365.amount.sum(),
            "avg_order_value_365d": o365.amount.mean() if len(o365) else np.nan,
            "order_trend": (len(o30) + 1) / ((len(o90) - len(o30)) / 2 + 1),
            "mean_days_between_orders": gaps.mean() if len(mine) >= 2 else np.nan,
            "return_share_365d": o365.returned.map(lambda v: bool(v) if pd.notna(v) else False).mean()
            if len(o365)
            else np.nan,
            "discount_share_365d": (o365.discount.fillna(0) > 0).mean() if len(o365) else np.nan,
        }
        if sessions is None:
            row["sessions_30d"] = row["sessions_90d"] = 0
        else:
            s = sessions[(sessions.customer_id == c) & (sessions.event_timestamp <= t)]
            row["sessions_30d"] = len(last(30, s))
            row["sessions_90d"] = len(last(90, s))
        r = reviews[(reviews.customer_id == c) & (reviews.event_timestamp <= t)]
        r365 = last(365, r)
        row["review_count_365d"] = len(r365)
        row["mean_rating_365d"] = r365.rating.mean() if r365.rating.notna().any() else np.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=list(BEHAVIOR_FEATURES))


def random_tables(rng: np.random.Generator, n_customers: int, n_tx: int) -> dict[str, pd.DataFrame]:
    """Small random tables on a 5-day grid, so duplicate timestamps and exact 30/90/365-day edges occur."""
    base = pd.Timestamp("2001-01-01", tz="UTC")

    def times(n: int) -> pd.Series:
        return pd.Series(base + pd.to_timedelta(rng.integers(0, 160, n) * 5, unit="D"))

    tx = pd.DataFrame(
        {
            "customer_id": rng.integers(0, n_customers, n_tx),
            "event_timestamp": times(n_tx),
            "amount": rng.integers(0, 50, n_tx).astype(float),
            "returned": rng.choice(np.array([True, False, None], dtype=object), n_tx),
            "discount": rng.choice([0.0, 0.1, np.nan], n_tx),
        }
    )
    n_s, n_r = n_tx // 2, n_tx // 3
    sessions = pd.DataFrame({"customer_id": rng.integers(0, n_customers, n_s), "event_timestamp": times(n_s)})
    reviews = pd.DataFrame(
        {
            "customer_id": rng.integers(0, n_customers, n_r),
            "event_timestamp": times(n_r),
            "text": "x",
            "rating": rng.choice([1.0, 3.0, 5.0, np.nan], n_r),
        }
    )
    customers = pd.DataFrame(
        {"customer_id": np.arange(n_customers), "signup_date": times(n_customers).to_numpy()}
    )
    # entity rows include customers with no events at all (ids beyond the range) and repeated rows
    ents = pd.DataFrame(
        {
            "customer_id": rng.integers(0, n_customers + 3, 60),
            "event_timestamp": times(60),
        }
    )
    return {"tx": tx, "sessions": sessions, "reviews": reviews, "customers": customers, "ents": ents}


@pytest.mark.parametrize("seed", range(6))
def test_vectorized_matches_brute_force(seed: int) -> None:
    # given
    rng = np.random.default_rng(seed)
    d = random_tables(rng, n_customers=8, n_tx=int(rng.integers(0, 120)))
    with_optional = seed % 2 == 0
    sessions = d["sessions"] if with_optional else None
    customers = d["customers"] if with_optional else None
    # when
    got = compute_behavior_features(d["ents"], d["tx"], sessions, d["reviews"], customers)
    # then
    expected = naive_features(d["ents"], d["tx"], sessions, d["reviews"], customers)
    for name in BEHAVIOR_FEATURES:
        np.testing.assert_allclose(
            got[name].to_numpy(dtype=float), expected[name].to_numpy(dtype=float), rtol=1e-5, err_msg=name
        )


def test_chunked_queries_match_single_pass_and_report_progress() -> None:
    # given
    d = random_tables(np.random.default_rng(11), n_customers=8, n_tx=100)
    calls: list[tuple[int, int]] = []
    # when
    whole = compute_behavior_features(d["ents"], d["tx"], d["sessions"], d["reviews"], d["customers"])
    chunked = compute_behavior_features(
        d["ents"],
        d["tx"],
        d["sessions"],
        d["reviews"],
        d["customers"],
        chunk_rows=7,
        on_progress=lambda done, total: calls.append((done, total)),
    )
    # then
    pd.testing.assert_frame_equal(whole, chunked)
    assert calls[0] == (7, 60)
    assert calls[-1] == (60, 60)
    assert len(calls) == 9


def test_output_does_not_share_memory_with_input() -> None:
    # given
    ents = entities((1, T))
    features = compute_behavior_features(ents, tx_frame([(1, T, 1.0)]))
    # when
    features.loc[0, "customer_id"] = 99
    # then
    assert ents.loc[0, "customer_id"] == 1


# ---------------------------------------------------------------- leakage


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    future=st.lists(
        st.tuples(
            st.integers(0, 5),  # customer
            st.integers(1, 10**18),  # ns after t
            st.floats(0, 1e6, allow_nan=False),
            st.sampled_from(["tx", "sessions", "reviews"]),
        ),
        min_size=1,
        max_size=20,
    ),
)
def test_events_after_t_never_change_features_at_t(seed: int, future: list) -> None:
    # given: random history, and features at t
    rng = np.random.default_rng(seed)
    d = random_tables(rng, n_customers=4, n_tx=30)
    t = pd.Timestamp("2002-01-01", tz="UTC")
    ents = pd.DataFrame({"customer_id": [0, 1, 2, 3, 4, 5], "event_timestamp": [t] * 6})
    before = compute_behavior_features(ents, d["tx"], d["sessions"], d["reviews"], d["customers"])
    # when: arbitrary events strictly after t are appended
    extra = {"tx": [], "sessions": [], "reviews": []}
    for customer, offset, value, table in future:
        extra[table].append(
            {
                "customer_id": customer,
                "event_timestamp": t + pd.Timedelta(nanoseconds=offset),
                "amount": value,
                "returned": True,
                "discount": 0.5,
                "text": "later",
                "rating": 5.0,
            }
        )
    tables = {}
    for name, rows in extra.items():
        appended = pd.DataFrame(rows)[d[name].columns] if rows else d[name].iloc[:0]
        tables[name] = pd.concat([d[name], appended], ignore_index=True)
    after = compute_behavior_features(
        ents, tables["tx"], tables["sessions"], tables["reviews"], d["customers"]
    )
    # then
    pd.testing.assert_frame_equal(before, after)


# ---------------------------------------------------------------- one customer never moves another


@pytest.mark.parametrize("extreme", [[1e16], [9_999_999.99, 9_999_999.99], [1e308, 1e308]],
                         ids=["1e16", "near-max-amount", "1e308"])
def test_one_customers_extreme_amounts_leave_every_other_customer_bit_identical(extreme: list[float]) -> None:
    # given random tables with fractional amounts, and one more customer with extreme amounts whose
    # entity rows come first (so its events come first in the event index)
    rng = np.random.default_rng(5)
    d = random_tables(rng, n_customers=8, n_tx=400)
    d["tx"]["amount"] = np.round(rng.random(len(d["tx"])) * 300, 2)
    outsider = 999
    extra_tx = pd.DataFrame({
        "customer_id": outsider,
        "event_timestamp": d["tx"]["event_timestamp"].iloc[: len(extreme)].to_numpy(),
        "amount": extreme, "returned": False, "discount": 0.0,
    })
    extra_ents = pd.DataFrame({"customer_id": outsider, "event_timestamp": d["ents"]["event_timestamp"]})
    with_tx = pd.concat([extra_tx, d["tx"]], ignore_index=True)
    with_ents = pd.concat([extra_ents, d["ents"]], ignore_index=True)

    # when
    with_outsider = compute_behavior_features(with_ents, with_tx, d["sessions"], d["reviews"], d["customers"])
    without = compute_behavior_features(d["ents"], d["tx"], d["sessions"], d["reviews"], d["customers"])

    # then every other customer's row is bit-identical
    others = with_outsider[with_outsider["customer_id"] != outsider].reset_index(drop=True)
    assert len(others) == len(without)
    for name in BEHAVIOR_FEATURES:
        np.testing.assert_array_equal(others[name].to_numpy(), without[name].to_numpy(), err_msg=name)
