"""``persona forget``: erase customers from every store and print the proof (see :mod:`privacy.forget`)."""

from __future__ import annotations

from pathlib import Path  # noqa: TC003 - Typer reads the annotation at runtime
from typing import Annotated

import typer

from app.cli_common import one_line_errors, settings
from core.errors import PersonaError


@one_line_errors
def forget(
    customer_id: Annotated[list[int] | None, typer.Option("--customer-id", help="A customer to erase "
                                                         "(repeat for several).")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="CSV (customer_id column) or parquet of "
                                              "customers to erase.")] = None,
) -> None:
    """Erase customers from every store, suppress them from later ingests, and scan that nothing is left.

    Exits 1 when the scan still finds any of them (the JSON report names the store).
    """
    from app.console import progress
    from privacy.forget import forget as run_forget
    from privacy.forget import read_ids

    if (customer_id is None) == (file is None):
        raise PersonaError("give either --customer-id ID or --file ids.csv")
    ids = list(customer_id or []) if file is None else read_ids(file)
    with progress("forget", unit="steps") as on_progress:
        report = run_forget(settings(), ids, on_progress=on_progress)
    typer.echo(report.summary())
    typer.echo(f"report: {report.path}")
    if not report.clean:
        raise typer.Exit(code=1)
