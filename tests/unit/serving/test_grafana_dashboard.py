"""The Grafana dashboard asks only for metrics the served process exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

from serving.metrics import ServingMetrics

DASHBOARD = Path(__file__).resolve().parents[3] / "ops" / "grafana" / "persona-serving.json"
METRIC = re.compile(r"\bpersona_[a-zA-Z0-9_]+")


def _exposed() -> tuple[set[str], set[str]]:
    """Sample names and label names in /metrics after one request of each kind."""
    metrics = ServingMetrics()
    metrics.requests.labels(path="/predict", status="200").inc()
    metrics.latency.labels(path="/predict").observe(0.01)
    metrics.served_version("3")
    samples = [s for family in metrics.registry.collect() for s in family.samples]
    return {s.name for s in samples}, {label for s in samples for label in s.labels}


def _expressions(dashboard: dict) -> list[str]:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard.get("templating", {}).get("list", []) if v.get("definition")]
    return exprs


def test_the_dashboard_loads_and_names_only_defined_metrics() -> None:
    # given the dashboard JSON and the metrics serving/metrics.py defines
    dashboard = json.loads(DASHBOARD.read_text())
    names, labels = _exposed()
    exprs = _expressions(dashboard)
    # then every expression names at least one metric, and each one it names is exposed
    assert exprs
    for expr in exprs:
        used = set(METRIC.findall(expr))
        assert used, expr
        assert used <= names, (expr, used - names)
    # and the labels it groups or filters by (besides Prometheus's own) are the metrics' labels
    grouped = {g.strip() for expr in exprs for group in re.findall(r"by \(([^)]*)\)", expr) for g in group.split(",")}
    assert grouped - {"le"} <= labels | {"job"}


def test_the_dashboard_shows_rate_errors_latency_and_version() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    text = " ".join(_expressions(dashboard))
    assert "persona_requests_total" in text
    assert 'status=~"5.."' in text
    assert "histogram_quantile(0.5," in text
    assert "histogram_quantile(0.99," in text
    assert "persona_model_info" in text
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
