"""The attempt policy is pure: each function returns a new status and leaves the one it was given as read."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from podiq.kubernetes import ExitCode
from podiq.kubernetes.attempts import can_retry, fail_attempt, fail_to_start, finish_attempt, refuse
from podiq.kubernetes.resources import Phase, Reason, TaskRun, TaskRunStatus, to_api

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def running(**spec: object) -> TaskRun:
    run = TaskRun.from_api(
        {"metadata": {"name": "run-1"}, "spec": {"taskName": "m:f", "args": [1, 2], **spec}, "status": {}}
    )
    run.status.mark_attempt_started(1, "run-1-a1", NOW)
    return run


POLICIES: dict[str, Callable[[TaskRun], TaskRunStatus]] = {
    "finish": lambda run: finish_attempt(run.spec, run.status, ExitCode.TASK_ERROR, NOW, result={"is_err": True}),
    "requeue": lambda run: finish_attempt(run.spec, run.status, ExitCode.REQUEUE, NOW),
    "fail": lambda run: fail_attempt(run.spec, run.status, "OOMKilled", "too much", NOW),
    "fail_to_start": lambda run: fail_to_start(run.spec, run.status, Reason.UNSCHEDULABLE, "no nodes", NOW),
    "refuse": lambda run: refuse(run.spec, run.status, Reason.NAMESPACE_EXCLUDED, "not here", NOW),
}


@pytest.mark.parametrize("policy", POLICIES)
def test_the_given_status_is_left_as_it_was(policy: str) -> None:
    run = running(retryOnError=True, maxRetries=1)
    before = to_api(run.status)
    new = POLICIES[policy](run)
    assert to_api(run.status) == before and new is not run.status
    assert to_api(new) != before


def test_a_failure_retries_while_retries_are_left_then_ends_the_run() -> None:
    run = running(retryOnError=True, maxRetries=1)
    assert can_retry(run.spec, run.status)
    first = fail_attempt(run.spec, run.status, "OOMKilled", "too much", NOW)
    assert (first.reason, first.retries, first.phase) == (Reason.RETRYING, 1, Phase.PENDING)
    assert not can_retry(run.spec, first)
    first.mark_attempt_started(2, "run-1-a2", NOW)
    second = fail_attempt(run.spec, first, "OOMKilled", "too much", NOW)
    assert (second.reason, second.retries, second.phase) == (Reason.FAILED, 1, Phase.FAILED)
    assert second.result is not None and second.result["error"]["type"] == "InfrastructureError"
