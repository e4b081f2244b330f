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
    out = cluster.kubectl("get", "events", "-n", namespace, "--field-selector",
                          f"involvedObject.kind=TaskRun,involvedObject.name={name}", "-o", "json").stdout
    return [(e["type"], e["reason"]) for e in json.loads(out)["items"]]


@pytest.mark.parametrize(("labels", "reason", "words"), [
    ({"service_account": "nobody-here"}, "ServiceAccountMissing", 'serviceaccount "nobody-here" not found'),
    ({"resources": {"requests": {"cpu": "5000"}}}, "Unschedulable", "Insufficient cpu"),
])
async def test_a_run_that_cannot_start_says_why_then_fails_at_its_deadline(
    k8s_broker: Any, cluster: Any, podiq_namespace: str, labels: dict[str, Any], reason: str, words: str,
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
    seen = cluster.wait_for("the Events", lambda: len(e := events_of(cluster, podiq_namespace, result.task_id)) >= 3 and e)
    assert seen.count(("Warning", reason)) == 2, "stuck, then failed for it"


async def test_a_failed_runs_condition_carries_the_tasks_error_and_its_finish_an_event(
    k8s_broker: Any, cluster: Any, podiq_namespace: str,
) -> None:
    from tests.integration import k8s_tasks as t

    result = await t.risky_operation.kiq(-1)
    with pytest.raises(ValueError):
        await result.wait_result(timeout=WAIT)
    final = condition(cluster, podiq_namespace, result.task_id)
    assert final["reason"] == "Failed" and final["message"] == "Attempt 1 failed: ValueError: Negative values not allowed."
    seen = cluster.wait_for(
        "the finish Event", lambda: ("Warning", "Failed") in (e := events_of(cluster, podiq_namespace, result.task_id)) and e)
    assert ("Normal", "Started") in seen
