"""Persona cards rendered as JSON and as a self-contained HTML page with charts.

The JSON keeps the numbers as computed (feature names, shares, action names). The HTML page is
for marketers: plain words for each figure (:data:`FEATURE_WORDS`), money with the home's
currency, shares as percentages, each action by its label in the action policy
(:meth:`model.actions.ActionPolicy.label`), and what sets a persona apart in words ("well above
average") rather than standard deviations.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from training.plots import figure_png_base64, persona_figure

if TYPE_CHECKING:
    from collections.abc import Callable

# feature -> (what a marketer reads, how its value is shown: "money", "share", "number")
FEATURE_WORDS: dict[str, tuple[str, str]] = {
    "recency_days": ("days since the last order", "number"),
    "tenure_days": ("days as a customer", "number"),
    "orders_365d": ("orders in the last year", "number"),
    "spend_365d": ("spend in the last year", "money"),
    "avg_order_value_365d": ("average order value", "money"),
    "discount_share_365d": ("orders bought on discount", "share"),
    "return_share_365d": ("orders returned", "share"),
    "sessions_90d": ("visits in the last 90 days", "number"),
    "mean_rating_365d": ("average review rating (1 to 5)", "number"),
    "sentiment_mean_365d": ("review mood (-1 unhappy to +1 happy)", "number"),
}
_WINDOW_WORDS = {"365d": "in the last year", "90d": "in the last 90 days", "30d": "in the last 30 days"}

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:1100px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:1rem}
.card{border:1px solid #ddd;border-radius:8px;padding:1rem}
.card h2{margin:.2rem 0 .6rem;font-size:1.15rem;text-transform:capitalize}
table{border-collapse:collapse;width:100%;font-size:.85rem}td{padding:2px 4px;border-bottom:1px solid #eee}
.terms span{display:inline-block;background:#eef;border-radius:4px;padding:1px 6px;margin:2px;font-size:.8rem}
.muted{color:#777;font-size:.85rem}
"""


def _fmt(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return html.escape(str(value))


def money(value: object, currency: str = "$", signed: bool = False) -> str:
    """``$1,234.50`` (a symbol before the figure, a code after it: ``1,234.50 EUR``); ``–`` when unknown."""
    if not isinstance(value, int | float):
        return "–"
    sign = "-" if value < 0 else ("+" if signed else "")
    figure = f"{abs(value):,.2f}"
    return f"{sign}{currency}{figure}" if len(currency) == 1 else f"{sign}{figure} {currency}"


def feature_words(feature: str) -> str:
    """A feature in plain words: its entry in :data:`FEATURE_WORDS`, else its name spelled out."""
    if feature in FEATURE_WORDS:
        return FEATURE_WORDS[feature][0]
    words = feature.replace("_", " ")
    for suffix, window in _WINDOW_WORDS.items():
        words = re.sub(rf"\b{suffix}\b", window, words)
    return words


def _stat(feature: str, value: object, currency: str) -> str:
    kind = FEATURE_WORDS.get(feature, ("", "money" if "spend" in feature or "order_value" in feature else "number"))[1]
    if kind == "money":
        return money(value, currency)
    if kind == "share":
        return _share(value)
    return _fmt(value)


def standing(z: float) -> str:
    """How far a persona's mean lies from everyone's, in words (``z``: standard deviations)."""
    if z >= 1.0:
        return "well above average"
    if z >= 0.3:
        return "above average"
    if z <= -1.0:
        return "well below average"
    if z <= -0.3:
        return "below average"
    return "about average"


def _uplift(effect: dict, currency: str = "$") -> str:
    conversion, spend = effect.get("conversion"), effect.get("spend")
    if conversion is None:
        return "–"
    return f"{conversion:+.1%} conversion, {money(spend or 0.0, currency, signed=True)} spend"


def _header(meta: dict) -> str:
    """The run in a sentence: the data window, the model version and the number of personas (no tag dump)."""
    parts = []
    start, end = meta.get("data.train_start"), meta.get("data.holdout_end") or meta.get("data.train_end")
    if start and end:
        parts.append(f"learned from customer activity between {str(start)[:10]} and {str(end)[:10]}")
    for key in ("model version", "model_version", "as_of"):
        if meta.get(key) is not None:
            parts.append(f"{key.replace('_', ' ')} {meta[key]}")
    if meta.get("k") is not None:
        parts.append(f"{meta['k']} personas")
    return html.escape(" · ".join(parts))


def render_cards_json(cards: list[dict], meta: dict, changes: dict | None = None) -> str:
    """The cards and run metadata (and the diff against the previous champion) as pretty JSON."""
    doc = {"meta": meta, "personas": cards, **({"changes": changes} if changes else {})}
    return json.dumps(doc, indent=2, default=str)


def _share(value: object) -> str:
    return f"{value:.1%}" if isinstance(value, int | float) else "–"


def render_changes_html(changes: dict) -> str:
    """A table: each persona's status against the previous champion, with its share before and after.

    Args:
        changes: ``{"champion": version, "personas": [PersonaChange.to_dict(), ...]}``.
    """
    rows = "".join(
        f"<tr><td>{c['persona_id']}</td><td>{html.escape(str(c['name']))}</td>"
        f"<td class='status-{html.escape(c['status'])}'>{html.escape(c['status'])}"
        + (f" ({', '.join(str(r) for r in c['related'])})" if c.get("related") else "")
        + f"</td><td>{_share(c['share_before'])}</td><td>{_share(c['share_after'])}</td></tr>"
        for c in changes.get("personas", [])
    )
    return (
        f"<h2>Changes since champion v{html.escape(str(changes.get('champion')))}</h2>"
        "<table class='changes'><tr><th>id</th><th>persona</th><th>status</th>"
        "<th>share before</th><th>share after</th></tr>" + rows + "</table>"
    )


def render_cards_html(
    cards: list[dict], meta: dict, changes: dict | None = None, currency: str = "$",
    action_label: Callable[[str], str] | None = None,
) -> str:
    """A self-contained HTML page: a persona chart (inline PNG) and one card per persona, in plain words.

    Args:
        cards: output of :func:`training.personas.persona_cards`.
        meta: run metadata; the header says the data window, model version and persona count from it.
        changes: the diff against the previous champion (see :func:`render_changes_html`), if any.
        currency: written with money figures (``Settings.currency``).
        action_label: an action's plain words (the policy's :meth:`~model.actions.ActionPolicy.label`).
    """
    fig = persona_figure(cards)
    chart = figure_png_base64(fig)
    label = action_label or (lambda action: action.replace("_", " "))
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Persona cards</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>Persona cards</h1>",
        f"<p class='muted'>{_header(meta)}</p>",
        f"<img alt='persona share, churn rate and expected spend' src='data:image/png;base64,{chart}' "
        "style='max-width:100%'>",
        render_changes_html(changes) if changes else "",
        "<div class='cards'>",
    ]
    for card in cards:
        rows = [
            ("customers", f"{card['size']:,} ({card['share']:.1%})"),
            ("churn rate (observed)", _share(card.get("churn_rate"))),
            ("churn probability (predicted)", _share(card.get("predicted_churn"))),
            ("spend per customer in the next period (observed)", money(card.get("future_spend"), currency)),
            ("spend per customer in the next period (predicted)", money(card.get("expected_spend"), currency)),
        ]
        rows += [(f"uplift of a {offer.replace('_', ' ')} contact", _uplift(effect, currency))
                 for offer, effect in (card.get("uplift") or {}).items()]
        rows += [(feature_words(k), _stat(k, v, currency)) for k, v in card.get("stats", {}).items()]
        marks = ", ".join(
            f"{feature_words(d['feature'])} {standing(d['z'])}"
            for d in card.get("distinguishing", [])
            if d.get("z") is not None
        )
        terms = (
            "".join(f"<span>{html.escape(t)}</span>" for t in card.get("terms", [])) or "<i>no reviews</i>"
        )
        actions = ", ".join(f"{html.escape(label(k))} ({v:,} customers)" for k, v in card.get("actions", {}).items())
        parts += [
            "<div class='card'>",
            f"<h2>{html.escape(card['name'])}</h2>",
            f"<p class='muted'>persona {card['segment']} · what sets them apart: {html.escape(marks) or '–'}</p>",
            _change_line(card.get("change")),
            "<table>"
            + "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in rows)
            + "</table>",
            f"<p class='terms'><b>words from their reviews</b><br>{terms}</p>",
            f"<p class='muted'>recommended: {actions}</p>" if actions else "",
            "</div>",
        ]
    parts.append("</div></body></html>")
    return "\n".join(parts)


def _change_line(change: dict | None) -> str:
    if not change:
        return ""
    related = ", ".join(str(r) for r in change.get("related") or ())
    return (f"<p class='muted'>{html.escape(change['status'])}{f' ({related})' if related else ''} since the "
            f"previous champion · share {_share(change['share_before'])} → {_share(change['share_after'])}</p>")


def write_cards(
    cards: list[dict], meta: dict, directory: Path, changes: dict | None = None, currency: str = "$",
    action_label: Callable[[str], str] | None = None,
) -> tuple[Path, Path]:
    """Write ``persona_cards.html`` and ``persona_cards.json`` into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    html_path = directory / "persona_cards.html"
    json_path = directory / "persona_cards.json"
    html_path.write_text(render_cards_html(cards, meta, changes, currency, action_label))
    json_path.write_text(render_cards_json(cards, meta, changes))
    return html_path, json_path
