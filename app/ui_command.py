"""``persona ui mlflow|feast|evidently [--port N]``: start a tool's UI on this home (see :mod:`app.ui`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from app.cli_common import one_line_errors, settings

if TYPE_CHECKING:
    from app.ui import Tool

ui_app = typer.Typer(help="The MLflow, Feast and Evidently UIs on this home's data (Ctrl-C stops).",
                     no_args_is_help=True)

PortOption = Annotated[int | None, typer.Option("--port", min=1, max=65535,
                                                help="Port to listen on (127.0.0.1); default per UI.")]
READY_DEADLINE_S = 120.0


def _serve(tool: Tool, port: int | None) -> None:
    from app import ui

    launch = ui.ui_launch(settings(), tool, port)
    if not launch.argv:
        typer.echo(f"{tool} UI: {launch.url} (the prod tracking server started by `persona prod up`)")
        return
    process = ui.start(launch)
    try:
        took = ui.wait_ready(process, launch.url, READY_DEADLINE_S)
        typer.echo(f"{tool} UI: {launch.url} (ready in {took:.1f} s; Ctrl-C stops it)")
        process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        ui.stop(process)


@ui_app.command("mlflow")
@one_line_errors
def mlflow_ui(port: PortOption = None) -> None:
    """MLflow's UI on this home's tracking store (runs, registered models, aliases); default port 5055."""
    _serve("mlflow", port)


@ui_app.command("feast")
@one_line_errors
def feast_ui(port: PortOption = None) -> None:
    """Feast's UI on this home's feature repo (entities, views, services); default port 8888."""
    _serve("feast", port)


@ui_app.command("evidently")
@one_line_errors
def evidently_ui(port: PortOption = None) -> None:
    """Evidently's UI on this home's monitoring workspace (drift reports, snapshots); default port 8001."""
    _serve("evidently", port)
