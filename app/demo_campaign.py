"""The demo's campaign: learn uplift, plan with a control group, let the customers answer, measure, learn again.

Steps (each the function the CLI command calls): ``persona train --uplift`` on the generated
past waves, ``persona campaign plan`` at the start of the next period (a budget, a random
control group), the generated customers' response to exactly that plan written into the
period's transactions (:class:`synthetic.respond.World`) before they are ingested, ``persona
campaign evaluate`` once the window has passed, ``persona train --uplift`` again with the
campaign's outcomes as labels, and ``persona campaign monitor``. The comparison in the summary uses
the generator's true effects: the plan's treated contacts against the same budget spent on the
highest churn scores (each given the offer the plan uses most), so neither side carries
measurement noise.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from core.contract import ENTITY_KEY, GROUP, TREATMENT

if TYPE_CHECKING:
    from pathlib import Path

    from app.demo import DemoLog
    from campaign.plan import PlanResult
    from core.settings import Settings
    from synthetic.config import GenerateConfig

CAMPAIGN_ID = "demo"


@dataclass
class PolicyFigures:
    """A targeting policy's contacts, cost and true incremental conversions, revenue and ROI."""

    name: str
    contacts: int
    cost: float
    conversions: float
    revenue: float

    @property
    def roi(self) -> float:
        """(Incremental revenue - cost) / cost."""
        return (self.revenue - self.cost) / self.cost if self.cost else float("nan")


def train_uplift(settings: Settings, log: DemoLog, label: str, truth: Path | None) -> bool:
    """``persona train --uplift``; True when the gate made the new version champion."""
    from app.console import progress
    from campaign.train import UpliftJob
    from campaign.uplift import UpliftConfig

    started = time.perf_counter()
    with progress(label, unit="steps") as on_progress:
        result = UpliftJob(settings, truth_path=truth, config=UpliftConfig(n_estimators=80),
                           on_progress=on_progress).run()
    churn = result.metrics.get("baseline_churn_uplift_qini")
    log.step(label, started, f"v{result.version} -> {result.decision.alias} (Qini "
             f"{result.metrics['uplift_qini']:.4f}, random {result.metrics['baseline_random_uplift_qini']:.4f}"
             + (f", churn score {churn:.4f}" if churn is not None else "") + ")")
    return bool(result.decision.promote)


def plan(settings: Settings, log: DemoLog, at: pd.Timestamp, budget: float, control_share: float,
         out: Path) -> PlanResult:
    """``persona campaign plan --offers all --budget B --control-share S`` at ``at``."""
    from campaign.plan import PlanRequest, plan_campaign

    started = time.perf_counter()
    result = plan_campaign(settings, PlanRequest(offers=(), budget=budget, out=out, control_share=control_share,
                                                 campaign_id=CAMPAIGN_ID), now=at)
    treated = result.audience[result.audience[GROUP] == TREATMENT]
    log.step("plan a campaign (control group)", started,
             f"{len(treated):,} contacts, {len(result.audience) - len(treated):,} control, cost {result.cost:,.2f}")
    return result


def world(generated: GenerateConfig, transactions: Path):
    """The generated customers (:class:`synthetic.respond.World`) with their generated orders."""
    from synthetic.respond import World

    return World.of(generated, pd.read_parquet(transactions, columns=[ENTITY_KEY, "event_timestamp"]))


def answer(generated: GenerateConfig, transactions: Path, shifted_transactions: Path, result: PlanResult,
           at: pd.Timestamp, seed: int) -> None:
    """Rewrite the next period's transactions as the generated customers answer the plan's treated contacts."""
    treated = result.audience[result.audience[GROUP] == TREATMENT][[ENTITY_KEY, "offer"]].assign(event_timestamp=at)
    frame = pd.read_parquet(shifted_transactions)
    world(generated, transactions).respond(frame, treated, seed=seed).to_parquet(shifted_transactions, index=False)


def monitor(settings: Settings, log: DemoLog) -> None:
    """``persona campaign monitor``: drift of the uplift champion's predictions, realized vs predicted."""
    from campaign.monitor import monitor_uplift

    started = time.perf_counter()
    result = monitor_uplift(settings)
    drift = result.drift.sort_values("psi", ascending=False).iloc[0]
    held = sum(int(b["covers"].sum()) for b in result.realized.values())
    bins = sum(len(b) for b in result.realized.values())
    log.step("monitor uplift", started, f"v{result.version}: largest PSI {drift['psi']:.3f} ({drift['column']}), "
             f"realized uplift within its interval in {held}/{bins} predicted-uplift bins")


def compare(settings: Settings, generated: GenerateConfig, transactions: Path, result: PlanResult, at: pd.Timestamp,
            budget: float) -> list[PolicyFigures]:
    """The plan and a churn-score targeting of the same budget, scored on the true effects at ``at``."""
    from campaign.plan import latest_features, offer_costs
    from ingest.consent import contactable
    from model.bundle import load_predictor
    from model.registry import CHAMPION

    truth = world(generated, transactions).truth_at(at).set_index([ENTITY_KEY, "offer"])
    audience = result.audience
    treated = audience[audience[GROUP] == TREATMENT]
    costs = offer_costs(settings, tuple(sorted(set(audience["offer"]))) or ("discount",), None)
    true = truth.reindex(list(zip(treated[ENTITY_KEY], treated["offer"], strict=True)))
    figures = [PolicyFigures("uplift targeting (the plan)", len(treated), result.cost,
                             float(true["true_uplift_conversion"].sum()), float(true["true_uplift_spend"].sum()))]

    churn_model = load_predictor(f"models:/{settings.registered_model}@{CHAMPION}", settings)
    features = latest_features(settings, str(churn_model.metadata.get("feature_service", "churn_model_v1")))
    features = features[contactable(settings, features[ENTITY_KEY].to_numpy(dtype=np.int64))]
    churn = churn_model.predict(features)["churn_probability"].to_numpy()
    offer = treated["offer"].mode().iloc[0] if len(treated) else next(iter(costs))
    cost = offer_costs(settings, (offer,), None)[offer]
    contacts = min(int(budget // cost), len(features))
    chosen = features[ENTITY_KEY].to_numpy()[np.argsort(-churn, kind="stable")[:contacts]]
    picked = truth.reindex(list(zip(chosen, [offer] * contacts, strict=True)))
    figures.append(PolicyFigures(f"highest churn scores ({offer.replace('_', ' ')})", contacts, contacts * cost,
                                 float(picked["true_uplift_conversion"].sum()),
                                 float(picked["true_uplift_spend"].sum())))
    return figures


def measure(settings: Settings, log: DemoLog, generate: GenerateConfig, transactions: Path, planned: PlanResult,
            cut: pd.Timestamp, budget: float):
    """Evaluate the campaign, retrain uplift on its outcomes, score it and the churn-score targeting."""
    from campaign.evaluate import evaluate_campaign

    started = time.perf_counter()
    evaluated = evaluate_campaign(settings, CAMPAIGN_ID)
    e = evaluated.effect
    conversions = e.incremental_conversions
    log.step("evaluate the campaign", started, f"+{conversions.estimate:,.1f} conversions "
             f"({conversions.low:,.1f} to {conversions.high:,.1f}), ROI {e.roi.estimate:+.2f}")
    train_uplift(settings, log, "retrain uplift on the outcomes", None)
    monitor(settings, log)
    started = time.perf_counter()
    figures = compare(settings, generate, transactions, planned, cut, budget)
    log.step("same budget on churn scores", started, "both scored on the generator's true effects")
    return evaluated, figures


def summary(log: DemoLog, evaluated, figures) -> None:
    """The same budget, two targetings: the table the demo ends with, and what the control group measured."""
    from rich.table import Table

    e = evaluated.effect
    table = Table(title=f"Campaign {evaluated.campaign}: the same budget, two targetings (true effects)")
    for column in ("targeting", "contacts", "cost", "incremental conversions", "incremental revenue", "ROI"):
        table.add_column(column, justify="left" if column == "targeting" else "right")
    for f in figures:
        table.add_row(f.name, f"{f.contacts:,}", f"{f.cost:,.2f}", f"{f.conversions:,.1f}", f"{f.revenue:,.2f}",
                      f"{f.roi:+.2f}")
    log.console.print(table)
    log.console.print(
        f"measured on the control group: +{e.incremental_conversions.estimate:,.1f} conversions "
        f"(95 % {e.incremental_conversions.low:,.1f} to {e.incremental_conversions.high:,.1f}), ROI "
        f"{e.roi.estimate:+.2f}; report {evaluated.report}", highlight=False)


__all__ = ["CAMPAIGN_ID", "PolicyFigures", "answer", "compare", "measure", "monitor", "plan", "summary", "train_uplift"]
