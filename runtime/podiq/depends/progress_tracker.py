"""`taskiq.depends.progress_tracker`, renamed: progress as a state and its data."""

from podiq._progress import TaskProgress, TaskState
from podiq._progress_tracker import ProgressTracker

__all__ = ["ProgressTracker", "TaskProgress", "TaskState"]
