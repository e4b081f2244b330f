"""`taskiq.events`, renamed."""

from podiq._state import TaskiqEvents

__all__ = ["TaskiqEvents"]
