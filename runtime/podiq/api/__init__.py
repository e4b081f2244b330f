"""taskiq's `taskiq.api`: run the scheduler from your own program."""

from podiq.api.scheduler import run_scheduler_task

__all__ = ["run_scheduler_task"]
