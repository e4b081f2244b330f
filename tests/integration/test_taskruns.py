"""Tasks on Kubernetes, end to end through the real API server: KubernetesBroker creates
TaskRuns and the operator (a local process) runs them. Every behaviour test runs in both modes
(``run_mode``): each attempt a Job whose pod runs the podiq runtime, and on the warm workers of a
TaskPool, dispatched through a real redis-server. The TaskRun shows the same either way."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from podiq import TaskCancelledError, TaskRejectedError, TaskTimeoutError, gather
from tests.integration.conftest import RunMode, recorded_running_from_its_pod, worker_pods

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

WAIT = 90  # seconds any single run may take on the local control plane


def taskrun(cluster: Any, namespace: str, name: str) -> dict[str, Any]:
    return json.loads(cluster.kubectl("get", "taskrun", name, "-n", namespace, "-o", "json").stdout)


def jobs_of(cluster: Any, namespace: str, name: str) -> list[dict[str, Any]]:
    out = cluster.kubectl("get", "jobs", "-n", namespace, "-l", f"podiq.io/taskrun={name}", "-o", "json").stdout
    return json.loads(out)["items"]


def worker_logs(mode: RunMode) -> str:
    return "\n".join(
        mode.cluster.kubectl("logs", "-n", mode.namespace, pod, check=False).stdout
        for pod in worker_pods(mode.cluster, mode.namespace)
    )


async def test_spec_examples_run_as_taskruns(mode_broker: Any, run_mode: RunMode, cluster: Any) -> None:
    from tests.integration import k8s_tasks as t

    namespace = run_mode.namespace
    total = await (await t.calculate_sum.kiq([1, 2, 3, 4, 5])).wait_result(timeout=WAIT)
    assert total == 15

    risky = await t.risky_operation.kiq(-5)
    with pytest.raises(ValueError, match="Negative values not allowed"):
        await risky.wait_result(timeout=WAIT)
    assert risky.is_err and isinstance(risky.error, ValueError)
    assert risky.execution_time >= 0

    requeued = await t.context_aware_task.kiq("retry_me")
    assert await requeued.wait_result(timeout=WAIT) == f"Processed: retry_me (ID: {requeued.task_id})"
    assert requeued.labels["X-Taskiq-requeue"] == "2"
    status = taskrun(cluster, namespace, requeued.task_id)["status"]
    assert status["phase"] == "Succeeded" and status["attempts"] == 3 and status["requeues"] == 2
    # Each attempt is recorded, by the operator or by the runtime's own report, with its Job and
    # pod; on a pool, with the worker's pod and no Job.
    run_mode.ran_where_it_should(requeued.task_id, status)

    rejected = await t.context_aware_task.kiq("invalid")
    with pytest.raises(TaskRejectedError):
        await rejected.wait_result(timeout=WAIT)
    status = taskrun(cluster, namespace, rejected.task_id)["status"]
    assert status["phase"] == "Rejected" and status["attempts"] == 1
    assert status["conditions"][0]["reason"] == "Rejected"

    results = await gather(*(t.fetch_data.kiq(f"https://api{i}.example.com") for i in range(1, 4)), timeout=WAIT)
    assert {r.return_value["url"]: r.return_value["data"] for r in results} == {
        f"https://api{i}.example.com": f"content from https://api{i}.example.com" for i in range(1, 4)
    }


async def test_exceptions_are_rebuilt_with_their_type_and_attributes(mode_broker: Any) -> None:
    from tests.integration import k8s_tasks as t

    result = await t.over_quota.kiq("cpu")
    with pytest.raises(t.QuotaError) as raised:
        await result.wait_result(timeout=WAIT)
    assert raised.value.resource == "cpu" and raised.value.limit == 3
    assert any("Remote traceback" in note for note in raised.value.__notes__)


async def test_retries_count_attempts_and_end_in_failure_or_success(
    mode_broker: Any, run_mode: RunMode, cluster: Any
) -> None:
    from tests.integration import k8s_tasks as t

    recovered, exhausted = await t.fails_until.kiq(1), await t.fails_until.kiq(5)
    assert await recovered.wait_result(timeout=WAIT) == 1
    with pytest.raises(RuntimeError, match="failing on retry 2"):
        await exhausted.wait_result(timeout=WAIT)
    ok = taskrun(cluster, run_mode.namespace, recovered.task_id)["status"]
    failed = taskrun(cluster, run_mode.namespace, exhausted.task_id)["status"]
    assert (ok["phase"], ok["attempts"], ok["retries"]) == ("Succeeded", 2, 1)
    assert (failed["phase"], failed["attempts"], failed["retries"]) == ("Failed", 3, 2)
    run_mode.ran_where_it_should(exhausted.task_id, failed)  # three Jobs, or none at all


async def test_timeout_ends_the_run(mode_broker: Any, run_mode: RunMode, cluster: Any) -> None:
    from tests.integration import k8s_tasks as t

    started = time.monotonic()
    result = await t.sleeps_too_long.kiq()
    with pytest.raises(TaskTimeoutError):
        await result.wait_result(timeout=WAIT)
    assert time.monotonic() - started < 45  # stopped after its 1 s, not after its 60 s of sleep
    status = taskrun(cluster, run_mode.namespace, result.task_id)["status"]
    assert status["phase"] == "Failed" and status["attempts"] == 1
    if run_mode.pool:
        assert not run_mode.jobs_of(result.task_id)
    else:  # Kubernetes stops the pod too, should the runtime not
        job = run_mode.jobs_of(result.task_id)[0]
        assert job["spec"]["activeDeadlineSeconds"] >= 1


async def test_progress_is_seen_while_running_and_cancel_stops_the_run(
    mode_broker: Any, run_mode: RunMode, cluster: Any
) -> None:
    from tests.integration import k8s_tasks as t

    result = await t.slow_with_progress.kiq(60, 0.5)
    seen = None
    for _ in range(120):
        seen = await result.get_progress()
        if seen is not None and 0 < seen.current < 60:
            break
        await asyncio.sleep(0.5)
    assert seen is not None and seen.total == 60 and 0 < seen.current < 60, seen
    await result.cancel()
    with pytest.raises(TaskCancelledError):
        await result.wait_result(timeout=WAIT)
    assert taskrun(cluster, run_mode.namespace, result.task_id)["status"]["phase"] == "Cancelled"
    if run_mode.pool:  # the one run stops inside its worker, which serves on
        cluster.wait_for(
            "the worker's note that it stopped the cancelled run",
            lambda: f"Stopped attempt 1 of TaskRun {result.task_id}" in worker_logs(run_mode) or None,
            timeout=15,
        )
        assert not run_mode.jobs_of(result.task_id)
        return
    for _ in range(60):  # the Job is deleted in the background
        if not run_mode.jobs_of(result.task_id):
            break
        await asyncio.sleep(0.5)
    assert not run_mode.jobs_of(result.task_id)


async def test_a_running_attempt_is_recorded_with_its_pod(mode_broker: Any, run_mode: RunMode, cluster: Any) -> None:
    from tests.integration import k8s_tasks as t

    slow = await t.slow_with_progress.kiq(16, 0.5)
    if run_mode.pool:

        def running() -> dict[str, Any] | None:
            status = taskrun(cluster, run_mode.namespace, slow.task_id).get("status", {})
            return status if status.get("phase") == "Running" and status.get("podName") else None

        # A worker records a run still going after 2 s as Running on its pod (fast runs write once).
        status = cluster.wait_for("the attempt recorded as Running on its worker", running, timeout=15)
        assert status["podName"] in worker_pods(cluster, run_mode.namespace) and "completionTime" not in status
        assert status["attempts"] == 1 and "jobName" not in status
    else:
        recorded_running_from_its_pod(cluster, run_mode.namespace, slow.task_id)
    assert await slow.wait_result(timeout=WAIT) == 16


async def test_not_before_holds_the_run_back(mode_broker: Any, run_mode: RunMode, cluster: Any) -> None:
    from tests.integration import k8s_tasks as t

    start_at = datetime.now(UTC) + timedelta(seconds=8)
    result = await t.noop.kicker().with_labels(not_before=start_at).kiq()
    await asyncio.sleep(3)
    assert not run_mode.jobs_of(result.task_id)
    status = taskrun(cluster, run_mode.namespace, result.task_id)["status"]
    assert status["conditions"][0]["reason"] == "Waiting" and not status.get("attempts"), status
    await result.wait_result(timeout=WAIT)
    status = taskrun(cluster, run_mode.namespace, result.task_id)["status"]
    started = datetime.fromisoformat(status["startTime"].replace("Z", "+00:00"))
    assert started >= start_at - timedelta(seconds=1)
    if run_mode.pool:
        assert not run_mode.jobs_of(result.task_id)
    else:
        job = run_mode.jobs_of(result.task_id)[0]
        created = datetime.fromisoformat(job["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
        assert created >= start_at - timedelta(seconds=1)


async def test_finished_taskruns_are_deleted_after_their_ttl(mode_broker: Any, run_mode: RunMode, cluster: Any) -> None:
    from tests.integration import k8s_tasks as t

    result = await t.noop.kicker().with_labels(ttl=2).kiq()
    await result.wait_result(timeout=WAIT)
    for _ in range(60):
        got = cluster.kubectl("get", "taskrun", result.task_id, "-n", run_mode.namespace, check=False)
        if got.returncode != 0 and "NotFound" in got.stderr:
            break
        await asyncio.sleep(0.5)
    else:
        pytest.fail("TaskRun was not deleted after its TTL")


async def test_with_logs_returns_the_runs_own_output(mode_broker: Any, run_mode: RunMode) -> None:
    from tests.integration import k8s_tasks as t

    # Two at once: on a pool they may share a worker, and each still gets only its own output.
    first, second = await t.prints_and_returns.kicker().kiq("abc"), await t.prints_and_returns.kicker().kiq("xyz")
    one, other = (
        await first.wait_result(timeout=WAIT, with_logs=True),
        await second.wait_result(timeout=WAIT, with_logs=True),
    )
    assert (one.return_value, other.return_value) == ("ABC", "XYZ")
    assert one.log is not None and "hello from the pod: abc" in one.log and "xyz" not in one.log
    assert other.log is not None and "hello from the pod: xyz" in other.log and "abc" not in other.log
    if run_mode.pool:  # the tail kept in Redis for the run alone, not the worker's whole log
        assert "Worker" not in one.log and "serves pool" not in one.log


async def test_operator_killed_mid_flight_loses_nothing_and_starts_nothing_twice(
    mode_broker: Any, run_mode: RunMode, cluster: Any
) -> None:
    from tests.integration import k8s_tasks as t

    operator = run_mode.operator
    operator.kill()
    results = [await t.calculate_sum.kiq([i, i]) for i in range(6)]  # created while no operator runs
    operator.start()
    await asyncio.sleep(2)
    more = [await t.slow_with_progress.kiq(4, 0.5) for _ in range(3)]
    await asyncio.sleep(1.5)
    operator.kill()  # mid-flight: Jobs (or pool runs) are running
    await asyncio.sleep(1)
    operator.start()
    done = await gather(*results, *more, timeout=WAIT * 2)
    assert [r.return_value for r in done[:6]] == [2 * i for i in range(6)]
    assert all(r.return_value == 4 for r in done[6:])
    for result in [*results, *more]:
        status = taskrun(cluster, run_mode.namespace, result.task_id)["status"]
        assert status["attempts"] == 1
        run_mode.ran_where_it_should(result.task_id, status)


def test_malformed_taskrun_is_rejected_with_a_readable_message(cluster: Any, podiq_namespace: str) -> None:
    manifest = {
        "apiVersion": "podiq.io/v1alpha1",
        "kind": "TaskRun",
        "metadata": {"name": "malformed", "namespace": podiq_namespace},
        "spec": {"taskName": "not a task name", "maxRetries": -1, "args": "not-a-list"},
    }
    applied = subprocess.run(
        [f"{cluster.bin_dir}/kubectl", "apply", "-f", "-"],
        input=json.dumps(manifest),
        text=True,
        capture_output=True,
        env={**cluster.env},
    )
    assert applied.returncode != 0
    assert "spec.taskName" in applied.stderr and "spec.maxRetries" in applied.stderr and "spec.args" in applied.stderr


def test_runtime_service_account_has_only_taskrun_status_rights(cluster: Any, podiq_namespace: str) -> None:
    runtime = f"system:serviceaccount:{podiq_namespace}:podiq-runtime"

    def can(verb: str, resource: str, *extra: str) -> bool:
        out = cluster.kubectl(
            "auth", "can-i", verb, resource, *extra, "-n", podiq_namespace, "--as", runtime, check=False
        )
        return out.stdout.strip() == "yes"

    assert can("get", "taskruns.podiq.io") and can("patch", "taskruns.podiq.io", "--subresource=status")
    for verb, resource in [
        ("create", "taskruns.podiq.io"),
        ("delete", "taskruns.podiq.io"),
        ("patch", "taskruns.podiq.io"),
        ("create", "jobs.batch"),
        ("get", "pods"),
        ("get", "secrets"),
        ("list", "taskruns.podiq.io"),
    ]:
        assert not can(verb, resource), f"runtime may {verb} {resource}"
    other = "podiq-it-other"
    assert (
        cluster.kubectl(
            "auth", "can-i", "get", "taskruns.podiq.io", "-n", other, "--as", runtime, check=False
        ).stdout.strip()
        == "no"
    )


async def test_a_deleted_pod_ends_the_attempt_with_an_error_that_says_so(
    mode_broker: Any, run_mode: RunMode, cluster: Any
) -> None:
    from podiq.kubernetes.resources import InfrastructureError
    from tests.integration import k8s_tasks as t

    namespace = run_mode.namespace
    result = await t.slow_with_progress.kiq(120, 0.5)
    pod = None
    for _ in range(120):
        if run_mode.pool:  # the worker that claimed it, once it recorded the run as Running
            status = taskrun(cluster, namespace, result.task_id).get("status", {})
            pod = status.get("podName") if status.get("phase") == "Running" else None
        else:
            pods = json.loads(
                cluster.kubectl(
                    "get", "pods", "-n", namespace, "-l", f"podiq.io/taskrun={result.task_id}", "-o", "json"
                ).stdout
            )["items"]
            if pods and pods[0]["status"].get("phase") == "Running":
                pod = pods[0]["metadata"]["name"]
        if pod:
            break
        await asyncio.sleep(0.5)
    assert pod is not None
    cluster.kubectl("delete", "pod", pod, "-n", namespace, "--wait=false")
    with pytest.raises(InfrastructureError) as raised:
        await result.wait_result(timeout=WAIT)
    status = taskrun(cluster, namespace, result.task_id)["status"]
    assert status["phase"] == "Failed" and status["attempts"] == 1
    assert "SIGTERM" in str(raised.value) and "deleted" in str(raised.value)
    if run_mode.pool:  # the Deployment replaces the worker, and the pool serves on
        cluster.wait_for(
            "the pool back at two workers", lambda: len(worker_pods(cluster, namespace)) == 2 or None, timeout=WAIT
        )
        assert await (await t.calculate_sum.kiq([2, 3])).wait_result(timeout=WAIT) == 5


async def test_following_one_run_sees_it_progress_and_end_or_be_deleted(
    k8s_broker: Any, cluster: Any, podiq_namespace: str
) -> None:
    """What a Forbid firing and `podiq get --watch` wait with: a read, then a watch of that run alone."""
    from podiq.kubernetes.watching import follow
    from tests.integration import k8s_tasks as t

    seen: list[str] = []
    result = await t.slow_with_progress.kiq(4, 0.5)
    finished = await asyncio.wait_for(
        follow(k8s_broker.taskruns, podiq_namespace, result.task_id, lambda run: seen.append(run.status.reason.value)),
        WAIT,
    )
    assert finished is not None and finished.status.is_succeeded() and finished.name == result.task_id
    assert seen and "Succeeded" not in seen, seen  # only unfinished states are reported on the way
    held = await t.noop.kicker().with_labels(not_before=datetime.now(UTC) + timedelta(hours=1)).kiq()
    following = asyncio.ensure_future(follow(k8s_broker.taskruns, podiq_namespace, held.task_id))
    await asyncio.sleep(1)
    cluster.kubectl("delete", "taskrun", held.task_id, "-n", podiq_namespace)
    assert await asyncio.wait_for(following, WAIT) is None
