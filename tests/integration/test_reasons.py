"""Why a run did not start, as Kubernetes tells it, and how it ends: each reason its own,
then Failed at the pending deadline; a failed task's error in its condition; Events for the finish."""

from __future__ import annotations

import json
from typing import Any

import pytest

from podiq.kubernetes.resources import InfrastructureError

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

WAIT = 90


def condition(cluster: Any, namespace: str, name: str) -> dict[str, Any]:
    status = cluster.get("taskrun", name, "-n", namespace).get("status", {})
    return {"phase": status.get("phase"), **next(iter(status.get("conditions") or []), {})}


def events_of(cluster: Any, namespace: str, name: str) -> list[tuple[str, str]]:
    out = cluster.kubectl(
        "get",
        "events",
        "-n",
        namespace,
        "--field-selector",
        f"involvedObject.kind=TaskRun,involvedObject.name={name}",
        "-o",
        "json",
    ).stdout
    return [(e["type"], e["reason"]) for e in json.loads(out)["items"]]


@pytest.mark.parametrize(
    ("labels", "reason", "words"),
    [
        ({"service_account": "nobody-here"}, "ServiceAccountMissing", 'serviceaccount "nobody-here" not found'),
        ({"resources": {"requests": {"cpu": "5000"}}}, "Unschedulable", "Insufficient cpu"),
    ],
)
async def test_a_run_that_cannot_start_says_why_then_fails_at_its_deadline(
    k8s_broker: Any,
    cluster: Any,
    podiq_namespace: str,
    labels: dict[str, Any],
    reason: str,
    words: str,
) -> None:
    from tests.integration import k8s_tasks as t

    result = await t.noop.kicker().with_labels(pending_deadline=8, **labels).kiq()

    def stuck() -> dict[str, Any] | None:
        found = condition(cluster, podiq_namespace, result.task_id)
        return found if found.get("reason") == reason else None

    blocked = cluster.wait_for(f"the reason {reason}", stuck, timeout=30)
    assert blocked["phase"] == "Pending" and blocked["status"] == "Unknown" and words in blocked["message"]
    finished = await result.wait_result(timeout=WAIT)  # a kicker's task: the container, not a raise
    assert finished.is_err and isinstance(finished.error, InfrastructureError) and reason in str(finished.error)
    final = condition(cluster, podiq_namespace, result.task_id)
    assert (final["phase"], final["status"], final["reason"]) == ("Failed", "False", reason)
    assert "did not start within 8 s" in final["message"] and words in final["message"]
    assert not cluster.get("jobs", "-n", podiq_namespace, "-l", f"podiq.io/taskrun={result.task_id}")["items"]
    seen = cluster.wait_for(
        "the Events", lambda: len(e := events_of(cluster, podiq_namespace, result.task_id)) >= 3 and e
    )
    assert seen.count(("Warning", reason)) == 2, "stuck, then failed for it"


async def test_a_failed_runs_condition_carries_the_tasks_error_and_its_finish_an_event(
    k8s_broker: Any,
    cluster: Any,
    podiq_namespace: str,
) -> None:
    from tests.integration import k8s_tasks as t

    result = await t.risky_operation.kiq(-1)
    with pytest.raises(ValueError):
        await result.wait_result(timeout=WAIT)
    final = condition(cluster, podiq_namespace, result.task_id)
    assert (
        final["reason"] == "Failed" and final["message"] == "Attempt 1 failed: ValueError: Negative values not allowed."
    )
    seen = cluster.wait_for(
        "the finish Event",
        lambda: ("Warning", "Failed") in (e := events_of(cluster, podiq_namespace, result.task_id)) and e,
    )
    assert ("Normal", "Started") in seen


async def test_a_waiting_client_is_told_why(k8s_broker: Any, caplog: pytest.LogCaptureFixture) -> None:
    from podiq import TaskiqResultTimeoutError
    from tests.integration import k8s_tasks as t

    result = await t.calculate_sum.kicker().with_labels(service_account="nobody-here").kiq([1])
    with caplog.at_level("WARNING", logger="podiq.kubernetes"), pytest.raises(TaskiqResultTimeoutError) as raised:
        await result.wait_result(timeout=8)
    assert "it is Pending (ServiceAccountMissing: " in str(raised.value) and "nobody-here" in str(raised.value)
    told = [r.getMessage() for r in caplog.records if "is waiting" in r.getMessage()]
    assert len(told) == 1 and "ServiceAccountMissing" in told[0]
    await k8s_broker.cancel(result.task_id)


def test_the_demo_never_waits_forever_and_says_what_to_check(cluster: Any, podiq_crd: Any) -> None:
    """No operator serves `default` here: the demo gives up after its timeout, naming what to check."""
    import subprocess
    import sys

    demo = subprocess.run(
        [sys.executable, "-m", "podiq.cli", "demo", "--broker", "kubernetes", "--timeout", "4"],
        env={**cluster.env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert demo.returncode == 1, demo.stdout + demo.stderr
    assert "did not all finish within 4 s" in demo.stdout
    assert "no status yet: no podiq operator has picked it up" in demo.stdout
    assert "kubectl describe taskrun -n default" in demo.stdout
    cluster.kubectl("delete", "taskruns", "--all", "-n", "default", "--wait=false")
