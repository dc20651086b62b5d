"""``persona keys``: the model signing key (see :mod:`model.signing`).

``persona keys rotate`` makes a new key, re-signs every registered version that verifies under
the current key, refuses (and lists) any that does not, then puts the new key in place. Versions
signed under the old key stop loading once the new key is in use. Run it while no training job
registers versions; restart servers afterwards only if their key came from the environment.
"""

from __future__ import annotations

from pathlib import Path  # noqa: TC003  (Typer reads the annotation at runtime)
from typing import Annotated

import typer

from core.errors import PersonaError

keys_app = typer.Typer(help="Model signing key: show its id, rotate it.", no_args_is_help=True)


def _fail(exc: PersonaError) -> typer.Exit:
    typer.echo(f"error: {' '.join(str(exc).split())}", err=True)
    return typer.Exit(code=1)


@keys_app.command("show")
def show() -> None:
    """Print the id of the current signing key and where it comes from (never the key)."""
    from core.settings import load_settings
    from model.signing import signing_key

    try:
        key = signing_key(load_settings())
    except PersonaError as exc:
        raise _fail(exc) from None
    typer.echo(f"signing key {key.key_id} from {key.source}")


@keys_app.command("rotate")
def rotate(
    key_file: Annotated[
        Path | None,
        typer.Option(help="Where to write the new key (default: the key file under PERSONA_HOME)."),
    ] = None,
) -> None:
    """Make a new signing key and re-sign the versions that verify under the current one."""
    from app.console import progress
    from core.settings import load_settings
    from model.registry import configure_mlflow
    from model.rotation import rotate_key

    try:
        settings = load_settings()
        client = configure_mlflow(settings)
        with progress("re-signing model versions", unit="versions") as on_progress:
            result = rotate_key(client, settings, on_progress, key_file=key_file)
    except PersonaError as exc:
        raise _fail(exc) from None
    for line in result.lines():
        typer.echo(line)
