"""The monitoring summary page: decision, drift per column, persona shares and movers, quality."""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:1100px}
h1{margin-bottom:.2rem}.muted{color:#777;font-size:.85rem}
.status{display:inline-block;padding:.2rem .6rem;border-radius:4px;font-weight:600}
.ok{background:#e3f5e1}.retrain,.drift{background:#fde2e1}.cooldown,.data_quality{background:#fff3cd}
.insufficient_data{background:#eee}
table{border-collapse:collapse;margin:.5rem 0 1.5rem;font-size:.85rem}
td,th{padding:3px 8px;border-bottom:1px solid #eee;text-align:left}th{background:#fafafa}
"""


def _fmt(value: object) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return html.escape(str(value))


def _pct(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{float(value):.1%}"


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], css: Sequence[str] | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cls = f" class='{css[i]}'" if css else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>")
    if not body:
        return "<p class='muted'>none</p>"
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def render_summary_html(doc: dict) -> str:
    """A self-contained HTML page (no scripts) for one monitoring run.

    Args:
        doc: the run's summary as written to ``summary.json``.
    """
    status = doc.get("status", "?")
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Persona monitoring</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>Persona monitoring</h1>",
        f"<p class='muted'>{html.escape(str(doc.get('at', '')))} · champion "
        f"{html.escape(str(doc.get('champion', {}).get('model', '')))} "
        f"v{html.escape(str(doc.get('champion', {}).get('version', '')))}</p>",
        f"<p><span class='status {html.escape(status)}'>{html.escape(status)}</span> "
        f"{'retrain requested' if doc.get('retrain') else 'no retrain'}</p>",
        "<ul>" + "".join(f"<li>{html.escape(r)}</li>" for r in doc.get("reasons", [])) + "</ul>",
    ]
    outcome = doc.get("retrain_outcome")
    if outcome:
        text = outcome.get("summary", outcome.get("status", ""))
        parts.append(f"<p><b>Retrain:</b> {html.escape(text)}</p>")
    parts.append(_scope_section(doc.get("retrain_scope"), outcome or {}))
    window = doc.get("window", {})
    parts.append(f"<p class='muted'>window: {window.get('rows', 0):,} rows "
                 f"({html.escape(', '.join(f'{k} {v:,}' for k, v in window.get('sources', {}).items()))}); "
                 f"served {html.escape(str(window.get('start')))} – {html.escape(str(window.get('end')))}; "
                 f"snapshot {html.escape(str(window.get('snapshot_at')))}; reference "
                 f"{doc.get('reference', {}).get('rows', 0):,} rows</p>")
    if doc.get("files", {}).get("drift_report_html"):
        parts.append("<p><a href='drift_report.html'>Evidently drift report</a></p>")

    columns = doc.get("drift", {}).get("columns", [])
    parts.append(f"<h2>Drift per column</h2><p>share of drifted features: "
                 f"{_pct(doc.get('drift', {}).get('drifted_share'))}</p>")
    parts.append(_table(
        ["column", "role", "method", "score", "threshold", "status", "missing (reference)", "missing (now)",
         "note"],
        ([html.escape(c["column"]), c["role"], _fmt(c.get("method")), _fmt(c.get("score")),
          _fmt(c.get("threshold")), c["status"], _pct(c.get("reference_missing")),
          _pct(c.get("current_missing")), _fmt(c.get("reason") or None)]
         for c in columns),
        [c["status"] for c in columns]))

    personas = doc.get("personas")
    parts.append("<h2>Persona shares</h2>")
    if personas:
        parts.append(_table(["persona", "at training", "now", "change"],
                            ([html.escape(s["persona"]), _pct(s["reference_share"]), _pct(s["current_share"]),
                              f"{s['change'] * 100:+.1f} pts"] for s in personas["shares"])))
        parts.append(f"<h3>Customers moving between personas</h3><p>{personas['common_customers']:,} "
                     "customers "
                     f"seen at training and now; moved: {_pct(personas.get('moved_share'))}</p>")
        parts.append(_table(["from", "to", "customers", "share"],
                            ([html.escape(t["from_persona"]), html.escape(t["to_persona"]),
                              f"{t['customers']:,}", _pct(t["share"])] for t in personas["transitions"])))
    else:
        parts.append("<p class='muted'>no persona predictions to compare</p>")

    quality = doc.get("quality")
    parts.append("<h2>Model quality (matured labels)</h2>")
    if quality and quality.get("rows"):
        names = sorted(set(quality["current"]) | set(quality["reference"]))
        sources = ", ".join(f"{k} {v:,}" for k, v in quality.get("sources", {}).items())
        parts.append(f"<p>{quality['rows']:,} labelled predictions ({html.escape(sources)}); "
                     f"churn rate {_pct(quality.get('churn_rate'))}</p>")
        parts.append(_table(["churn metric", "at training", "now"],
                            ([n, _fmt(quality["reference"].get(n)), _fmt(quality["current"].get(n))]
                             for n in names)))
    else:
        parts.append("<p class='muted'>no predictions whose labels have matured yet</p>")
    parts.append(_skew_section(doc.get("skew")))
    notes = doc.get("notes", [])
    if notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _scope_section(scope: dict | None, outcome: dict) -> str:
    """Which case applied: labels cover the drift (retrained, with its windows) or the date they will."""
    if not scope:
        return ""
    day = lambda key: html.escape(str(scope.get(key, ""))[:10])  # noqa: E731 - ISO date of a stamp
    if scope.get("supervised"):
        case = (f"matured labels cover the drift since {day('drift_start')}: churn and value retrained on the "
                "freshest matured window")
        windows = (f"training snapshots {html.escape(outcome.get('train_window') or '–')}, holdout "
                   f"{html.escape(outcome.get('holdout_window') or '–')}")
    else:
        case = (f"matured labels do not cover the drift yet (drift since {day('drift_start')}, labels matured up "
                f"to {day('labels_until')}): churn and value wait for labels until {day('ready_at')}")
        windows = f"then: post-shift training snapshots from {day('train_from')}, holdout from {day('holdout_from')}"
        refresh = outcome.get("refresh") or {}
        if refresh.get("summary"):
            case += f"</p><p><b>Label-free refresh:</b> {html.escape(str(refresh['summary']))}"
    return f"<p><b>Retrain scope:</b> {case}</p><p class='muted'>{windows}</p>"


def _skew_section(skew: dict | None) -> str:
    """Served rows rebuilt offline: per-feature mismatch share and size, and whether it blocks."""
    head = "<h2>Training/serving skew (served rows rebuilt offline)</h2>"
    if not skew:
        return head + "<p class='muted'>not replayed</p>"
    if skew.get("error"):
        return head + f"<p class='muted'>replay failed: {html.escape(str(skew['error']))}</p>"
    counts = skew.get("counts", {})
    left_out = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in counts.items()
                         if k not in ("served", "replayed") and v)
    verdict = (f"<span class='status drift'>blocks promotion</span> {html.escape(skew.get('reason', ''))}"
               if skew.get("blocked") else "<span class='status ok'>clean</span>")
    text = (f"<p>{verdict}</p><p class='muted'>{skew.get('rows', 0):,} of {counts.get('served', 0):,} served rows "
            f"replayed (left out: {html.escape(left_out) or 'none'}); threshold {_pct(skew.get('threshold'))} "
            f"per feature; max mismatch {_pct(skew.get('mismatch_rate'))}</p>")
    features = sorted(skew.get("features", []), key=lambda f: (-f["rate"], f["feature"]))
    threshold = float(skew.get("threshold", 0.0))
    table = _table(["feature", "rows compared", "mismatched", "share", "mean |diff|", "max |diff|"],
                   ([html.escape(f["feature"]), f"{f['compared']:,}", f"{f['mismatches']:,}", _pct(f["rate"]),
                     _fmt(f.get("mean_abs_diff")), _fmt(f.get("max_abs_diff"))] for f in features),
                   ["drift" if f["rate"] > threshold else "ok" for f in features])
    return head + text + (table if features else "")
