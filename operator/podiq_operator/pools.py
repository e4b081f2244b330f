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

The pure parts (the Deployment, the replica count, the backstop's verdict) are the unit-tested
functions of :mod:`podiq_operator.pool_decisions`; :class:`PoolKeeper` is the thin loop that
reads and writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio import client

from podiq.exceptions import StoreError
from podiq.kubernetes.api import (
    DEPLOYMENTS,
    EVENTS,
    PODS,
    TASKPOOLS,
    ApiError,
    ConflictError,
    NotFoundError,
    ObjectApi,
    TaskRunApi,
)
from podiq.kubernetes.dispatch import PoolQueue
from podiq.kubernetes.resources import (
    LABEL_POOL,
    InfrastructureError,
    Reason,
    TaskRun,
    error_result,
    status_patch,
)
from podiq.kubernetes.taskpools import POOL_KIND, TaskPool
from podiq_operator.config import JobConfig
from podiq_operator.decisions import Event
from podiq_operator.eventing import event_body as body_event
from podiq_operator.pool_decisions import (
    DELETION_COST,
    ENQUEUE_GRACE,
    KEEP_INTERVAL,
    READY,
    SCALE_DOWN_AFTER,
    Backstop,
    _waited,
    backstop,
    build_deployment,
    deletion_costs,
    deployment_name,
    desired_replicas,
    next_attempt,
    pool_conditions,
    pool_problem,
)
from podiq_operator.storage import NamespaceStorage

__all__ = ["PoolKeeper"]

logger = logging.getLogger(__name__)


def _name(body: dict[str, Any]) -> str:
    return str((body.get("metadata") or {}).get("name") or "")


class PoolKeeper:
    """Keeps the pools' Deployments and backstops pool runs, once per :data:`KEEP_INTERVAL`.

    ``runs(now)`` gives the pool runs that may need the backstop at ``now`` (at least every one
    :func:`~podiq_operator.pool_decisions.may_need_backstop` keeps).
    """

    def __init__(
        self,
        connection: client.ApiClient,
        storage: NamespaceStorage,
        config: JobConfig,
        namespaces: Iterable[str],
        runs: Callable[[datetime], Iterable[TaskRun]],
        *,
        scaling: str = "operator",
        excluded_namespaces: frozenset[str] = frozenset(),
    ) -> None:
        self.pools = ObjectApi(connection, TASKPOOLS)
        self.deployments = ObjectApi(connection, DEPLOYMENTS)
        self.pods = ObjectApi(connection, PODS)
        self.events = ObjectApi(connection, EVENTS)
        self.scaling = scaling
        self.excluded_namespaces = excluded_namespaces
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
            bodies = []
            watched: list[str | None] = [*self.namespaces] or [None]  # None: the whole cluster
            for namespace in watched:
                bodies += (await self.pools.list(namespace)).items
        except NotFoundError:
            if not self._no_crd_told:
                logger.warning(
                    "The TaskPool CRD is not installed (crds/taskpool.yaml): pool runs fail with PoolNotFound."
                )
                self._no_crd_told = True
            return []
        pools = []
        for body in bodies:
            pool, reason, message = pool_problem(body, self.excluded_namespaces)
            if pool is not None:
                pools.append(pool)
                continue
            try:
                await self._report_invalid(body, reason, message)
            except ApiError as exc:
                logger.error("TaskPool %s is invalid (%s) and that was not recorded: %s", _name(body), message, exc)
        return pools

    async def _report_invalid(self, body: dict[str, Any], reason: str, message: str) -> None:
        """Say why a pool is not kept, in its status (Ready=False) and, when that is news, an Event."""
        meta = body.get("metadata") or {}
        namespace, name = meta.get("namespace") or "default", _name(body)
        current = list((body.get("status") or {}).get("conditions") or [])
        conditions = pool_conditions(current, False, reason, message, datetime.now(UTC))
        if conditions == current:
            return
        await self._patch_pool_status(namespace, name, {"conditions": conditions})
        logger.error("TaskPool %s/%s is not kept: %s", namespace, name, message)
        event = body_event(body, Event(reason, message, warning=True), datetime.now(UTC), kind=POOL_KIND)
        try:
            await self.events.create(namespace, event, decode=False)
        except ApiError as exc:  # an Event is a courtesy: the status says it already
            logger.debug("No Event on TaskPool %s/%s: %s", namespace, name, exc)

    async def _patch_pool_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        await self.pools.patch(namespace, name, {"status": status}, subresource="status")

    async def keep(self) -> None:
        """One round: every pool's Deployment and status, then every unfinished pool run."""
        pools = {(p.namespace, p.name): p for p in await self._pools()}
        for kept in pools.values():
            try:
                await self._keep_pool(kept)
            except (ApiError, StoreError) as exc:  # one pool's trouble holds up neither the others nor the runs
                logger.error("TaskPool %s/%s was not kept: %s", kept.namespace, kept.name, exc)
        now = datetime.now(UTC)
        waiting: dict[tuple[str, str], list[tuple[TaskRun, int]]] = {}
        for run in list(self.runs(now)):
            if run.spec.pool is not None and run.cancel_requested():
                await self._signal_cancel(run)
            if run.spec.pool is None or run.is_done() or run.cancel_requested():
                continue
            attempt = next_attempt(run)
            if attempt is None or _waited(run, now) < ENQUEUE_GRACE:
                continue  # running, or its client is enqueuing it just now: no Redis read for those
            waiting.setdefault((run.namespace, run.spec.pool), []).append((run, attempt))
        for (namespace, name), attempts in waiting.items():
            pool = pools.get((namespace, name))
            markers: list[str | None] = [None] * len(attempts)
            if pool is not None:
                try:  # one round trip for all of a pool's runs
                    markers = await PoolQueue(self.store, namespace, name).markers(
                        [(run.name, attempt) for run, attempt in attempts]
                    )
                except StoreError as exc:  # the next round reads them again; the other pools go on
                    logger.warning("TaskPool %s/%s: its runs' markers were not read: %s", namespace, name, exc)
                    continue
            for (run, _), marker in zip(attempts, markers, strict=True):
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
        current = await self.deployments.get(pool.namespace, name)
        if current is None:
            await self.deployments.create(pool.namespace, build_deployment(pool, replicas, self.config), decode=False)
            logger.info(
                "TaskPool %s/%s: Deployment %s created with %s workers.", pool.namespace, pool.name, name, replicas
            )
        else:
            have = int((current.get("spec") or {}).get("replicas") or 0)
            if self.scaling == "keda":  # its ScaledObject scales the Deployment; the operator only reports
                replicas = have
            replicas = self._damped(pool, have, replicas)
            if have != replicas:
                if replicas < have:
                    await self._spare_busy_workers(pool, queue)
                await self.deployments.patch(
                    pool.namespace, name, {"spec": {"replicas": replicas}}, subresource="scale"
                )
                logger.info(
                    "TaskPool %s/%s: %s -> %s workers (backlog %s, busy %s).",
                    pool.namespace,
                    pool.name,
                    have,
                    replicas,
                    backlog,
                    busy,
                )
        current_status = pool.status.model_dump(by_alias=True, mode="json", exclude_none=True)
        reason, message = READY, f"Its workers run as Deployment {name}."
        status = {
            "replicas": replicas,
            "backlog": backlog,
            "busy": busy,
            "deploymentName": name,
            "observedGeneration": pool.metadata.generation,
            "conditions": pool_conditions(
                current_status.get("conditions", []), True, reason, message, datetime.now(UTC)
            ),
        }
        if {k: current_status.get(k) for k in status} != status:
            await self._patch_pool_status(pool.namespace, pool.name, status)

    async def _spare_busy_workers(self, pool: TaskPool, queue: PoolQueue) -> None:
        """Before the pool shrinks, give each worker pod a deletion cost of its runs in hand, so that
        the ReplicaSet stops idle workers and keeps busy ones. A worker stopped anyway (one that
        claimed a run just now) lets its runs finish within its grace, or records them as lost."""
        try:
            busy = await queue.consumers()
        except StoreError as exc:
            logger.warning(
                "TaskPool %s/%s shrinks without knowing its busy workers: %s", pool.namespace, pool.name, exc
            )
            return
        pods = (await self.pods.list(pool.namespace, label_selector=f"{LABEL_POOL}={pool.name}")).items
        have = {p["metadata"]["name"]: (p["metadata"].get("annotations") or {}).get(DELETION_COST) for p in pods}
        for pod, cost in deletion_costs(list(have), busy).items():
            if have[pod] == str(cost):
                continue
            with contextlib.suppress(NotFoundError):  # a pod gone meanwhile needs no cost
                await self.pods.patch(pool.namespace, pod, {"metadata": {"annotations": {DELETION_COST: str(cost)}}})

    async def _signal_cancel(self, run: TaskRun) -> None:
        """Tell the pool's workers, once, to stop a cancelled run (the TaskRun is marked by the reconciler)."""
        key = (run.namespace, run.name)
        if key in self._signalled:
            return
        assert run.spec.pool is not None
        try:
            await PoolQueue(self.store, run.namespace, run.spec.pool).signal_cancel(run.name)
        except StoreError as exc:
            logger.warning(
                "TaskRun %s/%s: its workers were not told of the cancellation: %s", run.namespace, run.name, exc
            )
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
            added = await PoolQueue(self.store, run.namespace, run.spec.pool).enqueue(
                run.name, verdict.enqueue, version=run.metadata.resource_version or ""
            )
            if added:
                logger.warning(
                    "TaskRun %s/%s was never added to pool %s; enqueued attempt %s.",
                    run.namespace,
                    run.name,
                    run.spec.pool,
                    verdict.enqueue,
                )
            return
        assert verdict.fail is not None
        new = run.status.model_copy()  # shallow: the transitions below only assign fields
        text = f"{verdict.fail}: {verdict.message}"
        new.result, new.result_ref = error_result(InfrastructureError, text, labels=run.message_labels()), None
        new.mark_finished(Reason.FAILED, text, now)
        try:
            await self.taskruns.patch_status(
                run.namespace, run.name, status_patch(run.status, new), resource_version=run.metadata.resource_version
            )
        except ConflictError:
            return  # it changed meanwhile: the next round decides again
        logger.warning("TaskRun %s/%s failed: %s: %s", run.namespace, run.name, verdict.fail, verdict.message)
