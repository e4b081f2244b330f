"""TaskPools: a Deployment of warm workers per pool, scaled from its backlog, and the backstop of pool runs.

Pool runs get no Job (:func:`decide_pool_run` is the guard :func:`podiq_operator.decisions.decide`
calls); the client enqueues them and the workers report them. The operator only steps in
where nobody else will, once per :data:`KEEP_INTERVAL`:

* it keeps each TaskPool's Deployment (:func:`build_deployment`) at :func:`desired_replicas`,
  from the stream's backlog and busy entries, between minReplicas and maxReplicas (0 allowed);
* a cancelled pool run is signalled to the workers through Redis, which stop it;
* a pool run whose next attempt was never enqueued (the client crashed between create and
  XADD) is enqueued after :data:`ENQUEUE_GRACE`;
* a pool run nobody claimed within the pool's claimDeadlineSeconds, or whose pool does not
  exist, fails with a reason that says so.

The pure parts (the Deployment, the replica count, the backstop's verdict) are unit-tested
functions; :class:`PoolKeeper` is the thin loop that reads and writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException
from podiq.exceptions import StoreError
from podiq.kubernetes.api import MERGE_PATCH, ConflictError, TaskRunApi
from podiq.kubernetes.dispatch import CLAIMED, QUEUED, PoolQueue
from podiq.kubernetes.podsecurity import container_security_context, pod_security_context
from podiq.kubernetes.resources import GROUP, VERSION, InfrastructureError, Reason, TaskRun, error_result, status_patch
from podiq.kubernetes.storage import ENV_REDIS_URL
from podiq.kubernetes.taskpools import POOL_PLURAL, TaskPool
from podiq.runtime.environment import ENV_IMPORTS, ENV_POD_NAME, RESERVED
from podiq.runtime.worker import ENV_CONCURRENCY, ENV_NAMESPACE, ENV_POOL, ENV_VISIBILITY_TIMEOUT

from podiq_operator.config import JobConfig
from podiq_operator.decisions import Action, Cancel, Event, Idle
from podiq_operator.storage import NamespaceStorage

__all__ = [
    "ENQUEUE_GRACE",
    "Backstop",
    "PoolKeeper",
    "backstop",
    "build_deployment",
    "decide_pool_run",
    "deployment_name",
    "desired_replicas",
]

logger = logging.getLogger(__name__)

WORKER_COMMAND = ["python", "-m", "podiq.runtime.worker"]
LABEL_POOL = f"{GROUP}/pool"
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
    if not run.is_cancelled():
        return Idle()
    new = run.status.model_copy(deep=True)
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
            "ownerReferences": [{
                "apiVersion": f"{GROUP}/{VERSION}", "kind": "TaskPool", "name": pool.name,
                "uid": pool.metadata.uid, "controller": True, "blockOwnerDeletion": True,
            }],
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
    if attempt is None or run.not_started_before(now) is not None:
        return None
    waited = _waited(run, now)
    if pool is None:
        if waited < ENQUEUE_GRACE:
            return None
        return Backstop(fail="PoolNotFound", message=(
            f"TaskPool {run.spec.pool!r} does not exist in namespace {run.namespace!r}. Create it "
            "(kind: TaskPool) or send the task without a pool to run it as a Job."))
    if marker is None:
        return Backstop(enqueue=attempt) if waited >= ENQUEUE_GRACE else None
    if marker.startswith(CLAIMED):
        return None
    queued_at = _queued_at(marker)
    deadline = pool.spec.claim_deadline_seconds
    if queued_at is not None and now.timestamp() - queued_at > deadline:
        return Backstop(fail="NotClaimed", message=(
            f"No worker of TaskPool {pool.name!r} claimed attempt {attempt} within {deadline} s. Check the pool's "
            f"Deployment ({deployment_name(pool.name)}): its pods, image and maxReplicas."))
    return None


def _waited(run: TaskRun, now: datetime) -> float:
    """Seconds since the run last changed its condition (or was created)."""
    since = (run.status.condition.last_transition_time if run.status.condition else None) or run.metadata.creation_timestamp or now
    return (now - since).total_seconds()


def _queued_at(marker: str) -> float | None:
    head, _, stamp = marker.partition(":")
    try:
        return float(stamp) if head == QUEUED else None
    except ValueError:
        return None


class PoolKeeper:
    """Keeps the pools' Deployments and backstops pool runs, once per :data:`KEEP_INTERVAL`."""

    def __init__(
        self,
        connection: client.ApiClient,
        storage: NamespaceStorage,
        config: JobConfig,
        namespaces: Iterable[str],
        runs: Callable[[], Iterable[TaskRun]],
    ) -> None:
        self.custom = client.CustomObjectsApi(connection)
        self.apps = client.AppsV1Api(connection)
        self.taskruns = TaskRunApi(connection)
        self.storage = storage
        self.store = storage.store
        self.config = config
        self.namespaces = list(namespaces)
        self.runs = runs
        self._task: asyncio.Task[None] | None = None
        self._lower_since: dict[tuple[str, str], float] = {}
        self._signalled: set[tuple[str, str]] = set()
        self._no_crd_told = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="podiq-pool-keeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            try:
                await self.keep()
            except Exception:
                logger.exception("Keeping the TaskPools failed; trying again in %s s.", KEEP_INTERVAL)
            await asyncio.sleep(KEEP_INTERVAL)

    async def _pools(self) -> list[TaskPool]:
        try:
            if self.namespaces:
                bodies = []
                for namespace in self.namespaces:
                    reply = await self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, POOL_PLURAL)
                    bodies += reply["items"]
            else:
                bodies = (await self.custom.list_cluster_custom_object(GROUP, VERSION, POOL_PLURAL))["items"]
        except ApiException as exc:
            if exc.status != 404:
                raise
            if not self._no_crd_told:
                logger.warning("The TaskPool CRD is not installed (crds/taskpool.yaml): pool runs fail with PoolNotFound.")
                self._no_crd_told = True
            return []
        pools = []
        for body in bodies:
            try:
                pools.append(TaskPool.from_api(body))
            except ValueError as exc:
                logger.error("TaskPool %s is invalid: %s", body.get("metadata", {}).get("name"), exc)
        return pools

    async def keep(self) -> None:
        """One round: every pool's Deployment and status, then every unfinished pool run."""
        pools = {(p.namespace, p.name): p for p in await self._pools()}
        for kept in pools.values():
            try:
                await self._keep_pool(kept)
            except (ApiException, StoreError) as exc:  # one pool's trouble holds up neither the others nor the runs
                logger.error("TaskPool %s/%s was not kept: %s", kept.namespace, kept.name, exc)
        now = datetime.now(UTC)
        for run in list(self.runs()):
            if run.spec.pool is not None and run.is_cancelled():
                await self._signal_cancel(run)
            if run.spec.pool is None or run.is_done() or run.is_cancelled():
                continue
            pool = pools.get((run.namespace, run.spec.pool))
            attempt = next_attempt(run)
            if attempt is None or _waited(run, now) < ENQUEUE_GRACE:
                continue  # running, or its client is enqueuing it just now: no Redis read for those
            marker = None
            if pool is not None:
                marker = await PoolQueue(self.store, run.namespace, pool.name).marker(run.name, attempt)
            verdict = backstop(run, pool, marker, now)
            if verdict is not None:
                await self._carry_out(run, verdict, now)

    async def _keep_pool(self, pool: TaskPool) -> None:
        await self.storage.ensure(pool.namespace)  # the workers' Redis user and Secret
        queue = PoolQueue(self.store, pool.namespace, pool.name)
        try:
            await queue.ensure_group()
            backlog, busy = await queue.depth()
        except StoreError as exc:
            logger.warning("TaskPool %s/%s: %s", pool.namespace, pool.name, exc)
            return
        replicas = desired_replicas(pool, backlog, busy)
        name = deployment_name(pool.name)
        try:
            current = await self.apps.read_namespaced_deployment(name, pool.namespace)
            replicas = self._damped(pool, current.spec.replicas, replicas)
            if current.spec.replicas != replicas:
                await self.apps.patch_namespaced_deployment_scale(
                    name, pool.namespace, {"spec": {"replicas": replicas}}, _content_type=MERGE_PATCH)  # type: ignore[call-arg]
                logger.info("TaskPool %s/%s: %s -> %s workers (backlog %s, busy %s).",
                            pool.namespace, pool.name, current.spec.replicas, replicas, backlog, busy)
        except ApiException as exc:
            if exc.status != 404:
                raise
            await self.apps.create_namespaced_deployment(pool.namespace, build_deployment(pool, replicas, self.config))  # type: ignore[arg-type]
            logger.info("TaskPool %s/%s: Deployment %s created with %s workers.", pool.namespace, pool.name, name, replicas)
        status = {"replicas": replicas, "backlog": backlog, "busy": busy, "deploymentName": name,
                  "observedGeneration": pool.metadata.generation}
        if pool.status.model_dump(by_alias=True, mode="json") != status:
            await self.custom.patch_namespaced_custom_object_status(  # type: ignore[call-arg]
                GROUP, VERSION, pool.namespace, POOL_PLURAL, pool.name, {"status": status}, _content_type=MERGE_PATCH,
            )

    async def _signal_cancel(self, run: TaskRun) -> None:
        """Tell the pool's workers, once, to stop a cancelled run (the TaskRun is marked by the reconciler)."""
        key = (run.namespace, run.name)
        if key in self._signalled:
            return
        assert run.spec.pool is not None
        try:
            await PoolQueue(self.store, run.namespace, run.spec.pool).signal_cancel(run.name)
        except StoreError as exc:
            logger.warning("TaskRun %s/%s: its workers were not told of the cancellation: %s", run.namespace, run.name, exc)
            return
        self._signalled.add(key)

    def _damped(self, pool: TaskPool, current: int, wanted: int) -> int:
        """Grow at once; shrink once the need stayed lower for :data:`SCALE_DOWN_AFTER`."""
        key, now = (pool.namespace, pool.name), asyncio.get_running_loop().time()
        if wanted >= current or current > pool.spec.max_replicas:
            self._lower_since.pop(key, None)
            return wanted
        since = self._lower_since.setdefault(key, now)
        return wanted if now - since >= SCALE_DOWN_AFTER else current

    async def _carry_out(self, run: TaskRun, verdict: Backstop, now: datetime) -> None:
        if verdict.enqueue is not None:
            assert run.spec.pool is not None
            added = await PoolQueue(self.store, run.namespace, run.spec.pool).enqueue(run.name, verdict.enqueue)
            if added:
                logger.warning("TaskRun %s/%s was never added to pool %s; enqueued attempt %s.",
                               run.namespace, run.name, run.spec.pool, verdict.enqueue)
            return
        assert verdict.fail is not None
        new = run.status.model_copy(deep=True)
        text = f"{verdict.fail}: {verdict.message}"
        new.result, new.result_ref = error_result(InfrastructureError, text, labels=run.message_labels()), None
        new.mark_finished(Reason.FAILED, text, now)
        try:
            await self.taskruns.patch_status(run.namespace, run.name, status_patch(run.status, new),
                                             resource_version=run.metadata.resource_version)
        except ConflictError:
            return  # it changed meanwhile: the next round decides again
        logger.warning("TaskRun %s/%s failed: %s: %s", run.namespace, run.name, verdict.fail, verdict.message)

