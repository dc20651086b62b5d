"""The training plan: short spans adapt or refuse, --as-of beyond the data, one-time labels, snapshots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.errors import PersonaError
from training.config import TrainConfig
from training.plan import (
    DataFacts,
    after_training_window,
    assign,
    check_as_of,
    plan_custom,
    plan_snapshots,
    with_counts,
)

START = pd.Timestamp("2025-01-01", tz="UTC")
END = pd.Timestamp("2025-12-31 18:00", tz="UTC")


def _weekly_counts(as_of: pd.Timestamp, horizon: int, customers: int = 450) -> pd.Series:
    """Rows per label-complete weekly snapshot of a log from START to ``as_of``."""
    times = pd.date_range(START + pd.Timedelta(days=1), as_of - pd.Timedelta(days=horizon), freq="7D")
    return pd.Series(customers, index=times)


def _facts() -> DataFacts:
    return DataFacts(START, END, END, 7)


def test_a_long_horizon_on_a_year_never_trains_on_one_snapshot_in_silence() -> None:
    # given a 12-month log and a 181-day horizon (the purge leaves one training snapshot)
    counts = _weekly_counts(END, 181)
    # when
    plan = plan_snapshots(counts, _facts(), TrainConfig(horizon_days=181))
    # then the plan switches to a customer split at the same dates and says why
    assert plan.split == "customer"
    assert len(plan.train_times) > 1
    assert plan.notes
    assert "adapted" in plan.notes[0]
    assert "1 training snapshot" in plan.notes[0]
    assert any("customer" in line for line in plan.lines())


def test_a_horizon_the_data_cannot_hold_is_refused_with_the_fix() -> None:
    # given a year of data and too few customers for even a customer split
    counts = _weekly_counts(END, 300, customers=40)
    # when / then the one line names a horizon that fits
    with pytest.raises(PersonaError, match=r"--horizon-days 182 or less"):
        plan_snapshots(counts, _facts(), TrainConfig(horizon_days=300))
    with pytest.raises(PersonaError, match="no snapshot has a complete 400-day label window"):
        plan_snapshots(pd.Series([], dtype="int64"), _facts(), TrainConfig(horizon_days=400))


def test_enough_history_keeps_the_time_split_with_the_purge_stated() -> None:
    # given a year and a 28-day horizon
    counts = _weekly_counts(END, 28)
    # when
    plan = plan_snapshots(counts, _facts(), TrainConfig(horizon_days=28, train_snapshots=5))
    # then the latest snapshot is the holdout, the overlapping ones are purged and named
    assert plan.split == "time"
    assert plan.holdout_times == (counts.index[-1],)
    assert len(plan.purged_times) == 3  # 7, 14 and 21 days before the holdout (28 ends exactly on it)
    assert all(t + pd.Timedelta(days=28) <= plan.holdout_times[0] for t in plan.train_times)
    assert not plan.notes


def test_train_snapshots_changes_the_plan() -> None:
    # given the same data
    counts = _weekly_counts(END, 28)
    # when two runs ask for different numbers of training snapshots
    few = plan_snapshots(counts, _facts(), TrainConfig(horizon_days=28, train_snapshots=2))
    many = plan_snapshots(counts, _facts(), TrainConfig(horizon_days=28, train_snapshots=6))
    # then
    assert (len(few.train_times), len(many.train_times)) == (2, 6)
    assert few.train_times == many.train_times[-2:]


def test_as_of_after_the_last_event_is_refused_with_the_end_date() -> None:
    # when / then
    with pytest.raises(PersonaError, match=r"after the data's last event \(2025-12-31\).*--as-of 2025-12-31"):
        check_as_of(pd.Timestamp("2026-03-01", tz="UTC"), END)
    check_as_of(pd.Timestamp("2025-12-31", tz="UTC"), END)  # the last day itself is fine


def _one_time_labels(customers: int = 500, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "customer_id": np.arange(1, customers + 1, dtype="int64"),
            "event_timestamp": pd.Timestamp("2024-06-30", tz="UTC"),
            "churn": (rng.random(customers) < 0.2).astype(int),
        }
    )


def test_labels_at_one_time_get_a_stratified_seeded_customer_split() -> None:
    # given labels of 500 customers, all at one date
    frame = _one_time_labels()
    config = TrainConfig(labels_path=Path("l.csv"), target="churn", holdout_fraction=0.2, seed=11)
    # when
    plan = plan_custom(frame["event_timestamp"].value_counts(), config)
    train, holdout = assign(frame, plan, label="churn")
    again = assign(frame, plan, label="churn")[1]
    # then customers never straddle, the split is stratified and seeded, and the plan says so
    assert plan.split == "customer"
    assert "stratified" in plan.split_reason
    assert not set(frame.loc[train, "customer_id"]) & set(frame.loc[holdout, "customer_id"])
    assert (train | holdout).all()
    assert holdout.sum() == pytest.approx(100, abs=2)
    assert frame.loc[holdout, "churn"].mean() == pytest.approx(frame["churn"].mean(), abs=0.01)
    assert (again == holdout).all()
    counted = with_counts(plan, frame.loc[train, "churn"], frame.loc[holdout, "churn"], classifier=True)
    assert (counted.train_rows, counted.holdout_rows) == (int(train.sum()), int(holdout.sum()))


def test_labels_at_many_times_keep_the_time_split() -> None:
    # given labels at five dates
    frame = pd.concat(
        [_one_time_labels(50).assign(event_timestamp=pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(days=d))
         for d in range(0, 50, 10)],
        ignore_index=True,
    )
    config = TrainConfig(labels_path=Path("l.csv"), target="churn")
    # when
    plan = plan_custom(frame["event_timestamp"].value_counts(), config)
    # then the latest date is the holdout and no purge is claimed for an unknown window
    assert plan.split == "time"
    assert plan.holdout_times == (pd.Timestamp("2024-02-10", tz="UTC"),)
    assert plan.horizon_days is None
    assert "plan.purged_snapshots" not in plan.tags()


def test_a_side_without_enough_of_a_class_is_refused() -> None:
    # given a plan whose holdout holds two positives
    frame = _one_time_labels()
    plan = plan_custom(frame["event_timestamp"].value_counts(), TrainConfig(labels_path=Path("l"), target="churn"))
    # when / then
    with pytest.raises(PersonaError, match="holdout rows hold 2 positive"):
        with_counts(plan, pd.Series([0, 1] * 50), pd.Series([1, 1] + [0] * 50), classifier=True)


class _Bundle:
    def __init__(self, train_end: str | None) -> None:
        self.metadata = {} if train_end is None else {"data.train_end": train_end}


def test_the_champion_is_scored_only_after_its_training_window() -> None:
    # given holdout rows at three dates
    times = pd.to_datetime(["2024-01-07", "2024-01-14", "2024-01-21"], utc=True)
    holdout = pd.DataFrame({"customer_id": [1, 2, 3], "event_timestamp": times})
    # when / then rows at or before the champion's last training snapshot are dropped
    rows, why = after_training_window(_Bundle("2024-01-14 00:00:00+00:00"), holdout)
    assert (why, list(rows["customer_id"])) == ("", [3])
    rows, why = after_training_window(_Bundle("2024-01-21 00:00:00+00:00"), holdout)
    assert rows.empty
    assert "none later" in why
    assert "not recorded" in after_training_window(_Bundle(None), holdout)[1]
