"""`taskiq.context`, renamed."""

from podiq._context import Context

__all__ = ["Context"]
