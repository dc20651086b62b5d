"""Synthetic customers with a planted churn signal whose truth is known exactly.

The model (all times in days since ``config.start``; every rate is deterministic given the traits):

* Customer ``i`` signs up on day ``s0_i`` (half of them before the history starts) and has hidden
  traits: satisfaction, price sensitivity, discount seeking, return propensity, review
  propensity, spend level, and for some (more in region ``rural``) a delivery-problem onset day
  ``o_i``.
* Orders follow an inhomogeneous Poisson process with rate
  ``lambda_i(s) = base_i * exp(-k_i * (s - s0_i) - delta * max(s - o_i, 0)) * g_i(s)`` for
  ``s >= s0_i``: the decay ``k_i`` grows with discount seeking, returns and low satisfaction, the
  delivery problem adds ``delta`` from its onset on, and ``g_i(s)`` is 1, or ``shift_factor_i``
  (a price rise; ~0.6 on average, lower for price-sensitive customers) from the first shifted day.
* Sessions are Poisson with rate ``sessions_per_order * lambda_i(s) + browse_i``.
* Some orders get a review a few days later; its topic and polarity depend on the traits, its
  rating on its polarity, except that most delivery reviews' stars rate the product (so a
  delivery complaint shows in the text, rarely in the stars). Deliveries start failing
  ``delivery_complaint_lead_days`` before the onset: from then on the customer reviews more
  often, mostly with delivery complaints, and from the onset on the customer is gone within
  weeks. So what customers write announces churn that their behaviour shows only later.

So for a snapshot ``t`` (a midnight) and horizon ``H`` days, the orders in ``(t, t + H]`` are
Poisson with mean ``L = integral_t^{t+H} lambda_i``, a sum of exponential pieces in closed form:
``P(churned) = exp(-L)``, ``E[orders] = L``, ``E[spend] = integral lambda_i(s) E[amount_i(s)] ds``.
Order counts are exact per whole UTC day (the hour of an order is drawn from a daily profile
inside its day), so every day-aligned window, such as the snapshot windows, follows the model.

With ``campaign_waves``, past randomized campaigns are added (:mod:`synthetic.campaigns`): their
exposures, a consent column, the transactions of treated windows rewritten to follow each offer's
effect, and the true effect per customer, offer and campaign (``campaign_truth``).

This module writes a data set; the pieces live by concept: :mod:`synthetic.config` (what to
generate), :mod:`synthetic.traits`, :mod:`synthetic.orders` (the order process and its ground
truth) and :mod:`synthetic.activity` (sessions and reviews).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import pandas as pd

from core.errors import PersonaError
from core.progress import silent
from synthetic.activity import draw_reviews, draw_sessions
from synthetic.campaigns import CampaignParams, consent_column, draw_campaigns
from synthetic.config import SNAPSHOT_EVERY_DAYS, GenerateConfig, ModelParams
from synthetic.orders import compute_ground_truth, draw_transactions
from synthetic.traits import customers_frame, draw_traits

if TYPE_CHECKING:
    from core.progress import ProgressEvent


def _describe(config: GenerateConfig, params: ModelParams, counts: dict[str, int]) -> dict[str, object]:
    start = pd.Timestamp(config.start)
    shift_start = start + pd.Timedelta(days=config.days)
    return {
        "generator": "synthetic.generator",
        "config": {
            "customers": config.customers, "days": config.days, "seed": config.seed,
            "start": start.isoformat(), "shift_days": config.shift_days, "format": config.fmt,
            "horizon_days": config.horizon_days,
        },
        "period": {
            "start": start.isoformat(),
            "end_exclusive": (start + pd.Timedelta(days=config.total_days)).isoformat(),
            "shift_start": shift_start.isoformat() if config.shift_days else None,
        },
        "rows": counts,
        "order_rate": "lambda_i(s) = base_i * exp(-k_i * (s - signup_i) - delta * max(s - onset_i, 0)) "
                      "* g_i(s) for s >= signup_i (days); delta = delivery_onset_decay_per_year / 365; "
                      "g_i = 1 before the shift, shift_factor_i = shift_factor_max - shift_factor_price "
                      "* price_sensitivity_i from its first day on",
        "decay": "log k_i = log(decay_per_year / 365) + decay_discount * discount_seeking "
                 "+ decay_returns * return_propensity + decay_satisfaction * satisfaction + noise "
                 "(traits centred)",
        "ground_truth": {
            "file": f"ground_truth.{config.fmt}",
            "snapshots": f"every {SNAPSHOT_EVERY_DAYS} days back from the midnight after the last day "
                         "(core.timegrid.snapshot_timestamps); customers signed up by t",
            "true_churn_probability": "P(no order in (t, t + horizon_days]) = exp(-L), "
                                      "L = integral of lambda_i over the window",
            "true_expected_orders": "L",
            "true_expected_spend": "integral of lambda_i(s) * E[amount_i(s)] (up to cent rounding)",
            "beyond_the_period": "windows that reach past the generated period assume its last regime "
                                 "continues; score labels only on complete windows",
        },
        "planted_signal": [
            "order rates fade with tenure, faster for discount seekers (discount share), frequent "
            "returners (returned share) and unsatisfied customers (review tone, ratings)",
            f"a delivery problem ({params.delivery_problem_rate_rural:.0%} of customers in region 'rural', "
            f"{params.delivery_problem_rate:.0%} elsewhere) adds decay from its onset on; deliveries fail "
            f"{params.delivery_complaint_lead_days:g} days before the onset and those orders are reviewed "
            "far more often, mostly as delivery complaints, so text announces churn that behaviour "
            "shows only later; most delivery reviews' stars rate the product "
            f"({params.delivery_stars_rate_product:.0%}), so the complaint is in the words, not the stars",
            "price-sensitive customers write about prices and react most to the shift's price rise",
            "sessions track the order rate (sessions_per_order) plus steady browsing",
        ],
        "shift": ("none" if not config.shift_days else
                  f"from {shift_start.date()} for {config.shift_days} days: list prices x"
                  f"{params.shift_price_rise}, order rates x shift_factor_i (mean ~0.6, lower for "
                  "price-sensitive customers), every customer complains about delivery and price more "
                  "often (text drift without extra churn beyond the price effect)"),
        "params": asdict(params),
        **({"campaigns": {
            "waves": config.campaign_waves,
            "model": "treated order rate m_i * lambda_i + a_io in (contact, contact + response_days]; "
                     "see synthetic.campaigns",
            "effects": "a_io = lift_o * pull_io * reach_i: pull by traits the features trace (discount: discount "
                       "seeking and price sensitivity; free delivery: rural region and returns; apology: "
                       "deliveries that have failed), reach_i = exp(-days since the last order / "
                       "reach_recency_days), full reach for an apology within apology_window_days of an order "
                       "placed while deliveries failed; the put-off (m_i = put_off_factor, a_io = 0) are the "
                       "satisfied regulars: put_off_satisfaction * satisfaction + put_off_frequency * "
                       "log(rate / mean rate) + N(0, put_off_noise) > put_off_threshold",
            "ground_truth": "campaign_truth: true_uplift_conversion / _orders / _spend per customer eligible "
                            "in a wave and per offer campaign of it",
            "params": asdict(CampaignParams()),
        }} if config.campaign_waves else {}),
    }


def _readme(description: dict[str, object]) -> str:
    lines = [
        "# Synthetic Persona dataset",
        "",
        "Generated by `persona generate` (module `synthetic.generator`). Same parameters and seed, same data.",
        "",
        "Tables: customers, transactions, sessions, reviews (data-contract columns) and ground_truth",
        "(exact churn probability, expected orders and spend per customer and snapshot).",
        *(["", "Campaigns: campaigns, exposures (randomized waves) and campaign_truth (true effect of each",
           "offer on conversion, orders and spend per customer and campaign); see synthetic/campaigns.py.",
           f"- Campaign effects: {description['campaigns']['effects']}"]  # type: ignore[index]
          if "campaigns" in description else []),
        "",
        f"- Order rate: {description['order_rate']}",
        f"- Decay: {description['decay']}",
        "- Pieces: the rate is exponential between signup, the delivery onset and the shift start, so",
        "  every window integral has a closed form.",
        f"- Shift: {description['shift']}",
        "",
        "Planted signal:",
        *[f"- {item}" for item in cast("list[str]", description["planted_signal"])],
        "",
        "Ground truth: `true_churn_probability` = P(no order in (t, t + horizon]) = exp(-L), where L is the",
        "integral of the order rate over the window; `true_expected_orders` = L. Windows that reach past",
        "the generated period assume its last regime continues, so score realized labels only on complete",
        "windows. All parameters are in `generator.json`.",
        "",
    ]
    return "\n".join(lines)


def _write(frame: pd.DataFrame, path: Path, fmt: str) -> None:
    if fmt == "parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)


def generate_dataset(config: GenerateConfig, out_dir: Path, params: ModelParams | None = None,
                     on_progress: ProgressEvent = silent) -> dict[str, Path]:
    """Generate and write the synthetic dataset.

    Args:
        config: sizes, period, seed and file format.
        out_dir: directory to write into (created if missing).
        params: model constants; the documented defaults when None.
        on_progress: told each of the six steps (four tables, ground truth, files) as it starts.

    Returns:
        Name -> written file for customers, transactions, sessions, reviews, ground_truth,
        generator (``generator.json``) and readme; with ``config.campaign_waves`` also campaigns,
        exposures and campaign_truth (and a ``consent`` column in customers).

    Raises:
        PersonaError: if ``out_dir`` cannot be written.
    """
    params = params or ModelParams()
    seeds = np.random.SeedSequence(config.seed).spawn(5)  # the fifth draws campaigns only
    rngs = [np.random.default_rng(s) for s in seeds]
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PersonaError(f"cannot create output directory {out_dir}: {exc.strerror}; "
                           "pick another --out") from None

    steps = 6
    tables: dict[str, pd.DataFrame] = {}
    on_progress(0, steps, "customers")
    traits = draw_traits(config, params, rngs[0])
    tables["customers"] = customers_frame(traits, config)
    on_progress(1, steps, "transactions")
    tables["transactions"] = draw_transactions(traits, config, params, rngs[1])
    if config.campaign_waves:
        campaign_params = CampaignParams()
        consent = consent_column(len(traits), campaign_params, rngs[4])
        tables["customers"]["consent"] = consent
        drawn = draw_campaigns(traits, tables["transactions"], consent, config, params, campaign_params,
                               config.campaign_waves, rngs[4])
        tables.update(drawn)
    on_progress(2, steps, "sessions")
    tables["sessions"] = draw_sessions(traits, config, params, rngs[2])
    on_progress(3, steps, "reviews")
    tables["reviews"] = draw_reviews(traits, tables["transactions"], config, params, rngs[3])
    on_progress(4, steps, "ground truth")
    tables["ground_truth"] = compute_ground_truth(traits, config, params)
    on_progress(5, steps, "writing files")
    paths: dict[str, Path] = {}
    try:
        for name, frame in tables.items():
            paths[name] = out_dir / f"{name}.{config.fmt}"
            _write(frame, paths[name], config.fmt)
        description = _describe(config, params, {name: len(frame) for name, frame in tables.items()})
        paths["generator"] = out_dir / "generator.json"
        paths["generator"].write_text(json.dumps(description, indent=2) + "\n")
        paths["readme"] = out_dir / "README.md"
        paths["readme"].write_text(_readme(description))
    except OSError as exc:
        raise PersonaError(f"cannot write into {out_dir}: {exc.strerror}; pick another --out") from None
    on_progress(steps, steps, "done")
    return paths


__all__ = ["GenerateConfig", "ModelParams", "generate_dataset"]
