"""taskiq's LabelScheduleSource: schedules declared on the task, `@broker.task(schedule=[...])`."""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING, Any

from podiq._labels import SCHEDULE_LABEL
from podiq._retries import sendable_labels
from podiq._schedules import ScheduledTask, ScheduleSource
from podiq.exceptions import InvalidScheduleError

if TYPE_CHECKING:
    from podiq._broker import AsyncBroker

logger = logging.getLogger("podiq.scheduler")

TRIGGERS = ("cron", "interval", "time")


class LabelScheduleSource(ScheduleSource):
    """The schedules in the `schedule` label of every task of `broker`, read at `startup()`.

    Each entry is a dict with one of `cron` (and `cron_offset`), `interval` or `time`, and
    optionally `args`, `kwargs`, `labels` and `schedule_id`; entries without a trigger are
    skipped, as in taskiq, and malformed ones raise InvalidScheduleError at startup.
    In-process, `TaskiqScheduler(broker, [LabelScheduleSource(broker)])` fires them. For a
    KubernetesBroker, `startup()` makes them CronJobs (or held-back TaskRuns) through
    KubernetesScheduleSource under stable ids, so starting again replaces rather than adds, and
    nothing has to keep running; there `get_schedules()` is empty.
    """

    def __init__(self, broker: AsyncBroker) -> None:
        self.broker = broker
        self.schedules: dict[str, ScheduledTask] = {}

    async def startup(self) -> None:
        self.schedules = {s.schedule_id: s for s in self.collect()}
        if await self.broker.apply_label_schedules(list(self.schedules.values())):
            self.schedules.clear()

    def collect(self) -> list[ScheduledTask]:
        """Every schedule the broker's tasks declare, checked."""
        found: list[ScheduledTask] = []
        for task_name, task in self.broker.get_all_tasks().items():
            if task.broker is not self.broker:
                logger.warning("Task %s belongs to another broker than this schedule source's; skipped.", task_name)
                continue
            task_labels = sendable_labels(task.labels)
            for index, entry in enumerate(task.labels.get(SCHEDULE_LABEL) or []):
                if not isinstance(entry, dict) or not set(TRIGGERS) & entry.keys():
                    continue
                found.append(_scheduled_task(task_name, index, entry, task_labels))
        return found

    async def get_schedules(self) -> list[ScheduledTask]:
        return list(self.schedules.values())

    def post_send(self, task: ScheduledTask) -> None:
        """A one-off `time` schedule is done once sent; cron and interval schedules stay."""
        if task.time is not None and task.cron is None:
            self.schedules.pop(task.schedule_id, None)


def label_schedule_id(task_name: str, index: int) -> str:
    """The same id for the same entry at every start (a valid Kubernetes name, as CronJobs need)."""
    return "label-" + hashlib.sha256(f"{task_name}#{index}".encode()).hexdigest()[:20]


def _scheduled_task(task_name: str, index: int, entry: dict[str, Any], task_labels: dict[str, Any]) -> ScheduledTask:
    try:
        return ScheduledTask(
            task_name=task_name,
            labels={**entry.get("labels", {}), **task_labels},
            schedule_id=entry.get("schedule_id") or label_schedule_id(task_name, index),
            args=entry.get("args", []),
            kwargs=entry.get("kwargs", {}),
            cron=entry.get("cron"),
            cron_offset=entry.get("cron_offset"),
            time=entry.get("time"),
            interval=entry.get("interval"),
        )
    except InvalidScheduleError as exc:
        raise InvalidScheduleError(f"Invalid schedule label #{index} of task {task_name!r}: {exc.problems}.") from None
