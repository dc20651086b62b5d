"""``persona train``: fit, gate and register a model (persona, a custom target, or uplift with ``--uplift``)."""

from __future__ import annotations

from pathlib import Path  # noqa: TC003 - Typer reads the annotation at runtime
from typing import Annotated, Any

import typer

from app.cli_common import one_line_errors, parse_date
from app.cli_common import settings as _settings
from app.console import console
from core.errors import PersonaError


@one_line_errors
def train(
    as_of: Annotated[str | None, typer.Option(help="Use snapshots whose label window ends by this date "
                                                 "(default: the latest possible; never after the data's "
                                                 "last event).")] = None,
    horizon_days: Annotated[int | None, typer.Option(min=1, help="Label window in days "
                                                        "(default PERSONA_HORIZON_DAYS); needs about twice "
                                                        "as much history.")] = None,
    feature_service: Annotated[str | None, typer.Option(help="Feast feature service "
                                                           "(default churn_model_v2).")] = None,
    labels: Annotated[Path | None, typer.Option(help="Custom labels file: customer_id, event_timestamp, "
                                                   "label column. The model is registered as "
                                                   "persona-<target>.")] = None,
    target: Annotated[str | None, typer.Option(help="Label column of --labels (any name).")] = None,
    task: Annotated[str, typer.Option(help="classification or regression (--labels).")] = "classification",
    ground_truth: Annotated[Path | None, typer.Option(help="Generator ground truth for oracle metrics "
                                                         "(read only when given).")] = None,
    train_snapshots: Annotated[int | None, typer.Option(min=1, help="Latest eligible snapshots used for "
                                                           "training (default 20); the plan shows them.")] = None,
    holdout_snapshots: Annotated[int | None, typer.Option(min=1, help="Latest label-complete snapshots "
                                                             "held out in a time split (default 1).")] = None,
    purge: Annotated[bool, typer.Option(help="Drop training snapshots whose label window reaches past the "
                                             "holdout's first snapshot (time split).")] = True,
    holdout_fraction: Annotated[float | None, typer.Option(min=0.01, max=0.99, help="Share of customers "
                                                              "held out in a customer split (labels at one "
                                                              "time, or too little history; default 0.2, "
                                                              "stratified, seeded).")] = None,
    cv_folds: Annotated[int, typer.Option(min=0, max=20, help="With labels at one time, also report the "
                                                              "metric's mean and spread over this many "
                                                              "customer folds (0: off).")] = 0,
    margin: Annotated[float | None, typer.Option(min=0.0, help="Required churn ROC AUC gain over the "
                                                    "champion and over the run's own baselines.")] = None,
    policy: Annotated[Path | None, typer.Option(help="Action policy YAML "
                                                   "(default model/actions.yaml).")] = None,
    uplift: Annotated[bool, typer.Option("--uplift", help="Train the uplift models instead: per offer, the "
                                         "effect of a contact on conversion and spend, learned from matured "
                                         "campaigns (the latest held out; gated on Qini; --feature-service "
                                         "default churn_model_v1, --ground-truth = the generator's "
                                         "campaign_truth, --margin = Qini gain over the champion).")] = False,
) -> None:
    """Plan, train churn, value and persona models (or --labels' target), log to MLflow and gate `champion`.

    The training plan (data span, snapshots, rows, holdout, purge and any adaptation) prints
    before fitting. A model becomes champion only when it beats its own run's baselines and the
    champion; else it is registered as challenger with the reason. Library warnings go to
    <home>/logs/persona.log.
    """
    settings = _settings()
    if uplift:
        _train_uplift(settings, feature_service, ground_truth, margin)
        return
    from training.config import GateConfig, TrainConfig
    from training.train import TrainJob

    overrides: dict[str, Any] = {
        "as_of": parse_date(as_of, "--as-of"),
        "horizon_days": horizon_days or settings.horizon_days,
        "labels_path": labels, "target": target, "task": task, "ground_truth_path": ground_truth,
        "purge": purge, "cv_folds": cv_folds,
    }
    if task not in ("classification", "regression"):
        raise PersonaError(f"--task must be classification or regression, got {task!r}")
    if feature_service:
        overrides["feature_service"] = feature_service
    if train_snapshots:
        overrides["train_snapshots"] = train_snapshots
    if holdout_snapshots:
        overrides["holdout_snapshots"] = holdout_snapshots
    if holdout_fraction is not None:
        overrides["holdout_fraction"] = holdout_fraction
    if policy:
        overrides["policy_path"] = policy
    if margin is not None:
        base = GateConfig()
        overrides["gate"] = GateConfig(primary=base.primary.model_copy(update={"threshold": margin}),
                                       guards=base.guards, baselines=base.baselines)
    try:
        config = TrainConfig(**overrides)
    except ValueError as exc:
        raise PersonaError(str(exc).splitlines()[-1].strip()) from None
    from app.console import progress
    from app.quiet import quiet_output

    def show_plan(plan: Any) -> None:
        console.print("\n".join(plan.lines()), highlight=False, markup=False, soft_wrap=True)

    with quiet_output(settings), progress("train", unit="steps") as on_progress:
        result = TrainJob(settings, config, on_progress=on_progress, on_plan=show_plan).run()
    typer.echo(result.summary())


def _train_uplift(settings: Any, feature_service: str | None, ground_truth: Path | None,
                  margin: float | None) -> None:
    from app.console import progress
    from app.quiet import quiet_output
    from campaign.train import UpliftJob
    from core.runtime import using

    job = UpliftJob(settings, feature_service=feature_service or "churn_model_v1", truth_path=ground_truth,
                    margin=margin or 0.0)
    with quiet_output(settings), using(settings), progress("train --uplift", unit="steps") as on_progress:
        job.on_progress = on_progress
        result = job.run()
    typer.echo(result.summary())
