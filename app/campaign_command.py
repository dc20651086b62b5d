"""``persona campaign plan / evaluate / monitor``: audiences with control groups under a budget, what they changed.

:func:`uplift_monitor_lines` is also ``persona monitor``'s uplift step: the layers put monitoring
below campaigns, so the app runs it after the monitoring job.
"""

from __future__ import annotations

import logging
from pathlib import Path  # noqa: TC003  (Typer reads the annotation at runtime)
from typing import TYPE_CHECKING, Annotated

import typer

from app.cli_common import one_line_errors
from app.cli_common import settings as _settings
from core.errors import PersonaError

if TYPE_CHECKING:
    from core.settings import Settings

logger = logging.getLogger(__name__)

campaign_app = typer.Typer(help="Plan a campaign from the uplift champion; evaluate one after its window.",
                           no_args_is_help=True)


@campaign_app.command("plan")
@one_line_errors
def plan(
    budget: Annotated[float, typer.Option(min=0.0, help="Money for contacts: treated customers x their offer's "
                                          "cost per contact; never exceeded.")],
    out: Annotated[Path, typer.Option(help="Audience file; FILE.csv and FILE.parquet are written "
                                      "(customer_id, campaign_id, offer, group, expected_uplift, "
                                      "expected_value, reason).")],
    offer: Annotated[list[str] | None, typer.Option("--offer", help="An offer to choose from (repeatable).")] = None,
    offers: Annotated[str | None, typer.Option("--offers", help="'all': every offer the uplift model knows.")] = None,
    control_share: Annotated[float, typer.Option(min=0.0, max=0.99, help="Share of each offer's audience held "
                                                 "out at random as the control group.")] = 0.1,
    min_expected_value: Annotated[float, typer.Option(help="Net expected value (incremental value minus "
                                                      "cost) an offer must exceed; below it nobody is "
                                                      "contacted.")] = 0.0,
    campaign_id: Annotated[str | None, typer.Option(help="Campaign id (default plan-<UTC time>; "
                                                    "-<offer> is appended per offer).")] = None,
    cost_per_contact: Annotated[float | None, typer.Option(min=0.0, help="Cost of every contact (default: "
                                                           "each offer's latest campaign's cost).")] = None,
    value_per_conversion: Annotated[float | None, typer.Option(min=0.0, help="Value of one conversion "
                                                               "(default: the mean spend of a converted customer "
                                                               "in the campaigns learned from).")] = None,
    response_days: Annotated[float, typer.Option(min=1.0, help="Response window recorded for the campaign.")] = 30.0,
    min_days_between: Annotated[float, typer.Option(min=0.0, help="Nobody treated within this many days is "
                                                    "contacted again.")] = 30.0,
    seed: Annotated[int, typer.Option(help="Seed of the control group draw.")] = 7,
) -> None:
    """Plan a campaign under a budget, with a random control group; consent respected.

    Per customer the offer with the highest expected incremental value minus cost (none when
    nothing pays), filled in that order up to the budget.

    The exposures are recorded (for `persona campaign evaluate` and the next `persona train --uplift`)
    and the plan is logged to MLflow.
    """
    from app.quiet import quiet_output
    from campaign.plan import PlanRequest, plan_campaign

    if bool(offer) == bool(offers):
        raise PersonaError("pass --offer X (repeatable) or --offers all")
    if offers is not None and offers != "all":
        raise PersonaError(f"--offers takes only 'all', got {offers!r}; use --offer X for one offer")
    settings = _settings()
    request = PlanRequest(offers=tuple(offer or ()), budget=budget, out=out, control_share=control_share,
                          min_expected_value=min_expected_value, campaign_id=campaign_id,
                          cost_per_contact=cost_per_contact, value_per_conversion=value_per_conversion,
                          response_days=response_days, min_days_between=min_days_between, seed=seed)
    with quiet_output(settings):
        result = plan_campaign(settings, request)
    typer.echo(result.summary())


@campaign_app.command("evaluate")
@one_line_errors
def evaluate(
    campaign_id: Annotated[str, typer.Argument(help="The campaign (its response window must have ended).")],
    out: Annotated[Path | None, typer.Option(help="HTML report (default <home>/reports/campaigns/<id>.html).")] = None,
) -> None:
    """Evaluate a campaign after its response window, as an HTML report.

    Treatment vs control conversion and spend with confidence intervals, incremental
    conversions and revenue, ROI and the Qini curve of the targeting.
    """
    from app.quiet import quiet_output
    from campaign.evaluate import evaluate_campaign

    settings = _settings()
    with quiet_output(settings):
        result = evaluate_campaign(settings, campaign_id, out)
    typer.echo(result.summary())


@campaign_app.command("monitor")
@one_line_errors
def monitor() -> None:
    """Watch the uplift champion: drift of its predictions, uplift per persona, realized vs predicted.

    Compares its uplift per offer at the latest snapshot with the snapshot before its held-out
    campaign, per persona too, and bins every matured exposure of a campaign it did not learn
    from by the uplift it predicted. Writes reports/monitoring/uplift.json.
    """
    from app.quiet import quiet_output
    from campaign.monitor import monitor_uplift

    settings = _settings()
    with quiet_output(settings):
        result = monitor_uplift(settings)
    typer.echo(result.summary())


def uplift_monitor_lines(settings: Settings) -> list[str]:
    """``persona monitor``'s uplift step: ``persona campaign monitor``'s summary when an uplift champion exists.

    Nothing without an uplift champion; a failing step is one line of the summary and never fails
    the churn and value monitoring that ran before it.
    """
    from app.quiet import quiet_output
    from campaign.monitor import monitor_uplift, uplift_champion_version

    try:
        if uplift_champion_version(settings) is None:
            return []
        with quiet_output(settings):
            return monitor_uplift(settings).summary().splitlines()
    except Exception as exc:  # the main monitor's result stands; say what the uplift step lacked
        logger.warning("uplift monitoring failed: %s", exc, exc_info=True)
        return [f"uplift monitoring failed: {type(exc).__name__}: {exc}; run `persona campaign monitor` for it alone"]
