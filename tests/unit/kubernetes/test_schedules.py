"""Schedules on Kubernetes without a cluster: CronJob and TaskRun bodies, validation, listing back,
the firing's TaskRun, and the CLI's parsing and table."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rich.console import Console

from podiq import CronSpec, ScheduledTask
from podiq.exceptions import InvalidScheduleError
from podiq.kubernetes import KubernetesScheduleSource
from podiq.kubernetes.broker import KubernetesBroker
from podiq.kubernetes.cronjobs import (
    DEFAULT_FIRING_IMAGE,
    ENV_JOB_NAME,
    ENV_NAMESPACE,
    ENV_TEMPLATE,
    ENV_WAIT,
    LABEL_SCHEDULE_ID,
    LABEL_TRIGGER,
    cron_for_interval,
    entry_from_cronjob,
    entry_from_taskrun,
)
from podiq.kubernetes.firing import FiringEnvironment, taskrun_for_firing
from podiq.kubernetes.podsecurity import container_security_context, pod_security_context
from podiq.kubernetes.resources import TaskRun

broker = KubernetesBroker(namespace="jobs", image="registry.example/app:1", env={"MODE": "test"})


@broker.task(team="ops")
async def report(day: int, kind: str = "short") -> str:
    return f"{day}-{kind}"


@broker.task(concurrency_policy="Forbid", successful_jobs_history_limit=1)
async def exclusive() -> None:
    return None


class RecordingSource(KubernetesScheduleSource):
    """Builds what add_schedule would create, without a cluster."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(broker, **kwargs)
        self.built: list[dict[str, Any]] = []

    async def add_schedule(self, schedule: ScheduledTask) -> None:
        self.built.append(self.build(schedule))


@pytest.fixture
def source() -> RecordingSource:
    return RecordingSource()


def container(cronjob: dict[str, Any]) -> dict[str, Any]:
    return cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]


def env_of(cronjob: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(cronjob)["env"]}


async def test_cron_schedule_becomes_a_cronjob_named_and_labelled_for_podiq(source: RecordingSource) -> None:
    created = (
        await report.kicker().with_schedule_id("nightly-report").schedule_by_cron(source, "30 2 * * *", 7, kind="long")
    )
    assert created.schedule_id == "nightly-report"
    [cronjob] = source.built
    assert (cronjob["apiVersion"], cronjob["kind"]) == ("batch/v1", "CronJob")
    meta = cronjob["metadata"]
    assert (meta["name"], meta["namespace"]) == ("nightly-report", "jobs")
    assert meta["labels"][LABEL_SCHEDULE_ID] == "nightly-report"
    assert meta["labels"]["podiq.io/task"] == "tests.unit.kubernetes.test_schedules.report"
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "podiq"
    spec = cronjob["spec"]
    assert (spec["schedule"], spec["timeZone"], spec["concurrencyPolicy"]) == ("30 2 * * *", "Etc/UTC", "Allow")
    assert "startingDeadlineSeconds" not in spec and "successfulJobsHistoryLimit" not in spec
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] >= 1
    assert job["podFailurePolicy"]["rules"][0]["action"] == "FailJob"
    assert job["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"] == [3, 4]
    pod = job["template"]["spec"]
    assert pod["serviceAccountName"] == "podiq-scheduler" and pod["restartPolicy"] == "Never"
    assert pod["securityContext"] == pod_security_context()
    assert job["template"]["metadata"]["labels"][LABEL_SCHEDULE_ID] == "nightly-report"
    fire = container(cronjob)
    assert fire["command"] == ["python", "-m", "podiq.kubernetes.firing"]
    assert fire["securityContext"] == container_security_context()
    assert fire["securityContext"]["runAsNonRoot"] and fire["securityContext"]["readOnlyRootFilesystem"]
    assert fire["image"] == "registry.example/app:1"  # the broker's image has podiq in it
    env = env_of(cronjob)
    assert env[ENV_WAIT] == "Allow"
    assert env[ENV_JOB_NAME] == {"fieldRef": {"fieldPath": "metadata.labels['batch.kubernetes.io/job-name']"}}
    assert env[ENV_NAMESPACE] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    template = json.loads(env[ENV_TEMPLATE])
    assert template["labels"][LABEL_SCHEDULE_ID] == "nightly-report" and template["labels"][LABEL_TRIGGER] == "cron"
    task = template["spec"]
    assert task["taskName"] == "tests.unit.kubernetes.test_schedules:report"
    assert (task["args"], task["kwargs"]) == ([7], {"kind": "long"})
    assert task["labels"]["team"] == "ops" and task["labels"]["schedule_id"] == "nightly-report"
    assert task["image"] == "registry.example/app:1" and task["env"] == [{"name": "MODE", "value": "test"}]


async def test_cronspec_timezone_and_labels_shape_the_cronjob(source: RecordingSource) -> None:
    await (
        report.kicker()
        .with_labels(
            concurrency_policy="Replace",
            starting_deadline_seconds=120,
            successful_jobs_history_limit=5,
            failed_jobs_history_limit=2,
            timezone="Asia/Tokyo",
        )
        .schedule_by_cron(source, CronSpec(minutes=0, hours=8, weekdays="1-5", timezone="Europe/Berlin"), 1)
    )
    await exclusive.schedule_by_cron(source, "*/10 * * * *")
    await report.kicker().with_labels(timezone="America/New_York").schedule_by_cron(source, "0 9 * * *", 2)
    by_cronspec, by_task_labels, by_label_zone = (c["spec"] for c in source.built)
    assert by_cronspec["schedule"] == "0 8 * * 1-5"
    assert by_cronspec["timeZone"] == "Europe/Berlin"  # the CronSpec's zone wins over the label
    assert (by_cronspec["concurrencyPolicy"], by_cronspec["startingDeadlineSeconds"]) == ("Replace", 120)
    assert (by_cronspec["successfulJobsHistoryLimit"], by_cronspec["failedJobsHistoryLimit"]) == (5, 2)
    assert env_of(source.built[0])[ENV_WAIT] == "Replace"
    assert (by_task_labels["concurrencyPolicy"], by_task_labels["successfulJobsHistoryLimit"]) == ("Forbid", 1)
    assert env_of(source.built[1])[ENV_WAIT] == "Forbid"
    assert by_label_zone["timeZone"] == "America/New_York"


@pytest.mark.parametrize(
    ("offset", "zone"),
    [(timedelta(hours=2), "Etc/GMT-2"), (timedelta(hours=-5), "Etc/GMT+5"), (timedelta(0), "Etc/UTC")],
)
async def test_whole_hour_offsets_become_fixed_zones(source: RecordingSource, offset: timedelta, zone: str) -> None:
    await source.add_schedule(ScheduledTask(task_name="app.tasks:job", cron="0 * * * *", cron_offset=offset))
    assert source.built[0]["spec"]["timeZone"] == zone


async def test_source_options_set_the_firing_pod(source: RecordingSource) -> None:
    custom = RecordingSource(
        image="podiq-runtime:2",
        service_account="my-scheduler",
        resources={"requests": {"cpu": "5m"}},
        image_pull_policy="Never",
    )
    await report.schedule_by_cron(custom, "* * * * *", 1)
    pod = custom.built[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "my-scheduler"
    fire = pod["containers"][0]
    assert (fire["image"], fire["imagePullPolicy"], fire["resources"]) == (
        "podiq-runtime:2",
        "Never",
        {"requests": {"cpu": "5m"}},
    )
    bare = KubernetesScheduleSource(namespace="other")
    cronjob = bare.build(ScheduledTask(task_name="app.tasks:job", cron="0 * * * *", schedule_id="hourly"))
    assert cronjob["metadata"]["namespace"] == "other" and container(cronjob)["image"] == DEFAULT_FIRING_IMAGE


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda s: report.schedule_by_cron(s, "every minute", 1), "cron"),
        (lambda s: report.schedule_by_cron(s, "* * * *", 1), "cron"),
        (lambda s: report.schedule_by_cron(s, "0 0 L * *", 1), "cron"),
        (lambda s: report.schedule_by_cron(s, "0 0 * * 5#3", 1), "cron"),
        (
            lambda s: report.kicker().with_labels(timezone="Mars/Olympus").schedule_by_cron(s, "* * * * *", 1),
            "timezone",
        ),
        (
            lambda s: report.kicker().with_labels(concurrency_policy="Sometimes").schedule_by_cron(s, "* * * * *", 1),
            "concurrency_policy",
        ),
        (
            lambda s: report.kicker().with_labels(starting_deadline_seconds=0).schedule_by_cron(s, "* * * * *", 1),
            "starting_deadline_seconds",
        ),
        (
            lambda s: report.kicker().with_labels(starting_deadline_seconds="60").schedule_by_cron(s, "* * * * *", 1),
            "starting_deadline_seconds",
        ),
        (
            lambda s: report.kicker().with_labels(successful_jobs_history_limit=-1).schedule_by_cron(s, "* * * * *", 1),
            "successful_jobs_history_limit",
        ),
        (
            lambda s: report.kicker().with_labels(failed_jobs_history_limit=1.5).schedule_by_cron(s, "* * * * *", 1),
            "failed_jobs_history_limit",
        ),
        (
            lambda s: report.kicker().with_schedule_id("Nightly_Report").schedule_by_cron(s, "* * * * *", 1),
            "schedule_id",
        ),
        (lambda s: report.kicker().with_schedule_id("a" * 53).schedule_by_cron(s, "* * * * *", 1), "schedule_id"),
        (lambda s: report.kicker().with_schedule_id("Bad Id").schedule_by_time(s, datetime.now(UTC), 1), "schedule_id"),
        (lambda s: report.kicker().with_labels(image=5).schedule_by_cron(s, "* * * * *", 1), "image"),
        (lambda s: report.schedule_by_interval(s, 90, 1), "interval"),
        (lambda s: report.schedule_by_interval(s, 7 * 60, 1), "interval"),
        (
            lambda s: s.add_schedule(
                ScheduledTask(task_name="app.tasks:job", cron="0 * * * *", cron_offset=timedelta(minutes=90))
            ),
            "cron_offset",
        ),
        (lambda s: s.add_schedule(ScheduledTask(task_name="__main__:job", cron="0 * * * *")), "__main__:job"),
    ],
)
async def test_invalid_schedules_are_refused_at_the_call_naming_the_field(
    source: RecordingSource, call: Any, field: str
) -> None:
    with pytest.raises(InvalidScheduleError) as refused:
        await call(source)
    assert field in str(refused.value)
    assert source.built == []


def test_cronspec_with_an_unknown_zone_is_refused_when_made() -> None:
    with pytest.raises(ValueError, match="timezone|Mars/Olympus"):
        CronSpec(minutes=0, timezone="Mars/Olympus")


def test_a_52_character_id_fits_the_cronjob_name_limit(source: RecordingSource) -> None:
    cronjob = source.build(ScheduledTask(task_name="app.tasks:job", cron="* * * * *", schedule_id="a" * 52))
    assert cronjob["metadata"]["name"] == "a" * 52


@pytest.mark.parametrize(
    ("seconds", "cron"),
    [
        (60, "* * * * *"),
        (300, "*/5 * * * *"),
        (1800, "*/30 * * * *"),
        (3600, "0 * * * *"),
        (7200, "0 */2 * * *"),
        (8 * 3600, "0 */8 * * *"),
        (86400, "0 0 * * *"),
    ],
)
def test_intervals_that_divide_an_hour_or_a_day_map_to_cron(seconds: int, cron: str) -> None:
    assert cron_for_interval(timedelta(seconds=seconds)) == cron


@pytest.mark.parametrize("seconds", [1, 30, 61, 7 * 60, 45 * 60, 5 * 3600, 2 * 86400])
def test_other_intervals_are_refused(seconds: int) -> None:
    with pytest.raises(InvalidScheduleError, match="interval"):
        cron_for_interval(timedelta(seconds=seconds))


async def test_interval_schedule_is_a_cronjob_listed_back_as_an_interval(source: RecordingSource) -> None:
    created = await report.schedule_by_interval(source, timedelta(minutes=15), 3)
    [cronjob] = source.built
    assert cronjob["spec"]["schedule"] == "*/15 * * * *" and cronjob["spec"]["timeZone"] == "Etc/UTC"
    entry = entry_from_cronjob(cronjob)
    assert entry is not None and entry.kind == "interval"
    assert entry.schedule.interval == timedelta(minutes=15) and entry.schedule.schedule_id == created.schedule_id
    assert entry.when == "every 900 s"


async def test_cronjob_is_listed_back_as_the_scheduled_task(source: RecordingSource) -> None:
    created = await report.schedule_by_cron(source, CronSpec(minutes=5, timezone="Europe/Berlin"), 4, kind="x")
    body = {**source.built[0], "status": {"lastScheduleTime": "2026-03-04T05:05:00Z", "active": [{"name": "j"}]}}
    entry = entry_from_cronjob(body)
    assert entry is not None
    scheduled = entry.schedule
    assert scheduled.schedule_id == created.schedule_id
    assert (scheduled.task_name, scheduled.args, scheduled.kwargs) == (
        "tests.unit.kubernetes.test_schedules:report",
        [4],
        {"kind": "x"},
    )
    assert (scheduled.cron, scheduled.cron_offset) == ("5 * * * *", "Europe/Berlin")
    assert scheduled.labels["team"] == "ops"
    assert (entry.kind, entry.concurrency_policy, entry.active) == ("cron", "Allow", 1)
    assert entry.last_fired == datetime(2026, 3, 4, 5, 5, tzinfo=UTC)
    assert entry.resource == f"cronjob/{created.schedule_id}"
    assert entry.when == "5 * * * * (Europe/Berlin)"


def test_cronjobs_that_are_not_podiq_schedules_are_not_listed() -> None:
    foreign = {
        "metadata": {"name": "backup", "labels": {}},
        "spec": {
            "schedule": "* * * * *",
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {"containers": [{"name": "c", "env": [{"name": ENV_TEMPLATE, "value": "{}"}]}]}
                    }
                }
            },
        },
    }
    assert entry_from_cronjob(foreign) is None
    assert entry_from_cronjob({"metadata": {"labels": {LABEL_SCHEDULE_ID: "x"}}, "spec": {}}) is None


async def test_time_schedule_is_a_taskrun_held_back_until_its_time(source: RecordingSource) -> None:
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    created = await report.kicker().with_schedule_id("once").schedule_by_time(source, when, 9)
    [body] = source.built
    assert body["kind"] == "TaskRun" and body["metadata"]["namespace"] == "jobs"
    assert (
        body["metadata"]["labels"][LABEL_SCHEDULE_ID] == "once" and body["metadata"]["labels"][LABEL_TRIGGER] == "time"
    )
    assert body["spec"]["notBefore"] == "2030-01-02T03:04:05Z"
    assert body["spec"]["args"] == [9] and body["spec"]["labels"]["schedule_id"] == "once"
    run = TaskRun.from_api(body)
    assert run.spec.not_before == when
    entry = entry_from_taskrun(body)
    assert entry is not None and entry.kind == "time" and entry.schedule.time == when
    assert entry.schedule.schedule_id == created.schedule_id and entry.resource == f"taskrun/{body['metadata']['name']}"
    naive = await report.schedule_by_time(source, datetime(2030, 1, 2, 3, 4, 5), 1)
    assert source.built[1]["spec"]["notBefore"] == "2030-01-02T03:04:05Z"  # naive times are UTC
    assert source.built[1]["metadata"]["name"] != body["metadata"]["name"] and naive.schedule_id


async def test_one_shot_runs_stop_being_schedules_once_started(source: RecordingSource) -> None:
    await report.schedule_by_time(source, datetime(2030, 1, 1, tzinfo=UTC), 1)
    body = source.built[0]
    assert entry_from_taskrun(body) is not None
    assert entry_from_taskrun({**body, "status": {"attempts": 1}}) is None
    done = {"phase": "Succeeded", "conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded"}]}
    assert entry_from_taskrun({**body, "status": done}) is None
    assert entry_from_taskrun({**body, "spec": {**body["spec"], "cancelled": True}}) is None
    cron_firing = {
        **body,
        "metadata": {**body["metadata"], "labels": {**body["metadata"]["labels"], LABEL_TRIGGER: "cron"}},
    }
    assert entry_from_taskrun(cron_firing) is None


async def test_firing_creates_the_template_taskrun_named_after_its_job(source: RecordingSource) -> None:
    await (
        report.kicker()
        .with_schedule_id("every-minute")
        .with_labels(concurrency_policy="Forbid")
        .schedule_by_cron(source, "* * * * *", 2)
    )
    env = env_of(source.built[0])
    # What the pod sees: literal values, and the downward API's values for the fieldRefs.
    pod_env = {
        ENV_TEMPLATE: env[ENV_TEMPLATE],
        ENV_WAIT: env[ENV_WAIT],
        ENV_JOB_NAME: "every-minute-29500000",
        ENV_NAMESPACE: "jobs",
    }
    firing = FiringEnvironment.from_environ(pod_env)
    assert firing.waits and firing.concurrency_policy == "Forbid"
    body = taskrun_for_firing(firing)
    assert (body["metadata"]["name"], body["metadata"]["namespace"]) == ("every-minute-29500000", "jobs")
    assert body["metadata"]["labels"][LABEL_SCHEDULE_ID] == "every-minute"
    run = TaskRun.from_api(body)
    assert run.spec.task_name == "tests.unit.kubernetes.test_schedules:report" and run.spec.args == [2]
    assert run.task_id == "every-minute-29500000"
    assert not FiringEnvironment.from_environ({**pod_env, ENV_WAIT: "Allow"}).waits
    assert FiringEnvironment.from_environ({**pod_env, ENV_WAIT: "Replace"}).waits


@pytest.mark.parametrize(
    ("env", "problem"),
    [({}, "PODIQ_SCHEDULE_TASKRUN"), ({ENV_TEMPLATE: "{}", ENV_NAMESPACE: "jobs"}, "job_name")],
)
def test_firing_without_its_environment_says_what_is_missing(env: dict[str, str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        FiringEnvironment.from_environ(env)


def test_cli_parses_schedules_commands_and_renders_the_table() -> None:
    from podiq.cli import build_parser
    from podiq.cli.schedules import schedules_table

    listing = build_parser().parse_args(["schedules", "list", "-n", "jobs"])
    assert listing.namespace == "jobs" and callable(listing.handler)
    deleting = build_parser().parse_args(["schedules", "delete", "nightly", "--kubeconfig", "/k"])
    assert (deleting.schedule_id, deleting.kubeconfig) == ("nightly", "/k")

    source = RecordingSource()
    source.built.append(source.build(ScheduledTask(task_name="app.tasks:job", cron="0 3 * * *", schedule_id="nightly")))
    entry = entry_from_cronjob(source.built[0])
    assert entry is not None
    out = io.StringIO()
    Console(file=out, width=250).print(schedules_table("jobs", [entry]))
    text = out.getvalue()
    assert "nightly" in text and "0 3 * * * (Etc/UTC)" in text and "app.tasks:job" in text and "cronjob/nightly" in text
