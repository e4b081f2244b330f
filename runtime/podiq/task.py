"""`taskiq.task`, renamed."""

from podiq._task import AsyncTaskiqTask

__all__ = ["AsyncTaskiqTask"]
