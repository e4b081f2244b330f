"""`taskiq.cli.scheduler.args`, renamed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from podiq._scheduler import TaskiqScheduler


@dataclass
class SchedulerArgs:
    """What `run_scheduler` runs: a scheduler (or its `module:variable` path) and modules to import first."""

    scheduler: str | TaskiqScheduler
    modules: list[str] = field(default_factory=list)
    skip_first_run: bool = False
    update_interval: int | None = None
    tasks_pattern: Sequence[str] = ()
