"""What the operator does with each watched kind's events, and its kopf registrations.

Standalone, every watch is a plain informer (:mod:`podiq_operator.informers`): TaskRuns,
and the Jobs, Pods and FailedCreate Events the operator only reads. kopf's per-event
machinery (a worker per object, a patch, a logger, the handler's keyword arguments) cost
more than podiq's own handling of a TaskRun event; kopf then only runs the operator's
startup, login, cleanup and liveness. With peering, kopf owns every watch, TaskRuns
included, since its pausing in favour of another replica must cover them all. Either way
an event goes to the same :class:`Watches` method. Where the operator sets namespaces up,
schedules' CronJobs come the same way: a namespace whose first podiq object is a schedule
is set up when that CronJob appears.

Only *event* handlers are registered with kopf, on purpose. kopf's change handlers
(on.create, on.update, ...) persist their progress and a diff base in annotations, and
timers and daemons add a finalizer: each of those is an API write per object that podiq
does not need, since the reconciler is level-based and keeps no state in the objects. The
resulting budget for a task that succeeds on its first attempt is four writes: the
client creates the TaskRun, the operator creates the Job and (once its pod shows up)
records the attempt in the status, the runtime writes the result. A task that finishes
before the operator sees its pod costs three. Events on the TaskRun are optional extras
(``PODIQ_EVENTS``).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, cast

import kopf
from kubernetes_asyncio import client

from podiq.kubernetes.connecting import SERVICE_ACCOUNT_DIR, in_cluster
from podiq.kubernetes.cronjobs import LABEL_SCHEDULE_ID
from podiq.kubernetes.resources import GROUP, LABEL_TASKRUN, PLURAL, VERSION
from podiq_operator.caches import Key, key_of
from podiq_operator.config import OperatorConfig
from podiq_operator.informers import Handler, Informer, Source
from podiq_operator.reconciling import Reconciler

__all__ = ["Watches", "apply_settings", "build_informers", "build_registry"]

logger = logging.getLogger(__name__)

#: Server-side filter for the only Events the operator reads: the Job controller failing
#: to create a pod (quota exceeded, limit range, admission denied).
FAILED_CREATE_EVENTS = "involvedObject.kind=Job,reason=FailedCreate"

TASKRUNS = Source(GROUP, VERSION, PLURAL)
#: The objects the operator only reads, filtered on the server to podiq's own.
JOBS = Source("batch", "v1", "jobs", label_selector=LABEL_TASKRUN)
PODS = Source("", "v1", "pods", label_selector=LABEL_TASKRUN)
FAILED_CREATES = Source("", "v1", "events", field_selector=FAILED_CREATE_EVENTS)
SECONDARY_SOURCES = (JOBS, PODS, FAILED_CREATES)
#: Schedules' CronJobs, read only where the operator sets namespaces up: a schedule made in a
#: namespace where no TaskRun has run yet fires as the scheduler's service account, which
#: must exist by the first firing.
CRONJOBS = Source("batch", "v1", "cronjobs", label_selector=LABEL_SCHEDULE_ID)


#: kopf's per-object workers (with peering) for each concurrent reconciliation.
WORKERS_PER_WRITER = 10


class NoDiffBase(kopf.DiffBaseStorage):
    """kopf works out an object's "essence" (a deep copy) on every event to diff it for change
    handlers; podiq has none, so there is nothing to keep and nothing to copy."""

    def build(self, *, body: Any, extra_fields: Any = None) -> Any:
        return {}

    def fetch(self, *, body: Any) -> None:
        return None

    def store(self, *, body: Any, patch: Any, essence: Any) -> None:
        pass


class NoProgress(kopf.ProgressStorage):
    """kopf keeps change handlers' progress in annotations, and scrubs them from the essence of
    every event; event handlers have no progress, so there is nothing to keep or scrub."""

    def fetch(self, *, key: Any, body: Any) -> None:
        return None

    def store(self, *, key: Any, record: Any, body: Any, patch: Any) -> None:
        pass

    def purge(self, *, key: Any, body: Any, patch: Any) -> None:
        pass

    def touch(self, *, body: Any, patch: Any, value: Any) -> None:
        pass

    def clear(self, *, essence: Any) -> Any:
        return essence


def apply_settings(settings: kopf.OperatorSettings, config: OperatorConfig) -> None:
    """Map podiq's settings onto kopf's: bounded concurrency, timeouts, filters, peering."""
    api = config.api
    settings.posting.enabled = config.events
    settings.posting.level = logging.INFO
    settings.posting.reporting_component = "podiq-operator"
    settings.networking.request_timeout = api.request_timeout
    settings.networking.connect_timeout = min(api.request_timeout, 10.0)
    settings.watching.server_timeout = api.watch_server_timeout
    settings.watching.client_timeout = api.watch_server_timeout + 30
    settings.watching.connect_timeout = min(api.request_timeout, 10.0)
    settings.watching.chunk_size = api.list_chunk_size
    # With peering, kopf keeps a worker per object alive for `idle_timeout` after its last
    # event, and its worker_limit counts those idle workers too: 20 workers idling 5 s each
    # capped dispatch at 4 TaskRuns a second. So kopf gets many short-lived workers (bounded,
    # so that a burst of thousands of objects does not hold thousands of bodies at once), and
    # the reconciler bounds the concurrent API work itself (max_workers).
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.persistence.progress_storage = NoProgress()
    settings.queueing.worker_limit = api.max_workers * WORKERS_PER_WRITER
    settings.queueing.idle_timeout = 0.05
    settings.execution.max_workers = api.max_workers
    # Filter on the server, so the operator never receives unrelated Jobs, Pods or Events.
    for source in (*SECONDARY_SOURCES, CRONJOBS):
        kind = (source.group, source.version, source.plural) if source.group else (source.version, source.plural)
        if source.label_selector:
            settings.watching.label_selectors[kind] = source.label_selector
        if source.field_selector:
            settings.watching.field_selectors[kind] = source.field_selector
    # The CRD is installed before the operator starts (Helm's crds/): no need to watch
    # CRDs and namespaces, and no RBAC for it.
    settings.scanning.disabled = True
    # Peering needs kopf's peering CRDs; a single replica runs without it.
    settings.peering.standalone = config.peering is None
    if config.peering is not None:
        settings.peering.name = config.peering
        settings.peering.mandatory = True
        settings.peering.clusterwide = not config.namespaces


def service_account_login() -> kopf.ConnectionInfo | None:
    """The pod's service account, at the address the pod's environment gives.

    kopf logs in by itself only through the sync `kubernetes` client or pykube, which podiq
    does not use, and kopf's own service-account helper assumes the DNS name
    kubernetes.default.svc; KUBERNETES_SERVICE_HOST/PORT is what every pod is given.
    kopf calls this again when the (expiring, projected) token is refused.
    """
    if not in_cluster():
        return None
    host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    return kopf.ConnectionInfo(
        server=f"https://{host}:{port}",
        ca_path=str(SERVICE_ACCOUNT_DIR / "ca.crt"),
        token=(SERVICE_ACCOUNT_DIR / "token").read_text().strip(),
        default_namespace=(SERVICE_ACCOUNT_DIR / "namespace").read_text().strip(),
    )


class Watches:
    """What the operator does with each watch's events: fill the caches, and reconcile a
    TaskRun when it changed, or when its Job, Pod or FailedCreate Event tells something new.

    Each method takes the watch event's type and object, from an informer or from kopf; none
    waits for the reconciliation, so one slow TaskRun never holds up the stream.
    """

    def __init__(self, reconciler: Reconciler) -> None:
        self.reconciler = reconciler
        self.cache = reconciler.cache
        self._setups: set[asyncio.Task[None]] = set()

    async def taskrun(self, kind: str | None, raw: dict[str, Any]) -> None:
        if kind == "DELETED":
            self.reconciler.forget(key_of(raw))
            return
        self.reconciler.trigger(self.cache.put_taskrun(raw))

    async def job(self, kind: str | None, raw: dict[str, Any]) -> None:
        self._changed(self.cache.forget_job(raw) if kind == "DELETED" else self.cache.put_job(raw))

    async def pod(self, kind: str | None, raw: dict[str, Any]) -> None:
        self._changed(self.cache.put_pod(raw, deleted=kind == "DELETED"))

    async def failed_create(self, kind: str | None, raw: dict[str, Any]) -> None:
        involved = raw.get("involvedObject") or {}
        if kind == "DELETED" or involved.get("kind") != "Job" or raw.get("reason") != "FailedCreate":
            return
        self._changed(
            self.cache.put_failed_create(
                involved.get("namespace") or "default", involved.get("name", ""), raw.get("message", "")
            )
        )

    async def schedule(self, kind: str | None, raw: dict[str, Any]) -> None:
        """A schedule's CronJob: set its namespace up (once), as the first TaskRun there would."""
        namespace = (raw.get("metadata") or {}).get("namespace")
        if kind == "DELETED" or not namespace or namespace in self.reconciler.policy.excluded_namespaces:
            return
        task = asyncio.ensure_future(self._set_up(namespace))
        self._setups.add(task)
        task.add_done_callback(self._setups.discard)

    async def _set_up(self, namespace: str) -> None:
        try:
            await self.reconciler.provisioner.ensure(namespace)
        except Exception:
            # Each firing changes the CronJob's status, and with it comes the next try.
            logger.exception(
                "Setting namespace %s up for its schedules failed; trying again at the next change.", namespace
            )

    def _changed(self, key: Key | None) -> None:
        if key is not None and key in self.cache.taskruns:
            self.reconciler.trigger(key)

    def taskruns(self) -> list[tuple[Source, Handler]]:
        return [(TASKRUNS, self.taskrun)]

    def secondaries(self) -> list[tuple[Source, Handler]]:
        """The objects the operator only reads (and, where it sets namespaces up, CronJobs)."""
        sources: list[tuple[Source, Handler]] = [
            (JOBS, self.job),
            (PODS, self.pod),
            (FAILED_CREATES, self.failed_create),
        ]
        if self.reconciler.provisioner.config.provision:
            sources.append((CRONJOBS, self.schedule))
        return sources


def build_informers(
    api: client.ApiClient, sources: Iterable[tuple[Source, Handler]], config: OperatorConfig
) -> list[Informer]:
    """One list-and-watch per kind and watched namespace (or one per kind, cluster-wide)."""
    return [
        Informer(
            api,
            source,
            namespace,
            handler,
            page_size=config.api.list_chunk_size,
            watch_seconds=config.api.watch_server_timeout,
            request_timeout=config.api.request_timeout,
        )
        for source, handler in sources
        for namespace in (config.namespaces or (None,))
    ]


def build_registry(
    reconciler: Reconciler, config: OperatorConfig, watches: Watches | None = None
) -> kopf.OperatorRegistry:
    """A registry with podiq's handlers (a fresh one, so importing this module registers nothing).

    With ``watches``, kopf watches TaskRuns, Jobs, Pods and Events: with peering, kopf must own
    every watch, since pausing in favour of another replica stops only kopf's. Without,
    kopf watches nothing, and :func:`build_informers` watches them all at a fraction of the cost.
    """
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        apply_settings(settings, config)

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return service_account_login() or kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.cleanup(registry=registry)
    async def stop(**_: Any) -> None:
        await reconciler.close()

    for source, handler in [*watches.taskruns(), *watches.secondaries()] if watches is not None else ():
        kopf.on.event(source.group, source.version, source.plural, registry=registry)(_kopf_adapter(handler))

    return registry


def _kopf_adapter(handler: Handler) -> Callable[..., Awaitable[None]]:
    async def on_event(event: kopf.RawEvent, **_: Any) -> None:
        await handler(event.get("type") or "", cast(dict[str, Any], event["object"]))

    on_event.__name__ = on_event.__qualname__ = getattr(handler, "__name__", "on_event")  # kopf's handler id
    return on_event
