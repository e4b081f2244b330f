"""Builders of TaskRun, Job and Pod bodies as the API server returns them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from podiq.kubernetes.resources import TaskRun

NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def taskrun_body(name: str = "add-1", *, status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "podiq.io/v1alpha1",
        "kind": "TaskRun",
        "metadata": {
            "name": name,
            "namespace": "jobs",
            "uid": f"uid-{name}",
            "generation": 1,
            "resourceVersion": "100",
            "creationTimestamp": "2026-03-04T05:06:06Z",
        },
        "spec": {"taskName": "app.tasks:add", "args": [1, 2], **spec},
        "status": status or {},
    }


def taskrun(name: str = "add-1", **spec: Any) -> TaskRun:
    return TaskRun.from_api(taskrun_body(name, **spec))


def job_body(
    taskrun: str = "add-1",
    attempt: int = 1,
    *,
    conditions: list[dict[str, Any]] | None = None,
    rv: str = "200",
    owner_uid: str | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": f"{taskrun}-a{attempt}",
            "namespace": "jobs",
            "resourceVersion": rv,
            "labels": {"podiq.io/taskrun": taskrun, "podiq.io/attempt": str(attempt)},
            "ownerReferences": [
                {
                    "apiVersion": "podiq.io/v1alpha1",
                    "kind": "TaskRun",
                    "name": taskrun,
                    "uid": owner_uid or f"uid-{taskrun}",
                    "controller": True,
                }
            ],
        },
        "spec": {},
        "status": {"conditions": conditions or []},
    }


def pod_body(
    job: str = "add-1-a1",
    *,
    phase: str = "Running",
    state: dict[str, Any] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    reason: str | None = None,
    message: str | None = None,
    rv: str = "300",
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase, "conditions": conditions or []}
    if state is not None:
        status["containerStatuses"] = [{"name": "task", "state": state}]
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{job}-xk2p9",
            "namespace": "jobs",
            "resourceVersion": rv,
            "labels": {"batch.kubernetes.io/job-name": job, "podiq.io/taskrun": job.rsplit("-a", 1)[0]},
        },
        "status": status,
    }


def terminated(code: int, reason: str = "Error", message: str = "") -> dict[str, Any]:
    return {"terminated": {"exitCode": code, "reason": reason, "message": message}}


@pytest.fixture
def now() -> datetime:
    return NOW
