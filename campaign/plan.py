"""``persona campaign plan``: the uplift champion's audience under a budget, with a control group.

The job reads as its steps: features of every customer as of the latest snapshot (Feast's
point-in-time join), the uplift champion's expected effect of each offer, consent and the
contact rules (no contact without consent; nobody in either group of a campaign whose window is
still open, which would spoil its control group; nobody contacted again within
``min_days_between`` days of a treatment, the business rule the action table used to carry), the pure decisions of
:mod:`campaign.audience`, then the edges: the audience as CSV and parquet for email and ad
tools, the campaigns and exposures recorded through ``persona ingest``'s own validation (so a
plan can never write an exposure the contract would refuse), and an MLflow run of the plan.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from campaign.audience import AUDIENCE_COLUMNS, best_offers, fill_budget, treated_cost
from campaign.outcomes import WINDOW_END, response_windows
from core import catalog
from core.contract import CAMPAIGN_KEY, ENTITY_KEY, GROUP, TIMESTAMP, TREATMENT
from core.errors import PersonaError
from ingest.consent import contactable
from model.uplift import latest_offer_costs

if TYPE_CHECKING:
    from core.settings import Settings
    from model.uplift import UpliftPredictor

EXPERIMENT = "persona-campaigns"


@dataclass(frozen=True)
class PlanRequest:
    """What to plan.

    Attributes:
        offers: offers to choose from (empty: every offer the model knows).
        budget: money for contacts (treated customers times their offer's cost).
        control_share: share of each offer's audience held out at random.
        min_expected_value: net value an offer must exceed to be worth a contact.
        out: the audience file (``.csv`` and ``.parquet`` are both written beside it).
        campaign_id: the campaign's id (default ``plan-<UTC time>``; ``-<offer>`` per offer with several).
        cost_per_contact: cost of every offer (default: each offer's latest campaign's cost).
        value_per_conversion: value of one conversion (default: the mean spend of a converted exposure
            the uplift model learned from). Incremental conversions times this value rank customers far
            more stably than the per-customer spend uplift, a difference of two noisy regressions on
            heavy-tailed spend; the spend uplift is used only when neither value is known.
        response_days: the response window recorded for the campaign.
        min_days_between: nobody treated within this many days is contacted again.
        seed: the control draw's seed.
    """

    offers: tuple[str, ...]
    budget: float
    out: Path
    control_share: float = 0.1
    min_expected_value: float = 0.0
    campaign_id: str | None = None
    cost_per_contact: float | None = None
    value_per_conversion: float | None = None
    response_days: float = 30.0
    min_days_between: float = 30.0
    seed: int = 7


@dataclass
class PlanResult:
    """The planned audience and where it went."""

    audience: pd.DataFrame
    paths: dict[str, Path]
    cost: float
    excluded: dict[str, int]
    campaigns: list[str]
    run_id: str | None = None

    def summary(self) -> str:
        """A few lines for the terminal."""
        treated = self.audience[self.audience[GROUP] == TREATMENT]
        lines = [f"campaign(s) {', '.join(self.campaigns) or '-'}: {len(treated):,} contacts, "
                 f"{len(self.audience) - len(treated):,} held out as control, cost {self.cost:,.2f}",
                 f"expected +{treated['expected_uplift'].sum():,.1f} conversions, net value "
                 f"{treated['expected_value'].sum():,.2f}"]
        if self.excluded:
            lines.append("not contacted: " + ", ".join(f"{k} {v:,}" for k, v in self.excluded.items()))
        lines += [f"{kind:<8} {path}" for kind, path in self.paths.items()]
        return "\n".join(lines)


def latest_features(settings: Settings, feature_service: str) -> pd.DataFrame:
    """Every customer's features at the latest snapshot (point-in-time, from Feast)."""
    from features.build import entity_snapshots
    from features.dataset import build_training_set

    snapshots = entity_snapshots(settings)
    if snapshots.empty:
        raise PersonaError("no feature snapshots; run `persona features build` first")
    latest = snapshots[snapshots[TIMESTAMP] == snapshots[TIMESTAMP].max()].reset_index(drop=True)
    return build_training_set(settings, latest, feature_service)


def offer_costs(settings: Settings, offers: tuple[str, ...], override: float | None) -> dict[str, float]:
    """Cost per contact of each offer: the override, else the offer's latest campaign's cost.

    Raises:
        PersonaError: an offer has no known cost.
    """
    if override is not None:
        return dict.fromkeys(offers, float(override))
    path = catalog.raw_table(settings, "campaigns")
    costs = latest_offer_costs(pd.read_parquet(path)) if path.exists() else {}
    missing = [o for o in offers if o not in costs]
    if missing:
        raise PersonaError(f"no cost per contact known for offer(s) {', '.join(missing)}; pass --cost-per-contact")
    return {o: costs[o] for o in offers}


def recently_treated(settings: Settings, ids: np.ndarray, now: pd.Timestamp, days: float) -> np.ndarray:
    """Per id, whether the customer was in a treatment group within ``days`` before ``now``."""
    path = catalog.raw_table(settings, "exposures")
    if not path.exists() or days <= 0:
        return np.zeros(len(ids), dtype=bool)
    exposures = pd.read_parquet(path, columns=[ENTITY_KEY, TIMESTAMP, GROUP])
    recent = exposures[(exposures[GROUP] == TREATMENT)
                       & (pd.to_datetime(exposures[TIMESTAMP], utc=True) > now - pd.Timedelta(days=days))]
    return np.isin(ids, recent[ENTITY_KEY].to_numpy(dtype=np.int64))


def in_running_campaign(settings: Settings, ids: np.ndarray, now: pd.Timestamp) -> np.ndarray:
    """Per id, whether the customer is in either group of a campaign whose response window is still open.

    A control customer contacted by another campaign before the window ends would no longer show
    what happens without contact, so nobody in a running experiment is planned again.
    """
    exposures_path, campaigns_path = catalog.raw_table(settings, "exposures"), catalog.raw_table(settings, "campaigns")
    if not (exposures_path.exists() and campaigns_path.exists()):
        return np.zeros(len(ids), dtype=bool)
    windows = response_windows(pd.read_parquet(exposures_path, columns=[ENTITY_KEY, CAMPAIGN_KEY, TIMESTAMP, GROUP]),
                               pd.read_parquet(campaigns_path))
    running = windows[(windows[WINDOW_END] > now) & (pd.to_datetime(windows[TIMESTAMP], utc=True) <= now)]
    return np.isin(ids, running[ENTITY_KEY].to_numpy(dtype=np.int64))


def _campaign_ids(request: PlanRequest, offers: tuple[str, ...], now: pd.Timestamp) -> dict[str, str]:
    base = request.campaign_id or f"plan-{now:%Y%m%dT%H%M%S}"
    return {o: base if len(offers) == 1 else f"{base}-{o}" for o in offers}


def _record(settings: Settings, audience: pd.DataFrame, ids: dict[str, str], costs: dict[str, float],
            request: PlanRequest, now: pd.Timestamp) -> None:
    """Record the campaigns and exposures through ingest (validated and quarantined like any file)."""
    from ingest.run import ingest_files

    campaigns = pd.DataFrame({
        CAMPAIGN_KEY: list(ids.values()), "name": [f"planned {o.replace('_', ' ')}" for o in ids],
        "offer": list(ids), "channel": "email", "start": now, "end": now + pd.Timedelta(days=1),
        "response_days": request.response_days, "cost_per_contact": [costs[o] for o in ids],
        "value_per_conversion": request.value_per_conversion,
    })
    exposures = audience[[ENTITY_KEY, CAMPAIGN_KEY, GROUP]].assign(**{TIMESTAMP: now})
    with tempfile.TemporaryDirectory() as tmp:
        files = {"campaigns": Path(tmp) / "campaigns.parquet", "exposures": Path(tmp) / "exposures.parquet"}
        campaigns.to_parquet(files["campaigns"], index=False)
        if len(exposures):
            exposures.to_parquet(files["exposures"], index=False)
        else:
            files.pop("exposures")
        reports = ingest_files(settings, files, now=now)
    refused = [r.summary() for r in reports if r.quarantined]
    if refused:
        raise PersonaError("the plan's records were refused by ingest: " + "; ".join(refused))


def _log(settings: Settings, request: PlanRequest, result: PlanResult, model_version: str | None) -> str:
    import mlflow

    from model.registry import configure_mlflow, ensure_experiment

    client = configure_mlflow(settings)
    experiment_id = ensure_experiment(client, settings, EXPERIMENT)
    treated = result.audience[result.audience[GROUP] == TREATMENT]
    with mlflow.start_run(experiment_id=experiment_id, run_name=",".join(result.campaigns)[:250]) as run:
        mlflow.log_params({"offers": ",".join(request.offers)[:500], "budget": request.budget,
                           "control_share": request.control_share, "min_expected_value": request.min_expected_value,
                           "seed": request.seed, "min_days_between": request.min_days_between})
        mlflow.set_tags({"campaigns": ",".join(result.campaigns)[:4000], "uplift_model_version": model_version or ""})
        mlflow.log_metrics({"contacts": float(len(treated)), "control": float(len(result.audience) - len(treated)),
                            "cost": result.cost,
                            "expected_incremental_conversions": float(treated["expected_uplift"].sum()),
                            "expected_net_value": float(treated["expected_value"].sum()),
                            **{f"excluded_{k.replace(' ', '_')}": float(v) for k, v in result.excluded.items()}})
        mlflow.log_artifact(str(result.paths["parquet"]), "audience")
        return str(run.info.run_id)


def plan_campaign(settings: Settings, request: PlanRequest, *, predictor: UpliftPredictor | None = None,
                  features: pd.DataFrame | None = None, now: pd.Timestamp | None = None,
                  model_version: str | None = None) -> PlanResult:
    """Plan, write, record and log one campaign (see the module docstring).

    Args:
        settings: the home.
        request: what to plan.
        predictor: the uplift model (default: the registered uplift champion).
        features: customers' features (default: the latest snapshot from Feast).
        now: the campaign's start (default: now, UTC).
        model_version: the uplift model's registered version (logged; default: the champion's).

    Raises:
        PersonaError: no uplift model, an unknown offer, no cost for an offer.
    """
    from campaign.train import uplift_model_name

    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    now = now.tz_localize("UTC") if now.tzinfo is None else now.tz_convert("UTC")
    if predictor is None:
        from model.registry import CHAMPION, configure_mlflow
        from model.uplift import load_uplift

        name = uplift_model_name(settings)
        configure_mlflow(settings)
        try:
            predictor = load_uplift(f"models:/{name}@{CHAMPION}", settings)
        except Exception as exc:
            raise PersonaError(f"no usable uplift champion ({name}: {exc}); run `persona train --uplift` "
                               "first") from None
    offers = request.offers or predictor.offers
    unknown = [o for o in offers if o not in predictor.offers]
    if unknown:
        raise PersonaError(f"unknown offer(s) {', '.join(unknown)}; the uplift model knows "
                           f"{', '.join(predictor.offers)}")
    costs = offer_costs(settings, tuple(offers), request.cost_per_contact)
    if features is None:
        features = latest_features(settings, str(predictor.metadata.get("feature_service", "churn_model_v1")))
    ids = features[ENTITY_KEY].to_numpy(dtype=np.int64)
    agreed = contactable(settings, ids)
    running = in_running_campaign(settings, ids, now)
    recent = recently_treated(settings, ids, now, request.min_days_between) & ~running
    allowed = agreed & ~recent & ~running
    recent_rule = f"treated in the last {request.min_days_between:g} days"
    excluded = {k: int(v) for k, v in (("no consent", (~agreed).sum()),
                                        ("in a running campaign", (agreed & running).sum()),
                                        (recent_rule, (agreed & recent).sum())) if v}
    rows = features[allowed].reset_index(drop=True)
    uplift = predictor.predict(rows).assign(**{ENTITY_KEY: rows[ENTITY_KEY].to_numpy()})
    values = dict.fromkeys(offers, request.value_per_conversion or predictor.metadata.get("spend_per_conversion"))
    choices = best_offers(uplift, costs, values, request.min_expected_value)
    excluded_none = int(choices["offer"].isna().sum())
    if excluded_none:
        excluded["no offer pays"] = excluded_none
    audience = fill_budget(choices, costs, request.budget, request.control_share, request.seed)
    campaign_ids = _campaign_ids(request, tuple(offers), now)
    audience[CAMPAIGN_KEY] = audience["offer"].map(campaign_ids) if len(audience) else pd.Series(dtype=object)
    audience = audience[list(AUDIENCE_COLUMNS)]
    out = Path(request.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out.with_suffix(".csv"), "parquet": out.with_suffix(".parquet")}
    audience.to_csv(paths["csv"], index=False)
    audience.to_parquet(paths["parquet"], index=False)
    used = sorted({campaign_ids[o] for o in audience["offer"]}) if len(audience) else []
    result = PlanResult(audience, paths, treated_cost(audience, costs), excluded, used)
    if len(audience):
        _record(settings, audience, {o: c for o, c in campaign_ids.items() if c in used}, costs, request, now)
        for campaign in used:
            saved = catalog.planned_audience(settings, campaign)
            saved.parent.mkdir(parents=True, exist_ok=True)
            audience[audience[CAMPAIGN_KEY] == campaign].to_parquet(saved, index=False)
    result.run_id = _log(settings, request, result, model_version or predictor.metadata.get("version"))
    return result


__all__ = ["EXPERIMENT", "PlanRequest", "PlanResult", "latest_features", "offer_costs", "plan_campaign",
           "in_running_campaign", "recently_treated"]
