"""`taskiq.scheduler.scheduled_task`, renamed."""

from podiq._schedules import CronSpec, ScheduledTask

__all__ = ["CronSpec", "ScheduledTask"]
