"""`taskiq.abc.schedule_source`, renamed."""

from podiq._schedules import ScheduleSource

__all__ = ["ScheduleSource"]
