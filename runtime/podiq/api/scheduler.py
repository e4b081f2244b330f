"""`taskiq.api.scheduler`, renamed."""

from __future__ import annotations

from datetime import timedelta

from podiq._scheduler import TaskiqScheduler


async def run_scheduler_task(
    scheduler: TaskiqScheduler,
    run_startup: bool = False,
    interval: timedelta | None = None,
    loop_interval: timedelta | None = None,
) -> None:
    """Start the scheduler's sources (and its broker too with `run_startup`), then fire schedules
    until cancelled. `interval` is how often the sources are read again (the scheduler's
    `refresh_delay`); podiq sleeps until the next schedule is due, so `loop_interval` is not needed."""
    if interval is not None:
        scheduler.refresh_delay = interval.total_seconds()
    if run_startup:
        await scheduler.startup()
    else:
        for source in scheduler.sources:
            await source.startup()
    await scheduler.run_started()
