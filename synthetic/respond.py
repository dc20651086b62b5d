"""How the generated customers respond to a campaign planned later: the closed loop of ``persona demo``.

A plan picks its own customers and offers, so its outcomes cannot come from the randomized waves
the generator drew. The generated world can answer it, though: the customers' hidden traits and
who a contact puts off are drawn from the dataset's seed, so they are drawn again here exactly
as :func:`synthetic.generator.generate_dataset` drew them, each customer's own orders before
the contact come from the generated transactions (an effect depends on them: how long since the
last order, a recent failed delivery), and the planned treated customers' response windows are
rewritten by the same effect model as the waves (:mod:`synthetic.campaigns`). The true effect
of every offer on every customer at the plan's day is known too, which scores any targeting
policy (uplift or churn score) without noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from synthetic.campaigns import (
    OFFERS,
    CampaignParams,
    consent_column,
    contact_history,
    draw_put_off,
    rewrite_windows,
    true_effects,
)
from synthetic.config import GenerateConfig, ModelParams
from synthetic.orders import expected_order_value
from synthetic.traits import Traits, draw_traits


@dataclass
class World:
    """The generated customers' hidden state, as the generator drew it, and their orders."""

    config: GenerateConfig
    traits: Traits
    put_off: np.ndarray
    model: ModelParams
    params: CampaignParams
    transactions: pd.DataFrame

    @classmethod
    def of(cls, config: GenerateConfig, transactions: pd.DataFrame, model: ModelParams | None = None) -> World:
        """Draw the traits and the put-off customers again from ``config.seed`` (same streams as the generator).

        Args:
            config: the generated dataset's configuration.
            transactions: its orders (at least those before any contact asked about: an effect
                depends on the customer's orders before it).
            model: order-model constants (default :class:`ModelParams`).
        """
        model = model or ModelParams()
        params = CampaignParams()
        seeds = np.random.SeedSequence(config.seed).spawn(5)
        traits = draw_traits(config, model, np.random.default_rng(seeds[0]))
        rng = np.random.default_rng(seeds[4])
        consent_column(len(traits), params, rng)  # the campaign stream draws consent first
        put_off = draw_put_off(traits, params, rng)
        return cls(config, traits, put_off, model, params, transactions[["customer_id", "event_timestamp"]])

    def day_of(self, when: pd.Timestamp) -> int:
        """Whole days from the generated period's start."""
        start = pd.Timestamp(self.config.start)
        start = start.tz_localize("UTC") if start.tzinfo is None else start
        return int((pd.Timestamp(when) - start).days)

    def _effects(self, day: int) -> dict[str, np.ndarray]:
        history = contact_history(self.traits, self.transactions, self.config, self.model, day)
        return true_effects(self.traits, self.config, self.model, self.params, day, self.put_off, history)

    def truth_at(self, when: pd.Timestamp) -> pd.DataFrame:
        """True effect of each offer on each customer for a window starting at ``when``.

        Returns:
            ``customer_id, offer, true_uplift_conversion, true_uplift_spend`` (one row per customer and offer).
        """
        effects = self._effects(self.day_of(when))
        n = len(self.traits)
        return pd.DataFrame({
            "customer_id": np.repeat(self.traits.customer_id, len(OFFERS)),
            "offer": np.tile(np.asarray(OFFERS, dtype=object), n),
            "true_uplift_conversion": effects["uplift_conversion"].reshape(-1),
            "true_uplift_spend": effects["uplift_spend"].reshape(-1),
        })

    def respond(self, transactions: pd.DataFrame, treated: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
        """``transactions`` as they happen when ``treated`` customers are contacted.

        Args:
            transactions: orders without this campaign (any period holding its windows).
            treated: ``customer_id, offer, event_timestamp`` of each treated contact (control rows
                change nothing and are left out by the caller).
            seed: randomness of the response draws.
        """
        if treated.empty:
            return transactions
        rng = np.random.default_rng(seed)
        when = pd.to_datetime(treated["event_timestamp"], utc=True)
        day = self.day_of(when.min())
        effects = self._effects(day)
        row_of = pd.Series(np.arange(len(self.traits)), index=self.traits.customer_id)
        t_rows = row_of.reindex(treated["customer_id"]).to_numpy()
        t_offer = np.array([OFFERS.index(o) for o in treated["offer"]], dtype=np.int64)
        t_contact = when.to_numpy(dtype="datetime64[ns]").view(np.int64)
        tx = transactions.reset_index(drop=True)
        tx_ns = pd.to_datetime(tx["event_timestamp"], utc=True).to_numpy(dtype="datetime64[ns]").view(np.int64)
        value = expected_order_value(self.traits, self.model)
        drop, extra = rewrite_windows(tx, tx_ns, row_of, self.traits, effects, t_rows, t_offer, t_contact, self.params,
                               value, rng)
        if len(extra) and "order_id" in tx:
            extra["order_id"] = np.arange(len(extra), dtype=np.int64) + int(tx["order_id"].max()) + 1
        merged = pd.concat([tx[~drop], extra[[c for c in tx.columns if c in extra]]], ignore_index=True)
        return merged.sort_values(["event_timestamp", "customer_id"], kind="stable").reset_index(drop=True)


__all__ = ["World"]
