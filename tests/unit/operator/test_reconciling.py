"""The reconciler against an in-memory cluster that counts API writes."""

from __future__ import annotations

import asyncio
import copy
from datetime import timedelta
from typing import Any

import pytest

from podiq import ResultRecord
from podiq.kubernetes import ExitCode
from podiq.kubernetes.resources import Phase, Reason, TaskRun
from podiq.kubernetes.storage import StoreSettings
from podiq.runtime.environment import RuntimeEnvironment
from podiq.runtime.progress import TaskRunStatusBackend
from podiq.runtime.running import report, stored_outcome
from podiq_operator.clusters import ConflictError, NotFoundError
from podiq_operator.config import OperatorConfig
from podiq_operator.decisions import Event
from podiq_operator.jobs import attempt_of, job_name
from podiq_operator.reconciling import Reconciler

from .conftest import NOW, pod_body, taskrun_body, terminated


class FakeCluster:
    """Just enough of the API server: resourceVersions, merge patches on status, 404/409."""

    def __init__(self) -> None:
        self.taskruns: dict[tuple[str, str], dict[str, Any]] = {}
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.others: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.writes: list[str] = []
        self.reads: list[str] = []
        self._rv = 1000

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    # what the client and the runtime do
    def create_taskrun(self, body: dict[str, Any]) -> tuple[str, str]:
        body = copy.deepcopy(body)
        body["metadata"]["resourceVersion"] = self._next_rv()
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        self.taskruns[key] = body
        self.writes.append("create taskrun")
        return key

    async def runtime_finishes(self, key: tuple[str, str], code: ExitCode, result: ResultRecord | None = None) -> None:
        """The runtime of the newest Job reports, through the runtime's own report()."""
        run = TaskRun.from_api(copy.deepcopy(self.taskruns[key]))
        attempt = max(attempt_of(job) or 0 for job in self.jobs.values())
        name = job_name(run.name, attempt)
        environment = RuntimeEnvironment(
            taskrun_name=key[1],
            namespace=key[0],
            attempt=attempt,
            job_name=name,
            pod_name=f"{name}-xk2p9",
        )
        api = RuntimeApi(self)
        backend = TaskRunStatusBackend(api, key[0], key[1])
        record = result or ResultRecord(is_err=code is not ExitCode.SUCCEEDED)
        outcome = await stored_outcome(None, StoreSettings(), run, attempt, code, record)
        await report(api, run, outcome, backend, environment, NOW)

    # ClusterApi
    async def create_job(self, body: dict[str, Any]) -> None:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        if key in self.jobs:
            raise ConflictError("AlreadyExists")
        body = copy.deepcopy(body)
        body["metadata"]["resourceVersion"] = self._next_rv()
        self.jobs[key] = body
        self.writes.append(f"create job {key[1]}")

    async def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.reads.append(f"get job {name}")
        return copy.deepcopy(self.jobs.get((namespace, name)))

    async def delete_job(self, namespace: str, name: str) -> None:
        self.writes.append(f"delete job {name}")
        self.jobs.pop((namespace, name), None)

    async def get_taskrun(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.reads.append(f"get taskrun {name}")
        return copy.deepcopy(self.taskruns.get((namespace, name)))

    async def patch_taskrun_status(
        self, namespace: str, name: str, status: dict[str, Any], resource_version: str | None
    ) -> dict[str, Any]:
        return self._patch((namespace, name), status, resource_version, "operator status")

    async def delete_taskrun(self, namespace: str, name: str, uid: str | None) -> None:
        self.writes.append(f"delete taskrun {name}")
        self.taskruns.pop((namespace, name), None)

    async def create_service_account(self, body: dict[str, Any]) -> None:
        self._create_once(body)

    async def create_role_binding(self, body: dict[str, Any]) -> None:
        self._create_once(body)

    async def create_event(self, body: dict[str, Any]) -> None:
        self.writes.append(f"event {body['reason']}")

    def _create_once(self, body: dict[str, Any]) -> None:
        key = (body["kind"], body["metadata"]["namespace"], body["metadata"]["name"])
        if key in self.others:
            raise ConflictError("AlreadyExists")
        self.others[key] = body
        self.writes.append(f"create {body['kind']} {body['metadata']['name']}")

    def _patch(self, key: tuple[str, str], status: dict[str, Any], rv: str | None, what: str) -> dict[str, Any]:
        body = self.taskruns.get(key)
        if body is None:
            raise NotFoundError(key[1])
        if rv is not None and rv != body["metadata"]["resourceVersion"]:
            raise ConflictError("the object has been modified")
        merged = dict(body.get("status") or {})
        for k, v in status.items():
            if v is None:
                merged.pop(k, None)
            else:
                merged[k] = v
        body["status"] = merged
        body["metadata"]["resourceVersion"] = self._next_rv()
        self.writes.append(what)
        return copy.deepcopy(body)


class RuntimeApi:
    """The two TaskRunApi calls the runtime's report makes, on the same in-memory objects."""

    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.cluster.taskruns.get((namespace, name)))

    async def patch_status(
        self,
        namespace: str,
        name: str,
        status: dict[str, Any],
        *,
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        return self.cluster._patch((namespace, name), status, resource_version, "runtime status")


class Harness:
    def __init__(self, config: OperatorConfig | None = None) -> None:
        self.cluster = FakeCluster()
        self.events: list[Event] = []
        self.now = NOW
        self.reconciler = Reconciler(
            self.cluster,
            config or OperatorConfig(metrics_port=None),
            events=lambda body, event: self.events.append(event),
            clock=lambda: self.now,
        )

    async def sync(self, key: tuple[str, str], *pods: dict[str, Any]) -> None:
        """Deliver the cluster's current objects (and ``pods``) to the caches, as the watches would, then reconcile."""
        cache = self.reconciler.cache
        if key in self.cluster.taskruns:
            cache.put_taskrun(copy.deepcopy(self.cluster.taskruns[key]))
        for job in self.cluster.jobs.values():
            cache.put_job(copy.deepcopy(job))
        for pod in pods:
            cache.put_pod(pod)
        await self.reconciler.reconcile(key)

    def status(self, key: tuple[str, str]) -> TaskRun:
        return TaskRun.from_api(self.cluster.taskruns[key])


@pytest.fixture
async def h() -> Any:
    harness = Harness()
    yield harness
    await harness.reconciler.close()


def complete(job: dict[str, Any]) -> None:
    job["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
    job["metadata"]["resourceVersion"] = str(int(job["metadata"]["resourceVersion"]) + 5000)


def failed(job: dict[str, Any]) -> None:
    job["status"] = {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}
    job["metadata"]["resourceVersion"] = str(int(job["metadata"]["resourceVersion"]) + 5000)


async def test_a_successful_task_costs_four_writes(h: Harness) -> None:
    key = h.cluster.create_taskrun(taskrun_body())
    await h.sync(key)
    await h.sync(key)  # the watch delivers the operator's own Job: nothing more to do yet
    assert h.cluster.writes == ["create taskrun", "create job add-1-a1"], "starting an attempt is one write"
    assert h.status(key).status.attempts == 0 and key in h.reconciler._wakeups
    await h.sync(key, pod_body(state={"running": {}}))
    assert h.cluster.writes == ["create taskrun", "create job add-1-a1", "operator status"]
    run = h.status(key)
    assert (run.status.phase, run.status.attempts, run.status.pod_name) == (Phase.RUNNING, 1, "add-1-a1-xk2p9")

    await h.cluster.runtime_finishes(key, ExitCode.SUCCEEDED, ResultRecord(return_value=3))
    complete(h.cluster.jobs[("jobs", "add-1-a1")])
    await h.sync(key)
    assert h.cluster.writes == ["create taskrun", "create job add-1-a1", "operator status", "runtime status"]
    assert h.status(key).status.is_succeeded()
    assert [e.reason for e in h.events] == ["Started", "Succeeded"], "finishing is told like starting"
    metrics = h.reconciler.metrics
    assert metrics.registry.get_sample_value("podiq_taskruns_finished_total", {"phase": "Succeeded"}) == 1
    assert metrics.registry.get_sample_value("podiq_attempts_started_total", {"kind": "first"}) == 1
    assert metrics.registry.get_sample_value("podiq_dispatch_latency_seconds_count") == 1
    assert metrics.registry.get_sample_value("podiq_taskruns_in_flight") == 0


async def test_a_fast_task_costs_three_writes(h: Harness) -> None:
    """The runtime reported before the operator saw the pod: its write recorded the attempt too."""
    key = h.cluster.create_taskrun(taskrun_body())
    await h.sync(key)
    await h.cluster.runtime_finishes(key, ExitCode.SUCCEEDED)
    await h.sync(key, pod_body(phase="Succeeded", state=terminated(0, "Completed")))
    assert h.cluster.writes == ["create taskrun", "create job add-1-a1", "runtime status"]
    run = h.status(key)
    assert run.status.is_succeeded() and (run.status.attempts, run.status.job_name) == (1, "add-1-a1")


async def test_job_seen_finished_before_the_result_is_rechecked_not_overwritten(h: Harness) -> None:
    key = h.cluster.create_taskrun(taskrun_body())
    await h.sync(key)
    # The Job's watch is ahead of the TaskRun's: the cache still has the TaskRun without status.
    await h.cluster.runtime_finishes(key, ExitCode.SUCCEEDED)
    complete(h.cluster.jobs[("jobs", "add-1-a1")])
    h.reconciler.cache.put_job(copy.deepcopy(h.cluster.jobs[("jobs", "add-1-a1")]))
    await h.reconciler.reconcile(key)
    assert h.status(key).status.is_succeeded()
    assert h.cluster.writes.count("operator status") == 0
    assert "get taskrun add-1" in h.cluster.reads


async def test_retry_after_a_task_error(h: Harness) -> None:
    key = h.cluster.create_taskrun(taskrun_body(retryOnError=True, maxRetries=1))
    await h.sync(key)
    await h.cluster.runtime_finishes(key, ExitCode.TASK_ERROR)
    await h.sync(key)
    assert ("jobs", "add-1-a2") in h.cluster.jobs
    await h.sync(key, pod_body("add-1-a2"))
    run = h.status(key)
    assert (run.status.attempts, run.status.phase, run.status.retries) == (2, Phase.RUNNING, 1)
    await h.cluster.runtime_finishes(key, ExitCode.TASK_ERROR)
    await h.sync(key)
    assert h.status(key).status.phase is Phase.FAILED
    assert ("jobs", "add-1-a3") not in h.cluster.jobs


async def test_killed_pod_gets_an_error_result_and_a_retry(h: Harness) -> None:
    key = h.cluster.create_taskrun(taskrun_body(retryOnError=True))
    await h.sync(key)
    job = h.cluster.jobs[("jobs", "add-1-a1")]
    failed(job)
    h.reconciler.cache.put_job(copy.deepcopy(job))
    h.reconciler.cache.put_pod(pod_body(phase="Failed", state=terminated(137, "OOMKilled")))
    await h.reconciler.reconcile(key)
    run = h.status(key)
    assert (run.status.attempts, run.status.reported_attempt, run.status.reason) == (1, 1, Reason.RETRYING)
    assert run.status.retries == 1 and ("jobs", "add-1-a2") in h.cluster.jobs
    assert any(e.warning and "OOMKilled" in e.message for e in h.events)


async def test_restart_after_job_create_adopts_the_job(h: Harness) -> None:
    key = h.cluster.create_taskrun(taskrun_body())
    await h.sync(key)
    # The operator stopped after creating the Job, before its pod showed up.
    restarted = Harness()
    restarted.cluster = h.cluster
    restarted.reconciler.api = h.cluster
    restarted.reconciler.cache.put_taskrun(copy.deepcopy(h.cluster.taskruns[key]))  # TaskRun listed before Jobs
    await restarted.reconciler.reconcile(key)
    assert [w for w in h.cluster.writes if w.startswith("create job")] == ["create job add-1-a1"]
    await restarted.sync(key, pod_body())
    assert restarted.status(key).status.attempts == 1
    await restarted.reconciler.close()


async def test_runtime_write_during_decision_is_not_overwritten(h: Harness) -> None:
    key = h.cluster.create_taskrun(taskrun_body())
    await h.sync(key)
    stale = copy.deepcopy(h.cluster.taskruns[key])  # an older view the operator holds
    await h.cluster.runtime_finishes(key, ExitCode.SUCCEEDED)
    h.reconciler.cache.taskruns[key] = stale
    h.reconciler.cache.put_pod(pod_body())  # the pod appears: the operator wants to record the attempt
    await h.reconciler.reconcile(key)
    assert h.status(key).status.is_succeeded()
    assert "operator status" not in h.cluster.writes


async def test_cancel_deletes_the_job(h: Harness) -> None:
    key = h.cluster.create_taskrun(taskrun_body())
    await h.sync(key)
    h.cluster.taskruns[key]["spec"]["cancelled"] = True
    h.cluster.taskruns[key]["metadata"]["resourceVersion"] = "5000"
    await h.sync(key)
    assert "delete job add-1-a1" in h.cluster.writes
    assert h.status(key).status.phase is Phase.CANCELLED


async def test_ttl_deletes_the_finished_run(h: Harness) -> None:
    key = h.cluster.create_taskrun(taskrun_body(ttlSecondsAfterFinished=60))
    await h.sync(key)
    await h.cluster.runtime_finishes(key, ExitCode.SUCCEEDED)
    await h.sync(key)
    assert key in h.cluster.taskruns and key in h.reconciler._wakeups
    finished = h.status(key).status.completion_time  # the runtime's own clock
    assert finished is not None
    h.now = finished + timedelta(seconds=59)
    await h.sync(key)
    assert key in h.cluster.taskruns
    h.now = finished + timedelta(seconds=61)
    await h.sync(key)
    assert key not in h.cluster.taskruns


async def test_not_before_waits_then_starts(h: Harness) -> None:
    key = h.cluster.create_taskrun(taskrun_body(notBefore=(NOW + timedelta(seconds=30)).isoformat()))
    await h.sync(key)
    assert h.status(key).status.reason is Reason.WAITING and not h.cluster.jobs
    await h.sync(key)
    assert h.cluster.writes.count("operator status") == 1, "waiting is written once"
    h.now = NOW + timedelta(seconds=31)
    await h.sync(key)
    assert ("jobs", "add-1-a1") in h.cluster.jobs


async def test_job_of_a_previous_incarnation_is_waited_for(h: Harness) -> None:
    from podiq_operator.jobs import build_job

    old = build_job(TaskRun.from_api(taskrun_body()), 1, h.reconciler.config.jobs)
    old["metadata"]["ownerReferences"][0]["uid"] = "uid-of-a-deleted-run"
    await h.cluster.create_job(old)
    key = h.cluster.create_taskrun(taskrun_body())
    h.reconciler.cache.put_taskrun(copy.deepcopy(h.cluster.taskruns[key]))
    await h.reconciler.reconcile(key)
    assert h.status(key).status.attempts == 0 and key in h.reconciler._wakeups


async def test_deleted_taskrun_is_forgotten(h: Harness) -> None:
    key = h.cluster.create_taskrun(taskrun_body())
    await h.sync(key)
    h.reconciler.forget(key)
    assert key not in h.reconciler.cache.taskruns and not h.reconciler.cache.jobs.get(key)


async def test_api_errors_are_retried_with_backoff(h: Harness) -> None:
    async def broken(body: dict[str, Any]) -> None:
        raise RuntimeError("apiserver down")

    h.cluster.create_job = broken  # type: ignore[method-assign]  # patched for this test
    key = h.cluster.create_taskrun(taskrun_body())
    await h.sync(key)
    assert key in h.reconciler._wakeups
    assert h.reconciler.metrics.registry.get_sample_value("podiq_reconcile_errors_total") == 1


async def test_events_can_be_switched_off() -> None:
    h = Harness(OperatorConfig(metrics_port=None, events=False))
    key = h.cluster.create_taskrun(taskrun_body())
    await h.sync(key)
    assert h.events == []
    await h.reconciler.close()


async def test_concurrent_reconciliations_are_bounded_by_max_workers() -> None:
    import asyncio
    import dataclasses

    from podiq_operator.config import ApiConfig

    config = OperatorConfig(metrics_port=None, api=dataclasses.replace(ApiConfig(), max_workers=3))
    harness = Harness(config)
    cluster = harness.cluster
    running = peak = 0
    create = cluster.create_job

    async def slow_create(body: dict[str, Any]) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        await create(body)

    cluster.create_job = slow_create  # type: ignore[method-assign]  # patched for this test
    keys = [cluster.create_taskrun(taskrun_body(name=f"run-{i}")) for i in range(12)]
    await asyncio.gather(*(harness.sync(key) for key in keys))
    await harness.reconciler.close()
    assert len(cluster.jobs) == 12
    assert peak == 3


async def test_a_job_without_a_pod_is_recorded_after_a_while(h: Harness) -> None:
    import asyncio

    from podiq_operator import decisions

    key = h.cluster.create_taskrun(taskrun_body())
    h.reconciler.cache.put_taskrun(copy.deepcopy(h.cluster.taskruns[key]))
    created = h.cluster.create_job

    async def create_seen_by_the_watch_first(body: dict[str, Any]) -> None:
        await created(body)
        job = copy.deepcopy(h.cluster.jobs[("jobs", "add-1-a1")])
        job["metadata"]["creationTimestamp"] = NOW.isoformat()
        job["status"] = {}
        h.reconciler.cache.put_job(job)

    h.cluster.create_job = create_seen_by_the_watch_first  # type: ignore[method-assign]  # patched for this test
    await h.reconciler.reconcile(key)  # creates the Job; no pod yet: wakes up later
    assert "operator status" not in h.cluster.writes
    assert h.reconciler.cache.job(key, 1)["metadata"]["creationTimestamp"] == NOW.isoformat()  # type: ignore[index]  # present in this test
    h.now = NOW + timedelta(seconds=decisions.RECORD_PODLESS_AFTER + 1)
    h.reconciler.wake(key, 0)
    await asyncio.sleep(0.05)
    run = h.status(key)
    assert (run.status.attempts, run.status.reason) == (1, Reason.RUNNING)
    await h.sync(key, pod_body())
    assert h.cluster.writes.count("operator status") == 1, "one record, whenever the pod comes"


async def test_triggers_while_one_waits_its_turn_join_it(h: Harness) -> None:
    """Watch streams trigger without waiting; a burst of events for one run costs one reconciliation."""
    import asyncio

    key = h.cluster.create_taskrun(taskrun_body())
    h.reconciler.cache.put_taskrun(copy.deepcopy(h.cluster.taskruns[key]))
    calls = 0
    reconcile = h.reconciler._reconcile

    async def counted(k: tuple[str, str]) -> None:
        nonlocal calls
        calls += 1
        await reconcile(k)

    h.reconciler._reconcile = counted  # type: ignore[method-assign]  # patched for this test
    for _ in range(5):
        h.reconciler.trigger(key)
    await asyncio.sleep(0.05)
    assert calls == 1 and len(h.cluster.jobs) == 1
    h.reconciler.trigger(key)  # after it ran, a new trigger reconciles again
    await asyncio.sleep(0.05)
    assert calls == 2 and len(h.cluster.jobs) == 1


async def test_the_first_run_in_a_namespace_provisions_its_service_accounts_once() -> None:
    import dataclasses

    from podiq_operator.config import NamespaceConfig

    setup = NamespaceConfig(
        provision=True, runtime_cluster_role="podiq-runtime", scheduler_service_account="podiq-scheduler"
    )
    h = Harness(dataclasses.replace(OperatorConfig(metrics_port=None), namespace_setup=setup))
    h.cluster.others[("ServiceAccount", "jobs", "podiq-scheduler")] = {}  # made by hand: left as it is
    first, second = h.cluster.create_taskrun(taskrun_body("add-1")), h.cluster.create_taskrun(taskrun_body("add-2"))
    await h.sync(first)
    await h.sync(second)
    assert h.cluster.writes == [
        "create taskrun",
        "create taskrun",
        "create ServiceAccount podiq-runtime",
        "create RoleBinding podiq-runtime",
        "create RoleBinding podiq-scheduler",
        "create job add-1-a1",
        "create job add-2-a1",
    ]
    binding = h.cluster.others[("RoleBinding", "jobs", "podiq-runtime")]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "podiq-runtime",
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "podiq-runtime", "namespace": "jobs"}]
    await h.reconciler.close()


async def test_no_provisioning_unless_configured(h: Harness) -> None:
    await h.sync(h.cluster.create_taskrun(taskrun_body()))
    assert h.cluster.writes == ["create taskrun", "create job add-1-a1"]


async def test_a_run_that_cannot_start_fails_at_its_deadline_and_its_job_goes(h: Harness) -> None:
    key = h.cluster.create_taskrun(taskrun_body(pendingDeadlineSeconds=60))
    await h.sync(key)
    job = h.cluster.jobs[("jobs", "add-1-a1")]
    job["metadata"]["creationTimestamp"] = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    message = 'Error creating: pods "add-1-a1-" is forbidden: error looking up service account jobs/podiq-runtime: serviceaccount "podiq-runtime" not found'
    h.reconciler.cache.put_job(copy.deepcopy(job))
    h.reconciler.cache.put_failed_create("jobs", "add-1-a1", message)
    await h.sync(key)
    run = h.status(key)
    assert (run.status.phase, run.status.reason) == (Phase.PENDING, Reason.SERVICE_ACCOUNT_MISSING)
    assert 59 <= h.reconciler._wakeups[key].when() - asyncio.get_running_loop().time() <= 60
    h.now = NOW + timedelta(seconds=61)
    await h.sync(key)
    run = h.status(key)
    assert (run.status.phase, run.status.reason) == (Phase.FAILED, Reason.SERVICE_ACCOUNT_MISSING)
    assert "did not start within 60 s" in run.status.message and "not found" in run.status.message
    assert "delete job add-1-a1" in h.cluster.writes
    assert [e.reason for e in h.events] == ["Started", "ServiceAccountMissing", "ServiceAccountMissing"]
    assert h.events[-1].warning


@pytest.mark.parametrize("spec", [{}, {"pool": "fast"}], ids=["job", "pool"])
async def test_a_run_in_an_excluded_namespace_is_refused_with_an_event(spec: dict[str, Any]) -> None:
    import dataclasses

    from podiq_operator.config import NamespaceConfig

    h = Harness(
        dataclasses.replace(
            OperatorConfig(metrics_port=None), namespace_setup=NamespaceConfig(excluded=frozenset({"jobs"}))
        )
    )
    key = h.cluster.create_taskrun(taskrun_body(**spec))
    await h.sync(key)
    run = h.status(key)
    assert (run.status.phase, run.status.reason) == (Phase.FAILED, Reason.NAMESPACE_EXCLUDED)
    assert h.cluster.writes == ["create taskrun", "operator status"] and not h.cluster.jobs
    assert [e.reason for e in h.events] == ["NamespaceExcluded"]
    await h.reconciler.close()


async def test_a_job_the_api_server_finds_invalid_ends_the_run_saying_why(h: Harness) -> None:
    import json as _json

    from podiq.kubernetes.api import api_error

    async def invalid(body: dict[str, Any]) -> None:
        raise api_error(
            422,
            "Unprocessable Entity",
            _json.dumps(
                {"message": 'Job.batch "add-1-a1" is invalid: spec.template.spec.containers[0].image: Required value'}
            ),
        )

    h.cluster.create_job = invalid  # type: ignore[method-assign]  # patched for this test
    key = h.cluster.create_taskrun(taskrun_body())
    await h.sync(key)
    run = h.status(key)
    assert (run.status.phase, run.status.reason) == (Phase.FAILED, Reason.INVALID_POD_SPEC)
    assert "The Job for attempt 1 was refused" in run.status.message and "image: Required value" in run.status.message
    assert [e.reason for e in h.events] == ["InvalidPodSpec"] and key not in h.reconciler._wakeups
