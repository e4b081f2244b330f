"""The loop that fires schedules in-process (on Kubernetes, CronJobs do this instead)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from podiq._kicker import AsyncKicker
from podiq._middleware import maybe_await
from podiq._schedules import ScheduledTask, ScheduleSource
from podiq.exceptions import ScheduledTaskCancelledError

if TYPE_CHECKING:
    from podiq._broker import AsyncBroker

logger = logging.getLogger("podiq.scheduler")


class TaskiqScheduler:
    """Sends scheduled tasks to `broker` when they are due.

    `refresh_delay` is the longest the loop sleeps before re-reading the sources, so schedules
    added meanwhile are seen within that many seconds.
    """

    def __init__(self, broker: AsyncBroker, sources: Sequence[ScheduleSource], refresh_delay: float = 1.0) -> None:
        self.broker = broker
        self.sources = list(sources)
        self.refresh_delay = refresh_delay
        self._due: dict[str, datetime] = {}
        # One-off schedules already sent whose source cannot delete them (e.g. taskiq's
        # read-only sources that only implement get_schedules), so they are not sent again.
        self._sent_once: set[str] = set()

    async def startup(self) -> None:
        await self.broker.startup()
        for source in self.sources:
            await source.startup()

    async def shutdown(self) -> None:
        for source in self.sources:
            await source.shutdown()

    async def tick(self, now: datetime | None = None) -> list[ScheduledTask]:
        """Send every schedule due at `now`; returns those sent. A schedule seen for the first
        time becomes due at its next time after `now` (a one-shot time already past fires now)."""
        now = now or datetime.now(UTC)
        fired: list[ScheduledTask] = []
        seen: set[str] = set()
        for source in self.sources:
            try:
                schedules = await source.get_schedules()
            except Exception:
                # One failing source must not stop the others; its schedules keep their times.
                logger.exception("Schedule source %s could not list its schedules; trying again later.", source)
                seen.update(self._due)
                continue
            for schedule in schedules:
                seen.add(schedule.schedule_id)
                if schedule.schedule_id in self._sent_once:
                    continue
                try:
                    if await self._tick_one(source, schedule, now):
                        fired.append(schedule)
                except Exception:
                    # A schedule that cannot be computed or sent is skipped until it changes;
                    # the others keep firing.
                    logger.exception(
                        "Schedule %s of task %s failed; skipping it.", schedule.schedule_id, schedule.task_name
                    )
                    self._due[schedule.schedule_id] = _NEVER
        for gone in set(self._due) - seen:
            del self._due[gone]
        self._sent_once &= seen
        return fired

    async def _tick_one(self, source: ScheduleSource, schedule: ScheduledTask, now: datetime) -> bool:
        due = self._due.get(schedule.schedule_id)
        if due is None:
            due = _first_due(schedule, now)
            self._due[schedule.schedule_id] = due
        if due > now:
            return False
        fired = await self._send(source, schedule)
        if schedule.time is not None:
            self._due.pop(schedule.schedule_id, None)
            try:
                await source.delete_schedule(schedule.schedule_id)
            except NotImplementedError:
                self._sent_once.add(schedule.schedule_id)
        else:
            self._due[schedule.schedule_id] = schedule.next_run(max(due, now)) or now
        return fired

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Fire schedules until `stop` is set (or the task is cancelled)."""
        await self.startup()
        await self.run_started(stop)

    async def run_started(self, stop: asyncio.Event | None = None) -> None:
        """The loop of `run()`, for a broker and sources that were started already."""
        stop = stop or asyncio.Event()
        try:
            while not stop.is_set():
                await self.tick()
                now = datetime.now(UTC)
                wait = min([self.refresh_delay, *((due - now).total_seconds() for due in self._due.values())])
                try:
                    await asyncio.wait_for(stop.wait(), max(wait, 0.0))
                except TimeoutError:
                    pass
        finally:
            await self.shutdown()

    async def on_ready(self, source: ScheduleSource, schedule: ScheduledTask) -> None:
        """Send one schedule now, as its source's hooks allow (taskiq's name)."""
        await self._send(source, schedule)

    async def _send(self, source: ScheduleSource, schedule: ScheduledTask) -> bool:
        try:
            await maybe_await(source.pre_send(schedule))
        except ScheduledTaskCancelledError:
            logger.info("Schedule %s skipped by its source.", schedule.schedule_id)
            return False
        kicker: AsyncKicker[..., object] = AsyncKicker(schedule.task_name, self.broker, schedule.labels)
        if schedule.task_id is not None:
            kicker.with_task_id(schedule.task_id)
        try:
            await kicker.with_schedule_id(schedule.schedule_id).kiq(*schedule.args, **schedule.kwargs)
        except Exception:
            logger.exception("Schedule %s could not send task %s.", schedule.schedule_id, schedule.task_name)
            return False
        await maybe_await(source.post_send(schedule))
        return True


_NEVER = datetime.max.replace(tzinfo=UTC)


def _first_due(schedule: ScheduledTask, now: datetime) -> datetime:
    if schedule.time is not None:
        return schedule.next_run(datetime.min.replace(tzinfo=UTC)) or now
    return schedule.next_run(now) or now
