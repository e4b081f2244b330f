"""`taskiq.state`, renamed."""

from podiq._state import TaskiqState

__all__ = ["TaskiqState"]
