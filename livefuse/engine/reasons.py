"""Why something failed, cut to one log line: the first line of an exception, a reason's first sentence."""

from __future__ import annotations


def first_line(exc: BaseException, limit: int) -> str:
    """An exception's first line, cut to `limit` characters (its type name when it has no message)."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


def short(reason: str, limit: int = 90) -> str:
    """A reason's first sentence, cut to fit one log line."""
    first = reason.split(". ")[0].split(", make sure")[0]
    return first if len(first) <= limit else first[: limit - 1] + "…"
