"""Drift through Evidently 0.7 on small frames, including the edge cases Evidently would crash on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitoring.drift import column_kind, plan_columns, read_value_drift, run_drift, screen_column, tagged
from monitoring.policy import DriftPolicy

POLICY = DriftPolicy()
PREDICTIONS = {"churn_probability": 0.15}


def frames(n: int = 2000, seed: int = 0, shift: float = 0.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference and current with two numeric features, a category and predictions."""
    rng = np.random.default_rng(seed)

    def one(offset: float) -> pd.DataFrame:
        return pd.DataFrame({
            "customer_id": np.arange(n),
            "recency_days": rng.exponential(20 + 40 * offset, n),
            "spend_90d": rng.gamma(2.0, 50.0, n),
            "region": rng.choice(["north", "south", "east"], n),
            "churn_probability": np.clip(rng.beta(2, 5, n) + offset / 2, 0, 1),
            "persona": rng.choice(["loyal", "at risk"], n, p=[0.6 - offset / 2, 0.4 + offset / 2]),
        })

    return one(0.0), one(shift)


def by_name(run) -> dict:
    return {c.column: c for c in run.summary.columns}


@pytest.fixture(scope="module")
def shifted_run():
    reference, current = frames(shift=0.6, seed=1)
    return run_drift(reference, current, ["recency_days", "spend_90d", "region"], POLICY, PREDICTIONS)


def test_a_shifted_feature_and_prediction_drift_and_the_others_do_not(shifted_run) -> None:
    # given recency and churn probability shifted, spend and region not (fixture)
    cols = by_name(shifted_run)
    # then
    assert cols["recency_days"].status == "drift"
    assert cols["churn_probability"].status == "drift"
    assert cols["spend_90d"].status == "ok"
    assert cols["region"].status == "ok"
    assert cols["region"].method == "jensenshannon"
    assert cols["recency_days"].method == "wasserstein"
    assert cols["churn_probability"].threshold == pytest.approx(0.15)
    assert shifted_run.summary.drifted_share == pytest.approx(1 / 3)
    assert shifted_run.snapshot is not None


def test_results_are_read_by_metric_type_not_position(shifted_run) -> None:
    # given the snapshot holds ValueDrift, UniqueValueCount and MissingValueCount results
    scores = read_value_drift(shifted_run.snapshot)
    # then every ValueDrift is found by its column, and nothing else is taken for one
    assert set(scores) == {"recency_days", "spend_90d", "region", "churn_probability", "persona"}
    score, drifted, method, threshold = scores["recency_days"]
    assert drifted
    assert method == "wasserstein"
    assert threshold == pytest.approx(0.1)
    assert score > 0.1


def test_snapshot_exports_html_and_json(shifted_run, tmp_path) -> None:
    # when
    shifted_run.snapshot.save_html(str(tmp_path / "r.html"))
    doc = shifted_run.snapshot.dict()
    # then
    assert (tmp_path / "r.html").stat().st_size > 10_000
    names = {m["metric_name"] for m in doc["metrics"]}
    assert "ValueDrift(column=recency_days,method=wasserstein,threshold=0.1)" in names
    assert "MissingValueCount(column=region)" in names
    assert "UniqueValueCount(column=persona)" in names


def test_the_report_leads_with_the_dataset_drift_summary_before_the_columns(shifted_run) -> None:
    # given the report of a window where 1 of 3 features drifted (fixture)
    doc = shifted_run.snapshot.dict()
    widgets = shifted_run.snapshot.dump_dict()["widgets"]
    # then its first metric is the count and share of drifted features, agreeing with the summary
    first = doc["metrics"][0]
    assert first["metric_name"].startswith("DriftedColumnsCount(columns=recency_days,spend_90d,region")
    assert first["value"] == {"count": 1.0, "share": pytest.approx(shifted_run.summary.drifted_share)}
    # each feature tested with its own method and threshold, as the per-column panels are
    assert first["config"]["per_column_method"] == {"recency_days": "wasserstein", "spend_90d": "wasserstein",
                                                    "region": "jensenshannon"}
    # and the page opens with those two figures, before any per-column panel
    assert [w["title"] for w in widgets[:2]] == ["Count of Drifted Columns: count", "Count of Drifted Columns: share"]
    assert all(not m["metric_name"].startswith("DriftedColumnsCount") for m in doc["metrics"][1:])


def test_a_tagged_snapshot_carries_the_model_version_and_the_decision(shifted_run, tmp_path) -> None:
    # when the snapshot is tagged with the champion's version and the monitor's decision
    copy = tagged(shifted_run.snapshot, {"model_version": "3", "decision": "retrain"})
    # then the copy carries them as tags and metadata, and the original is untouched
    saved = copy.dump_dict()
    assert saved["tags"] == ["model_version=3", "decision=retrain"]
    assert {"model_version": "3", "decision": "retrain"}.items() <= saved["metadata"].items()
    assert shifted_run.snapshot.dump_dict()["tags"] == []
    # and it still renders and exports like the original
    copy.save_html(str(tmp_path / "r.html"))
    assert len(copy.dict()["metrics"]) == len(shifted_run.snapshot.dict()["metrics"])


def test_a_recorded_run_is_tagged_in_the_workspace_history(shifted_run, tmp_path) -> None:
    from evidently.ui.workspace import Workspace

    from core import catalog
    from core.settings import load_settings
    from monitoring.records import WORKSPACE_PROJECT, save_drift_report

    # given a home and a drift run
    settings = load_settings()
    # when it is recorded with the champion's version and the decision
    files, snapshot_id = save_drift_report(settings, shifted_run, tmp_path, "run 1", ["churn_probability"],
                                           tags={"model_version": "3", "decision": "retrain"})
    # then the workspace's run (the Evidently UI's history) is tagged, and the report files are written
    assert set(files) == {"drift_report_html", "drift_report_json"}
    workspace = Workspace(str(catalog.evidently_workspace(settings)))
    project = workspace.search_project(WORKSPACE_PROJECT)[0]
    run = workspace.get_run(project.id, snapshot_id)
    assert run is not None
    assert run.tags == ["model_version=3", "decision=retrain"]
    assert run.metadata["model_version"] == "3"


def test_an_empty_window_is_insufficient_data_not_a_crash() -> None:
    # given a window with the columns but no rows
    reference, current = frames()
    # when
    run = run_drift(reference, current.iloc[:0], ["recency_days", "region"], POLICY, PREDICTIONS)
    # then
    assert run.snapshot is None
    assert run.summary.current_rows == 0
    assert {c.status for c in run.summary.columns} == {"insufficient_data"}


def test_all_nan_and_single_category_columns_are_insufficient_data() -> None:
    # given one column all-NaN in the window, one all-NaN on both sides, one constant category
    reference, current = frames()
    current["recency_days"] = np.nan
    reference["text_pca_0"] = np.nan
    current["text_pca_0"] = np.nan
    reference["channel"] = "web"
    current["channel"] = "web"
    # when
    features = ["recency_days", "text_pca_0", "channel", "spend_90d"]
    run = run_drift(reference, current, features, POLICY, PREDICTIONS)
    # then the three are reported with a reason and the rest is still tested
    cols = by_name(run)
    assert cols["recency_days"].status == "insufficient_data"
    assert cols["recency_days"].reason == "all values missing in the current window"
    assert cols["recency_days"].current_missing == 1.0
    assert cols["recency_days"].missing_increase == 1.0
    assert cols["text_pca_0"].reason == "all values missing on both sides"
    assert cols["channel"].reason == "a single value (web) on both sides"
    assert cols["spend_90d"].status == "ok"
    assert run.snapshot is not None


def test_a_category_that_collapsed_to_one_value_is_drift_not_an_error() -> None:
    # given the window holds only one region, the reference three
    reference, current = frames()
    current["region"] = "north"
    # when
    run = run_drift(reference, current, ["region"], POLICY, {})
    # then
    assert by_name(run)["region"].status == "drift"


def test_missing_shares_use_all_rows_even_when_tests_are_sampled() -> None:
    # given 30% missing in the window and a 1000-row sampling cap
    reference, current = frames(n=3000)
    current.loc[: 899, "spend_90d"] = np.nan
    policy = DriftPolicy(max_rows=1000)
    # when
    run = run_drift(reference, current, ["spend_90d"], policy, {})
    # then
    spend = by_name(run)["spend_90d"]
    assert spend.current_missing == pytest.approx(0.3)
    assert spend.reference_missing == 0.0
    assert spend.status == "ok"


def test_ignored_features_and_per_column_thresholds_are_applied() -> None:
    # given
    reference, current = frames()
    policy = DriftPolicy(ignore=("region",), column_thresholds={"recency_days": 0.5})
    # when
    plans = {p.column: p for p in plan_columns(reference, current, ["recency_days", "region"], {}, policy)}
    # then
    assert "region" not in plans
    assert plans["recency_days"].threshold == 0.5


@pytest.mark.parametrize(
    ("values", "kind"),
    [([1, 2], "numerical"), ([1.5, None], "numerical"), (["a", None], "categorical"),
     ([True, False], "categorical"), ([[0.1, 0.2], [0.3, 0.4]], None),
     (pd.to_datetime(["2024-01-01", "2024-01-02"]), None)],
    ids=["int", "float", "str", "bool", "embedding", "datetime"],
)
def test_column_kind(values: list, kind: str | None) -> None:
    assert column_kind(pd.Series(values)) == kind


def test_screen_column_reasons() -> None:
    s = pd.Series
    assert screen_column(None, s([1.0])) == "not in the reference data"
    assert screen_column(s([1.0, 2.0]), None) == "not in the current window"
    assert screen_column(s([np.nan]), s([1.0])) == "all values missing in the reference"
    assert screen_column(s([1.0, 1.0]), s([1.0, np.nan])) == "a single value (1.0) on both sides"
    assert screen_column(s([1.0, 1.0]), s([2.0])) == ""
