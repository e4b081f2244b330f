"""`taskiq.scheduler.scheduler`, renamed."""

from podiq._scheduler import TaskiqScheduler

__all__ = ["TaskiqScheduler"]
