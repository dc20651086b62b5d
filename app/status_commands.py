"""``persona status`` and ``persona models list``: read-only views of a home and its registry.

Registered on the main app by :mod:`app.cli`; kept apart so the views grow without it.
"""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli_common import one_line_errors as _one_line_errors
from app.cli_common import settings as _settings

models_app = typer.Typer(help="Registered models: versions, aliases, metrics.", no_args_is_help=True)


@_one_line_errors
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    check: Annotated[bool, typer.Option(help="Compare a small live sample of online and offline values "
                                        "instead of showing the last `features check`.")] = False,
) -> None:
    """What this home has: data, snapshots, materialized views, embeddings, champion, serving, monitoring."""
    from app import status as view

    settings = _settings()
    sections = view.collect(settings, live_check=check)
    if as_json:
        typer.echo(view.to_json(settings, sections))
        return
    for line in view.to_text(settings, sections):
        typer.echo(line)


@models_app.command("list")
@_one_line_errors
def models_list(
    model: Annotated[str | None, typer.Option(help="Only this registered model.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Registered models and versions: aliases, created, gated metrics, why each holds its alias."""
    from app import models_command as listing

    models = listing.collect(_settings(), model)
    if as_json:
        typer.echo(listing.to_json(models))
        return
    if not any(models.values()):
        typer.echo("no registered models yet: run `persona train`")
        return
    for line in listing.table(listing.rows(models)):
        typer.echo(line)
