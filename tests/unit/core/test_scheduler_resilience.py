"""Schedules that can never fire are refused when made; one broken schedule or source does not stop the others."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podiq import (
    CronSpec,
    InMemoryBroker,
    InMemoryScheduleSource,
    InvalidScheduleError,
    ScheduledTask,
    ScheduleSource,
    TaskiqScheduler,
)

UTC = UTC


@pytest.fixture
def ping(broker: InMemoryBroker):
    @broker.task("resilience.ping")
    async def ping() -> str:
        return "pong"

    return ping


@pytest.mark.parametrize("cron", ["0 0 30 2 *", "0 0 31 4 *", "0 0 31 2,4,6,9,11 *"])
async def test_a_cron_that_never_fires_is_refused(ping, cron: str) -> None:
    source = InMemoryScheduleSource()
    with pytest.raises(InvalidScheduleError, match="never fires: no date matches its day and month"):
        await ping.schedule_by_cron(source, cron)
    with pytest.raises(ValueError, match="never fires"):
        CronSpec(minutes=0, hours=0, days=30, months=2)
    assert source.schedules == {}


async def test_rare_but_real_dates_are_accepted(ping) -> None:
    source = InMemoryScheduleSource()
    await ping.schedule_by_cron(source, "0 0 29 2 *")  # leap days
    assert len(source.schedules) == 1


@pytest.mark.parametrize("offset", [timedelta(hours=30), timedelta(hours=-24), timedelta(days=-2)])
def test_an_offset_beyond_a_day_is_refused(offset: timedelta) -> None:
    with pytest.raises(ValueError, match="is not a UTC offset; use one between -24 and \\+24 hours"):
        ScheduledTask(task_name="resilience.ping", cron="* * * * *", cron_offset=offset)


async def test_one_broken_schedule_does_not_stop_the_others(ping, broker: InMemoryBroker, caplog) -> None:
    source = InMemoryScheduleSource()
    # Made without validation, as a third-party source might.
    broken = ScheduledTask.model_construct(
        task_name=ping.task_name,
        schedule_id="broken",
        cron="0 0 30 2 *",
        cron_offset=None,
        time=None,
        interval=None,
        labels={},
        args=[],
        kwargs={},
    )
    far = ScheduledTask.model_construct(
        task_name=ping.task_name,
        schedule_id="far",
        cron="* * * * *",
        cron_offset=timedelta(hours=30),
        time=None,
        interval=None,
        labels={},
        args=[],
        kwargs={},
    )
    await source.add_schedule(broken)
    await source.add_schedule(far)
    await source.add_schedule(
        ScheduledTask(task_name=ping.task_name, schedule_id="good", interval=timedelta(seconds=1))
    )
    scheduler = TaskiqScheduler(broker, [source])
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert await scheduler.tick(now) == []
    fired = await scheduler.tick(now + timedelta(seconds=1))
    assert [s.schedule_id for s in fired] == ["good"]
    fired = await scheduler.tick(now + timedelta(seconds=2))
    assert [s.schedule_id for s in fired] == ["good"]
    assert "Schedule broken" in caplog.text and "Schedule far" in caplog.text


async def test_one_failing_source_does_not_stop_the_others(ping, broker: InMemoryBroker) -> None:
    class Down(ScheduleSource):
        async def get_schedules(self):
            raise ConnectionError("source is down")

    good = InMemoryScheduleSource()
    await good.add_schedule(ScheduledTask(task_name=ping.task_name, schedule_id="good", interval=timedelta(seconds=1)))
    scheduler = TaskiqScheduler(broker, [Down(), good])
    now = datetime(2026, 1, 1, tzinfo=UTC)
    await scheduler.tick(now)
    fired = await scheduler.tick(now + timedelta(seconds=1))
    assert [s.schedule_id for s in fired] == ["good"]


def test_a_fixed_time_cron_fires_once_when_the_clock_goes_back() -> None:
    from zoneinfo import ZoneInfo

    # 2026-10-25 in Berlin: 02:00-02:59 happens twice (CEST, then CET).
    at_half_past_two = ScheduledTask(task_name="t", cron="30 2 * * *", cron_offset="Europe/Berlin")
    runs, after = [], datetime(2026, 10, 24, 12, tzinfo=UTC)
    for _ in range(3):
        after = at_half_past_two.next_run(after)
        runs.append(after)
    assert runs == [
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        datetime(2026, 10, 26, 1, 30, tzinfo=UTC),
        datetime(2026, 10, 27, 1, 30, tzinfo=UTC),
    ]
    assert all(run.astimezone(ZoneInfo("Europe/Berlin")).hour == 2 for run in runs)


def test_a_wildcard_hour_cron_fires_in_both_repeated_hours() -> None:
    every_half_hour = ScheduledTask(task_name="t", cron="*/30 * * * *", cron_offset="Europe/Berlin")
    runs, after = [], datetime(2026, 10, 24, 23, 50, tzinfo=UTC)
    for _ in range(4):
        after = every_half_hour.next_run(after)
        runs.append(after)
    assert all(b - a == timedelta(minutes=30) for a, b in zip(runs, runs[1:]))


@settings(max_examples=20, deadline=None)
@given(
    zone=st.timezones(no_cache=False), hour=st.integers(0, 23), minute=st.integers(0, 59), year=st.integers(2000, 2035)
)
def test_a_fixed_time_cron_fires_at_most_once_a_local_day(zone, hour: int, minute: int, year: int) -> None:
    if not hasattr(zone, "key"):
        return  # UTC-like fixed zones have no repeated hours
    schedule = ScheduledTask(task_name="t", cron=f"{minute} {hour} * * *", cron_offset=zone.key)
    after, days = datetime(year, 1, 1, tzinfo=UTC), []
    for _ in range(370):
        after = schedule.next_run(after)
        days.append(after.astimezone(zone).date())
    assert len(days) == len(set(days))


@pytest.mark.parametrize(
    ("zone", "cron", "start"),
    [
        ("America/New_York", "30 1 * * *", datetime(2026, 10, 31, tzinfo=UTC)),  # 2026-11-01 01:xx twice
        ("Europe/London", "15 1 * * *", datetime(2026, 10, 24, tzinfo=UTC)),  # 2026-10-25 01:xx twice
        ("Australia/Sydney", "45 2 * * *", datetime(2026, 4, 3, tzinfo=UTC)),  # 2026-04-05 02:xx twice
    ],
)
def test_repeated_hours_around_the_world_fire_once(zone: str, cron: str, start: datetime) -> None:
    from zoneinfo import ZoneInfo

    schedule = ScheduledTask(task_name="t", cron=cron, cron_offset=zone)
    after, days = start, []
    for _ in range(5):
        after = schedule.next_run(after)
        days.append(after.astimezone(ZoneInfo(zone)).date())
    assert len(days) == len(set(days)) == 5
