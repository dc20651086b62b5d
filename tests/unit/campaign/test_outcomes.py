"""Outcome windows are point-in-time: ``(contact, contact + response_days]``, matured windows only."""

from __future__ import annotations

import pandas as pd

from campaign.outcomes import campaign_outcomes

CAMPAIGNS = pd.DataFrame({"campaign_id": ["c1"], "offer": ["discount"], "response_days": [7.0]})
CONTACT = pd.Timestamp("2024-03-01T09:00:00Z")


def _exposures(*customers: int) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": list(customers), "campaign_id": "c1", "event_timestamp": CONTACT,
                         "group": "treatment"})


def _orders(*rows: tuple[int, pd.Timestamp, float]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["customer_id", "event_timestamp", "amount"])


def test_an_order_at_the_last_instant_counts_and_one_after_the_window_never_does() -> None:
    # given customer 1 orders exactly at the window's end, customer 2 one nanosecond later
    end = CONTACT + pd.Timedelta(days=7)
    orders = _orders((1, end, 10.0), (2, end + pd.Timedelta(1, "ns"), 20.0))

    # when
    out = campaign_outcomes(_exposures(1, 2), CAMPAIGNS, orders)

    # then
    assert out[["customer_id", "converted", "orders", "spend"]].values.tolist() == [[1, 1, 1, 10.0],
                                                                                   [2, 0, 0, 0.0]]


def test_an_order_at_the_moment_of_contact_or_before_is_not_an_outcome() -> None:
    # given
    orders = _orders((1, CONTACT, 5.0), (1, CONTACT - pd.Timedelta(days=1), 5.0),
                     (1, CONTACT + pd.Timedelta(hours=1), 3.0), (1, CONTACT + pd.Timedelta(days=2), 4.0))

    # when
    out = campaign_outcomes(_exposures(1), CAMPAIGNS, orders)

    # then
    assert out[["orders", "spend"]].values.tolist() == [[2, 7.0]]


def test_a_window_still_open_at_as_of_has_no_outcome_yet() -> None:
    # given an order inside the window, seen before the window ends
    orders = _orders((1, CONTACT + pd.Timedelta(days=1), 10.0))

    # when
    early = campaign_outcomes(_exposures(1), CAMPAIGNS, orders, as_of=CONTACT + pd.Timedelta(days=6))
    matured = campaign_outcomes(_exposures(1), CAMPAIGNS, orders, as_of=CONTACT + pd.Timedelta(days=7))

    # then the open window is left out, not counted as a non-conversion
    assert early.empty
    assert matured["converted"].tolist() == [1]


def test_orders_recorded_after_as_of_are_not_known_at_as_of() -> None:
    # given a short window that matured, and as_of exactly at its end
    orders = _orders((1, CONTACT + pd.Timedelta(days=7), 10.0))

    # when
    just_before = CONTACT + pd.Timedelta(days=7) - pd.Timedelta(1, "ns")
    out = campaign_outcomes(_exposures(1), CAMPAIGNS, orders, as_of=just_before)

    # then the window had not matured then
    assert out.empty
