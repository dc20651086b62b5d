"""The ``persona`` command line: one Typer app over the same functions the tests call.

Every command loads :class:`core.settings.Settings` (``PERSONA_*`` environment
variables), imports its job lazily (so ``--help`` is instant) and turns a
:class:`PersonaError` into one line on stderr and exit code 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cli_common import one_line_errors as _one_line_errors
from app.cli_common import parse_date as _parse_date
from app.cli_common import parse_day as _parse_day
from app.cli_common import settings as _settings
from app.console import console
from app.features_command import features_app
from app.forget_command import forget as _forget_command
from app.prod_commands import prod_app
from app.skew_command import skew as _skew_command
from app.status_commands import models_app, status
from app.train_command import train as _train_command
from core.errors import PersonaError

app = typer.Typer(
    name="persona",
    help="Persona: customer features, personas, churn and value models, served and watched.",
    no_args_is_help=True,
    add_completion=True,
    epilog="Shell completion (bash, zsh, fish, PowerShell): persona --install-completion, then restart the shell; "
    "persona --show-completion prints the script instead.",
    pretty_exceptions_enable=False,
)
app.add_typer(features_app, name="features")
app.add_typer(prod_app, name="prod")
from app.keys import keys_app  # noqa: E402  (registered here; the commands live in app/keys.py)

app.add_typer(keys_app, name="keys")
from app.ui_command import ui_app  # noqa: E402  (registered here; the commands live in app/ui_command.py)

app.add_typer(ui_app, name="ui")
app.command()(status)
app.add_typer(models_app, name="models")
from app.campaign_command import campaign_app  # noqa: E402  (registered here; the commands live in app/campaign_command.py)

app.add_typer(campaign_app, name="campaign")
from app.bento_command import bento_app  # noqa: E402  (registered here; the commands live in app/bento_command.py)

app.add_typer(bento_app, name="bento")


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"persona {version('persona')}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Persona: customer features, personas, churn and value models, served and watched."""
    import os
    import warnings

    # Third-party deprecation chatter (ibis, feast, mlflow) is noise to a CLI user.
    for category in (DeprecationWarning, FutureWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    # the CLI shows its own progress; MLflow's per-artifact bars only add noise
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


# --------------------------------------------------------------------------- data
@app.command()
@_one_line_errors
def generate(
    customers: Annotated[int, typer.Option(min=1, help="Number of customers.")] = 2_000,
    days: Annotated[int, typer.Option(min=1, help="Days of history.")] = 365,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same files.")] = 7,
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("data/generated"),
    start: Annotated[str, typer.Option(help="First day of history (UTC), YYYY-MM-DD.")] = "2025-01-01",
    shift_days: Annotated[int, typer.Option(min=0, help="Append a shifted period of this many days "
                                            "(price rise, delivery complaints) after the history.")] = 0,
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
    campaign_waves: Annotated[int, typer.Option(min=0, help="Past randomized campaign waves (one campaign "
                                                "per offer each; consent, exposures and the true "
                                                "uplift per customer are written too).")] = 0,
) -> None:
    """Write synthetic customers, transactions, sessions, reviews and ground truth."""
    from app.console import progress
    from synthetic.generator import GenerateConfig, generate_dataset

    start_ts = _parse_day(start, "--start")
    config = GenerateConfig(customers=customers, days=days, seed=seed, start=start_ts,
                            shift_days=shift_days, fmt=fmt, campaign_waves=campaign_waves)
    with progress("generate", unit="steps") as on_progress:
        paths = generate_dataset(config, out, on_progress=on_progress)
    for table, path in paths.items():
        typer.echo(f"{table:<14} {path}")


@app.command()
@_one_line_errors
def ingest(
    transactions: Annotated[Path | None, typer.Option(help="Transactions file (CSV or parquet).")] = None,
    reviews: Annotated[Path | None, typer.Option(help="Reviews file.")] = None,
    customers: Annotated[Path | None, typer.Option(help="Customers file.")] = None,
    sessions: Annotated[Path | None, typer.Option(help="Sessions file.")] = None,
    campaigns: Annotated[Path | None, typer.Option(help="Campaigns file: campaign_id, offer, start, end, "
                                                   "response_days [, cost_per_contact, value_per_conversion].")] = None,
    exposures: Annotated[Path | None, typer.Option(help="Exposures file: customer_id, campaign_id, "
                                                   "event_timestamp, group (treatment or control).")] = None,
) -> None:
    """Validate files against the data contract; keep good rows, quarantine bad ones."""
    from app.console import progress
    from ingest.run import ingest_files

    files = {name: path for name, path in
             {"customers": customers, "transactions": transactions, "sessions": sessions,
              "reviews": reviews, "campaigns": campaigns, "exposures": exposures}.items() if path is not None}
    if not files:
        raise PersonaError("nothing to ingest: pass at least one of --transactions, --reviews, "
                           "--customers, --sessions, --campaigns, --exposures")
    with progress("ingest", unit="steps") as on_progress:
        reports = ingest_files(_settings(), files, on_progress=on_progress)
    for report in reports:
        typer.echo(report.summary())


@app.command()
@_one_line_errors
def embed(
    refit_projection: Annotated[bool, typer.Option(
        "--refit-projection",
        help="Fit a new text projection (a new version; models trained on the pinned one then refuse "
        "these features until retrained). Default: reuse the pinned projection.")] = False,
    projection: Annotated[str | None, typer.Option(
        help="Project with this stored version (e.g. the one a registered model was trained on).")] = None,
) -> None:
    """Embed new review texts (incremental cache) and build the customer_text feature source.

    The projection is fitted once and pinned: later runs project new data with the same version.
    """
    from app.console import progress
    from features.text_build import embed_reviews

    with progress("embed", unit="texts") as on_progress:
        report = embed_reviews(_settings(), on_progress=on_progress, refit_projection=refit_projection,
                               projection_version=projection)
    typer.echo(report.summary())


@app.command()
@_one_line_errors
def similar(
    customer_id: Annotated[int, typer.Option(help="Customer to find neighbours of.")],
    k: Annotated[int, typer.Option(min=1, max=1000, help="Number of neighbours.")] = 10,
) -> None:
    """Customers whose review texts are most similar (cosine over text embeddings)."""
    from features.embedding.similarity import similar_customers

    for neighbour in similar_customers(_settings(), customer_id=customer_id, k=k):
        typer.echo(f"{neighbour.customer_id}\t{neighbour.score:.4f}")


# --------------------------------------------------------------------------- models
app.command(name="train")(_train_command)


@app.command()
@_one_line_errors
def score(
    out: Annotated[Path, typer.Option(help="Output file (.parquet or .csv).")],
    as_of: Annotated[str | None, typer.Option(help="Score customers known at this date "
                                                 "(default: the newest snapshot).")] = None,
    version: Annotated[str | None, typer.Option(help="Model version (default: the champion).")] = None,
    model: Annotated[str | None, typer.Option(help="Registered model: `persona` (churn, value, persona, "
                                                  "action; default PERSONA_REGISTERED_MODEL) or a custom "
                                                  "target's `persona-<target>` (a prediction column).")] = None,
    explain: Annotated[bool, typer.Option("--explain", help="Add an `explanation` column (JSON per customer): "
                                          "top feature contributions (XGBoost TreeSHAP), the persona's traits, "
                                          "the policy rule behind the action, every version involved.")] = False,
    publish: Annotated[bool, typer.Option(help="Write the persona model's scores to the Feast feature view "
                                          "`customer_scores` (with the model version) and materialize it.")] = True,
) -> None:
    """Batch-score every customer known at --as-of with a registered model's champion, from offline features."""
    from app.quiet import quiet_output
    from scoring.score import score as run_score

    settings = _settings()
    with quiet_output(settings):
        report = run_score(settings, out=out, as_of=_parse_date(as_of, "--as-of"), version=version, model=model,
                           explain=explain, publish=publish)
    typer.echo(report.summary())


@app.command()
@_one_line_errors
def promote(
    version: Annotated[int, typer.Option(min=1, help="Registered model version to make champion.")],
    reason: Annotated[str | None, typer.Option(help="Why (kept in the alias history).")] = None,
    expect_champion: Annotated[int | None, typer.Option(
        min=1, help="Promote only if this version is still the champion (fails if it moved meanwhile).")] = None,
    override_skew: Annotated[str | None, typer.Option(
        help="Promote although the latest skew replay holds promotion; the text says why and is kept "
             "in the alias history.")] = None,
    model: Annotated[str | None, typer.Option(
        help="Registered model: `persona` (default) or `persona-<target>` for a custom target.")] = None,
) -> None:
    """Move the `champion` alias to a version by hand (recorded in its alias history).

    Concurrent promotions are serialized; the one that runs last wins. While the latest skew replay
    (`persona skew`, `persona monitor`) finds served features that differ from the offline ones,
    promotion of the persona model is held, as in the training gate; `--override-skew WHY` promotes
    anyway and records why. The replay checks the persona model's features, so it never holds a
    custom target (`--model persona-<target>`).
    """
    from app.promote_hold import held_reason
    from model.registry import promote as run_promote

    settings = _settings()
    target = model.strip() if model and model.strip() else settings.registered_model
    why = reason
    hold = held_reason(settings) if target == settings.registered_model else None
    if hold is not None:
        if not override_skew or not override_skew.strip():
            raise PersonaError(f"promotion is held: {hold}; or pass --override-skew WHY to promote anyway")
        why = f"{reason or 'manual promotion (persona promote)'}; skew hold overridden: {override_skew.strip()}"
    typer.echo(run_promote(settings, version, why, expect_champion=expect_champion, model=target).summary())


@app.command()
@_one_line_errors
def rollback(
    reason: Annotated[str | None, typer.Option(help="Why (kept in the alias history).")] = None,
) -> None:
    """Move the `champion` alias back to the version the current champion replaced."""
    from model.registry import rollback as run_rollback

    typer.echo(run_rollback(_settings(), reason).summary())


# --------------------------------------------------------------------------- serving
@app.command()
@_one_line_errors
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0 for all).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="HTTP port.")] = 3000,
    poll_seconds: Annotated[float | None, typer.Option(min=0.1, help="Seconds between checks for a new "
                                                       "champion (default PERSONA_MODEL_POLL_SECONDS).")] = None,
    wait_for_model: Annotated[bool, typer.Option(help="Start even without a champion (not ready "
                                                 "until one is trained).")] = False,
) -> None:
    """Serve the champion over HTTP (BentoML): predict, predict_features, predict_target, similar, health."""
    import os

    from app.status import record_serving
    from serving.launch import serve_command

    settings = _settings()
    command, env = serve_command(settings, host=host, port=port, poll_seconds=poll_seconds,
                                 wait_for_model=wait_for_model)
    record_serving(settings, host, port)  # exec keeps this pid: `persona status` finds the server
    console.print(f"serving on http://{host}:{port} (docs at /, health at /livez and /readyz)", highlight=False)
    os.execvpe(command[0], command, env)


# --------------------------------------------------------------------------- demo
@app.command()
@_one_line_errors
def demo(
    customers: Annotated[int, typer.Option(min=200, help="Customers to generate.")] = 3_000,
    days: Annotated[int, typer.Option(min=120, help="Days of history before the shift.")] = 300,
    shift_days: Annotated[int, typer.Option(min=14, help="Days of the shifted period (price rise, "
                                            "delivery complaints).")] = 60,
    requests: Annotated[int, typer.Option(min=10, help="Prediction requests per phase.")] = 200,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
) -> None:
    """The whole loop on the embedded profile, in a new folder PERSONA_HOME/demo/run-<time> (deletes nothing)."""
    from app.demo import DemoConfig
    from app.demo import main as run

    run(DemoConfig(customers=customers, days=days, shift_days=shift_days, requests=requests, seed=seed))


# --------------------------------------------------------------------------- monitoring
@app.command()
@_one_line_errors
def monitor(
    window_days: Annotated[int, typer.Option(min=1, help="Served predictions of the last this many days "
                                             "form the current window.")] = 7,
    as_of: Annotated[str | None, typer.Option(help="Monitor as of this date: window end, latest "
                                                 "snapshot at or before it, labels known by then "
                                                 "(default: now).")] = None,
    policy: Annotated[Path | None, typer.Option(help="Retraining policy YAML "
                                                   "(default monitoring/policy.yaml).")] = None,
    retrain: Annotated[bool, typer.Option(help="Retrain when the policy says so; --no-retrain only "
                                          "reports.")] = True,
    drift_since: Annotated[str | None, typer.Option(help="When the drift began, if known (default: the "
                                                       "first snapshot a run found drifted since the last "
                                                       "clean run); churn and value retrain once matured "
                                                       "labels cover it.")] = None,
    refresh: Annotated[bool, typer.Option(help="While churn and value wait for labels, refresh personas and "
                                          "value tiers on the latest snapshot through their gate; "
                                          "--no-refresh waits for everything.")] = True,
) -> None:
    """Drift of features, predictions and personas vs the champion's training data -> policy -> retrain.

    Until matured labels cover the drifted period, a drift alert does not retrain churn and value
    (they would learn from pre-shift labels only) and prints the date they wait for; meanwhile it
    refreshes what needs no labels (personas and value tiers, the churn and value models kept) as a
    new version, promoted only when today's customers separate better into the new personas.

    With an uplift champion, its readings follow (``persona campaign monitor``).
    """
    from app.console import progress
    from monitoring.job import MonitorConfig, MonitorJob
    from monitoring.policy import DEFAULT_POLICY_PATH

    config = MonitorConfig(window_days=window_days, as_of=_parse_date(as_of, "--as-of"), retrain=retrain,
                           policy_path=policy or DEFAULT_POLICY_PATH,
                           drift_since=_parse_date(drift_since, "--drift-since"), refresh=refresh)
    job = MonitorJob(_settings(), config)
    with progress("monitor", unit="steps") as on_progress:
        seen = job.observe(on_progress)
    with progress("retrain and record", unit="steps") as on_progress:  # a retrain reports its steps
        result = job.conclude(seen, on_progress)
    typer.echo(result.summary())
    from app.campaign_command import uplift_monitor_lines  # the uplift champion, when there is one

    for line in uplift_monitor_lines(job.settings):
        typer.echo(line)
    refreshed = (result.retrain.refresh or {}) if result.retrain is not None else {}
    if result.retrain is not None and "failed" in (result.retrain.status, refreshed.get("status")):
        raise typer.Exit(code=1)


app.command(name="skew")(_skew_command)


# --------------------------------------------------------------------------- privacy
app.command(name="forget")(_forget_command)


def main() -> None:  # pragma: no cover - console entry point
    """Entry point for ``python -m persona``."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
