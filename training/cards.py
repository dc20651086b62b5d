"""Persona cards rendered as JSON and as a self-contained HTML page with charts."""

from __future__ import annotations

import html
import json
from pathlib import Path

from training.plots import figure_png_base64, persona_figure

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


def _uplift(effect: dict) -> str:
    conversion, spend = effect.get("conversion"), effect.get("spend")
    if conversion is None:
        return "–"
    return f"{conversion:+.1%} conversion, {spend or 0:+,.2f} spend"


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


def render_cards_html(cards: list[dict], meta: dict, changes: dict | None = None) -> str:
    """A self-contained HTML page: a persona chart (inline PNG) and one card per persona.

    Args:
        cards: output of :func:`training.personas.persona_cards`.
        meta: run metadata shown in the header (as-of, model version, feature service, ...).
        changes: the diff against the previous champion (see :func:`render_changes_html`), if any.
    """
    fig = persona_figure(cards)
    chart = figure_png_base64(fig)
    header = " · ".join(f"{html.escape(str(k))}: {html.escape(str(v))}" for k, v in meta.items())
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Persona cards</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>Persona cards</h1>",
        f"<p class='muted'>{header}</p>",
        f"<img alt='persona share, churn rate and expected spend' src='data:image/png;base64,{chart}' "
        "style='max-width:100%'>",
        render_changes_html(changes) if changes else "",
        "<div class='cards'>",
    ]
    for card in cards:
        rows = [
            ("customers", f"{card['size']:,} ({card['share']:.1%})"),
            ("churn rate (observed)", _fmt(card.get("churn_rate"))),
            ("churn probability (predicted)", _fmt(card.get("predicted_churn"))),
            ("future spend (observed)", _fmt(card.get("future_spend"))),
            ("expected spend (predicted)", _fmt(card.get("expected_spend"))),
        ]
        rows += [(f"uplift of a {offer.replace('_', ' ')} contact", _uplift(effect))
                 for offer, effect in (card.get("uplift") or {}).items()]
        rows += [(k.replace("_", " "), _fmt(v)) for k, v in card.get("stats", {}).items()]
        marks = ", ".join(
            f"{d['feature'].replace('_', ' ')} {d['z']:+.2f}σ"
            for d in card.get("distinguishing", [])
            if d.get("z") is not None
        )
        terms = (
            "".join(f"<span>{html.escape(t)}</span>" for t in card.get("terms", [])) or "<i>no reviews</i>"
        )
        actions = ", ".join(f"{html.escape(k)}: {v:,}" for k, v in card.get("actions", {}).items())
        parts += [
            "<div class='card'>",
            f"<h2>{html.escape(card['name'])}</h2>",
            f"<p class='muted'>persona {card['segment']} · distinguished by {html.escape(marks) or '–'}</p>",
            _change_line(card.get("change")),
            "<table>"
            + "".join(f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in rows)
            + "</table>",
            f"<p class='terms'><b>review terms</b><br>{terms}</p>",
            f"<p class='muted'>actions: {actions or '–'}</p>" if actions else "",
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


def write_cards(cards: list[dict], meta: dict, directory: Path, changes: dict | None = None) -> tuple[Path, Path]:
    """Write ``persona_cards.html`` and ``persona_cards.json`` into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    html_path = directory / "persona_cards.html"
    json_path = directory / "persona_cards.json"
    html_path.write_text(render_cards_html(cards, meta, changes))
    json_path.write_text(render_cards_json(cards, meta, changes))
    return html_path, json_path
