"""Building the Job for one attempt of a TaskRun: a plain function, no API calls.

The Job's name derives only from the TaskRun's name and the attempt number, so creating
it is idempotent: a restarted operator, or two reconciliations racing, get 409 Conflict
for an attempt that already exists instead of starting it twice.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

from podiq.kubernetes.podsecurity import container_security_context, pod_security_context
from podiq.kubernetes.resources import (
    API_VERSION,
    KIND,
    KUEUE_QUEUE_LABEL,
    LABEL_ATTEMPT,
    LABEL_TASK,
    LABEL_TASKRUN,
    TaskRun,
    label_value,
)
from podiq.kubernetes.storage import ENV_REDIS_URL
from podiq.runtime.environment import (
    ENV_ATTEMPT,
    ENV_JOB_NAME,
    ENV_POD_NAME,
    ENV_TASKRUN_NAME,
    ENV_TASKRUN_NAMESPACE,
)
from podiq.runtime.environment import (
    RESERVED as RESERVED_ENV,
)
from podiq_operator.config import JobConfig

__all__ = ["CONTAINER_NAME", "RUNTIME_COMMAND", "attempt_of", "build_job", "job_name"]

#: Job names become the value of the ``batch.kubernetes.io/job-name`` label on pods: ≤63 chars.
MAX_JOB_NAME = 63
CONTAINER_NAME = "task"
RUNTIME_COMMAND = ["python", "-m", "podiq.runtime"]


def job_name(taskrun_name: str, attempt: int) -> str:
    """``<taskrun>-a<attempt>``; long names are cut and keep a hash of the full name, so they stay unique."""
    suffix = f"-a{attempt}"
    name = taskrun_name + suffix
    if len(name) <= MAX_JOB_NAME:
        return name
    digest = hashlib.sha256(taskrun_name.encode()).hexdigest()[:8]
    head = taskrun_name[: MAX_JOB_NAME - len(suffix) - len(digest) - 1].rstrip("-.")
    return f"{head}-{digest}{suffix}"


def attempt_of(job: dict[str, Any]) -> int | None:
    """The attempt number a Job runs, from its label."""
    value = (job.get("metadata", {}).get("labels") or {}).get(LABEL_ATTEMPT)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def labels_for(run: TaskRun, attempt: int) -> dict[str, str]:
    return {
        LABEL_TASKRUN: label_value(run.name),
        LABEL_TASK: label_value(run.spec.task_name),
        LABEL_ATTEMPT: str(attempt),
        "app.kubernetes.io/managed-by": "podiq",
        "app.kubernetes.io/component": "task",
    }


def build_job(run: TaskRun, attempt: int, config: JobConfig) -> dict[str, Any]:
    """The batch/v1 Job running ``attempt`` of ``run``, owned by the TaskRun."""
    spec = run.spec
    labels = labels_for(run, attempt)
    job_labels = dict(labels)
    if spec.queue_name:
        job_labels[KUEUE_QUEUE_LABEL] = spec.queue_name

    env: list[dict[str, Any]] = [
        {"name": ENV_TASKRUN_NAME, "value": run.name},
        {"name": ENV_TASKRUN_NAMESPACE, "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": ENV_ATTEMPT, "value": str(attempt)},
        {"name": ENV_JOB_NAME, "value": job_name(run.name, attempt)},
        {"name": ENV_POD_NAME, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    env += [{"name": e.name, "value": e.value} for e in spec.env or [] if e.name not in RESERVED_ENV]
    if config.store_secret:
        # The namespace's own Redis user, from the operator's Secret; optional, so that a pod
        # starts before it exists and fails clearly only if it needs Redis.
        secret = {"name": config.store_secret, "key": "url", "optional": True}
        env.append({"name": ENV_REDIS_URL, "valueFrom": {"secretKeyRef": secret}})
        env += [{"name": name, "value": value} for name, value in config.store_env]

    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": spec.image or config.runtime_image,
        "command": list(RUNTIME_COMMAND),
        "env": env,
        "securityContext": container_security_context(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        # The runtime's last words (a crash before it could report) become the failure message.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if config.image_pull_policy:
        container["imagePullPolicy"] = config.image_pull_policy
    if spec.resources is not None:
        container["resources"] = spec.resources.model_dump(mode="json", exclude_none=True)

    tmp: dict[str, Any] = {"sizeLimit": config.tmp_size_limit} if config.tmp_size_limit else {}
    job_spec: dict[str, Any] = {
        # podiq counts attempts itself: each attempt is its own Job, so a failure is seen once.
        "backoffLimit": 0,
        "completions": 1,
        "parallelism": 1,
        "template": {
            "metadata": {"labels": labels},
            "spec": {
                "restartPolicy": "Never",
                "serviceAccountName": spec.service_account_name or config.runtime_service_account,
                # Saves the env vars of every Service in the namespace and their lookups at start.
                "enableServiceLinks": False,
                "securityContext": pod_security_context(),
                "containers": [container],
                "volumes": [{"name": "tmp", "emptyDir": tmp}],
            },
        },
    }
    if spec.timeout_seconds is not None:
        job_spec["activeDeadlineSeconds"] = math.ceil(spec.timeout_seconds) + config.deadline_grace_seconds

    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(run.name, attempt),
            "namespace": run.namespace,
            "labels": job_labels,
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": KIND,
                    "name": run.name,
                    "uid": run.metadata.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": job_spec,
    }
