"""``persona prod up|down|status``: the production profile's services (see :mod:`app.services`)."""

from __future__ import annotations

import typer

from app.cli_common import one_line_errors, settings

prod_app = typer.Typer(help="Production profile services: Postgres databases, Redis check, MLflow server.",
                       no_args_is_help=True)


@prod_app.command("up")
@one_line_errors
def prod_up() -> None:
    """Create Persona's Postgres databases, check Redis, start the MLflow tracking server."""
    from app.services import prod_up as start

    for status in start(settings()):
        typer.echo(status.line())


@prod_app.command("down")
@one_line_errors
def prod_down() -> None:
    """Stop the MLflow server started by `persona prod up` (Postgres and Redis keep running)."""
    from app.services import stop_mlflow

    typer.echo(stop_mlflow(settings()))


@prod_app.command("status")
@one_line_errors
def prod_status() -> None:
    """Show whether Postgres, Redis and the MLflow server answer."""
    from app.services import mlflow_status, postgres_status, redis_status

    current = settings()
    statuses = [postgres_status(current), redis_status(current), mlflow_status(current)]
    for status in statuses:
        typer.echo(status.line())
    if not all(s.ok for s in statuses):
        raise typer.Exit(code=1)
