"""LabelScheduleSource, schedules that keep their task id, offsets through JSON, read-only sources."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from podiq import (
    CronSpec,
    InMemoryBroker,
    InMemoryScheduleSource,
    InvalidScheduleError,
    ScheduledTask,
    ScheduleSource,
    TaskiqScheduler,
)
from podiq.api import run_scheduler_task
from podiq.cli.scheduler.args import SchedulerArgs
from podiq.cli.scheduler.run import run_scheduler
from podiq.schedule_sources import LabelScheduleSource

NOW = datetime(2030, 1, 1, 12, 0, 30, tzinfo=UTC)


async def test_label_schedules_fire_in_process() -> None:
    broker = InMemoryBroker()
    seen: list[int] = []

    @broker.task(schedule=[{"cron": "*/5 * * * *", "args": [1]}, {"time": NOW, "args": [2]}, {"args": [3]}], queue="q")
    async def job(n: int) -> None:
        seen.append(n)

    source = LabelScheduleSource(broker)
    await source.startup()
    schedules = await source.get_schedules()
    assert [s.args for s in schedules] == [[1], [2]]  # an entry without a trigger is skipped
    assert all(s.labels == {"queue": "q"} for s in schedules)
    assert job.labels["schedule"][0] == {"cron": "*/5 * * * *", "args": [1]}  # the task's labels are untouched

    scheduler = TaskiqScheduler(broker, [source])
    assert [s.args for s in await scheduler.tick(NOW)] == [[2]]  # the time is due; the cron first at 12:05
    assert [s.args for s in await scheduler.tick(NOW + timedelta(minutes=5))] == [[1]]
    await broker.wait_all()
    assert sorted(seen) == [1, 2]
    assert [s.args for s in await source.get_schedules()] == [[1]]  # the one-off is done


async def test_label_schedule_ids_are_stable_and_checked() -> None:
    broker = InMemoryBroker()

    @broker.task(schedule=[{"interval": 10}, {"cron": "0 * * * *", "schedule_id": "hourly"}])
    async def job() -> None: ...

    first, second = LabelScheduleSource(broker).collect(), LabelScheduleSource(broker).collect()
    assert [s.schedule_id for s in first] == [s.schedule_id for s in second]
    assert first[1].schedule_id == "hourly" and first[0].schedule_id.startswith("label-")

    @broker.task(schedule=[{"cron": "every minute"}])
    async def broken() -> None: ...

    with pytest.raises(InvalidScheduleError, match=r"schedule label #0 of task .*broken.*cron"):
        await LabelScheduleSource(broker).startup()


async def test_label_schedules_become_cronjobs_for_a_kubernetes_broker() -> None:
    from podiq.kubernetes import KubernetesBroker, KubernetesScheduleSource

    broker = KubernetesBroker("jobs")

    @broker.task(schedule=[{"cron": "*/5 * * * *"}])
    async def job() -> None: ...

    (schedule,) = LabelScheduleSource(broker).collect()
    body = KubernetesScheduleSource(broker).build(schedule)
    assert body["kind"] == "CronJob"
    assert body["metadata"]["name"] == schedule.schedule_id
    assert body["spec"]["schedule"] == "*/5 * * * *"
    one_off = ScheduledTask(task_name=job.task_name, time=NOW, task_id="label-once")
    assert KubernetesScheduleSource(broker).build(one_off)["metadata"]["name"] == "label-once"


@pytest.mark.parametrize("kind", ["cron", "interval", "time"])
async def test_schedules_keep_the_kickers_task_id(kind: str) -> None:
    broker = InMemoryBroker()
    sent: list[str] = []

    @broker.task
    async def job() -> None:
        sent.append("ran")

    source = InMemoryScheduleSource()
    kicker = job.kicker().with_task_id("fixed-id")
    if kind == "cron":
        created = await kicker.schedule_by_cron(source, "* * * * *")
    elif kind == "interval":
        created = await kicker.schedule_by_interval(source, 10)
    else:
        created = await kicker.schedule_by_time(source, NOW)
    assert created.task is not None and created.task.task_id == "fixed-id"
    restored = ScheduledTask.model_validate(created.task.model_dump(mode="json"))
    await TaskiqScheduler(broker, [source]).on_ready(source, restored)
    await broker.wait_all()
    assert sent == ["ran"]
    assert (await broker.result_backend.get_result("fixed-id")).is_err is False
    assert (await job.kicker().schedule_by_interval(source, 10)).task.task_id is None  # type: ignore[union-attr]  # present here


def test_offsets_survive_json() -> None:
    for offset in (timedelta(hours=2), timedelta(hours=-3, minutes=-30), "US/Eastern"):
        task = ScheduledTask(task_name="a", cron="* * * * *", cron_offset=offset)
        restored = ScheduledTask.model_validate(task.model_dump(mode="json"))
        assert restored.cron_offset == offset and type(restored.cron_offset) is type(offset)
        spec = CronSpec(offset=offset)
        assert CronSpec.model_validate(spec.model_dump(mode="json")).offset == offset
    assert CronSpec(timezone="Europe/Berlin").cron_offset == "Europe/Berlin"
    assert ScheduledTask(task_name="a", interval="PT10S").interval == timedelta(seconds=10)  # type: ignore[arg-type]  # deliberately the wrong type, to see it refused
    with pytest.raises(ValueError, match="not a known IANA time zone"):
        ScheduledTask(task_name="a", cron="* * * * *", cron_offset="PTx")


async def test_a_read_only_source_sends_a_one_off_schedule_once() -> None:
    broker = InMemoryBroker()
    runs: list[int] = []

    @broker.task
    async def job() -> None:
        runs.append(1)

    class ReadOnly(ScheduleSource):  # as in taskiq's guide: only get_schedules
        async def get_schedules(self) -> list[ScheduledTask]:
            return [ScheduledTask(task_name=job.task_name, time=NOW, schedule_id="once")]

    scheduler = TaskiqScheduler(broker, [ReadOnly()])
    assert len(await scheduler.tick(NOW)) == 1
    assert await scheduler.tick(NOW + timedelta(seconds=1)) == []
    await broker.wait_all()
    assert runs == [1]


async def test_run_scheduler_task_and_run_scheduler() -> None:
    broker = InMemoryBroker()
    fired = asyncio.Event()

    @broker.task(schedule=[{"time": datetime.now(UTC)}])
    async def job() -> None:
        fired.set()

    for runner in (
        run_scheduler_task(TaskiqScheduler(broker, [LabelScheduleSource(broker)])),
        run_scheduler(SchedulerArgs(scheduler=TaskiqScheduler(broker, [LabelScheduleSource(broker)]))),
    ):
        fired.clear()
        running = asyncio.create_task(runner)
        await asyncio.wait_for(fired.wait(), 5)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
    with pytest.raises(ValueError, match="module:variable"):
        await run_scheduler(SchedulerArgs(scheduler="no_colon"))
