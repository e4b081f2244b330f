"""`taskiq.scheduler.merge_functions`: taskiq's ways of merging two lists of schedules.

Plain list functions, kept so that code importing them moves over by a rename; podiq's
TaskiqScheduler reads each source's schedules on its own and merges nothing itself.
"""

from __future__ import annotations

from podiq._schedules import ScheduledTask

__all__ = ["only_new", "only_unique", "preserve_all"]


def preserve_all(old_tasks: list[ScheduledTask], new_tasks: list[ScheduledTask]) -> list[ScheduledTask]:
    """Both lists, the new after the old."""
    return old_tasks + new_tasks


def only_unique(old_tasks: list[ScheduledTask], new_tasks: list[ScheduledTask]) -> list[ScheduledTask]:
    """The old list, then each new schedule that is not equal to one already in it."""
    merged = list(old_tasks)
    for task in new_tasks:
        if task not in merged:
            merged.append(task)
    return merged


def only_new(old_tasks: list[ScheduledTask], new_tasks: list[ScheduledTask]) -> list[ScheduledTask]:
    """The new list alone."""
    return new_tasks
