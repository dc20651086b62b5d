"""Persona share shift: the mix of customers per persona now vs at training, and who moved."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

ENTITY_KEY = "customer_id"
PERSONA = "persona"


@dataclass(frozen=True, eq=False)
class PersonaShift:
    """How the persona mix changed.

    Attributes:
        shares: one row per persona: ``persona, reference_share, current_share, change``
            (sorted by the size of the change).
        transitions: customers seen on both sides by ``from_persona, to_persona``:
            ``customers`` and ``share`` of those customers (movers first).
        common_customers: customers present in both the reference and the window.
        moved_share: share of those whose persona changed (None without common customers).
        max_share_change: the largest absolute share change (None when a side is empty).
        max_share_persona: the persona with that change.
    """

    shares: pd.DataFrame
    transitions: pd.DataFrame
    common_customers: int
    moved_share: float | None
    max_share_change: float | None
    max_share_persona: str | None

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "shares": self.shares.to_dict(orient="records"),
            "transitions": self.transitions.to_dict(orient="records"),
            "common_customers": self.common_customers,
            "moved_share": self.moved_share,
            "max_share_change": self.max_share_change,
            "max_share_persona": self.max_share_persona,
        }


def persona_shares(reference: pd.Series, current: pd.Series) -> pd.DataFrame:
    """Share of rows per persona on each side and the change (missing personas count as 0).

    Args:
        reference: persona per reference row.
        current: persona per current row.

    Returns:
        ``persona, reference_share, current_share, change`` sorted by ``|change|`` descending.
    """
    ref = reference.dropna().astype(str).value_counts(normalize=True)
    cur = current.dropna().astype(str).value_counts(normalize=True)
    names = sorted(set(ref.index) | set(cur.index))
    out = pd.DataFrame({PERSONA: names,
                        "reference_share": [float(ref.get(n, 0.0)) for n in names],
                        "current_share": [float(cur.get(n, 0.0)) for n in names]})
    out["change"] = out["current_share"] - out["reference_share"]
    order = out["change"].abs().sort_values(ascending=False, kind="stable").index
    return out.loc[order].reset_index(drop=True)


def persona_movers(reference: pd.DataFrame, current: pd.DataFrame) -> pd.DataFrame:
    """Customers on both sides counted by (persona at training, persona now).

    Args:
        reference: ``customer_id, persona`` at training (latest row per customer is used).
        current: ``customer_id, persona`` now (latest row per customer is used).

    Returns:
        ``from_persona, to_persona, customers, share``; movers first, then by count.
    """
    left = reference[[ENTITY_KEY, PERSONA]].dropna().drop_duplicates(ENTITY_KEY, keep="last")
    right = current[[ENTITY_KEY, PERSONA]].dropna().drop_duplicates(ENTITY_KEY, keep="last")
    both = left.merge(right, on=ENTITY_KEY, suffixes=("_from", "_to"))
    columns = ["from_persona", "to_persona", "customers", "share"]
    if both.empty:
        return pd.DataFrame(columns=columns)
    counts = (both.groupby([f"{PERSONA}_from", f"{PERSONA}_to"]).size().rename("customers").reset_index()
              .rename(columns={f"{PERSONA}_from": "from_persona", f"{PERSONA}_to": "to_persona"}))
    counts["share"] = counts["customers"] / len(both)
    counts["moved"] = counts["from_persona"] != counts["to_persona"]
    counts = counts.sort_values(["moved", "customers"], ascending=[False, False], kind="stable")
    return counts[columns].reset_index(drop=True)


def persona_shift(reference: pd.DataFrame, current: pd.DataFrame) -> PersonaShift | None:
    """Share shift and movers between two frames with ``persona`` (and ``customer_id``).

    Returns:
        None when either frame lacks a ``persona`` column.
    """
    if PERSONA not in reference or PERSONA not in current:
        return None
    shares = persona_shares(reference[PERSONA], current[PERSONA])
    has_ids = ENTITY_KEY in reference and ENTITY_KEY in current
    transitions = persona_movers(reference, current) if has_ids else pd.DataFrame(
        columns=["from_persona", "to_persona", "customers", "share"])
    common = int(transitions["customers"].sum()) if len(transitions) else 0
    movers = transitions["from_persona"] != transitions["to_persona"]
    moved = float(transitions.loc[movers, "customers"].sum() / common) if common else None
    sides_known = reference[PERSONA].notna().any() and current[PERSONA].notna().any()
    if sides_known and len(shares):
        top = shares.iloc[0]
        max_change, max_persona = float(abs(top["change"])), str(top[PERSONA])
    else:
        max_change, max_persona = None, None
    return PersonaShift(shares, transitions, common, moved, max_change, max_persona)
