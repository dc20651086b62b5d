"""What every ``persona`` command shares: one-line errors, settings, date options.

Kept apart from the commands so command groups can live in their own modules
(:mod:`app.prod_commands`) without importing :mod:`app.cli`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import typer

from app.console import console
from core.errors import PersonaError

if TYPE_CHECKING:
    import datetime as dt

    from core.settings import Settings

F = TypeVar("F", bound=Callable[..., object])


def one_line_errors(func: F) -> F:
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


def settings() -> Settings:
    """The settings of this command (environment), loaded when the command runs."""
    from core.settings import load_settings

    return load_settings()


def parse_date(value: str | None, option: str) -> dt.datetime | None:
    """An optional date option as tz-aware UTC (None stays None)."""
    return None if value is None else parse_day(value, option)


def parse_day(value: str, option: str) -> dt.datetime:
    """A date option as tz-aware UTC (naive values are UTC).

    Raises:
        PersonaError: naming the option and the format to use.
    """
    import pandas as pd

    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise PersonaError(f"{option}: cannot parse {value!r} as a date; use YYYY-MM-DD") from None
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return ts.tz_convert("UTC").to_pydatetime()
