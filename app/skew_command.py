"""``persona skew``: replay served rows offline and compare (see :mod:`monitoring.skew`)."""

from __future__ import annotations

from pathlib import Path  # noqa: TC003 - Typer reads the annotation at runtime
from typing import Annotated

import typer

from app.cli_common import one_line_errors, parse_date, settings


@one_line_errors
def skew(
    window_days: Annotated[int, typer.Option(min=1, help="Replay rows served in the last this many days.")] = 7,
    as_of: Annotated[str | None, typer.Option(help="Window end (default: now).")] = None,
    policy: Annotated[Path | None, typer.Option(
        help="Policy YAML whose `skew:` section sets the sample, tolerances and threshold "
        "(default monitoring/policy.yaml).")] = None,
) -> None:
    """Rebuild a sample of served rows offline, as of the feature time they were served, and compare.

    Prints per-feature mismatch share and size. A feature beyond the threshold blocks promotion
    (the training gate holds new versions as challenger) until a clean replay; exits 1 then.
    """
    from app.quiet import quiet_output
    from monitoring.skew import run_skew

    home = settings()
    with quiet_output(home):
        report = run_skew(home, window_days, parse_date(as_of, "--as-of"), policy)
    for line in report.table():
        typer.echo(line)
    typer.echo(report.summary())
    if report.blocked:
        raise typer.Exit(code=1)
