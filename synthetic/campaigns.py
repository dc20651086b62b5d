"""Past randomized campaigns whose effect differs by hidden traits, with the true effect per customer.

A *wave* is one randomized experiment on one day: every eligible customer (signed up at least
``min_tenure_days`` before, with recorded consent) is assigned at random to one of the offers'
campaigns (one campaign per offer, so the contract's one-offer-per-campaign holds) and, inside
it, to treatment or control with equal chance. Waves are ``wave_every_days`` apart and the last
one ends ``response_days`` before the history does, so every window is complete.

The effect of offer ``o`` on customer ``i`` over the window ``(t, t + R]``: the treated order
rate is ``m_i * lambda_i(s) + a_io`` instead of ``lambda_i(s)``. Both parts are functions of
hidden traits that leave traces a model can read (as heterogeneous treatment effects are
modelled: the covariates carry the effect), with a small idiosyncratic part only in who is put
off:

* ``a_io = lift_o * w_io * e_i`` extra orders per day: ``w_io`` is the offer's pull (a discount
  pulls discount seekers and price-sensitive customers, traced by the share of discounted
  orders; free delivery pulls the rural region and frequent returners, traced by the region and
  the share of returned orders; an apology voucher pulls customers whose deliveries have failed,
  traced by the reviews a failed delivery draws), and ``e_i = exp(-d_i / reach_recency_days)``
  is how far the message reaches, with ``d_i`` the days since the customer's last order before
  the contact (a lapsed customer rarely reads it: the customers most likely to leave are mostly
  not the ones a contact changes), except that an apology reaches a customer with an order
  placed while deliveries were failing within ``apology_window_days`` of the contact whatever
  their recency (:class:`ContactHistory`);
* ``m_i = put_off_factor`` for customers a contact puts off, who also ignore the offer
  (``a_io = 0``); ``m_i = 1`` for everyone else. The put-off are the satisfied regulars: those
  whose ``put_off_satisfaction * satisfaction + put_off_frequency * log(order rate / mean rate)``
  plus a normal draw of sd ``put_off_noise`` exceeds ``put_off_threshold`` (the order rate is
  traced by frequency, satisfaction by ratings and a steadier pace).

With ``L_i`` the expected orders of the window without contact, the treated orders are Poisson
with mean ``m_i L_i + a_io R``, so the true effects have closed forms:
``uplift_conversion = exp(-L_i) - exp(-(m_i L_i + a_io R))``,
``uplift_orders = (m_i - 1) L_i + a_io R`` and ``uplift_spend`` = the orders times their mean
amount (a discount's orders are cheaper by its depth). The transactions of treated customers
are rewritten to match (baseline orders in the window kept with probability ``m_i``, extra
orders added), so outcomes computed from transactions follow the model; each wave's history
includes the earlier waves' rewritten windows. The churn ground truth ignores these windows
(campaigns are rare and short beside its horizon).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from core.contract import CONTROL, TREATMENT
from synthetic.config import NS_PER_DAY
from synthetic.orders import cumulative_orders, expected_order_value
from synthetic.review_text import CATEGORIES
from synthetic.traits import REGIONS

if TYPE_CHECKING:
    from synthetic.config import GenerateConfig, ModelParams
    from synthetic.traits import Traits

OFFERS: tuple[str, ...] = ("discount", "free_delivery", "apology_voucher")


@dataclass(frozen=True)
class CampaignParams:
    """The campaign model's constants (written to ``generator.json``)."""

    response_days: float = 30.0
    wave_every_days: int = 42
    min_tenure_days: int = 30
    consent_rate: float = 0.9
    lift_per_day: tuple[float, ...] = (0.035, 0.035, 0.025)  # per offer, in OFFERS order
    cost_per_contact: tuple[float, ...] = (1.0, 0.5, 1.5)
    discount_depth: float = 0.15  # a discount's orders are this much cheaper
    put_off_threshold: float = 1.6  # put off when the satisfied-regular score + noise exceeds this
    put_off_satisfaction: float = 0.6  # per sd of satisfaction: the content are easiest to annoy
    put_off_frequency: float = 1.5  # per unit of log(order rate / mean rate): regulars most of all
    put_off_noise: float = 0.1  # sd of the idiosyncratic part (small: the traits decide)
    put_off_factor: float = 0.35  # order-rate multiplier of a put-off customer in the window
    reach_recency_days: float = 120.0  # reach = exp(-days since the last order / this): the lapsed rarely read
    apology_window_days: float = 90.0  # an apology reaches a customer whose delivery failed this recently


def consent_column(n: int, params: CampaignParams, rng: np.random.Generator) -> np.ndarray:
    """``yes`` or ``no`` per customer: whom a campaign may contact."""
    return np.where(rng.random(n) < params.consent_rate, "yes", "no").astype(object)


def draw_put_off(traits: Traits, params: CampaignParams, rng: np.random.Generator) -> np.ndarray:
    """Whom a contact puts off: the satisfied regulars, with a small idiosyncratic part (one draw per customer)."""
    regular = np.log(traits.base_rate / traits.base_rate.mean())
    score = (params.put_off_satisfaction * traits.satisfaction + params.put_off_frequency * regular
             + params.put_off_noise * rng.standard_normal(len(traits)))
    return score > params.put_off_threshold


def offer_pull(traits: Traits, history: ContactHistory) -> np.ndarray:
    """``w_io``: (customers, offers) pull of each offer on hidden traits (see the module docstring)."""
    rural = (traits.region == REGIONS.index("rural")).astype(np.float64)
    discount = 2.0 * traits.discount_seeking + 0.6 * traits.price_sensitivity
    delivery = 0.1 + 1.2 * rural + 2.0 * traits.return_propensity
    apology = 0.05 + 1.6 * np.isfinite(history.failed_delivery_days)
    return np.stack([discount, delivery, apology], axis=1)


def wave_days(config: GenerateConfig, params: CampaignParams, waves: int) -> np.ndarray:
    """Start day of each wave, oldest first; the last window ends before the history does.

    With a shifted period (``shift_days``) the waves stay in the history before it: the shifted
    period is where a campaign is planned and its outcomes arrive (:func:`respond_to_plan`).
    """
    last = int(config.days - params.response_days - 1)
    days = last - params.wave_every_days * np.arange(waves)[::-1]
    return days[days >= params.min_tenure_days]


@dataclass(frozen=True)
class ContactHistory:
    """What each customer's own orders before a contact day say (aligned with the traits).

    ``recency_days``: days from the last order before the day to the day (infinite without one);
    ``failed_delivery_days``: days since the last order placed while the customer's deliveries
    were failing (from ``delivery_complaint_lead_days`` before the delivery onset on; infinite
    without one). Both are traces the features see: recency directly, a failed delivery in the
    reviews it draws (a complaint is far likelier to be written then).
    """

    recency_days: np.ndarray
    failed_delivery_days: np.ndarray


def contact_history(traits: Traits, transactions: pd.DataFrame, config: GenerateConfig, model: ModelParams,
                    day: int) -> ContactHistory:
    """:class:`ContactHistory` at ``day`` from the orders placed before it."""
    start_ns = pd.Timestamp(config.start).value
    order_day = (pd.to_datetime(transactions["event_timestamp"], utc=True).to_numpy(dtype="datetime64[ns]")
                 .view(np.int64) - start_ns) / NS_PER_DAY
    rows = pd.Series(np.arange(len(traits)), index=traits.customer_id).reindex(
        transactions["customer_id"].to_numpy()).to_numpy()
    before = (order_day < day) & ~np.isnan(rows.astype(np.float64))
    rows, order_day = rows[before].astype(np.int64), order_day[before]
    last = np.full(len(traits), -np.inf)
    np.maximum.at(last, rows, order_day)
    failing = order_day >= traits.delivery_onset[rows] - model.delivery_complaint_lead_days
    last_failed = np.full(len(traits), -np.inf)
    np.maximum.at(last_failed, rows[failing], order_day[failing])
    return ContactHistory(recency_days=day - last, failed_delivery_days=day - last_failed)


def true_effects(traits: Traits, config: GenerateConfig, model: ModelParams, params: CampaignParams,
                 day: int, put_off: np.ndarray, history: ContactHistory) -> dict[str, np.ndarray]:
    """Exact effects of each offer for every customer in a window starting on ``day``.

    Returns:
        ``baseline_orders`` (customers,), ``extra_rate`` a_io and ``multiplier`` m_i (customers,
        offers), and ``uplift_conversion``, ``uplift_orders``, ``uplift_spend`` (customers, offers).
    """
    n = len(traits)
    window = params.response_days
    b = config.shift_start_day
    lo = cumulative_orders(traits, np.full(n, float(day)), b)
    hi = cumulative_orders(traits, np.full(n, float(day) + window), b)
    baseline = hi - lo
    engaged = np.exp(-history.recency_days / params.reach_recency_days)
    fresh_problem = history.failed_delivery_days <= params.apology_window_days
    reach = np.where(fresh_problem[:, None] & (np.arange(len(OFFERS)) == 2)[None, :], 1.0, engaged[:, None])
    extra = np.asarray(params.lift_per_day)[None, :] * offer_pull(traits, history) * reach
    extra = np.where(put_off[:, None], 0.0, extra)
    multiplier = np.where(put_off, params.put_off_factor, 1.0)[:, None] * np.ones((1, len(OFFERS)))
    treated_orders = multiplier * baseline[:, None] + extra * window
    value = expected_order_value(traits, model)[:, None]
    extra_value = value * np.where(np.arange(len(OFFERS)) == 0, 1.0 - params.discount_depth, 1.0)[None, :]
    return {
        "baseline_orders": baseline,
        "extra_rate": extra,
        "multiplier": multiplier,
        "uplift_conversion": np.exp(-baseline)[:, None] - np.exp(-treated_orders),
        "uplift_orders": treated_orders - baseline[:, None],
        "uplift_spend": (multiplier - 1.0) * baseline[:, None] * value + extra * window * extra_value,
    }


def _campaigns_frame(config: GenerateConfig, params: CampaignParams, days: np.ndarray) -> pd.DataFrame:
    start = pd.Timestamp(config.start)
    rows = []
    for wave, day in enumerate(days, start=1):
        begin = start + pd.Timedelta(days=int(day))
        for k, offer in enumerate(OFFERS):
            rows.append({"campaign_id": f"w{wave}-{offer}", "name": f"wave {wave}: {offer.replace('_', ' ')}",
                         "offer": offer, "channel": "email", "start": begin, "end": begin + pd.Timedelta(days=1),
                         "response_days": params.response_days, "cost_per_contact": params.cost_per_contact[k]})
    return pd.DataFrame(rows)


def rewrite_windows(tx: pd.DataFrame, tx_ns: np.ndarray, row_of: pd.Series, traits: Traits,
                    effects: dict[str, np.ndarray], t_rows: np.ndarray, t_offer: np.ndarray, t_contact: np.ndarray,
                    params: CampaignParams, value: np.ndarray,
                    rng: np.random.Generator) -> tuple[np.ndarray, pd.DataFrame]:
    """Treated customers' response windows as the effect model has them.

    Baseline orders in a window are kept with probability ``m_i`` (returned: the mask of rows to
    drop) and ``a_io * R`` extra orders are added on average (returned: the new rows).
    """
    window_ns = int(params.response_days * NS_PER_DAY)
    contact_of = pd.Series(t_contact, index=traits.customer_id[t_rows])
    tx_contact = contact_of.reindex(tx["customer_id"]).to_numpy(dtype=np.float64)
    in_window = (tx_ns > tx_contact) & (tx_ns <= tx_contact + window_ns)
    rows = row_of.reindex(tx["customer_id"]).to_numpy()
    drop = in_window & (rng.random(len(tx)) >= effects["multiplier"][rows, 0])
    count = rng.poisson(effects["extra_rate"][t_rows, t_offer] * params.response_days)
    who = np.repeat(np.arange(len(t_rows)), count)
    when = t_contact[who] + (rng.random(len(who)) * window_ns).astype(np.int64) + 1
    depth = np.where(t_offer[who] == 0, params.discount_depth, 0.0)
    category = np.asarray(CATEGORIES, dtype=object)[traits.favorite_category[t_rows][who]]
    return drop, pd.DataFrame({
        "customer_id": traits.customer_id[t_rows][who],
        "event_timestamp": pd.DatetimeIndex(when.astype("datetime64[ns]")).tz_localize("UTC"),
        "amount": np.round(rng.gamma(4.0, value[t_rows][who] / 4.0) * (1.0 - depth), 2),
        "quantity": 1, "category": category, "channel": "web", "discount": depth, "returned": False,
    })


def draw_campaigns(traits: Traits, transactions: pd.DataFrame, consent: np.ndarray, config: GenerateConfig,
                   model: ModelParams, params: CampaignParams, waves: int,
                   rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    """Randomized waves: campaigns, exposures, the rewritten transactions and the true effects.

    Args:
        traits: customer traits.
        transactions: orders without any campaign (:func:`synthetic.orders.draw_transactions`).
        consent: ``yes``/``no`` per customer (:func:`consent_column`).
        config: period.
        model: order-model constants (order values).
        params: campaign constants.
        waves: how many waves (the latest is the one to hold out).
        rng: source of randomness.

    Returns:
        ``campaigns``, ``exposures``, ``transactions`` (treated windows rewritten, time-sorted)
        and ``campaign_truth`` (per customer eligible in a wave and per offer campaign of it:
        ``true_uplift_conversion``, ``true_uplift_orders``, ``true_uplift_spend``,
        ``true_baseline_conversion``).
    """
    days = wave_days(config, params, waves)
    campaigns = _campaigns_frame(config, params, days)
    put_off = draw_put_off(traits, params, rng)
    start_ns = pd.Timestamp(config.start).value
    tx = transactions.copy()
    tx_ns = tx["event_timestamp"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    row_of = pd.Series(np.arange(len(traits)), index=traits.customer_id)
    keep = np.ones(len(tx), dtype=bool)
    exposures: list[pd.DataFrame] = []
    truths: list[pd.DataFrame] = []
    extras: list[pd.DataFrame] = []
    value = expected_order_value(traits, model)
    for wave, day in enumerate(days, start=1):
        so_far = pd.concat([tx.loc[keep, ["customer_id", "event_timestamp"]],
                            *[e[["customer_id", "event_timestamp"]] for e in extras]], ignore_index=True)
        history = contact_history(traits, so_far, config, model, int(day))
        effects = true_effects(traits, config, model, params, int(day), put_off, history)
        eligible = np.flatnonzero((traits.signup_day <= day - params.min_tenure_days) & (consent == "yes"))
        offer = rng.integers(0, len(OFFERS), len(eligible))
        treated = rng.random(len(eligible)) < 0.5
        contact_ns = start_ns + int(day) * NS_PER_DAY + rng.integers(8 * 3600, 18 * 3600, len(eligible)) * 10**9
        ids = traits.customer_id[eligible]
        exposures.append(pd.DataFrame({
            "customer_id": ids,
            "campaign_id": [f"w{wave}-{OFFERS[k]}" for k in offer],
            "event_timestamp": pd.DatetimeIndex(contact_ns.astype("datetime64[ns]")).tz_localize("UTC"),
            "group": np.where(treated, TREATMENT, CONTROL),
        }))
        for k, name in enumerate(OFFERS):
            truths.append(pd.DataFrame({
                "customer_id": ids, "campaign_id": f"w{wave}-{name}", "offer": name,
                "true_uplift_conversion": effects["uplift_conversion"][eligible, k],
                "true_uplift_orders": effects["uplift_orders"][eligible, k],
                "true_uplift_spend": effects["uplift_spend"][eligible, k],
                "true_baseline_conversion": -np.expm1(-effects["baseline_orders"][eligible]),
            }))
        drop, added = rewrite_windows(tx, tx_ns, row_of, traits, effects, eligible[treated], offer[treated],
                               contact_ns[treated], params, value, rng)
        keep &= ~drop
        extras.append(added)
    extra = pd.concat(extras, ignore_index=True) if extras else tx.iloc[:0]
    if len(extra):
        extra["order_id"] = np.arange(len(extra), dtype=np.int64) + int(tx["order_id"].max() if len(tx) else 0) + 1
    merged = pd.concat([tx[keep], extra[tx.columns]], ignore_index=True)
    order = np.lexsort((merged["customer_id"].to_numpy(), merged["event_timestamp"].to_numpy(dtype="datetime64[ns]")))
    return {
        "campaigns": campaigns,
        "exposures": pd.concat(exposures, ignore_index=True) if exposures else pd.DataFrame(),
        "transactions": merged.iloc[order].reset_index(drop=True),
        "campaign_truth": pd.concat(truths, ignore_index=True) if truths else pd.DataFrame(),
    }


__all__ = ["OFFERS", "CampaignParams", "ContactHistory", "consent_column", "contact_history", "draw_campaigns",
           "draw_put_off", "offer_pull", "rewrite_windows", "true_effects", "wave_days"]
