"""`taskiq.funcs`, renamed."""

from podiq._gather import gather

__all__ = ["gather"]
