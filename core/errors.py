"""Errors that the CLI turns into one line and a non-zero exit."""


from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class PersonaError(Exception):
    """A user-facing failure: the message says what was wrong and what to do."""


def first_validation_error(exc: ValidationError) -> tuple[str, str]:
    """The dotted key and the reason of a config file's first validation error."""
    first = exc.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "(top level)"
    return key, first["msg"].removeprefix("Value error, ")
