"""`taskiq.schedule_sources`, renamed."""

from podiq._label_schedules import LabelScheduleSource

__all__ = ["LabelScheduleSource"]
