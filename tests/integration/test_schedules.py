"""Schedules on the local control plane: cron schedules are CronJobs whose firings are TaskRuns with
results, one-shot times are TaskRuns held back until then, and `podiq schedules` lists and deletes them.

The CronJob controller fires on minute boundaries, so the cron test waits for two of them at most
and checks everything that needs a firing within that window."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from podiq import AsyncTaskiqTask, CronSpec
from podiq.exceptions import InvalidScheduleError
from podiq.kubernetes import KubernetesScheduleSource

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

CHART = Path(__file__).resolve().parents[2] / "charts" / "podiq"
WAIT = 90


@pytest.fixture(scope="module")
def scheduler_rbac(cluster: Any, podiq_namespace: str) -> str:
    """The chart's scheduler service account and Role in the test namespace."""
    rendered = cluster.helm(
        "template",
        "podiq",
        str(CHART),
        "--namespace",
        podiq_namespace,
        "--kube-version",
        "1.37.2",
        "--set",
        f"watchNamespaces={{{podiq_namespace}}}",
        "--show-only",
        "templates/scheduler-rbac.yaml",
    ).stdout
    subprocess.run(
        [str(Path(cluster.bin_dir) / "kubectl"), "apply", "-n", podiq_namespace, "-f", "-"],
        input=rendered,
        text=True,
        check=True,
        capture_output=True,
        env={**os.environ, **cluster.env},
    )
    return podiq_namespace


@pytest.fixture
async def source(k8s_broker: Any, scheduler_rbac: str) -> AsyncIterator[KubernetesScheduleSource]:
    async with KubernetesScheduleSource(k8s_broker) as schedules:
        yield schedules


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def runs_of(cluster: Any, namespace: str, schedule_id: str) -> list[dict[str, Any]]:
    out = cluster.kubectl(
        "get", "taskruns", "-n", namespace, "-l", f"podiq.io/schedule-id={schedule_id}", "-o", "json"
    ).stdout
    return sorted(json.loads(out)["items"], key=lambda r: r["metadata"]["name"])


def cronjob(cluster: Any, namespace: str, name: str) -> dict[str, Any] | None:
    got = cluster.kubectl("get", "cronjob", name, "-n", namespace, "-o", "json", check=False)
    return json.loads(got.stdout) if got.returncode == 0 else None


def jobs_of(cluster: Any, namespace: str, taskrun: str) -> list[dict[str, Any]]:
    out = cluster.kubectl("get", "jobs", "-n", namespace, "-l", f"podiq.io/taskrun={taskrun}", "-o", "json").stdout
    return json.loads(out)["items"]


async def test_cron_schedules_fire_taskruns_with_results_honour_forbid_and_stop_when_deleted(
    k8s_broker: Any, source: KubernetesScheduleSource, cluster: Any, podiq_namespace: str
) -> None:
    from tests.integration import k8s_tasks as t

    quick = (
        await t.calculate_sum.kicker()
        .with_schedule_id(unique("quick"))
        .schedule_by_cron(source, "* * * * *", [1, 2, 3])
    )
    # 100 s runs, fired every minute: with Allow they overlap, with Forbid they must not.
    forbid = (
        await t.slow_with_progress.kicker()
        .with_schedule_id(unique("forbid"))
        .with_labels(
            concurrency_policy="Forbid",
            successful_jobs_history_limit=2,
        )
        .schedule_by_cron(source, CronSpec(minutes="*", timezone="Europe/Berlin"), 20, 5.0)
    )
    allow = (
        await t.slow_with_progress.kicker()
        .with_schedule_id(unique("allow"))
        .schedule_by_cron(source, "* * * * *", 20, 5.0)
    )
    try:
        listed = {s.schedule_id: s for s in await source.get_schedules()}
        assert {quick.schedule_id, forbid.schedule_id, allow.schedule_id} <= set(listed)
        assert (listed[forbid.schedule_id].cron, listed[forbid.schedule_id].cron_offset) == (
            "* * * * *",
            "Europe/Berlin",
        )
        assert listed[quick.schedule_id].task_name == "tests.integration.k8s_tasks:calculate_sum"
        assert listed[quick.schedule_id].args == [[1, 2, 3]]
        forbid_cronjob = cronjob(cluster, podiq_namespace, forbid.schedule_id)
        assert forbid_cronjob is not None
        assert forbid_cronjob["spec"]["timeZone"] == "Europe/Berlin"
        assert forbid_cronjob["spec"]["concurrencyPolicy"] == "Forbid"
        assert forbid_cronjob["spec"]["successfulJobsHistoryLimit"] == 2

        # The first firing (at the next minute boundary) is a TaskRun with a result, as a kiq run.
        deadline = time.monotonic() + 75
        while not (fired := runs_of(cluster, podiq_namespace, quick.schedule_id)):
            assert time.monotonic() < deadline, "the every-minute schedule did not fire within 75 s"
            await asyncio.sleep(1)
        name = fired[0]["metadata"]["name"]
        first_minute = int(name.rsplit("-", 1)[1])  # the CronJob controller names Jobs <cronjob>-<minutes since epoch>
        result = await AsyncTaskiqTask(name, k8s_broker).wait_result(timeout=WAIT)
        assert not result.is_err and result.return_value == 6
        assert result.labels["schedule_id"] == quick.schedule_id
        listing = cluster.kubectl("get", "taskruns", "-n", podiq_namespace).stdout
        assert name in listing and "Succeeded" in listing

        # Deleting the schedule removes the CronJob and stops further firings.
        await quick.unschedule()
        assert cronjob(cluster, podiq_namespace, quick.schedule_id) is None
        assert quick.schedule_id not in {s.schedule_id for s in await source.get_schedules()}

        # Past the next minute boundary (the first runs of 100 s are still going).
        await asyncio.sleep(max(0.0, (first_minute + 1) * 60 + 25 - time.time()))
        assert len(runs_of(cluster, podiq_namespace, quick.schedule_id)) == 1, "a deleted schedule fired again"
        allowed = runs_of(cluster, podiq_namespace, allow.schedule_id)
        assert len(allowed) == 2, "the Allow schedule should have started an overlapping run"
        forbidden = runs_of(cluster, podiq_namespace, forbid.schedule_id)
        assert len(forbidden) == 1, "Forbid started a second run while the first was running"
        assert forbidden[0]["status"]["phase"] == "Running"
        forbid_cronjob = cronjob(cluster, podiq_namespace, forbid.schedule_id)
        assert forbid_cronjob is not None and len(forbid_cronjob["status"].get("active") or []) == 1

        # The Forbid firing stays until its run ends; a run that ends without success fails the firing Job.
        await k8s_broker.cancel(forbidden[0]["metadata"]["name"])
        firing_job = forbidden[0]["metadata"]["name"]
        deadline = time.monotonic() + 45
        while True:
            job = json.loads(cluster.kubectl("get", "job", firing_job, "-n", podiq_namespace, "-o", "json").stdout)
            conditions = {c["type"]: c["status"] for c in job.get("status", {}).get("conditions") or []}
            if conditions.get("Failed") == "True":
                break
            assert time.monotonic() < deadline, f"the Forbid firing did not end with its run: {job.get('status')}"
            await asyncio.sleep(1)
        assert job["status"].get("failed", 0) >= 1 and not job["status"].get("succeeded")
    finally:
        for created in (quick, forbid, allow):
            await source.delete_schedule(created.schedule_id)
        for created in (forbid, allow):
            for run in runs_of(cluster, podiq_namespace, created.schedule_id):
                await k8s_broker.cancel(run["metadata"]["name"])
    assert cronjob(cluster, podiq_namespace, forbid.schedule_id) is None
    # TaskRuns a deleted schedule made are kept, with their results.
    assert [r["metadata"]["name"] for r in runs_of(cluster, podiq_namespace, quick.schedule_id)] == [name]


async def test_one_shot_time_runs_once_at_its_time_and_not_before(
    k8s_broker: Any, source: KubernetesScheduleSource, cluster: Any, podiq_namespace: str
) -> None:
    from tests.integration import k8s_tasks as t

    when = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=12)
    once = await t.calculate_sum.kicker().with_schedule_id(unique("once")).schedule_by_time(source, when, [2, 3])
    later = (
        await t.noop.kicker().with_schedule_id(unique("later")).schedule_by_time(source, when + timedelta(minutes=5))
    )
    listed = {s.schedule_id: s for s in await source.get_schedules()}
    assert listed[once.schedule_id].time == when and listed[later.schedule_id].time == when + timedelta(minutes=5)
    assert not any(
        c["metadata"]["name"] in (once.schedule_id, later.schedule_id)
        for c in json.loads(cluster.kubectl("get", "cronjobs", "-n", podiq_namespace, "-o", "json").stdout)["items"]
    )

    [run] = runs_of(cluster, podiq_namespace, once.schedule_id)
    name = run["metadata"]["name"]
    await asyncio.sleep(4)
    assert not jobs_of(cluster, podiq_namespace, name), "the run started before its time"
    [run] = runs_of(cluster, podiq_namespace, once.schedule_id)
    assert run["status"]["conditions"][0]["reason"] == "Waiting"

    # Deleting a pending one-shot schedule deletes its run before it starts.
    [pending] = runs_of(cluster, podiq_namespace, later.schedule_id)
    await later.unschedule()
    assert runs_of(cluster, podiq_namespace, later.schedule_id) == []
    assert later.schedule_id not in {s.schedule_id for s in await source.get_schedules()}

    result = await AsyncTaskiqTask(name, k8s_broker).wait_result(timeout=WAIT)
    assert not result.is_err, result.error
    assert result.return_value == 5 and result.labels["schedule_id"] == once.schedule_id
    [job] = jobs_of(cluster, podiq_namespace, name)
    started = datetime.fromisoformat(job["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
    assert started >= when - timedelta(seconds=1)
    [run] = runs_of(cluster, podiq_namespace, once.schedule_id)
    assert run["status"]["attempts"] == 1 and run["status"]["phase"] == "Succeeded"
    # Once run, it is a TaskRun and no longer a schedule; deleting the schedule keeps the run.
    assert once.schedule_id not in {s.schedule_id for s in await source.get_schedules()}
    await once.unschedule()
    assert [r["metadata"]["name"] for r in runs_of(cluster, podiq_namespace, once.schedule_id)] == [name]
    assert pending["metadata"]["name"] != name


async def test_invalid_schedules_are_refused_and_nothing_is_created(
    k8s_broker: Any, source: KubernetesScheduleSource, cluster: Any, podiq_namespace: str
) -> None:
    from tests.integration import k8s_tasks as t

    def cronjob_names() -> set[str]:
        out = cluster.kubectl("get", "cronjobs", "-n", podiq_namespace, "-o", "json").stdout
        return {c["metadata"]["name"] for c in json.loads(out)["items"]}

    before = cronjob_names()
    refusals = [
        (t.noop.schedule_by_cron(source, "61 * * * *"), "cron"),
        (t.noop.kicker().with_labels(timezone="Nowhere/Special").schedule_by_cron(source, "* * * * *"), "timezone"),
        (
            t.noop.kicker().with_labels(concurrency_policy="forbid").schedule_by_cron(source, "* * * * *"),
            "concurrency_policy",
        ),
        (t.noop.kicker().with_schedule_id("Not_A_Name").schedule_by_cron(source, "* * * * *"), "schedule_id"),
        (t.noop.schedule_by_interval(source, 45), "interval"),
        # robfig/cron (the CronJob controller) has weekdays 0-6 only: the API server's refusal is passed on.
        (t.noop.kicker().with_schedule_id(unique("sunday")).schedule_by_cron(source, "0 0 * * 7"), "schedule"),
    ]
    for call, field in refusals:
        with pytest.raises(InvalidScheduleError) as refused:
            await call
        assert field in str(refused.value)
    assert cronjob_names() == before


async def test_cli_lists_and_deletes_schedules(
    k8s_broker: Any, source: KubernetesScheduleSource, cluster: Any, podiq_namespace: str
) -> None:
    from tests.integration import k8s_tasks as t

    created = (
        await t.noop.kicker()
        .with_schedule_id(unique("yearly"))
        .schedule_by_cron(source, CronSpec(minutes=0, hours=0, days=1, months=1))
    )
    # The same id again replaces the schedule.
    replaced = await t.noop.kicker().with_schedule_id(created.schedule_id).schedule_by_cron(source, "0 12 1 1 *")
    assert replaced.schedule_id == created.schedule_id
    body = cronjob(cluster, podiq_namespace, created.schedule_id)
    assert body is not None and body["spec"]["schedule"] == "0 12 1 1 *"

    def podiq(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "podiq.cli", "schedules", *args, "-n", podiq_namespace],
            capture_output=True,
            text=True,
            env={**os.environ, **cluster.env, "COLUMNS": "250"},
            timeout=60,
        )

    listed = podiq("list")
    assert listed.returncode == 0, listed.stderr
    assert created.schedule_id in listed.stdout and "0 12 1 1 * (Etc/UTC)" in listed.stdout
    assert "tests.integration.k8s_tasks:noop" in listed.stdout
    deleted = podiq("delete", created.schedule_id)
    assert deleted.returncode == 0 and f"cronjob/{created.schedule_id}" in deleted.stdout, (
        deleted.stdout + deleted.stderr
    )
    assert cronjob(cluster, podiq_namespace, created.schedule_id) is None
    again = podiq("delete", created.schedule_id)
    assert again.returncode == 1 and "No schedule" in again.stdout


def test_scheduler_service_account_may_only_create_read_watch_and_cancel_taskruns(
    cluster: Any, scheduler_rbac: str
) -> None:
    namespace = scheduler_rbac
    scheduler = f"system:serviceaccount:{namespace}:podiq-scheduler"

    def can(verb: str, resource: str, ns: str = namespace) -> bool:
        resource, _, subresource = resource.partition("/")
        extra = ["--subresource", subresource] if subresource else []
        out = cluster.kubectl("auth", "can-i", verb, resource, *extra, "-n", ns, "--as", scheduler, check=False)
        return out.stdout.strip() == "yes"

    for verb in ("create", "get", "watch", "patch"):
        assert can(verb, "taskruns.podiq.io"), f"scheduler may not {verb} taskruns"
    for verb, resource in [
        ("list", "taskruns.podiq.io"),
        ("delete", "taskruns.podiq.io"),
        ("patch", "taskruns.podiq.io/status"),
        ("create", "jobs.batch"),
        ("get", "cronjobs.batch"),
        ("get", "pods"),
        ("get", "secrets"),
    ]:
        assert not can(verb, resource), f"scheduler may {verb} {resource}"
    assert not can("create", "taskruns.podiq.io", "podiq-it-other")


async def test_label_schedules_become_cronjobs_and_held_back_runs_once_per_entry(
    k8s_broker: Any, scheduler_rbac: str, cluster: Any, podiq_namespace: str
) -> None:
    from podiq.kubernetes import KubernetesBroker
    from podiq.schedule_sources import LabelScheduleSource

    broker = KubernetesBroker(podiq_namespace, kubeconfig=k8s_broker.kubeconfig)
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)

    @broker.task(
        task_name="tests.integration.k8s_tasks:noop", schedule=[{"cron": "0 3 1 1 *"}, {"time": when}, {"args": []}]
    )
    async def noop() -> None: ...

    source = LabelScheduleSource(broker)
    cron_id, time_id = [s.schedule_id for s in source.collect()]
    async with broker:
        try:
            await source.startup()
            await source.startup()  # a restarted application: the same resources, not new ones
            assert await source.get_schedules() == []  # Kubernetes fires them, not this process
            made = cronjob(cluster, podiq_namespace, cron_id)
            assert made is not None and made["spec"]["schedule"] == "0 3 1 1 *"
            assert [r["metadata"]["name"] for r in runs_of(cluster, podiq_namespace, time_id)] == [time_id]
            listed = {s.schedule_id: s for s in await KubernetesScheduleSource(broker).get_schedules()}
            assert listed[cron_id].cron == "0 3 1 1 *" and listed[time_id].time == when
        finally:
            async with KubernetesScheduleSource(broker) as schedules:
                for schedule_id in (cron_id, time_id):
                    await schedules.delete_schedule(schedule_id)
    assert cronjob(cluster, podiq_namespace, cron_id) is None
    assert runs_of(cluster, podiq_namespace, time_id) == []
