"""`taskiq.scheduler.created_schedule`, renamed."""

from podiq._schedules import CreatedSchedule

__all__ = ["CreatedSchedule"]
