"""`taskiq.schedule_sources.label_based`, renamed."""

from podiq._label_schedules import LabelScheduleSource

__all__ = ["LabelScheduleSource"]
