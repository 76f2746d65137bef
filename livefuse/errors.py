"""Errors a user can act on.

A `UserError` reaches the CLI, which prints its message alone (no traceback)
and exits non-zero. Raise it with a message that names the file, field or
value at fault and says what to do.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with input the user controls: a preset, model, source or argument."""

    exit_code = 2


class SourceError(UserError):
    """A source cannot be opened or read."""


class OutputError(UserError):
    """An output cannot be opened."""


class PresetError(UserError):
    """A preset file is missing, malformed or invalid."""


class ModelError(UserError):
    """A model file is missing, corrupt or does not load."""
