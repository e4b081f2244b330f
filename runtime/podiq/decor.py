"""`taskiq.decor`, renamed."""

from podiq._decor import AsyncTaskiqDecoratedTask

__all__ = ["AsyncTaskiqDecoratedTask"]
