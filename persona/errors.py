"""Errors that the CLI turns into one line and a non-zero exit."""


class PersonaError(Exception):
    """A user-facing failure: the message says what was wrong and what to do."""
