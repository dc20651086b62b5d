"""The ``persona`` command line: one Typer app over the same functions the tests call.

Every command loads :class:`core.settings.Settings` (``PERSONA_*`` environment
variables), imports its job lazily (so ``--help`` is instant) and turns a
:class:`PersonaError` into one line on stderr and exit code 1.
"""

from __future__ import annotations

import datetime as dt
import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from core.errors import PersonaError

app = typer.Typer(
    name="persona",
    help="Persona: customer features, personas, churn and value models, served and watched.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
features_app = typer.Typer(help="Feast feature repo: build offline sources, apply, materialize, check.",
                           no_args_is_help=True)
app.add_typer(features_app, name="features")
prod_app = typer.Typer(help="Production profile services: Postgres databases, Redis check, MLflow server.",
                       no_args_is_help=True)
app.add_typer(prod_app, name="prod")

console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., object])


@app.callback()
def _main() -> None:
    """Persona: customer features, personas, churn and value models, served and watched."""
    import os
    import warnings

    # Third-party deprecation chatter (ibis, feast, mlflow) is noise to a CLI user.
    for category in (DeprecationWarning, FutureWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _one_line_errors(func: F) -> F:
    """Print a PersonaError as one line and exit 1 instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            return func(*args, **kwargs)
        except PersonaError as exc:
            message = " ".join(str(exc).split())  # always one line
            console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True, markup=True)
            raise typer.Exit(code=1) from None

    return wrapper  # type: ignore[return-value]


def _settings():
    from core.settings import load_settings

    return load_settings()


def _parse_date(value: str | None, option: str) -> dt.datetime | None:
    if value is None:
        return None
    import pandas as pd

    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise PersonaError(f"{option}: cannot parse {value!r} as a date; use YYYY-MM-DD") from None
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return ts.tz_convert("UTC").to_pydatetime()


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
) -> None:
    """Write synthetic customers, transactions, sessions, reviews and ground truth."""
    from synthetic.generator import GenerateConfig, generate_dataset

    start_ts = _parse_date(start, "--start")
    config = GenerateConfig(customers=customers, days=days, seed=seed, start=start_ts,
                            shift_days=shift_days, fmt=fmt)
    paths = generate_dataset(config, out)
    for table, path in paths.items():
        typer.echo(f"{table:<14} {path}")


@app.command()
@_one_line_errors
def ingest(
    transactions: Annotated[Path | None, typer.Option(help="Transactions file (CSV or parquet).")] = None,
    reviews: Annotated[Path | None, typer.Option(help="Reviews file.")] = None,
    customers: Annotated[Path | None, typer.Option(help="Customers file.")] = None,
    sessions: Annotated[Path | None, typer.Option(help="Sessions file.")] = None,
) -> None:
    """Validate files against the data contract; keep good rows, quarantine bad ones."""
    from ingest.pipeline import ingest_files

    files = {name: path for name, path in
             {"customers": customers, "transactions": transactions, "sessions": sessions,
              "reviews": reviews}.items() if path is not None}
    if not files:
        raise PersonaError("nothing to ingest: pass at least one of --transactions, --reviews, "
                           "--customers, --sessions")
    reports = ingest_files(_settings(), files)
    for report in reports:
        typer.echo(report.summary())


# --------------------------------------------------------------------------- features
@features_app.command("build")
@_one_line_errors
def features_build(
    every_days: Annotated[int | None, typer.Option(min=1, help="Days between snapshots "
                                                      "(default PERSONA_SNAPSHOT_EVERY_DAYS).")] = None,
) -> None:
    """Compute behavior (and profile) feature snapshots from ingested data into the offline store."""
    from features.build import build_offline_sources

    for name, (path, rows) in build_offline_sources(_settings(), every_days=every_days).items():
        typer.echo(f"{name:<20} {rows:>10,} rows  {path}")


@features_app.command("apply")
@_one_line_errors
def features_apply() -> None:
    """Register entities, feature views and feature services from feature_repo/ in Feast."""
    from store.repo import apply_repo

    for line in apply_repo(_settings()):
        typer.echo(line)


@features_app.command("materialize")
@_one_line_errors
def features_materialize(
    end: Annotated[str | None, typer.Option(help="Materialize up to this time (default: latest data).")] = None,
    batch_rows: Annotated[int | None, typer.Option(
        min=1,
        help="Entity rows per online-store write (default: PERSONA_MATERIALIZE_BATCH_ROWS, else 20,000 for "
        "Redis, 100,000 for SQLite).")] = None,
) -> None:
    """Load the latest feature values into the online store (incremental; a killed run converges when rerun)."""
    from app.console import progress
    from store.repo import materialize

    with progress("materialize", unit="rows") as on_progress:  # batch rows default: the settings'
        lines = materialize(_settings(), end=_parse_date(end, "--end"), batch_rows=batch_rows, on_progress=on_progress)
    for line in lines:
        typer.echo(line)


@features_app.command("check")
@_one_line_errors
def features_check(
    sample: Annotated[int, typer.Option(min=1, help="Customers to compare.")] = 1000,
) -> None:
    """Check that online values equal the latest offline values."""
    from store.repo import check_consistency

    result = check_consistency(_settings(), sample=sample)
    typer.echo(result.summary())
    if not result.ok:
        raise typer.Exit(code=1)


@app.command()
@_one_line_errors
def embed() -> None:
    """Embed new review texts (incremental cache) and build the customer_text feature source."""
    from features.text_build import embed_reviews

    report = embed_reviews(_settings())
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


# --------------------------------------------------------------------------- prod services
@prod_app.command("up")
@_one_line_errors
def prod_up() -> None:
    """Create Persona's Postgres databases, check Redis, start the MLflow tracking server."""
    from app.services import prod_up as start

    for status in start(_settings()):
        typer.echo(status.line())


@prod_app.command("down")
@_one_line_errors
def prod_down() -> None:
    """Stop the MLflow server started by `persona prod up` (Postgres and Redis keep running)."""
    from app.services import stop_mlflow

    typer.echo(stop_mlflow(_settings()))


@prod_app.command("status")
@_one_line_errors
def prod_status() -> None:
    """Show whether Postgres, Redis and the MLflow server answer."""
    from app.services import mlflow_status, postgres_status, redis_status

    settings = _settings()
    statuses = [postgres_status(settings), redis_status(settings), mlflow_status(settings)]
    for status in statuses:
        typer.echo(status.line())
    if not all(s.ok for s in statuses):
        raise typer.Exit(code=1)


# --------------------------------------------------------------------------- models
@app.command()
@_one_line_errors
def train(
    as_of: Annotated[str | None, typer.Option(help="Use snapshots whose label window ends by this date "
                                                 "(default: the latest possible).")] = None,
    horizon_days: Annotated[int | None, typer.Option(min=1, help="Label window in days "
                                                        "(default PERSONA_HORIZON_DAYS).")] = None,
    feature_service: Annotated[str | None, typer.Option(help="Feast feature service "
                                                           "(default churn_model_v2).")] = None,
    labels: Annotated[Path | None, typer.Option(help="Custom labels file: customer_id, event_timestamp, "
                                                   "label column.")] = None,
    target: Annotated[str | None, typer.Option(help="Label column of --labels.")] = None,
    task: Annotated[str, typer.Option(help="classification or regression (--labels).")] = "classification",
    ground_truth: Annotated[Path | None, typer.Option(help="Generator ground truth for oracle metrics "
                                                         "(default: auto-detect next to the data).")] = None,
    train_snapshots: Annotated[int | None, typer.Option(min=1, help="Latest eligible snapshots used "
                                                           "for training.")] = None,
    margin: Annotated[float | None, typer.Option(min=0.0, help="Required churn ROC AUC gain over the "
                                                    "champion.")] = None,
    policy: Annotated[Path | None, typer.Option(help="Action policy YAML "
                                                   "(default model/actions.yaml).")] = None,
) -> None:
    """Train churn, value and persona models, log them to MLflow and gate the `champion` alias."""
    from training.config import GateConfig, TrainConfig
    from training.train import TrainJob

    settings = _settings()
    overrides: dict[str, object] = {
        "as_of": _parse_date(as_of, "--as-of"),
        "horizon_days": horizon_days or settings.horizon_days,
        "labels_path": labels, "target": target, "task": task, "ground_truth_path": ground_truth,
    }
    if task not in ("classification", "regression"):
        raise PersonaError(f"--task must be classification or regression, got {task!r}")
    if feature_service:
        overrides["feature_service"] = feature_service
    if train_snapshots:
        overrides["train_snapshots"] = train_snapshots
    if policy:
        overrides["policy_path"] = policy
    if margin is not None:
        base = GateConfig()
        overrides["gate"] = GateConfig(primary=base.primary.model_copy(update={"threshold": margin}),
                                       guards=base.guards)
    try:
        config = TrainConfig(**overrides)
    except ValueError as exc:
        raise PersonaError(str(exc).splitlines()[-1].strip()) from None
    typer.echo(TrainJob(settings, config).run().summary())


@app.command()
@_one_line_errors
def score(
    out: Annotated[Path, typer.Option(help="Output file (.parquet or .csv).")],
    as_of: Annotated[str | None, typer.Option(help="Score customers known at this date "
                                                 "(default: the newest snapshot).")] = None,
    version: Annotated[str | None, typer.Option(help="Model version (default: the champion).")] = None,
) -> None:
    """Batch-score every customer known at --as-of with the champion, from offline features."""
    from scoring.score import score as run_score

    report = run_score(_settings(), out=out, as_of=_parse_date(as_of, "--as-of"), version=version)
    typer.echo(report.summary())


@app.command()
@_one_line_errors
def promote(
    version: Annotated[int, typer.Option(min=1, help="Registered model version to make champion.")],
    reason: Annotated[str | None, typer.Option(help="Why (kept in the alias history).")] = None,
    expect_champion: Annotated[int | None, typer.Option(
        min=1, help="Promote only if this version is still the champion (fails if it moved meanwhile).")] = None,
) -> None:
    """Move the `champion` alias to a version by hand (recorded in its alias history).

    Concurrent promotions are serialized; the one that runs last wins.
    """
    from model.registry import promote as run_promote

    typer.echo(run_promote(_settings(), version, reason, expect_champion=expect_champion).summary())


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
    poll_seconds: Annotated[float, typer.Option(min=0.1, help="Seconds between checks for a new "
                                                "champion.")] = 10.0,
    wait_for_model: Annotated[bool, typer.Option(help="Start even without a champion (not ready "
                                                 "until one is trained).")] = False,
) -> None:
    """Serve the champion over HTTP (BentoML): predict, predict_features, similar, health."""
    import os

    from serving.launch import serve_command

    command, env = serve_command(_settings(), host=host, port=port, poll_seconds=poll_seconds,
                                 wait_for_model=wait_for_model)
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
    """The whole loop on the embedded profile, in a fresh home under PERSONA_HOME/demo."""
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
) -> None:
    """Drift of features, predictions and personas vs the champion's training data -> policy -> retrain."""
    from monitoring.job import MonitorConfig, MonitorJob

    overrides: dict[str, object] = {"window_days": window_days, "as_of": _parse_date(as_of, "--as-of"),
                                    "retrain": retrain}
    if policy is not None:
        overrides["policy_path"] = policy
    result = MonitorJob(_settings(), MonitorConfig(**overrides)).run()
    typer.echo(result.summary())
    if result.retrain is not None and result.retrain.status == "failed":
        raise typer.Exit(code=1)


def main() -> None:  # pragma: no cover - console entry point
    """Entry point for ``python -m persona``."""
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
