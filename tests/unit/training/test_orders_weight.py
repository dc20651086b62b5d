"""BG/NBD's weight in the served expected orders: the grid, the RMSE criterion, the inner split, fallback, override."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.config import PersonaParams, TrainConfig, XGBParams
from training.orders_weight import (
    DEFAULT_ORDERS_WEIGHT,
    WEIGHT_GRID,
    best_weight,
    choose_orders_weight,
    inner_split,
    rmse_by_weight,
)

HORIZON = 90


def _snapshots(*days: str, rows: int = 3) -> pd.DataFrame:
    """``rows`` labelled rows at each snapshot day."""
    return pd.DataFrame(
        {
            "customer_id": [c for _ in days for c in range(rows)],
            "event_timestamp": [pd.Timestamp(d, tz="UTC") for d in days for _ in range(rows)],
            "future_orders": 1.0,
        }
    )


def test_the_grid_is_0_to_1_in_steps_of_005_and_each_weight_is_scored() -> None:
    # given the grid
    # then it runs 0, 0.05, ..., 1 (21 weights, the default among them)
    assert len(WEIGHT_GRID) == 21
    assert WEIGHT_GRID[0] == 0.0
    assert WEIGHT_GRID[-1] == 1.0
    assert np.allclose(np.diff(WEIGHT_GRID), 0.05)
    assert DEFAULT_ORDERS_WEIGHT in WEIGHT_GRID
    # when a blend is scored, every weight gets its RMSE
    scored = rmse_by_weight(np.array([1.0, 2.0]), np.array([1.0, 2.0]), np.array([2.0, 4.0]))
    assert list(scored) == list(WEIGHT_GRID)
    assert scored[0.0] == 0.0  # the booster alone is exact here
    assert scored[1.0] == pytest.approx(np.sqrt((1 + 4) / 2))  # BG/NBD alone is off by 1 and 2


def test_the_weight_minimises_rmse_not_mae() -> None:
    # given three buyers of nothing and one of ten orders; the booster says 1 each, BG/NBD 3 each
    y = np.array([0.0, 0.0, 0.0, 10.0])
    booster, bgnbd = np.ones(4), np.full(4, 3.0)
    # when the weights are scored (each blend is the constant 3**w)
    scored = rmse_by_weight(y, booster, bgnbd)
    # then the pick is the blend nearest the mean 2.5 (w=0.85: 3**0.85=2.54), which RMSE rewards;
    # MAE would keep the median-like booster (w=0)
    assert best_weight(scored) == 0.85
    assert scored[0.85] == pytest.approx(np.sqrt(np.mean((3**0.85 - y) ** 2)))


def test_a_tie_goes_to_the_weight_nearest_the_default() -> None:
    # given equal RMSE at 0.3, 0.45 and 0.7 and worse elsewhere
    scored = {w: 1.0 for w in WEIGHT_GRID} | {0.3: 0.5, 0.45: 0.5, 0.7: 0.5}
    # then the tie goes to 0.45, the nearest the default 0.5
    assert best_weight(scored) == 0.45


def test_the_inner_split_is_purged_like_the_outer_one() -> None:
    # given snapshots 90 days and 89 days before the latest training snapshot, and one long before
    train = _snapshots("1997-01-01", "1997-04-02", "1997-04-03", "1997-07-01")
    # when the latest is held out as inner validation with the purge rule
    split = inner_split(train, HORIZON, purge=True, snapshots=1, min_snapshots=2, min_rows=1)
    # then inner training keeps the snapshot whose window ends exactly at it (04-02 + 90 = 07-01), not 04-03
    assert not isinstance(split, str)
    inner, validation = split
    assert sorted(inner["event_timestamp"].dt.strftime("%m-%d").unique()) == ["01-01", "04-02"]
    assert set(validation["event_timestamp"].dt.strftime("%m-%d")) == {"07-01"}
    # and without purge every earlier snapshot trains
    unpurged = inner_split(train, HORIZON, purge=False, snapshots=1, min_snapshots=2, min_rows=1)
    assert not isinstance(unpurged, str)
    assert unpurged[0]["event_timestamp"].nunique() == 3


def test_no_inner_split_when_too_few_snapshots_or_rows_end_before_it() -> None:
    # given one snapshot 90 days before the latest and one 89 days before
    train = _snapshots("1997-04-02", "1997-04-03", "1997-07-01")
    # when two purged inner training snapshots are needed
    why = inner_split(train, HORIZON, purge=True, snapshots=1, min_snapshots=2, min_rows=1)
    # then there is none, and the reason says so
    assert isinstance(why, str)
    assert "1 training snapshot(s) and 3 row(s)" in why
    # one is enough when one is needed, but not with fewer rows than asked
    assert not isinstance(inner_split(train, HORIZON, purge=True, snapshots=1, min_snapshots=1, min_rows=3), str)
    assert isinstance(inner_split(train, HORIZON, purge=True, snapshots=1, min_snapshots=1, min_rows=4), str)
    # and a single training snapshot leaves nothing to validate on
    assert isinstance(inner_split(_snapshots("1997-07-01"), HORIZON, True, 1, 1, 1), str)


def test_a_fixed_weight_skips_the_search() -> None:
    # given a run whose weight is set (and training rows a search could use)
    train = _snapshots("1997-01-01", "1997-04-02", "1997-07-01")
    config = TrainConfig(horizon_days=HORIZON, xgb=XGBParams(btyd_orders_weight=0.2))
    # when the weight is chosen
    choice = choose_orders_weight(train, [], config)
    # then it is the fixed one, and only the weight is logged
    assert (choice.weight, choice.source) == (0.2, "fixed")
    assert choice.metrics() == {"orders_weight": 0.2}
    assert choice.params() == {"orders_weight_source": "fixed"}


def test_without_an_inner_split_the_weight_is_the_default_and_says_why() -> None:
    config = TrainConfig(horizon_days=HORIZON)
    # given a customer split
    choice = choose_orders_weight(_snapshots("1997-01-01", "1997-04-02", "1997-07-01"), [], config, time_split=False)
    # then the default, the fallback and its reason
    assert (choice.weight, choice.source) == (DEFAULT_ORDERS_WEIGHT, "fallback")
    assert "customer split" in choice.params()["orders_weight_reason"]
    # given a time split with too few snapshots before the inner validation
    choice = choose_orders_weight(_snapshots("1997-04-02", "1997-07-01"), [], config)
    assert (choice.weight, choice.source) == (DEFAULT_ORDERS_WEIGHT, "fallback")
    assert "before the inner validation snapshot 1997-07-01" in choice.line()
    assert choice.metrics() == {"orders_weight": DEFAULT_ORDERS_WEIGHT}


@pytest.fixture(scope="module")
def cdnow_train() -> pd.DataFrame:
    from bench.realdata_bench import cdnow_transactions
    from features.transforms.behavior import compute_behavior_features
    from training.labels import make_labels

    tx = cdnow_transactions(full=False)
    tx = tx[tx["customer_id"] <= 800].reset_index(drop=True)
    ids = np.sort(tx["customer_id"].unique())
    times = ("1997-06-01", "1997-09-01", "1997-12-01")
    entities = pd.DataFrame(
        [(c, pd.Timestamp(t, tz="UTC")) for t in times for c in ids], columns=["customer_id", "event_timestamp"]
    )
    return make_labels(compute_behavior_features(entities, tx), tx, HORIZON)


def test_the_search_keeps_the_lowest_inner_rmse_on_real_orders(cdnow_train: pd.DataFrame) -> None:
    from training.data import feature_columns_of

    config = TrainConfig(horizon_days=HORIZON, xgb=XGBParams(n_estimators=30), personas=PersonaParams(k_min=2, k_max=3))
    # given CDNOW rows at three snapshots 90+ days apart
    # when the weight is searched
    choice = choose_orders_weight(cdnow_train, feature_columns_of(cdnow_train), config)
    # then it is the weight of the grid with the lowest RMSE on the latest snapshot (1997-12-01)
    assert choice.source == "searched"
    assert list(choice.inner_rmse) == list(WEIGHT_GRID)
    assert choice.inner_rmse[choice.weight] == min(choice.inner_rmse.values())
    assert "inner validation 1997-12-01" in choice.reason
    assert "inner training 2 snapshots" in choice.reason
    # and the run logs the weight, the best and the default's inner RMSE and each weight's
    metrics = choice.metrics()
    assert metrics["orders_weight"] == choice.weight
    assert metrics["orders_weight_inner_rmse_default"] == choice.inner_rmse[DEFAULT_ORDERS_WEIGHT]
    assert metrics["orders_weight_inner_rmse_w085"] == choice.inner_rmse[0.85]
    assert choice.params()["orders_weight_source"] == "searched"
    # and the inner validation's labels decide it: reversing who bought changes the RMSE
    latest = cdnow_train["event_timestamp"] == cdnow_train["event_timestamp"].max()
    scrambled = cdnow_train.copy()
    scrambled.loc[latest, "future_orders"] = scrambled.loc[latest, "future_orders"].to_numpy()[::-1]
    again = choose_orders_weight(scrambled, feature_columns_of(cdnow_train), config)
    assert again.inner_rmse != choice.inner_rmse
