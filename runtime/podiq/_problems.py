"""One wording for what pydantic found wrong, in every error podiq raises from a ValidationError."""

from __future__ import annotations

from pydantic import ValidationError

__all__ = ["problems"]


def problems(exc: ValidationError, *, noun: str = "", whole: str = "value") -> str:
    """Each problem as ``field: message``, joined by "; ".

    With ``noun`` the field is quoted after it (``label 'timeout': ...``); an error of the
    whole object (no field) is named ``whole``.
    """
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(map(str, error["loc"]))
        field = (f"{noun} {where!r}" if noun else where) if where else whole
        parts.append(f"{field}: {error['msg']}")
    return "; ".join(parts)
