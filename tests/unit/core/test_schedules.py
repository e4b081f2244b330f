"""Schedules: CronSpec, ScheduledTask.next_run, sources, CreatedSchedule, TaskiqScheduler."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from podiq import (
    CreatedSchedule,
    CronSpec,
    InMemoryBroker,
    InMemoryScheduleSource,
    InvalidArgumentsError,
    InvalidScheduleError,
    ScheduledTask,
    ScheduledTaskCancelledError,
    ScheduleSource,
    TaskiqScheduler,
)

UTC = UTC
BERLIN = ZoneInfo("Europe/Berlin")


# -- CronSpec -----------------------------------------------------------------------------------


def test_cronspec_renders() -> None:
    assert CronSpec().to_cron() == "* * * * *"
    assert CronSpec(minutes=5, hours="*/2", weekdays="mon-fri").to_cron() == "5 */2 * * mon-fri"
    spec = CronSpec(minutes=0, hours=9, days=1, months=6, timezone="Europe/Berlin")
    assert spec.to_cron() == "0 9 1 6 *"
    assert spec.timezone == "Europe/Berlin"


def test_cronspec_validates_fields_and_timezone() -> None:
    with pytest.raises(InvalidScheduleError, match="'61 \\* \\* \\* \\*' is not a valid cron expression"):
        CronSpec(minutes=61)
    with pytest.raises(InvalidScheduleError, match="'Mars/Olympus' is not a known IANA time zone"):
        CronSpec(timezone="Mars/Olympus")


# -- ScheduledTask ------------------------------------------------------------------------------


def test_scheduled_task_needs_exactly_one_trigger() -> None:
    with pytest.raises(InvalidScheduleError, match="exactly one of cron, time or interval"):
        ScheduledTask(task_name="t")
    with pytest.raises(InvalidScheduleError, match="exactly one of cron, time or interval"):
        ScheduledTask(task_name="t", cron="* * * * *", interval=5)


@pytest.mark.parametrize("cron", ["* * * *", "* * * * * *", "60 * * * *", "hello", "* 24 * * *"])
def test_invalid_cron_strings(cron: str) -> None:
    with pytest.raises(InvalidScheduleError, match="not a valid cron expression"):
        ScheduledTask(task_name="t", cron=cron)


@pytest.mark.parametrize("interval", [0, 0.5, 1.5, -3, timedelta(milliseconds=500), "soon"])
def test_invalid_intervals(interval) -> None:
    with pytest.raises(InvalidScheduleError, match="interval must be a whole number of seconds"):
        ScheduledTask(task_name="t", interval=interval)


def test_next_run_for_interval_and_time() -> None:
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert ScheduledTask(task_name="t", interval=30).next_run(now) == now + timedelta(seconds=30)
    assert ScheduledTask(task_name="t", interval=timedelta(minutes=2)).next_run(now) == now + timedelta(minutes=2)
    at = datetime(2026, 1, 1, 13, tzinfo=UTC)
    one_shot = ScheduledTask(task_name="t", time=at)
    assert one_shot.next_run(now) == at
    assert one_shot.next_run(at) is None
    naive = ScheduledTask(task_name="t", time=datetime(2026, 1, 1, 13))
    assert naive.next_run(now) == at  # naive times are UTC


def test_next_run_for_cron_in_utc_and_fixed_offset() -> None:
    now = datetime(2026, 1, 1, 12, 7, tzinfo=UTC)
    assert ScheduledTask(task_name="t", cron="*/15 * * * *").next_run(now) == datetime(2026, 1, 1, 12, 15, tzinfo=UTC)
    offset = ScheduledTask(task_name="t", cron="0 9 * * *", cron_offset=timedelta(hours=-5))
    assert offset.next_run(now) == datetime(2026, 1, 1, 14, tzinfo=UTC)


def test_cron_in_a_time_zone_across_spring_dst() -> None:
    # Berlin moves from UTC+1 to UTC+2 at 2026-03-29 02:00 local.
    noon = ScheduledTask(task_name="t", cron="0 12 * * *", cron_offset="Europe/Berlin")
    runs = []
    after = datetime(2026, 3, 27, 12, tzinfo=UTC)
    for _ in range(3):
        after = noon.next_run(after)
        runs.append(after)
    assert runs == [
        datetime(2026, 3, 28, 11, tzinfo=UTC),
        datetime(2026, 3, 29, 10, tzinfo=UTC),
        datetime(2026, 3, 30, 10, tzinfo=UTC),
    ]
    assert all(run.astimezone(BERLIN).hour == 12 for run in runs)


def test_cron_in_the_skipped_hour_fires_once_that_day() -> None:
    at_half_past_two = ScheduledTask(task_name="t", cron="30 2 * * *", cron_offset="Europe/Berlin")
    runs = []
    after = datetime(2026, 3, 27, 12, tzinfo=UTC)
    for _ in range(3):
        after = at_half_past_two.next_run(after)
        runs.append(after)
    local_days = [run.astimezone(BERLIN).date().isoformat() for run in runs]
    assert local_days == ["2026-03-28", "2026-03-29", "2026-03-30"]
    assert runs[0] == datetime(2026, 3, 28, 1, 30, tzinfo=UTC)
    assert runs[2] == datetime(2026, 3, 30, 0, 30, tzinfo=UTC)


def test_cron_across_autumn_dst_keeps_real_time_steps() -> None:
    # 2026-10-25 03:00 CEST becomes 02:00 CET: the local hour 02:xx happens twice.
    every_20 = ScheduledTask(task_name="t", cron="*/20 * * * *", cron_offset="Europe/Berlin")
    runs = []
    after = datetime(2026, 10, 24, 23, 50, tzinfo=UTC)
    for _ in range(9):
        after = every_20.next_run(after)
        runs.append(after)
    assert runs[0] == datetime(2026, 10, 25, 0, 0, tzinfo=UTC)
    assert all(b - a == timedelta(minutes=20) for a, b in zip(runs, runs[1:]))  # no gap, no repeat
    noon = ScheduledTask(task_name="t", cron="0 12 * * *", cron_offset="Europe/Berlin")
    assert noon.next_run(datetime(2026, 10, 24, 12, tzinfo=UTC)) == datetime(2026, 10, 25, 11, tzinfo=UTC)


# -- scheduling on tasks and kickers ------------------------------------------------------------


@pytest.fixture
def job(broker: InMemoryBroker):
    @broker.task("scheduled.job", team="ops")
    async def job(x: int) -> int:
        return x * 10

    return job


async def test_schedule_by_cron_with_string_and_cronspec(job) -> None:
    source = InMemoryScheduleSource()
    created = await job.schedule_by_cron(source, "*/5 * * * *", 1)
    assert isinstance(created, CreatedSchedule)
    assert created.source is source
    assert repr(created) == f"CreatedSchedule(schedule_id={created.schedule_id!r}, source=InMemoryScheduleSource)"
    spec = await job.schedule_by_cron(source, CronSpec(minutes=0, hours=8, timezone="Europe/Berlin"), x=2)
    schedules = {s.schedule_id: s for s in await source.get_schedules()}
    assert set(schedules) == {created.schedule_id, spec.schedule_id}
    first = schedules[created.schedule_id]
    assert (first.task_name, first.cron, first.args, first.kwargs) == ("scheduled.job", "*/5 * * * *", [1], {})
    assert first.labels == {"team": "ops"}
    second = schedules[spec.schedule_id]
    assert (second.cron, second.cron_offset, second.kwargs) == ("0 8 * * *", "Europe/Berlin", {"x": 2})


async def test_schedule_by_time_and_interval(job) -> None:
    source = InMemoryScheduleSource()
    when = datetime(2030, 1, 1, tzinfo=UTC)
    by_time = await job.schedule_by_time(source, when, 3)
    by_interval = await job.schedule_by_interval(source, 60, 4)
    by_timedelta = await job.kicker().schedule_by_interval(source, timedelta(hours=1), 5)
    schedules = {s.schedule_id: s for s in await source.get_schedules()}
    assert schedules[by_time.schedule_id].time == when
    assert schedules[by_interval.schedule_id].interval == timedelta(seconds=60)
    assert schedules[by_timedelta.schedule_id].interval == timedelta(hours=1)


async def test_kicker_schedules_with_its_labels_and_schedule_id(job) -> None:
    source = InMemoryScheduleSource()
    created = (
        await job.kicker().with_labels(priority=1).with_schedule_id("nightly").schedule_by_cron(source, "0 0 * * *", 1)
    )
    assert created.schedule_id == "nightly"
    [schedule] = await source.get_schedules()
    assert schedule.schedule_id == "nightly"
    assert schedule.labels == {"team": "ops", "priority": 1, "schedule_id": "nightly"}
    time_created = await job.kicker().schedule_by_time(source, datetime(2031, 1, 1, tzinfo=UTC), 1)
    assert time_created.schedule_id in {s.schedule_id for s in await source.get_schedules()}


@pytest.mark.parametrize(
    ("trigger", "field"),
    [
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "not cron"}, "cron"),
        ({"interval": 0}, "interval"),
        ({"interval": 2.5}, "interval"),
    ],
)
async def test_invalid_schedules_are_refused_naming_the_field(job, trigger: dict, field: str) -> None:
    source = InMemoryScheduleSource()
    with pytest.raises(InvalidScheduleError, match=f"Invalid schedule for task 'scheduled.job': {field}:") as caught:
        if "cron" in trigger:
            await job.schedule_by_cron(source, trigger["cron"], 1)
        else:
            await job.schedule_by_interval(source, trigger["interval"], 1)
    assert isinstance(caught.value, ValueError)
    assert await source.get_schedules() == []


async def test_invalid_cronspec_and_time_zone_are_refused(job) -> None:
    with pytest.raises(InvalidScheduleError, match="not a known IANA time zone"):
        CronSpec(timezone="Nowhere/Special")
    with pytest.raises(InvalidScheduleError, match="Invalid schedule for task 'scheduled.job': schedule:"):
        await job.schedule_by_time(InMemoryScheduleSource(), None, 1)  # type: ignore[arg-type]  # deliberately the wrong type, to see it refused


async def test_schedule_checks_the_call_too(job) -> None:
    with pytest.raises(InvalidArgumentsError, match="missing a required argument: 'x'"):
        await job.schedule_by_cron(InMemoryScheduleSource(), "* * * * *")


async def test_unschedule_and_kiq(job, broker: InMemoryBroker) -> None:
    source = InMemoryScheduleSource()
    created = await job.schedule_by_cron(source, "* * * * *", 1)
    result = await created.kiq(7)
    assert await result == 70
    assert result.labels == {"team": "ops", "schedule_id": created.schedule_id}
    await created.unschedule()
    assert await source.get_schedules() == []
    await created.unschedule()  # already gone: nothing happens


async def test_base_schedule_source_is_read_only() -> None:
    class ReadOnly(ScheduleSource):
        async def get_schedules(self) -> list[ScheduledTask]:
            return []

    source = ReadOnly()
    await source.startup()
    await source.shutdown()
    assert source.pre_send(ScheduledTask(task_name="t", interval=1)) is None
    with pytest.raises(NotImplementedError, match="ReadOnly does not support adding schedules"):
        await source.add_schedule(ScheduledTask(task_name="t", interval=1))
    with pytest.raises(NotImplementedError, match="does not support deleting"):
        await source.delete_schedule("x")


# -- TaskiqScheduler.tick -----------------------------------------------------------------------


class Sends(InMemoryScheduleSource):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[str] = []
        self.skip: set[str] = set()

    def pre_send(self, task: ScheduledTask) -> None:
        if task.schedule_id in self.skip:
            raise ScheduledTaskCancelledError(task.schedule_id)

    async def post_send(self, task: ScheduledTask) -> None:
        self.sent.append(task.schedule_id)


async def test_tick_fires_cron_exactly_when_due(job, broker: InMemoryBroker) -> None:
    source = Sends()
    await source.add_schedule(ScheduledTask(task_name="scheduled.job", cron="*/10 * * * *", args=[1], schedule_id="c"))
    scheduler = TaskiqScheduler(broker, [source])
    t0 = datetime(2026, 1, 1, 12, 3, tzinfo=UTC)
    assert await scheduler.tick(t0) == []  # first seen: due at 12:10
    assert await scheduler.tick(datetime(2026, 1, 1, 12, 9, 59, tzinfo=UTC)) == []
    fired = await scheduler.tick(datetime(2026, 1, 1, 12, 10, tzinfo=UTC))
    assert [s.schedule_id for s in fired] == ["c"]
    assert await scheduler.tick(datetime(2026, 1, 1, 12, 10, 30, tzinfo=UTC)) == []  # once per slot
    assert [s.schedule_id for s in await scheduler.tick(datetime(2026, 1, 1, 12, 20, tzinfo=UTC))] == ["c"]
    assert source.sent == ["c", "c"]
    await broker.wait_all()
    results = list(broker.result_backend.results.values())
    assert [r.return_value for r in results] == [10, 10]
    assert all(r.labels["schedule_id"] == "c" for r in results)


async def test_tick_fires_interval_schedules(job, broker: InMemoryBroker) -> None:
    source = Sends()
    await source.add_schedule(ScheduledTask(task_name="scheduled.job", interval=30, args=[2], schedule_id="i"))
    scheduler = TaskiqScheduler(broker, [source])
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    assert await scheduler.tick(t0) == []
    assert await scheduler.tick(t0 + timedelta(seconds=29)) == []
    assert len(await scheduler.tick(t0 + timedelta(seconds=30))) == 1
    assert await scheduler.tick(t0 + timedelta(seconds=59)) == []
    assert len(await scheduler.tick(t0 + timedelta(seconds=60))) == 1
    # a late tick fires once, not once per missed slot
    assert len(await scheduler.tick(t0 + timedelta(seconds=200))) == 1
    assert source.sent == ["i", "i", "i"]


async def test_tick_fires_a_one_shot_time_once_then_deletes_it(job, broker: InMemoryBroker) -> None:
    source = Sends()
    at = datetime(2026, 6, 1, 8, tzinfo=UTC)
    await source.add_schedule(ScheduledTask(task_name="scheduled.job", time=at, args=[3], schedule_id="t"))
    scheduler = TaskiqScheduler(broker, [source])
    assert await scheduler.tick(at - timedelta(seconds=1)) == []
    assert [s.schedule_id for s in await scheduler.tick(at)] == ["t"]
    assert await source.get_schedules() == []
    assert await scheduler.tick(at + timedelta(hours=1)) == []
    assert source.sent == ["t"]


async def test_tick_fires_a_past_one_shot_at_once(job, broker: InMemoryBroker) -> None:
    source = Sends()
    await source.add_schedule(
        ScheduledTask(task_name="scheduled.job", time=datetime(2020, 1, 1, tzinfo=UTC), args=[1], schedule_id="late")
    )
    scheduler = TaskiqScheduler(broker, [source])
    assert [s.schedule_id for s in await scheduler.tick(datetime(2026, 1, 1, tzinfo=UTC))] == ["late"]
    assert await source.get_schedules() == []


async def test_pre_send_cancel_skips_the_firing(job, broker: InMemoryBroker) -> None:
    source = Sends()
    source.skip.add("i")
    await source.add_schedule(ScheduledTask(task_name="scheduled.job", interval=10, args=[1], schedule_id="i"))
    scheduler = TaskiqScheduler(broker, [source])
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    await scheduler.tick(t0)
    assert await scheduler.tick(t0 + timedelta(seconds=10)) == []
    assert source.sent == []
    source.skip.clear()
    assert len(await scheduler.tick(t0 + timedelta(seconds=20))) == 1  # later firings still happen
    assert source.sent == ["i"]


async def test_a_schedule_for_an_unknown_task_does_not_stop_the_others(job, broker: InMemoryBroker) -> None:
    source = Sends()
    await source.add_schedule(ScheduledTask(task_name="ghost", interval=1, schedule_id="ghost"))
    await source.add_schedule(ScheduledTask(task_name="scheduled.job", interval=1, args=[1], schedule_id="real"))
    scheduler = TaskiqScheduler(broker, [source])
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    await scheduler.tick(t0)
    fired = await scheduler.tick(t0 + timedelta(seconds=1))
    assert [s.schedule_id for s in fired] == ["real"]


async def test_deleted_schedules_are_forgotten(job, broker: InMemoryBroker) -> None:
    source = Sends()
    await source.add_schedule(ScheduledTask(task_name="scheduled.job", interval=5, args=[1], schedule_id="x"))
    scheduler = TaskiqScheduler(broker, [source])
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    await scheduler.tick(t0)
    await source.delete_schedule("x")
    assert await scheduler.tick(t0 + timedelta(seconds=5)) == []
    assert scheduler._due == {}


async def test_run_fires_an_interval_schedule_within_a_few_seconds(job, broker: InMemoryBroker) -> None:
    source = Sends()
    await source.add_schedule(ScheduledTask(task_name="scheduled.job", interval=1, args=[4], schedule_id="live"))
    scheduler = TaskiqScheduler(broker, [source], refresh_delay=0.2)
    stop = asyncio.Event()
    running = asyncio.create_task(scheduler.run(stop))
    try:
        for _ in range(30):
            if source.sent:
                break
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(running, 3)
    assert source.sent and set(source.sent) == {"live"}
    await broker.wait_all()
    assert 40 in [r.return_value for r in broker.result_backend.results.values()]
