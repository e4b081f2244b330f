"""TaskPools, the pure part: what a pool run needs (nothing from the Job path), the workers'
Deployment, how many of them, and the backstop's verdict on a run nobody took.

:mod:`podiq_operator.pools` is the loop that reads the cluster and Redis and applies these.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from podiq.kubernetes.dispatch import CLAIMED, QUEUED
from podiq.kubernetes.podsecurity import container_security_context, pod_security_context
from podiq.kubernetes.resources import GROUP, LABEL_POOL, SUCCEEDED, VERSION, Reason, TaskRun
from podiq.kubernetes.storage import ENV_REDIS_URL
from podiq.kubernetes.taskpools import POOL_NAME_MAX, TaskPool
from podiq.runtime.environment import (
    ENV_CONCURRENCY,
    ENV_IMPORTS,
    ENV_NAMESPACE,
    ENV_POD_NAME,
    ENV_POOL,
    ENV_VISIBILITY_TIMEOUT,
    RESERVED,
)
from podiq_operator.config import JobConfig
from podiq_operator.decisions import Action, Cancel, Event, Idle, WriteStatus

__all__ = [
    "ENQUEUE_GRACE",
    "Backstop",
    "backstop",
    "build_deployment",
    "decide_pool_run",
    "deletion_costs",
    "may_need_backstop",
    "pool_conditions",
    "pool_problem",
    "deployment_name",
    "desired_replicas",
]


WORKER_COMMAND = ["python", "-m", "podiq.runtime.worker"]
#: Seconds between the keeper's rounds.
KEEP_INTERVAL = 2.0
#: Seconds a pool run may wait for its client's enqueue before the operator enqueues it.
ENQUEUE_GRACE = 5.0
#: Seconds the need for workers must stay lower before the pool shrinks (no flapping between bursts).
SCALE_DOWN_AFTER = 10.0


def deployment_name(pool: str) -> str:
    return f"podiq-pool-{pool}"


def decide_pool_run(run: TaskRun, now: datetime) -> Action:
    """The reconciler's whole say over an unfinished pool run: carry out a cancellation.

    The :class:`PoolKeeper` then signals the workers, and the one running it stops the task;
    everything else is the workers' and the keeper's.
    """
    if not run.cancel_requested():
        wait = run.time_until_start(now)
        if wait is None or run.status.attempts:
            return Idle()
        # Held back until spec.notBefore, as a Job would be; the keeper enqueues it once it is due.
        assert run.spec.not_before is not None
        waiting = run.status.model_copy()  # shallow: the transitions only assign fields
        waiting.mark_waiting(run.spec.not_before, now)
        if waiting == run.status:
            return Idle()
        waiting.observed_generation = run.metadata.generation
        return WriteStatus(waiting, Event("Waiting", waiting.message))
    new = run.status.model_copy()
    new.observed_generation = run.metadata.generation
    new.mark_cancelled(now, "Cancelled by spec.cancelled.", labels=run.message_labels())
    return Cancel(None, new, Event("Cancelled", f"Cancelled; a worker of pool {run.spec.pool} running it stops it."))


def desired_replicas(pool: TaskPool, backlog: int, busy: int) -> int:
    """Enough workers for what waits and what runs, at ``concurrency`` runs each, within bounds."""
    spec = pool.spec
    wanted = math.ceil((backlog + busy) / spec.concurrency)
    return max(spec.min_replicas, min(spec.max_replicas, wanted))


def build_deployment(pool: TaskPool, replicas: int, config: JobConfig) -> dict[str, Any]:
    """The apps/v1 Deployment of the pool's workers, owned by the TaskPool."""
    spec = pool.spec
    labels = {LABEL_POOL: pool.name, "app.kubernetes.io/managed-by": "podiq", "app.kubernetes.io/component": "worker"}
    env: list[dict[str, Any]] = [
        {"name": ENV_POOL, "value": pool.name},
        {"name": ENV_NAMESPACE, "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": ENV_POD_NAME, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": ENV_CONCURRENCY, "value": str(spec.concurrency)},
        {"name": ENV_VISIBILITY_TIMEOUT, "value": str(spec.visibility_timeout_seconds)},
        {"name": ENV_IMPORTS, "value": ",".join(spec.imports)},
    ]
    reserved = RESERVED | {e["name"] for e in env}
    env += [{"name": e.name, "value": e.value} for e in spec.env or [] if e.name not in reserved]
    if config.store_secret:
        env.append({"name": ENV_REDIS_URL, "valueFrom": {"secretKeyRef": {"name": config.store_secret, "key": "url"}}})
        env += [{"name": name, "value": value} for name, value in config.store_env]
    container: dict[str, Any] = {
        "name": "worker",
        "image": spec.image or config.runtime_image,
        "command": list(WORKER_COMMAND),
        "env": env,
        "securityContext": container_security_context(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if config.image_pull_policy:
        container["imagePullPolicy"] = config.image_pull_policy
    if spec.resources is not None:
        container["resources"] = spec.resources.model_dump(mode="json", exclude_none=True)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": deployment_name(pool.name),
            "namespace": pool.namespace,
            "labels": labels,
            "ownerReferences": [
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "TaskPool",
                    "name": pool.name,
                    "uid": pool.metadata.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {LABEL_POOL: pool.name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": spec.service_account_name or config.runtime_service_account,
                    "enableServiceLinks": False,
                    "securityContext": pod_security_context(),
                    # A stopping worker lets its runs finish for up to 20 s (podiq.runtime.worker.STOP_GRACE).
                    "terminationGracePeriodSeconds": 30,
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }


@dataclasses.dataclass(frozen=True)
class Backstop:
    """What the keeper does for one unfinished pool run: enqueue an attempt, or fail the run."""

    enqueue: int | None = None
    fail: str | None = None
    message: str = ""


def next_attempt(run: TaskRun) -> int | None:
    """The attempt that must be in the stream: the first, or the next after a retry or requeue."""
    status = run.status
    if status.attempts == 0 or status.wants_next_attempt():
        return status.attempts + 1
    return None  # an attempt is running (or reported and is being followed up by its worker)


def backstop(run: TaskRun, pool: TaskPool | None, marker: str | None, now: datetime) -> Backstop | None:
    """The keeper's verdict on an unfinished, uncancelled pool run whose next attempt is ``next_attempt``."""
    attempt = next_attempt(run)
    if attempt is None or run.time_until_start(now) is not None:
        return None
    waited = _waited(run, now)
    if pool is None:
        if waited < ENQUEUE_GRACE:
            return None
        return Backstop(
            fail="PoolNotFound",
            message=(
                f"TaskPool {run.spec.pool!r} does not exist in namespace {run.namespace!r}. Create it "
                "(kind: TaskPool) or send the task without a pool to run it as a Job."
            ),
        )
    if marker is None:
        return Backstop(enqueue=attempt) if waited >= ENQUEUE_GRACE else None
    if marker.startswith(CLAIMED):
        return None
    queued_at = _queued_at(marker)
    deadline = pool.spec.claim_deadline_seconds
    if queued_at is not None and now.timestamp() - queued_at > deadline:
        return Backstop(
            fail="NotClaimed",
            message=(
                f"No worker of TaskPool {pool.name!r} claimed attempt {attempt} within {deadline} s. Check the pool's "
                f"Deployment ({deployment_name(pool.name)}): its pods, image and maxReplicas."
            ),
        )
    return None


def may_need_backstop(body: Mapping[str, Any], now: datetime) -> bool:
    """Whether the keeper must look at this TaskRun body this round, told before parsing it.

    The cache holds every run the operator saw, thousands during a batch; the keeper needs only
    pool runs that are cancelled (their workers are told to stop them) or unfinished and
    unchanged for :data:`ENQUEUE_GRACE` (as :func:`_waited` counts it). When the body does not
    tell (a timestamp that does not parse), the run is looked at: its model then decides.
    """
    spec = body.get("spec") or {}
    if not spec.get("pool"):
        return False
    if spec.get("cancelled"):
        return True
    status = body.get("status") or {}
    if status.get("completionTime"):
        return False
    condition = next((c for c in status.get("conditions") or () if c.get("type") == SUCCEEDED), None)
    stamp = (condition or {}).get("lastTransitionTime") or (body.get("metadata") or {}).get("creationTimestamp")
    if not isinstance(stamp, str):
        return True
    try:
        return (now - datetime.fromisoformat(stamp)).total_seconds() >= ENQUEUE_GRACE
    except (TypeError, ValueError):  # not a timestamp, or one without a zone
        return True


def _waited(run: TaskRun, now: datetime) -> float:
    """Seconds since the run last changed its condition (or was created)."""
    since = (
        (run.status.condition.last_transition_time if run.status.condition else None)
        or run.metadata.creation_timestamp
        or now
    )
    return (now - since).total_seconds()


def _queued_at(marker: str) -> float | None:
    head, _, stamp = marker.partition(":")
    try:
        return float(stamp) if head == QUEUED else None
    except ValueError:
        return None


#: The annotation a ReplicaSet orders its pods by when it shrinks: the lowest cost goes first.
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
READY = "Ready"
_POOL_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def pool_problem(
    body: Mapping[str, Any], excluded_namespaces: frozenset[str] = frozenset()
) -> tuple[TaskPool | None, str, str]:
    """The pool, or why the operator cannot keep it: ``(None, reason, message)`` naming the fix.

    The CRD's schema refuses most bad input at the API; what it cannot say (how fields relate,
    how long a name may be to name a Deployment and prefix its pods) is found here, and so is a
    pool in a namespace podiq must not run in, which gets no workers there.
    """
    meta = body.get("metadata") or {}
    name, namespace = str(meta.get("name") or ""), str(meta.get("namespace") or "")
    if namespace in excluded_namespaces:
        return (
            None,
            Reason.NAMESPACE_EXCLUDED.value,
            f"podiq keeps no workers in namespace {namespace!r}: it is among the operator's excluded namespaces "
            "(the chart's excludedNamespaces, PODIQ_EXCLUDED_NAMESPACES). Create the pool in another namespace.",
        )
    if len(name) > POOL_NAME_MAX or not _POOL_NAME.match(name):
        return (
            None,
            "InvalidName",
            f"The name {name!r} is {len(name)} characters; a TaskPool's name is at most {POOL_NAME_MAX} lowercase "
            f"letters, digits and '-', since it names the Deployment {deployment_name('<name>')} and prefixes its "
            "pods' names. Create the pool again under a shorter name.",
        )
    try:
        pool = TaskPool.from_api(body)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc']) or 'spec'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        return (
            None,
            "InvalidSpec",
            f"The TaskPool cannot be kept: {problems}. Fix the spec (kubectl edit taskpool {name}).",
        )
    return pool, READY, f"Its workers run as Deployment {deployment_name(name)}."


def pool_conditions(
    current: list[Mapping[str, Any]], ready: bool, reason: str, message: str, now: datetime
) -> list[dict[str, Any]]:
    """The status' conditions with ``Ready`` set; its transition time moves only when its status does."""
    status = "True" if ready else "False"
    old = next((c for c in current if c.get("type") == READY), None)
    since = old.get("lastTransitionTime") if old is not None and old.get("status") == status else None
    stamp = since or now.strftime("%Y-%m-%dT%H:%M:%SZ")
    others = [dict(c) for c in current if c.get("type") != READY]
    return [
        *others,
        {"type": READY, "status": status, "reason": reason, "message": message, "lastTransitionTime": stamp},
    ]


def deletion_costs(pods: list[str], busy: Mapping[str, int]) -> dict[str, int]:
    """Each worker pod's deletion cost before the pool shrinks: its runs in hand, so that the
    ReplicaSet stops idle workers first and a busy one last."""
    return {pod: int(busy.get(pod, 0)) for pod in pods}
