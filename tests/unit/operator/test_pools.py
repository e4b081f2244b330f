"""TaskPools in the operator: pool runs get no Job, the workers' Deployment, scaling, and the backstop."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from podiq.kubernetes.attempts import fail_attempt
from podiq.kubernetes.resources import Phase, Reason, TaskRun
from podiq.kubernetes.taskpools import TaskPool
from podiq_operator.config import JobConfig
from podiq_operator.decisions import Cancel, Idle, Policy, StartAttempt, WriteStatus, decide
from podiq_operator.observations import AttemptObservation, AttemptState
from podiq_operator.pool_decisions import (
    ENQUEUE_GRACE,
    _waited,
    backstop,
    build_deployment,
    desired_replicas,
    may_need_backstop,
    next_attempt,
)

from .conftest import NOW, taskrun, taskrun_body

MISSING = AttemptObservation(AttemptState.MISSING)


def pool(**spec: object) -> TaskPool:
    return TaskPool.from_api({"metadata": {"name": "fast", "namespace": "jobs", "uid": "uid-fast"}, "spec": spec})


def test_a_pool_run_gets_no_job_in_any_state() -> None:
    assert isinstance(decide(taskrun(), 0, MISSING, NOW), StartAttempt)
    fresh = taskrun(pool="fast")
    assert isinstance(decide(fresh, 0, MISSING, NOW, fresh=True), Idle)
    retrying = taskrun(pool="fast", retryOnError=True)
    retrying.status.record_attempt(1, None, NOW)
    retrying.status = fail_attempt(retrying.spec, retrying.status, "WorkerLost", "gone", NOW)
    assert retrying.status.wants_next_attempt()
    assert isinstance(decide(retrying, 1, MISSING, NOW, fresh=True), Idle)


def test_a_cancelled_pool_run_is_marked_cancelled_with_no_job_to_delete() -> None:
    run = taskrun(pool="fast", cancelled=True)
    action = decide(run, 0, MISSING, NOW)
    assert isinstance(action, Cancel) and action.job_name is None
    assert action.status.phase is Phase.CANCELLED and action.status.result["error"]["type"] == "TaskCancelledError"


def test_workers_scale_with_backlog_and_busy_runs_within_bounds() -> None:
    p = pool(minReplicas=0, maxReplicas=3, concurrency=4)
    assert desired_replicas(p, 0, 0) == 0
    assert desired_replicas(p, 1, 0) == 1
    assert desired_replicas(p, 3, 2) == 2
    assert desired_replicas(p, 1000, 0) == 3
    assert desired_replicas(pool(minReplicas=2, maxReplicas=3), 0, 0) == 2


def test_the_deployment_runs_workers_of_the_pool_as_non_root() -> None:
    config = JobConfig(runtime_image="podiq-runtime:1", store_secret="podiq-redis")
    p = pool(
        imports=["app.tasks"],
        concurrency=5,
        env=[{"name": "PODIQ_POOL", "value": "other"}, {"name": "A", "value": "1"}],
    )
    body = build_deployment(p, 2, config)
    assert body["metadata"]["name"] == "podiq-pool-fast" and body["spec"]["replicas"] == 2
    assert body["metadata"]["ownerReferences"][0]["uid"] == "uid-fast"
    template = body["spec"]["template"]
    assert body["spec"]["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    (container,) = template["spec"]["containers"]
    assert container["command"] == ["python", "-m", "podiq.runtime.worker"] and container["image"] == "podiq-runtime:1"
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["PODIQ_POOL"] == "fast" and env["PODIQ_IMPORTS"] == "app.tasks" and env["PODIQ_CONCURRENCY"] == "5"
    assert env["A"] == "1" and env["PODIQ_REDIS_URL"] == {"secretKeyRef": {"name": "podiq-redis", "key": "url"}}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert template["spec"]["securityContext"]["runAsNonRoot"] is True


def created(seconds_ago: float, **spec: object) -> TaskRun:
    run = taskrun(pool="fast", **spec)
    run.metadata.creation_timestamp = NOW - timedelta(seconds=seconds_ago)
    return run


def test_a_run_nobody_enqueued_is_enqueued_after_the_grace() -> None:
    assert backstop(created(1), pool(), None, NOW) is None
    verdict = backstop(created(ENQUEUE_GRACE + 1), pool(), None, NOW)
    assert verdict is not None and verdict.enqueue == 1
    assert backstop(created(60), pool(), "claimed:worker-1", NOW) is None


def test_a_run_nobody_claimed_fails_after_the_pools_deadline() -> None:
    queued = f"queued:{(NOW - timedelta(seconds=30)).timestamp():.0f}"
    assert backstop(created(60), pool(claimDeadlineSeconds=60), queued, NOW) is None
    verdict = backstop(created(60), pool(claimDeadlineSeconds=10), queued, NOW)
    assert verdict is not None and verdict.fail == "NotClaimed" and "podiq-pool-fast" in verdict.message


def test_a_run_of_a_missing_pool_fails_naming_it() -> None:
    verdict = backstop(created(60), None, None, NOW)
    assert verdict is not None and verdict.fail == "PoolNotFound" and "'fast'" in verdict.message


def test_the_next_attempt_after_a_retry_is_the_one_backstopped() -> None:
    run = created(60, retryOnError=True)
    run.status.record_attempt(1, None, NOW - timedelta(seconds=30))
    run.status = fail_attempt(run.spec, run.status, "WorkerLost", "gone", NOW - timedelta(seconds=20))
    assert run.status.reason is Reason.RETRYING
    verdict = backstop(run, pool(), None, NOW)
    assert verdict is not None and verdict.enqueue == 2
    running = created(60)
    running.status.record_attempt(1, None, NOW)
    assert backstop(running, pool(), None, NOW) is None


async def test_a_pool_grows_at_once_and_shrinks_only_after_a_calm_spell(monkeypatch: Any) -> None:
    import podiq_operator.pools as pools

    keeper = object.__new__(pools.PoolKeeper)
    keeper._lower_since = {}
    p = pool(maxReplicas=4)
    assert keeper._damped(p, 1, 3) == 3
    assert keeper._damped(p, 3, 0) == 3  # lower only just now
    monkeypatch.setattr(pools, "SCALE_DOWN_AFTER", 0.0)
    assert keeper._damped(p, 3, 0) == 0
    assert keeper._damped(pool(maxReplicas=2), 5, 3) == 3  # above a lowered maximum: at once


def test_a_worker_without_its_pool_says_what_sets_it() -> None:
    from podiq.runtime.worker import WorkerSettings

    with pytest.raises(ValueError, match="PODIQ_POOL.*TaskPool"):
        WorkerSettings.from_environ({"PODIQ_POD_NAME": "w-1"})
    settings = WorkerSettings.from_environ(
        {
            "PODIQ_POOL": "fast",
            "PODIQ_POOL_NAMESPACE": "ns",
            "HOSTNAME": "w-1",
            "PODIQ_IMPORTS": "a, b",
            "PODIQ_CONCURRENCY": "3",
        }
    )
    assert (settings.pod_name, settings.imports, settings.concurrency) == ("w-1", ["a", "b"], 3)


def test_podiq_worker_outside_a_pool_exits_saying_what_is_missing() -> None:
    import subprocess
    import sys

    env = {"PATH": "/usr/bin:/bin", "PODIQ_REDIS_URL": ""}
    done = subprocess.run(
        [sys.executable, "-m", "podiq.cli", "worker"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 70 and "PODIQ_POOL" in done.stderr and "TaskPool" in done.stderr


def test_a_held_back_pool_run_shows_waiting_once_and_is_left_to_the_keeper() -> None:
    later = (NOW + timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    run = taskrun(pool="fast", notBefore=later)
    action = decide(run, 0, MISSING, NOW)
    assert isinstance(action, WriteStatus) and action.status.reason is Reason.WAITING
    assert action.status.attempts == 0 and action.event is not None and action.event.reason == "Waiting"
    run.status = action.status
    assert isinstance(decide(run, 0, MISSING, NOW + timedelta(seconds=1)), Idle)  # written once
    assert backstop(run, pool(), None, NOW + timedelta(seconds=10)) is None  # not due: not enqueued
    due = backstop(run, pool(), None, NOW + timedelta(seconds=31))
    assert due is not None and due.enqueue == 1


def test_an_invalid_pool_is_named_with_its_problem_and_the_fix() -> None:
    from podiq_operator.pool_decisions import pool_problem

    def body(name: str = "fast", **spec: object) -> dict[str, Any]:
        return {"metadata": {"name": name, "namespace": "jobs"}, "spec": spec}

    kept, reason, message = pool_problem(body(minReplicas=1, maxReplicas=2))
    assert kept is not None and reason == "Ready" and "podiq-pool-fast" in message
    kept, reason, message = pool_problem(body(minReplicas=5, maxReplicas=2))
    assert kept is None and reason == "InvalidSpec"
    assert "minReplicas (5) is above maxReplicas (2)" in message and "kubectl edit taskpool fast" in message
    kept, reason, message = pool_problem(body("a" * 41))
    assert kept is None and reason == "InvalidName" and "at most 40" in message and "shorter name" in message
    kept, reason, message = pool_problem(body(minReplicas=1, maxReplicas=2), frozenset({"jobs"}))
    assert kept is None and reason == "NamespaceExcluded"
    assert "'jobs'" in message and "excludedNamespaces" in message and "another namespace" in message


def test_a_pool_run_in_an_excluded_namespace_is_refused_before_any_worker_may_claim_it() -> None:
    action = decide(taskrun(pool="fast"), 0, MISSING, NOW, policy=Policy(excluded_namespaces=frozenset({"jobs"})))
    assert isinstance(action, WriteStatus)
    assert (action.status.phase, action.status.reason) == (Phase.FAILED, Reason.NAMESPACE_EXCLUDED)


def test_the_ready_condition_moves_its_time_only_when_its_status_changes() -> None:
    from podiq_operator.pool_decisions import pool_conditions

    first = pool_conditions([], False, "InvalidSpec", "bad", NOW)
    assert first == [
        {
            "type": "Ready",
            "status": "False",
            "reason": "InvalidSpec",
            "message": "bad",
            "lastTransitionTime": "2026-03-04T05:06:07Z",
        }
    ]
    assert pool_conditions(first, False, "InvalidSpec", "bad", NOW + timedelta(seconds=9)) == first  # no write
    fixed = pool_conditions(first, True, "Ready", "ok", NOW + timedelta(seconds=9))
    assert fixed[0]["status"] == "True" and fixed[0]["lastTransitionTime"] == "2026-03-04T05:06:16Z"


def test_a_shrinking_pool_stops_idle_workers_first() -> None:
    from podiq_operator.pool_decisions import deletion_costs

    costs = deletion_costs(["w-busy", "w-idle", "w-new"], {"w-busy": 3, "w-idle": 0, "gone": 2})
    assert costs == {"w-busy": 3, "w-idle": 0, "w-new": 0}
    assert min(costs, key=lambda pod: (costs[pod], pod)) != "w-busy"


def _stamp(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _body(created_ago: float, status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    body = taskrun_body(status=status, **spec)
    body["metadata"]["creationTimestamp"] = _stamp(created_ago)
    return body


def _condition(reason: str, status: str, seconds_ago: float) -> dict[str, Any]:
    return {"type": "Succeeded", "status": status, "reason": reason, "lastTransitionTime": _stamp(seconds_ago)}


@pytest.mark.parametrize(
    ("body", "looked_at"),
    [
        (_body(60), False),  # not a pool run
        (_body(1, pool="fast"), False),  # its client is enqueuing it just now
        (_body(ENQUEUE_GRACE + 1, pool="fast"), True),
        (_body(60, {"attempts": 1, "conditions": [_condition("Running", "Unknown", 1)]}, pool="fast"), False),
        (_body(60, {"attempts": 1, "conditions": [_condition("Running", "Unknown", 30)]}, pool="fast"), True),
        (
            _body(60, {"completionTime": _stamp(1), "conditions": [_condition("Succeeded", "True", 1)]}, pool="fast"),
            False,
        ),
        (
            _body(
                60,
                {"completionTime": _stamp(1), "conditions": [_condition("Cancelled", "False", 1)]},
                pool="fast",
                cancelled=True,
            ),
            True,
        ),
        (_body(1, pool="fast", cancelled=True), True),  # its workers are told at once
        ({**_body(60, pool="fast"), "metadata": {"name": "add-1"}}, True),  # no timestamp: the model decides
    ],
)
def test_the_keeper_skips_before_parsing_only_runs_the_backstop_would_skip(
    body: dict[str, Any], looked_at: bool
) -> None:
    assert may_need_backstop(body, NOW) is looked_at
    if not looked_at:  # what the keeper does with the model: nothing, so skipping the parse loses nothing
        run = TaskRun.from_api(body)
        assert (
            run.spec.pool is None
            or (run.is_done() and not run.cancel_requested())
            or (next_attempt(run) is None or _waited(run, NOW) < ENQUEUE_GRACE)
        )
