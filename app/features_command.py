"""``persona features ...``: build offline sources, apply the repo, materialize, check (registered in app/cli.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli_common import one_line_errors as _one_line_errors
from app.cli_common import parse_date as _parse_date
from app.cli_common import settings as _settings

features_app = typer.Typer(help="Feast feature repo: build offline sources, apply, materialize, check.",
                           no_args_is_help=True)


@features_app.command("build")
@_one_line_errors
def features_build(
    every_days: Annotated[int | None, typer.Option(min=1, help="Days between snapshots "
                                                      "(default PERSONA_SNAPSHOT_EVERY_DAYS).")] = None,
) -> None:
    """Compute behavior (and profile) feature snapshots from ingested data into the offline store."""
    from app.console import progress
    from features.build import build_offline_sources

    with progress("features build", unit="rows") as on_progress:
        built = build_offline_sources(_settings(), every_days=every_days, on_progress=on_progress)
    for name, (path, rows) in built.items():
        typer.echo(f"{name:<20} {rows:>10,} rows  {path}")


@features_app.command("apply")
@_one_line_errors
def features_apply() -> None:
    """Register Persona's feature views plus your own (PERSONA_FEATURE_REPO) in Feast; lists each with its file."""
    from features.build import empty_sources_without_transactions
    from store.repo import apply_repo

    settings = _settings()
    empty = empty_sources_without_transactions(settings)
    if empty:
        typer.echo(f"no transactions ingested: Persona's own views ({', '.join(empty)}) are registered empty; "
                   "your views (PERSONA_FEATURE_REPO) carry the features")
    for line in apply_repo(settings):
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
    from app.status import record_check
    from store.repo import check_consistency

    settings = _settings()
    result = check_consistency(settings, sample=sample)
    record_check(settings, result.summary(), result.ok, result.checked)  # read by `persona status`
    typer.echo(result.summary())
    if not result.ok:
        raise typer.Exit(code=1)
