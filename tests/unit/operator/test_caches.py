"""Joining Jobs, Pods and FailedCreate events to their TaskRun."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from podiq_operator.caches import Cache, newer

from .conftest import job_body, pod_body, taskrun_body


def test_newer_compares_resource_versions_as_integers() -> None:
    old, new = {"metadata": {"resourceVersion": "99"}}, {"metadata": {"resourceVersion": "100"}}
    assert newer(new, old) and not newer(old, new) and newer(old, None)
    assert newer({"metadata": {"resourceVersion": "x"}}, new), "opaque versions: the watch wins"


def test_late_event_does_not_undo_a_newer_write() -> None:
    cache = Cache()
    body = taskrun_body()
    body["metadata"]["resourceVersion"] = "200"
    cache.put_taskrun(body)
    old = taskrun_body()
    old["metadata"]["resourceVersion"] = "150"
    cache.put_taskrun(old)
    assert cache.taskruns[("jobs", "add-1")]["metadata"]["resourceVersion"] == "200"


def test_jobs_join_their_taskrun_by_owner() -> None:
    cache = Cache()
    assert cache.put_job(job_body(attempt=1)) == ("jobs", "add-1")
    assert cache.put_job(job_body(attempt=2)) == ("jobs", "add-1")
    assert cache.latest_attempt(("jobs", "add-1")) == 2
    assert cache.job(("jobs", "add-1"), 1)["metadata"]["name"] == "add-1-a1"  # type: ignore[index]  # present in this test
    stray = job_body()
    stray["metadata"]["ownerReferences"] = []
    assert cache.put_job(stray) is None


def test_a_job_event_that_tells_nothing_new_needs_no_reconciliation() -> None:
    cache = Cache()
    created = job_body(attempt=1)
    assert cache.put_job(created) == ("jobs", "add-1")
    echoed = {**created, "metadata": {**created["metadata"], "resourceVersion": "999", "managedFields": [{}]}}
    assert cache.put_job(echoed) is None, "the watch echoing the operator's own create"
    assert cache.job(("jobs", "add-1"), 1)["metadata"]["resourceVersion"] == "999"  # type: ignore[index]  # present in this test
    assert cache.put_job({**echoed, "status": {"active": 1}}) == ("jobs", "add-1")


def test_pods_and_failed_creates_join_through_their_job() -> None:
    cache = Cache()
    cache.put_job(job_body())
    assert cache.put_pod(pod_body()) == ("jobs", "add-1")
    assert cache.pod(("jobs", "add-1"), 1)["metadata"]["name"] == "add-1-a1-xk2p9"  # type: ignore[index]  # present in this test
    assert cache.put_failed_create("jobs", "add-1-a1", "exceeded quota") == ("jobs", "add-1")
    assert cache.failed_create(("jobs", "add-1"), 1) == "exceeded quota"
    assert cache.put_pod({"metadata": {"name": "x", "namespace": "jobs", "labels": {}}}) is None


def test_a_deleted_pod_keeps_its_last_state() -> None:
    cache = Cache()
    cache.put_job(job_body())
    cache.put_pod(pod_body(phase="Failed"))
    cache.put_pod(pod_body(phase="Failed"), deleted=True)
    assert cache.pod(("jobs", "add-1"), 1)["status"]["phase"] == "Failed"  # type: ignore[index]  # present in this test


def test_forgetting() -> None:
    cache = Cache()
    cache.put_taskrun(taskrun_body())
    cache.put_job(job_body())
    cache.put_pod(pod_body())
    assert cache.forget_job(job_body()) == ("jobs", "add-1")
    assert cache.latest_attempt(("jobs", "add-1")) == 0 and not cache.pods
    cache.put_job(job_body())
    cache.forget_taskrun(("jobs", "add-1"))
    assert not cache.taskruns and not cache.jobs and not cache.job_owners


def test_a_taskrun_is_parsed_once_per_body() -> None:
    cache, key = Cache(), ("jobs", "add-1")
    assert cache.taskrun(key) is None
    cache.put_taskrun(taskrun_body())
    first = cache.taskrun(key)
    assert first is not None and cache.taskrun(key) is first, "the same body: the same model"
    cache.put_taskrun({**taskrun_body(), "metadata": {**taskrun_body()["metadata"], "resourceVersion": "99"}})
    assert cache.taskrun(key) is first, "an older version left the body as it was"
    cache.put_taskrun(
        taskrun_body(status={"attempts": 1}) | {"metadata": {**taskrun_body()["metadata"], "resourceVersion": "101"}}
    )
    second = cache.taskrun(key)
    assert second is not first and second is not None and second.status.attempts == 1, "a new body: parsed again"
    cache.taskruns[key] = taskrun_body(status={"attempts": 2})  # written around put_taskrun, as a re-read is
    third = cache.taskrun(key)
    assert third is not None and third.status.attempts == 2
    cache.forget_taskrun(key)
    assert cache.taskrun(key) is None and not cache._parsed


def test_a_malformed_taskrun_raises_each_time_it_is_asked_for() -> None:
    cache, key = Cache(), ("jobs", "add-1")
    cache.put_taskrun(taskrun_body(status={"attempts": "many"}))
    for _ in range(2):
        with pytest.raises(ValidationError):
            cache.taskrun(key)
