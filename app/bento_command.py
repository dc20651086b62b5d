"""``persona bento build``: a self-contained Bento of this home's champion (see :mod:`serving.bento`)."""

from __future__ import annotations

import typer

from app.cli_common import one_line_errors, settings

bento_app = typer.Typer(help="Self-contained Bentos: the champion and a locked environment, packaged.",
                        no_args_is_help=True)


@bento_app.command("build")
@one_line_errors
def build() -> None:
    """Import the MLflow champion (and the uplift champion, if any) and build the Bento (serving/bentofile.yaml).

    The Bento then serves with only the online store: `bentoml serve persona:latest`
    (or `bentoml containerize persona:latest`; see docker-compose.yml for the prod profile).
    """
    from serving import bento

    built = bento.build(settings())
    models = built.model if built.uplift is None else f"{built.model} and {built.uplift}"
    typer.echo(f"built {built.bento} with {models}; serve it with `bentoml serve {built.bento}`")
