"""The campaign evaluation page: one self-contained HTML file (inline SVG, no scripts), like the monitoring page.

A marketer reads three things first: did the contact change conversion and spend (treated and
control side by side, each with its interval), what it was worth (incremental conversions and
revenue, cost, ROI), and whether the targeting found the customers it changed (the Qini curve
of the planned ranking against random targeting).
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from campaign.effect import CampaignEffect, Interval

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:1000px}
h1{margin-bottom:.2rem}.muted{color:#777;font-size:.85rem}
table{border-collapse:collapse;margin:.5rem 0 1.5rem;font-size:.9rem}
td,th{padding:4px 10px;border-bottom:1px solid #eee;text-align:left}th{background:#fafafa}
.good{color:#1a7f37;font-weight:600}.bad{color:#c62828;font-weight:600}
"""


def _num(value: float, pct: bool = False) -> str:
    if not math.isfinite(value):
        return "–"
    return f"{value:+.1%}" if pct else f"{value:,.2f}"


def _ci(interval: Interval, pct: bool = False) -> str:
    if not math.isfinite(interval.estimate):
        return "–"
    if pct:
        return f"{interval.estimate:.1%} ({interval.low:.1%} to {interval.high:.1%})"
    return f"{interval.estimate:,.2f} ({interval.low:,.2f} to {interval.high:,.2f})"


def _bars(title: str, treated: Interval, control: Interval, pct: bool) -> str:
    """Two bars with interval whiskers, as inline SVG."""
    width, height, top = 320, 180, 20
    values = [v for i in (treated, control) for v in (i.high, i.estimate) if math.isfinite(v)]
    scale = (height - top - 30) / max(max(values, default=1.0), 1e-9)
    parts = [f"<svg width='{width}' height='{height}' role='img' aria-label='{html.escape(title)}'>",
             f"<text x='10' y='14' font-size='13'>{html.escape(title)}</text>"]
    for k, (label, interval, color) in enumerate((("treatment", treated, "#3b6fd8"), ("control", control, "#9aa5b1"))):
        if not math.isfinite(interval.estimate):
            continue
        x = 60 + k * 130
        h = interval.estimate * scale
        y0 = height - 30
        parts.append(f"<rect x='{x}' y='{y0 - h:.1f}' width='70' height='{h:.1f}' fill='{color}'/>")
        if math.isfinite(interval.low) and math.isfinite(interval.high):
            parts.append(f"<line x1='{x + 35}' x2='{x + 35}' y1='{y0 - interval.high * scale:.1f}' "
                         f"y2='{y0 - max(interval.low, 0) * scale:.1f}' stroke='#222' stroke-width='2'/>")
        text = f"{interval.estimate:.1%}" if pct else f"{interval.estimate:,.1f}"
        parts.append(f"<text x='{x}' y='{height - 12}' font-size='12'>{label}: {text}</text>")
    parts.append("</svg>")
    return "".join(parts)


def _qini_svg(n: np.ndarray, q: np.ndarray) -> str:
    """The Qini curve of the planned ranking and the random-targeting line."""
    width, height, pad = 520, 260, 40
    total = max(int(n[-1]), 1)
    low, high = min(0.0, float(q.min())), max(float(q.max()), 1e-9)
    step = max(len(n) // 400, 1)

    def xy(i: float, v: float) -> str:
        x = pad + (width - 2 * pad) * i / total
        y = height - pad - (height - 2 * pad) * (v - low) / (high - low)
        return f"{x:.1f},{y:.1f}"

    curve = " ".join(xy(float(n[i]), float(q[i])) for i in range(0, len(n), step))
    curve += " " + xy(float(n[-1]), float(q[-1]))
    return (f"<svg width='{width}' height='{height}' role='img' aria-label='Qini curve'>"
            f"<polyline fill='none' stroke='#3b6fd8' stroke-width='2' points='{curve}'/>"
            f"<polyline fill='none' stroke='#9aa5b1' stroke-dasharray='4' "
            f"points='{xy(0, 0)} {xy(total, float(q[-1]))}'/>"
            f"<text x='{pad}' y='{height - 8}' font-size='12'>customers, ranked by expected uplift "
            f"(blue: the plan's ranking, grey: random)</text>"
            f"<text x='4' y='14' font-size='12'>incremental conversions</text></svg>")


def render_campaign_html(campaign: str, effect: CampaignEffect, qini: tuple[np.ndarray, np.ndarray] | None,
                         notes: list[str]) -> str:
    """The page for one evaluated campaign (see the module docstring)."""
    level = f"{effect.level:.0%}"
    roi_class = "good" if effect.roi.low > 0 else ("bad" if effect.roi.high < 0 else "")
    rows = [
        ("customers", f"{effect.treated:,}", f"{effect.control:,}", ""),
        ("conversion", _ci(effect.conversion_treated, True), _ci(effect.conversion_control, True),
         _ci(effect.conversion_uplift, True)),
        ("spend per customer", _ci(effect.spend_treated), _ci(effect.spend_control), _ci(effect.spend_uplift)),
    ]
    table = "".join(f"<tr><td>{a}</td><td>{b}</td><td>{c}</td><td>{d}</td></tr>" for a, b, c, d in rows)
    value = (f"<tr><td>incremental conversions</td><td>{_ci(effect.incremental_conversions)}</td></tr>"
             f"<tr><td>incremental revenue</td><td>{_ci(effect.incremental_revenue)}</td></tr>"
             f"<tr><td>cost of contacts</td><td>{effect.cost:,.2f}</td></tr>"
             f"<tr><td>ROI (incremental revenue − cost) / cost</td><td class='{roi_class}'>{_ci(effect.roi)}</td></tr>")
    qini_part = (_qini_svg(*qini) if qini is not None else
                 "<p class='muted'>no targeting scores were recorded for this campaign (it was not planned "
                 "by <code>persona campaign plan</code>), so there is no Qini curve</p>")
    note_list = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Campaign {html.escape(campaign)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>Campaign {html.escape(campaign)}</h1>"
            f"<p class='muted'>treatment vs a random control group; intervals at {level}</p>"
            f"<h2>What the contact changed</h2><table><tr><th></th><th>treatment</th><th>control</th>"
            f"<th>difference (uplift)</th></tr>{table}</table>"
            f"{_bars('conversion', effect.conversion_treated, effect.conversion_control, True)}"
            f"{_bars('spend per customer', effect.spend_treated, effect.spend_control, False)}"
            f"<h2>What it was worth</h2><table>{value}</table>"
            f"<h2>Did the targeting find the customers it changed?</h2>{qini_part}"
            f"<ul class='muted'>{note_list}</ul></body></html>")


__all__ = ["render_campaign_html"]
