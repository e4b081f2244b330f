"""`taskiq.cli.scheduler.run`, renamed: the scheduler loop, in this process."""

from __future__ import annotations

import importlib
from datetime import timedelta

from podiq._scheduler import TaskiqScheduler
from podiq.api.scheduler import run_scheduler_task
from podiq.cli.scheduler.args import SchedulerArgs


def _load(path: str) -> TaskiqScheduler:
    module_name, _, attribute = path.partition(":")
    if not attribute:
        raise ValueError(f"Scheduler path {path!r} must be 'module:variable', e.g. 'app.schedules:scheduler'.")
    scheduler = getattr(importlib.import_module(module_name), attribute)
    if not isinstance(scheduler, TaskiqScheduler):
        raise TypeError(f"{path} is a {type(scheduler).__name__}, not a TaskiqScheduler.")
    return scheduler


async def run_scheduler(args: SchedulerArgs) -> None:
    """Import `args.modules` (where the tasks are declared), then fire the schedules until cancelled."""
    scheduler = _load(args.scheduler) if isinstance(args.scheduler, str) else args.scheduler
    for module in args.modules:
        importlib.import_module(module)
    interval = timedelta(seconds=args.update_interval) if args.update_interval else None
    await run_scheduler_task(scheduler, run_startup=True, interval=interval)
