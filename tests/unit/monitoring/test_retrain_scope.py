"""The retrain scope: supervised models wait until matured labels cover the drifted period."""

from __future__ import annotations

import pandas as pd
import pytest

from monitoring.retrain_scope import LABEL_FREE, drift_onset, retrain_scope, waits_for_labels


def _day(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def test_right_after_the_shift_only_label_free_parts_refresh_and_the_wait_date_is_printed() -> None:
    # given: drift from 1 March, labels known to 10 March, a 28-day horizon, weekly snapshots
    # when
    scope = retrain_scope("2025-03-01", "2025-03-10", horizon_days=28, snapshot_every_days=7)

    # then: train on the 1 March snapshot (labelled 29 March), holdout 29 March (labelled 26 April)
    assert not scope.supervised
    assert scope.refresh == LABEL_FREE
    assert scope.train_from == _day("2025-03-01")
    assert scope.holdout_from == _day("2025-03-29")
    assert scope.ready_at == _day("2025-04-26")
    assert "churn and value wait for labels until 2025-04-26" in scope.summary()
    assert "personas" in scope.summary()


def test_once_labels_cover_training_and_holdout_after_the_shift_it_retrains() -> None:
    # when: the data reach the ready date
    scope = retrain_scope("2025-03-01", "2025-04-26", horizon_days=28, snapshot_every_days=7)

    # then
    assert scope.supervised
    assert scope.summary().startswith("labels cover the drift since 2025-03-01: retrain churn and value")
    assert not retrain_scope("2025-03-01", "2025-04-25 23:59", horizon_days=28, snapshot_every_days=7).supervised


def test_the_snapshot_grid_places_the_windows_and_an_unpurged_split_waits_less() -> None:
    # given: snapshots every 7 days from 3 March (the drift began between two of them)
    grid = pd.date_range("2025-01-06", periods=20, freq="7D", tz="UTC")

    # when
    purged = retrain_scope("2025-03-01", "2025-03-10", 28, 7, snapshots=grid)
    unpurged = retrain_scope("2025-03-01", "2025-03-10", 28, 7, snapshots=grid, purge=False)

    # then: the first post-shift snapshot is 3 March; without purge the holdout is the next one
    assert purged.train_from == _day("2025-03-03")
    assert purged.holdout_from == _day("2025-03-31")
    assert purged.ready_at == _day("2025-04-28")
    assert unpurged.holdout_from == _day("2025-03-10")
    assert unpurged.ready_at == _day("2025-04-07")


def test_more_post_shift_snapshots_push_the_date_back_by_the_cadence() -> None:
    # when
    one = retrain_scope("2025-03-01", "2025-03-10", 28, 7)
    two_each = retrain_scope("2025-03-01", "2025-03-10", 28, 7, train_snapshots=2, holdout_snapshots=2)

    # then
    assert two_each.ready_at - one.ready_at == pd.Timedelta(days=14)


def test_a_zero_horizon_is_refused() -> None:
    # when / then
    with pytest.raises(ValueError, match="horizon_days"):
        retrain_scope("2025-03-01", "2025-03-10", 0, 7)


def test_the_onset_is_the_first_drifted_snapshot_since_the_last_clean_run() -> None:
    # given runs that found 3 Feb clean, 10 and 17 Feb drifted, and a run of another era before
    history = [("2025-01-06", True), ("2025-02-03", False), ("2025-02-10", True), ("2025-02-17", True)]

    # when / then: the onset is 10 Feb, never earlier than drift was seen
    assert drift_onset("2025-02-24", history) == _day("2025-02-10")
    assert drift_onset("2025-02-24", []) == _day("2025-02-24")
    assert drift_onset("2025-02-24", [("2025-02-24", False)]) == _day("2025-02-24")


def test_a_summary_without_label_free_refresh_names_only_the_wait() -> None:
    # when
    scope = retrain_scope("2025-03-01", "2025-03-10", 28, 7, refresh=())

    # then
    assert scope.summary().startswith("churn and value wait for labels until 2025-04-26")
    assert scope.to_dict()["ready_at"].startswith("2025-04-26")


def test_only_a_quality_drop_retrains_before_labels_cover_the_drift() -> None:
    # given drift seen on 1 March, labels known to 10 March
    early = retrain_scope("2025-03-01", "2025-03-10", 28, 7)

    # when / then: feature drift waits; a drop measured on matured labels does not; nor does an unknown scope
    assert waits_for_labels(early, ("feature_share", "key_feature:recency_days"))
    assert not waits_for_labels(early, ("feature_share", "quality"))
    assert not waits_for_labels(None, ("feature_share",))
    assert not waits_for_labels(retrain_scope("2025-03-01", "2025-04-26", 28, 7), ("feature_share",))
