"""Carrying out decisions: the only place the operator writes to the API.

For each TaskRun the reconciler asks :func:`~podiq_operator.decisions.decide` what to do,
does it, and asks again until the answer is to wait. Writes per normal run: one Job
create, and at most one status patch once the pod shows up; a status patch is skipped
when it would change nothing, and every patch is conditional on the resourceVersion the
decision was based on, so it never overwrites what the runtime wrote meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import ValidationError

from podiq.kubernetes.api import InvalidError
from podiq.kubernetes.attempts import refuse
from podiq.kubernetes.resources import Reason, TaskRun, TaskRunStatus, status_patch
from podiq_operator.caches import Cache, Key
from podiq_operator.clusters import ClusterApi, ConflictError, NotFoundError
from podiq_operator.config import OperatorConfig
from podiq_operator.decisions import (
    Cancel,
    DeleteTaskRun,
    Event,
    Idle,
    Policy,
    Refresh,
    StartAttempt,
    Wake,
    WriteStatus,
    decide,
)
from podiq_operator.jobs import build_job, job_name
from podiq_operator.metrics import Metrics
from podiq_operator.observations import observe_attempt
from podiq_operator.provisioning import Provisioner
from podiq_operator.storage import NamespaceStorage

__all__ = ["EventSink", "Reconciler"]

logger = logging.getLogger(__name__)

#: Actions per reconciliation before yielding; a normal start takes one, a retry two.
MAX_STEPS = 8


class EventSink(Protocol):
    def __call__(self, body: dict[str, Any], event: Event) -> None: ...


def _no_events(body: dict[str, Any], event: Event) -> None:
    pass


class Reconciler:
    def __init__(
        self,
        api: ClusterApi,
        config: OperatorConfig,
        *,
        cache: Cache | None = None,
        metrics: Metrics | None = None,
        events: EventSink = _no_events,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        storage: NamespaceStorage | None = None,
    ) -> None:
        self.api = api
        self.storage = storage
        self.config = config
        self.cache = cache or Cache()
        self.metrics = metrics or Metrics()
        self.events = events if config.events else _no_events
        self.clock = clock
        self.policy = Policy(config.jobs.pending_deadline_seconds, config.namespace_setup.excluded)
        self.provisioner = Provisioner(api, config.namespace_setup, config.jobs.runtime_service_account)
        self._locks: dict[Key, asyncio.Lock] = {}
        self._wakeups: dict[Key, asyncio.TimerHandle] = {}
        self._failures: dict[Key, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_flight: set[Key] = set()
        # Unfinished runs seen by this process: their finish gets an Event (once, by whoever wrote it).
        self._unfinished: set[Key] = set()
        self._queued: set[Key] = set()
        # Bounds concurrent reconciliations, and with them concurrent API writes.
        self._workers = asyncio.Semaphore(config.api.max_workers)

    # --- entry points for the watch handlers ---

    async def reconcile(self, key: Key) -> None:
        """Bring one TaskRun forward; errors are logged and retried with backoff."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock, self._workers:
            self._queued.discard(key)
            self._cancel_wakeup(key)
            try:
                await self._reconcile(key)
            except Exception:
                failures = self._failures[key] = self._failures.get(key, 0) + 1
                backoff = self.config.api.error_backoff
                delay = backoff[min(failures, len(backoff)) - 1]
                logger.exception("Reconciling TaskRun %s/%s failed; retrying in %ss.", *key, delay)
                self.metrics.reconcile_errors.inc()
                self.wake(key, delay)
            else:
                self._failures.pop(key, None)

    def forget(self, key: Key) -> None:
        """The TaskRun is gone."""
        self._cancel_wakeup(key)
        self.cache.forget_taskrun(key)
        self._failures.pop(key, None)
        self._locks.pop(key, None)
        self._unfinished.discard(key)
        if key in self._in_flight:
            self._in_flight.discard(key)
            self.metrics.in_flight.set(len(self._in_flight))

    def trigger(self, key: Key) -> None:
        """Reconcile ``key`` soon, without waiting for it; a trigger while one waits its turn
        joins that one (it reads the caches when it runs)."""
        self._cancel_wakeup(key)
        if key in self._queued:
            return
        self._queued.add(key)
        task = asyncio.get_running_loop().create_task(self.reconcile(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def wake(self, key: Key, after: float) -> None:
        """Reconcile ``key`` again after ``after`` seconds (one pending wake-up per TaskRun)."""
        self._cancel_wakeup(key)
        loop = asyncio.get_running_loop()
        self._wakeups[key] = loop.call_later(max(after, 0.0), self.trigger, key)

    async def close(self) -> None:
        for handle in self._wakeups.values():
            handle.cancel()
        self._wakeups.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- the loop ---

    async def _reconcile(self, key: Key) -> None:
        fresh = False
        for _ in range(MAX_STEPS):
            try:
                run = self.cache.taskrun(key)  # parsed once per body: creating a Job leaves it as it was
            except ValidationError as exc:
                # The CRD's schema should make this impossible; do not retry a bad object.
                logger.error("TaskRun %s/%s is malformed, ignoring it: %s", *key, exc)
                return
            if run is None:
                return
            attempt = max(run.status.attempts, self.cache.latest_attempt(key))
            observation = observe_attempt(
                self.cache.job(key, attempt),
                self.cache.pod(key, attempt),
                self.cache.failed_create(key, attempt),
            )
            action = decide(run, attempt, observation, self.clock(), fresh=fresh, policy=self.policy)
            self._count(key, run, attempt)
            fresh = False
            match action:
                case Idle():
                    return
                case Wake(after=after):
                    self.wake(key, after)
                    return
                case Refresh():
                    await self._refresh(key, run, attempt)
                    fresh = True
                case WriteStatus(status=status, event=event, wake_after=wake_after):
                    if not await self._write_status(key, run, status):
                        continue
                    self._post(key, event, finish=status.is_done())
                    if wake_after is not None:
                        self.wake(key, wake_after)
                        return
                case StartAttempt(attempt=start, event=event):
                    if self.storage is not None:
                        await self.storage.ensure(run.namespace)
                    if not await self._create_job(key, run, start):
                        return
                    self._started(run, start)
                    self._post(key, event)
                case Cancel(job_name=job, status=status, event=event):
                    if job is not None:
                        await self.api.delete_job(run.namespace, job)
                    if await self._write_status(key, run, status):
                        self._post(key, event, finish=True)
                case DeleteTaskRun():
                    await self.api.delete_taskrun(run.namespace, run.name, run.metadata.uid)
                    if self.storage is not None:
                        await self.storage.forget_run(run)
                    return
        logger.warning("TaskRun %s/%s did not settle in %d steps; looking again later.", *key, MAX_STEPS)
        self.wake(key, 1.0)

    async def _refresh(self, key: Key, run: TaskRun, attempt: int) -> None:
        body = await self.api.get_taskrun(*key)
        if body is None:
            self.forget(key)
            return
        self.cache.taskruns[key] = body
        if attempt:
            job = await self.api.get_job(run.namespace, job_name(run.name, attempt))
            if job is not None:
                self.cache.put_job(job)
            else:
                jobs = self.cache.jobs.get(key, {})
                jobs.pop(attempt, None)

    async def _write_status(self, key: Key, run: TaskRun, status: TaskRunStatus) -> bool:
        """Patch the status if it changed; False when the TaskRun moved meanwhile (re-read and decide again)."""
        patch = status_patch(run.status, status)
        if not patch:
            return True
        try:
            body = await self.api.patch_taskrun_status(run.namespace, run.name, patch, run.metadata.resource_version)
        except ConflictError:
            logger.debug("TaskRun %s/%s changed while deciding; reading it again.", *key)
            fresh = await self.api.get_taskrun(*key)
            if fresh is None:
                self.forget(key)
            else:
                self.cache.taskruns[key] = fresh
            return False
        except NotFoundError:
            self.forget(key)
            return False
        self.cache.put_taskrun(body)
        return True

    async def _create_job(self, key: Key, run: TaskRun, attempt: int) -> bool:
        """Create the attempt's Job unless it exists; False if its name is taken by another owner."""
        body = build_job(run, attempt, self.config.jobs)
        await self.provisioner.ensure(run.namespace)
        try:
            await self.api.create_job(body)
        except ConflictError:
            existing = await self.api.get_job(run.namespace, body["metadata"]["name"])
            owners = [ref.get("uid") for ref in (existing or {}).get("metadata", {}).get("ownerReferences") or []]
            if existing is None or run.metadata.uid not in owners:
                # A Job of a deleted TaskRun with the same name, not collected yet: wait for the GC.
                logger.info("Job %s belongs to another TaskRun; waiting for it to go.", body["metadata"]["name"])
                self.wake(key, 5.0)
                return False
            body = existing
        except InvalidError as exc:
            # The API server finds the Job invalid (its resources, image, env, deadline...): trying
            # again would be refused again, so the run ends here, saying what was refused.
            refused = refuse(
                run.spec,
                run.status,
                Reason.INVALID_POD_SPEC,
                f"The Job for attempt {attempt} was refused: {exc.message}",
                self.clock(),
            )
            if await self._write_status(key, run, refused):
                self._post(key, Event(Reason.INVALID_POD_SPEC.value, refused.message, warning=True), finish=True)
            return False
        self.cache.put_job(body)
        return True

    # --- bookkeeping ---

    def _cancel_wakeup(self, key: Key) -> None:
        handle = self._wakeups.pop(key, None)
        if handle is not None:
            handle.cancel()

    def _post(self, key: Key, event: Event | None, *, finish: bool = False) -> None:
        """Post ``event``; with ``finish``, it tells the run's end, which :meth:`_count` then need not."""
        if finish and event is not None:
            self._unfinished.discard(key)
        body = self.cache.taskruns.get(key)
        if event is not None and body is not None:
            try:
                self.events(body, event)
            except Exception:  # Events are a courtesy; never fail a reconciliation over one.
                logger.debug("Could not post event %s on %s/%s.", event.reason, *key, exc_info=True)

    def _started(self, run: TaskRun, attempt: int) -> None:
        kind = "first" if attempt == 1 else "requeue" if run.status.reason.value == "Requeued" else "retry"
        self.metrics.attempts_started.labels(kind=kind).inc()
        created = run.metadata.creation_timestamp
        if attempt == 1 and created is not None:
            self.metrics.dispatch_latency.observe(max((self.clock() - created).total_seconds(), 0.0))

    def _count(self, key: Key, run: TaskRun, attempt: int) -> None:
        """Track in-flight runs, and count (and tell) a finish once, when this process saw it unfinished."""
        if run.is_done() and key in self._unfinished:
            self._unfinished.discard(key)
            status = run.status
            self._post(
                key,
                Event(status.reason.value, status.message or status.reason.value, warning=not status.is_succeeded()),
            )
        elif not run.is_done():
            self._unfinished.add(key)
        if run.is_done():
            if key in self._in_flight:
                self._in_flight.discard(key)
                phase = run.status.phase.value if run.status.phase else "Unknown"
                self.metrics.taskruns_finished.labels(phase=phase).inc()
        elif attempt:
            self._in_flight.add(key)
        self.metrics.in_flight.set(len(self._in_flight))
