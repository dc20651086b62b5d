"""The monitoring job around fake I/O: report files, Evidently workspace, MLflow record, retrain, cooldown."""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from app.cli import app
from core.settings import load_settings
from monitoring.job import EXPERIMENT, WORKSPACE_PROJECT, Champion, MonitorConfig, MonitorJob

if TYPE_CHECKING:
    from pathlib import Path

NOW = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
SNAPSHOT_AT = pd.Timestamp("1997-06-01", tz="UTC")
FEATURES = ["recency_days", "orders_90d", "region"]


def population(n: int, seed: int, slowdown: float = 0.0) -> pd.DataFrame:
    """Customers with features and predictions; ``slowdown`` makes them buy less often."""
    rng = np.random.default_rng(seed)
    recency = rng.exponential(20 * (1 + 3 * slowdown), n)
    churn = np.clip(1 - np.exp(-recency / 40), 0, 1)
    return pd.DataFrame({
        "customer_id": np.arange(n, dtype="int64"),
        "event_timestamp": SNAPSHOT_AT,
        "recency_days": recency,
        "orders_90d": rng.poisson(6 * (1 - 0.6 * slowdown), n),
        "region": rng.choice(["north", "south"], n),
        "churn_probability": churn,
        "expected_orders": rng.gamma(2, 1, n),
        "expected_spend": rng.gamma(2, 40, n) * (1 - 0.5 * slowdown),
        "segment": (churn > 0.5).astype("int64"),
        "persona": np.where(churn > 0.5, "at risk", "loyal"),
        "action": "none",
    })


class FakeJob(MonitorJob):
    """The job with the champion, snapshot and labels replaced by frames."""

    def __init__(self, snapshot: pd.DataFrame, clock: dt.datetime, calls: list, **config: object) -> None:
        def train() -> SimpleNamespace:
            calls.append(clock)
            gate = SimpleNamespace(promote=True, alias="champion", reason="beats v3")
            plan = SimpleNamespace(train_times=[SNAPSHOT_AT - pd.Timedelta(days=35), SNAPSHOT_AT],
                                   holdout_times=[SNAPSHOT_AT + pd.Timedelta(days=35)])
            return SimpleNamespace(run_id="train-run", version="4", decision=gate, plan=plan)

        def refresh(seen: object, scope: object) -> dict:
            self.refreshes.append(scope)
            return {"status": "refreshed", "version": "5", "summary": "refreshed personas and value tiers as v5"}

        super().__init__(load_settings(), MonitorConfig(**config), train=train, clock=lambda: clock, refresh=refresh)
        self.snapshot = snapshot
        self.refreshes: list = []

    def load_champion(self) -> Champion:
        predictor = SimpleNamespace(feature_columns=FEATURES, metadata={"feature_service": "churn_model_v2"})
        return Champion("persona", "3", "champion-run", predictor, population(1500, seed=1),
                        {"churn_roc_auc": 0.8}, {"horizon_days": "30"}, {"data.holdout_end": "1997-03-01"})

    def snapshot_times(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex([SNAPSHOT_AT])

    def score_snapshot(self, champion: Champion, at: pd.Timestamp) -> pd.DataFrame:
        return self.snapshot.assign(event_timestamp=at)

    def _transactions(self, end: pd.Timestamp | None) -> None:
        return None


def write_log(home: Path, rows: pd.DataFrame, served_at: dt.datetime, version: str) -> None:
    """A prediction log file in the serving layout (``date=YYYY-MM-DD/part-*.parquet``)."""
    folder = home / "serving" / "prediction_log" / f"date={served_at.date().isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    log = rows.drop(columns=["event_timestamp"]).assign(
        request_id=[f"r{i}" for i in range(len(rows))], served_at=pd.Timestamp(served_at), endpoint="predict",
        model_version=version, cold_start_reason=None)
    log.to_parquet(folder / f"part-{version}-{len(rows)}.parquet", index=False)


def test_drift_retrains_records_everywhere_and_the_next_run_meets_the_cooldown(persona_home: Path) -> None:
    import mlflow
    from evidently.ui.workspace import Workspace

    # given customers who buy less often, 200 of them served yesterday by the champion
    calls: list = []
    drifted = population(1500, seed=2, slowdown=0.8)
    write_log(persona_home, drifted.head(200), NOW - dt.timedelta(days=1), version="3")
    write_log(persona_home, drifted.head(50), NOW - dt.timedelta(days=1), version="2")

    # when monitoring runs
    result = FakeJob(drifted, NOW, calls).run()

    # then the policy asked for a retrain, which ran once and was promoted
    assert result.decision.status == "retrain"
    assert "key_feature:recency_days" in result.decision.triggers
    assert result.retrain is not None
    assert (result.retrain.status, result.retrain.version) == ("trained", "4")
    assert calls == [NOW]
    assert result.window["sources"] == {"prediction_log": 200, "snapshot": 1300}
    assert result.window["served"] == {"served": 250, "other_version": 50, "cold_start": 0}
    # and the report holds the Evidently HTML and JSON and our summary, with the decision
    files = {p.name for p in result.report_dir.iterdir()}
    assert {"drift_report.html", "drift_report.json", "index.html", "summary.json"} <= files
    assert result.report_dir.parent == persona_home / "reports" / "monitoring"
    doc = json.loads((result.report_dir / "summary.json").read_text())
    assert doc["status"] == "retrain"
    assert doc["retrain_outcome"]["version"] == "4"
    assert doc["retrain_outcome"]["promoted"] is True
    assert doc["mlflow_run_id"] == result.mlflow_run_id
    assert "recency_days" in (result.report_dir / "index.html").read_text()
    # and the run is in the Evidently workspace and in MLflow
    workspace = Workspace(str(persona_home / "reports" / "evidently_workspace"))
    project = workspace.search_project(WORKSPACE_PROJECT)[0]
    assert len(workspace.list_runs(project.id)) == 1
    recorded = workspace.get_run(project.id, str(result.workspace_snapshot_id))
    assert recorded is not None
    assert recorded.tags == [f"model_version={result.champion_version}", "decision=retrain"]
    run = mlflow.get_run(result.mlflow_run_id)
    assert run.data.tags["status"] == "retrain"
    assert run.data.tags["retrain.status"] == "trained"
    assert run.data.tags["retrain.version"] == "4"
    assert run.data.tags["retrain.promoted"] == "True"
    assert run.data.metrics["drift.recency_days"] > 0.25
    assert run.data.metrics["retrained"] == 1.0
    assert "retrained v4, promoted to champion" in result.summary()
    assert FakeJob(drifted, NOW, calls).mlflow_last_retrain() == NOW

    # when drift persists an hour later
    later = FakeJob(drifted, NOW + dt.timedelta(hours=1), calls).run()

    # then the cooldown holds, the run is still recorded
    assert later.decision.status == "cooldown"
    assert later.retrain is None
    assert len(calls) == 1
    assert len(workspace.list_runs(project.id)) == 2
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    statuses = mlflow.search_runs([experiment.experiment_id])["tags.status"].tolist()
    assert sorted(statuses) == ["cooldown", "retrain"]


def test_a_calm_window_does_not_retrain_and_report_only_never_does(persona_home: Path) -> None:
    # given the same population as at training, and then a drifted one with --no-retrain
    calls: list = []
    # when
    calm = FakeJob(population(1500, seed=3), NOW, calls).run()
    report_only = FakeJob(population(1500, seed=4, slowdown=0.8), NOW, calls, retrain=False).run()
    # then
    assert (calm.decision.status, calm.retrain) == ("ok", None)
    assert report_only.decision.status == "retrain"
    assert report_only.retrain is None
    assert calls == []
    assert calm.summary().startswith("monitor v3: ok")


def test_an_empty_window_writes_an_insufficient_data_report(persona_home: Path) -> None:
    # given no snapshot rows and no prediction log
    calls: list = []
    # when
    result = FakeJob(population(0, seed=0), NOW, calls).run()
    # then
    assert (result.decision.status, result.retrain) == ("insufficient_data", None)
    assert calls == []
    doc = json.loads((result.report_dir / "summary.json").read_text())
    assert doc["status"] == "insufficient_data"
    assert "0 rows in the window" in doc["reasons"][0]
    assert (result.report_dir / "index.html").exists()
    assert not (result.report_dir / "drift_report.html").exists()


def test_monitor_command_without_a_champion_fails_in_one_line() -> None:
    # when
    out = CliRunner().invoke(app, ["monitor"])
    # then
    assert out.exit_code == 1
    assert "has no champion yet" in out.output


def test_monitor_command_reports_a_bad_policy(tmp_path: Path) -> None:
    # given
    bad = tmp_path / "policy.yaml"
    bad.write_text("drift:\n  share_threshold: 2\n")
    # when
    out = CliRunner().invoke(app, ["monitor", "--policy", str(bad)])
    # then
    assert out.exit_code == 1
    assert "key drift.share_threshold" in out.output


@pytest.mark.parametrize("days", [0, -3])
def test_window_days_must_be_positive(days: int) -> None:
    out = CliRunner().invoke(app, ["monitor", "--window-days", str(days)])
    assert out.exit_code != 0


def test_an_extreme_logged_row_is_clipped_and_counted_instead_of_stopping_monitoring(persona_home: Path) -> None:
    # given a prediction log whose served rows include what-if rows of +-1e308 (their range overflows)
    calls: list = []
    served = population(300, seed=5).astype({"orders_90d": "float64"})
    served.loc[[0, 1], "recency_days"] = [1e308, -1e308]
    served.loc[[2, 3], "orders_90d"] = [1e308, 1.5e308]
    write_log(persona_home, served, NOW - dt.timedelta(days=1), "3")
    # when the monitor runs over that window
    result = FakeJob(population(1500, seed=3), NOW, calls, retrain=False).run()
    # then it concludes (no "Too many bins" crash) and reports what it clipped
    assert result.decision.status in ("ok", "retrain")
    assert result.window["clipped_values"] == {"recency_days": 2, "orders_90d": 2}


class LabelledJob(FakeJob):
    """The fake job with transactions up to ``labels_to`` (the labels matured so far)."""

    def __init__(self, labels_to: str, *args: object, **config: object) -> None:
        super().__init__(*args, **config)  # type: ignore[arg-type]
        self.labels_to = pd.Timestamp(labels_to, tz="UTC")

    def _transactions(self, end: pd.Timestamp | None) -> pd.DataFrame:  # type: ignore[override]
        return pd.DataFrame({"customer_id": [1, 2], "event_timestamp": [SNAPSHOT_AT, self.labels_to],
                             "amount": [10.0, 12.0]})


def test_drift_before_labels_mature_trains_nothing_and_prints_the_date_then_retrains_on_the_shift(
        persona_home: Path) -> None:
    import mlflow

    # given drift seen at the 1 June snapshot, a 30-day horizon and weekly snapshots: training from
    # 1 June, a purged holdout from 6 July, whose labels mature on 5 August
    calls: list = []
    drifted = population(1500, seed=2, slowdown=0.8)

    # when monitoring with labels known up to 10 June
    early = LabelledJob("1997-06-10", drifted, NOW, calls).run()

    # then the policy wanted a retrain, but churn and value wait for labels until the printed date
    assert early.decision.status == "retrain"
    assert calls == []
    assert early.retrain is not None
    assert early.retrain.status == "waiting_for_labels"
    assert "churn and value wait for labels until 1997-08-05" in early.summary()
    doc = json.loads((early.report_dir / "summary.json").read_text())
    assert doc["retrain_scope"]["supervised"] is False
    assert doc["retrain_scope"]["ready_at"].startswith("1997-08-05")
    page = (early.report_dir / "index.html").read_text()
    assert "wait for labels until 1997-08-05" in page
    assert "holdout from 1997-07-06" in page
    tags = mlflow.get_run(early.mlflow_run_id).data.tags
    assert (tags["retrain.status"], tags["retrain.scope"]) == ("waiting_for_labels", "waiting_for_labels")
    assert tags["retrain.labels_ready_at"].startswith("1997-08-05")
    assert "training snapshots from 1997-06-01, holdout from 1997-07-06" in early.summary()

    # and meanwhile what needs no labels was refreshed, once, and said so everywhere
    assert early.retrain.refresh is not None
    assert early.retrain.refresh["status"] == "refreshed"
    assert early.summary().count("refreshed personas and value tiers as v5; no supervised retrain") == 1
    assert "Label-free refresh:</b> refreshed personas and value tiers as v5" in page
    assert (tags["refresh.status"], tags["refresh.version"]) == ("refreshed", "5")

    # when labels have matured up to 5 August (no cooldown: nothing was trained)
    late = LabelledJob("1997-08-05", drifted, NOW + dt.timedelta(hours=1), calls).run()

    # then it retrains, and the summary says labels cover the drift and names the windows trained on
    assert calls == [NOW + dt.timedelta(hours=1)]
    assert late.retrain is not None
    assert late.retrain.status == "trained"
    assert late.scope is not None
    assert late.scope.supervised
    assert late.scope.train_from == SNAPSHOT_AT
    assert "labels cover the drift since 1997-06-01" in late.summary()
    assert "trained on 1997-04-27 – 1997-06-01, holdout 1997-07-06 – 1997-07-06" in late.summary()
    assert late.retrain.refresh is None  # the supervised retrain refreshes personas itself
    doc = json.loads((late.report_dir / "summary.json").read_text())
    assert doc["retrain_outcome"]["holdout_window"] == "1997-07-06 – 1997-07-06"
    page = (late.report_dir / "index.html").read_text()
    assert "matured labels cover the drift since 1997-06-01" in page
    assert "training snapshots 1997-04-27 – 1997-06-01, holdout 1997-07-06 – 1997-07-06" in page


def test_no_refresh_waits_for_everything(persona_home: Path) -> None:
    # given drift before the labels cover it, and a monitor told not to refresh
    job = LabelledJob("1997-06-10", population(1500, seed=2, slowdown=0.8), NOW, [], refresh=False)

    result = job.run()

    # then nothing was refreshed and the run says only what waits
    assert result.retrain is not None
    assert result.retrain.status == "waiting_for_labels"
    assert job.refreshes == []
    assert result.retrain.refresh is None
    assert "refreshed" not in result.summary()


def test_a_failed_refresh_makes_the_monitor_command_exit_1(persona_home: Path, monkeypatch) -> None:
    from monitoring import job as job_module

    # given a refresh that fails (e.g. the champion is not a persona bundle)
    drifted = population(1500, seed=2, slowdown=0.8)

    def failing(self: object, seen: object, scope: object) -> dict:
        return {"status": "failed", "summary": "label-free refresh failed: no personas"}

    class CliJob(LabelledJob):
        def __init__(self, settings: object, config: MonitorConfig) -> None:
            LabelledJob.__init__(self, "1997-06-10", drifted, NOW, [])
            self._refresh = None

    monkeypatch.setattr(job_module.MonitorJob, "refresh_label_free", failing)
    monkeypatch.setattr(job_module, "MonitorJob", CliJob)

    # when `persona monitor` runs
    out = CliRunner().invoke(app, ["monitor"])

    # then it prints the failure and exits 1
    assert out.exit_code == 1, out.output
    assert "label-free refresh failed: no personas" in out.output
