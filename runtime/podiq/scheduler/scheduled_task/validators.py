"""`taskiq.scheduler.scheduled_task.validators`, renamed."""

from podiq._schedules import validate_interval_value

__all__ = ["validate_interval_value"]
