"""`taskiq.result`, renamed."""

from podiq._result import TaskiqResult

__all__ = ["TaskiqResult"]
