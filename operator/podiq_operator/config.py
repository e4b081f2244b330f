"""The operator's settings: small typed objects, one per concern, read from ``PODIQ_*`` variables.

Every field says its unit. :func:`OperatorConfig.from_env` is the only place that reads the
environment; everything else receives a config object, so tests build one directly.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

from podiq.kubernetes.storage import StoreSettings

#: The Secret in each task namespace holding that namespace's Redis URL (key ``url``).
NAMESPACE_SECRET = "podiq-redis"


@dataclasses.dataclass(frozen=True)
class JobConfig:
    """How attempts run."""

    runtime_image: str = "ghcr.io/podiq/runtime:latest"
    """Image for TaskRuns that do not name one (``PODIQ_RUNTIME_IMAGE``)."""

    image_pull_policy: str | None = None
    """``Always``/``IfNotPresent``/``Never``; ``None`` leaves Kubernetes' default (``PODIQ_IMAGE_PULL_POLICY``)."""

    runtime_service_account: str = "podiq-runtime"
    """Service account of runtime pods; it may only read TaskRuns and write their status
    (``PODIQ_RUNTIME_SERVICE_ACCOUNT``)."""

    deadline_grace_seconds: int = 60
    """Seconds added to a TaskRun's ``timeoutSeconds`` for the Job's ``activeDeadlineSeconds``.
    The runtime enforces the timeout on the task itself; the deadline, which also counts
    scheduling and image pulls, is the backstop for a runtime that hangs (``PODIQ_DEADLINE_GRACE``)."""

    tmp_size_limit: str | None = "1Gi"
    """Size limit of the ``/tmp`` emptyDir (the only writable path), a quantity or ``None``
    (``PODIQ_TMP_SIZE_LIMIT``)."""

    store_secret: str | None = None
    """Secret in the task's namespace whose ``url`` becomes the pod's ``PODIQ_REDIS_URL``; set
    when the operator has Redis (``PODIQ_REDIS_URL``), see :mod:`podiq_operator.storage`."""

    store_env: tuple[tuple[str, str], ...] = ()
    """The store's settings (``PODIQ_REDIS_*``) passed on to task pods, so they agree with clients."""
    pending_deadline_seconds: float = 600.0
    """Seconds an attempt's pod may take to start after its Job was created (scheduling, image
    pulls, quota); after them the run ends Failed with the reason it could not start. A TaskRun's
    ``spec.pendingDeadlineSeconds`` overrides it; a Job queued by Kueue is not counted
    (``PODIQ_PENDING_DEADLINE``)."""


@dataclasses.dataclass(frozen=True)
class NamespaceConfig:
    """Which namespaces the operator runs tasks in, and what it sets up there."""

    excluded: frozenset[str] = frozenset({"kube-system", "kube-public", "kube-node-lease"})
    """Namespaces whose TaskRuns are refused with the reason NamespaceExcluded
    (``PODIQ_EXCLUDED_NAMESPACES``, comma-separated; ``-`` for none)."""

    provision: bool = False
    """Create the runtime (and scheduler) service account and its RoleBinding in a namespace the
    first time a TaskRun runs there; the chart turns it on when every namespace is watched
    (``PODIQ_PROVISION``)."""

    runtime_cluster_role: str = "podiq-runtime"
    """The ClusterRole the runtime service account is bound to (``PODIQ_RUNTIME_CLUSTER_ROLE``)."""

    scheduler_service_account: str | None = None
    """Service account of schedules' CronJob pods, provisioned alongside; ``None`` for none
    (``PODIQ_SCHEDULER_SERVICE_ACCOUNT``)."""

    scheduler_cluster_role: str = "podiq-scheduler"
    """The ClusterRole the scheduler service account is bound to (``PODIQ_SCHEDULER_CLUSTER_ROLE``)."""


@dataclasses.dataclass(frozen=True)
class ApiConfig:
    """How hard the operator may press the API server."""

    request_timeout: float = 30.0
    """Seconds for one API request (``PODIQ_API_TIMEOUT``)."""

    watch_server_timeout: int = 300
    """Seconds after which the server ends a watch request and the watch is reopened (``PODIQ_WATCH_TIMEOUT``)."""

    max_workers: int = 20
    """Objects handled concurrently; also bounds concurrent writes (``PODIQ_MAX_WORKERS``)."""

    list_chunk_size: int | None = 100
    """Objects per page when listing at start-up (``PODIQ_LIST_CHUNK``)."""

    error_backoff: tuple[float, ...] = (1, 2, 5, 10, 30)
    """Seconds between retries of a failed reconciliation, the last one repeating."""


#: Who may scale TaskPools' Deployments (``PODIQ_POOL_SCALING``).
POOL_SCALINGS = ("operator", "keda")


@dataclasses.dataclass(frozen=True)
class OperatorConfig:
    jobs: JobConfig = dataclasses.field(default_factory=JobConfig)
    api: ApiConfig = dataclasses.field(default_factory=ApiConfig)
    store: StoreSettings = dataclasses.field(default_factory=StoreSettings)
    """Redis for large values (``PODIQ_REDIS_URL``, an admin connection, and ``PODIQ_REDIS_*``)."""
    namespace_setup: NamespaceConfig = dataclasses.field(default_factory=NamespaceConfig)

    namespaces: tuple[str, ...] = ()
    """Namespaces to watch; empty means all (``PODIQ_WATCH_NAMESPACES``, comma-separated)."""

    events: bool = True
    """Post Kubernetes Events on TaskRuns for each transition; each one is an extra API write
    (``PODIQ_EVENTS``)."""

    metrics_port: int | None = 8080
    """Port of the Prometheus ``/metrics`` endpoint, ``None`` for none (``PODIQ_METRICS_PORT``, 0 disables)."""

    metrics_address: str = "0.0.0.0"
    """Address the ``/metrics`` endpoint listens on (``PODIQ_METRICS_ADDRESS``)."""

    liveness_endpoint: str | None = "http://0.0.0.0:8081/healthz"
    """kopf's liveness endpoint, probed by the Deployment (``PODIQ_LIVENESS``, empty disables)."""

    pool_scaling: str = "operator"
    """Who scales TaskPools' Deployments: ``operator`` or ``keda`` (a ScaledObject per pool, from
    the chart; the operator then leaves their replicas alone) (``PODIQ_POOL_SCALING``)."""

    peering: str | None = None
    """kopf peering object name for several replicas (``PODIQ_PEERING``); ``None`` runs standalone,
    which needs no peering CRDs."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorConfig:
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = env.get(f"PODIQ_{name}")
            return value if value not in (None, "") else None

        store = StoreSettings.from_env(env)
        jobs = JobConfig(
            runtime_image=get("RUNTIME_IMAGE") or JobConfig.runtime_image,
            image_pull_policy=get("IMAGE_PULL_POLICY"),
            runtime_service_account=get("RUNTIME_SERVICE_ACCOUNT") or JobConfig.runtime_service_account,
            deadline_grace_seconds=int(get("DEADLINE_GRACE") or JobConfig.deadline_grace_seconds),
            tmp_size_limit=get("TMP_SIZE_LIMIT") or JobConfig.tmp_size_limit,
            store_secret=NAMESPACE_SECRET if store.url else None,
            store_env=tuple(store.to_env().items()) if store.url else (),
            pending_deadline_seconds=float(get("PENDING_DEADLINE") or JobConfig.pending_deadline_seconds),
        )
        excluded = get("EXCLUDED_NAMESPACES")
        namespace_setup = NamespaceConfig(
            excluded=NamespaceConfig().excluded if excluded is None else frozenset(_names(excluded) - {"-"}),
            provision=_flag(get("PROVISION"), default=False),
            runtime_cluster_role=get("RUNTIME_CLUSTER_ROLE") or NamespaceConfig.runtime_cluster_role,
            scheduler_service_account=get("SCHEDULER_SERVICE_ACCOUNT"),
            scheduler_cluster_role=get("SCHEDULER_CLUSTER_ROLE") or NamespaceConfig.scheduler_cluster_role,
        )
        api = ApiConfig(
            request_timeout=float(get("API_TIMEOUT") or ApiConfig.request_timeout),
            watch_server_timeout=int(get("WATCH_TIMEOUT") or ApiConfig.watch_server_timeout),
            max_workers=int(get("MAX_WORKERS") or ApiConfig.max_workers),
            list_chunk_size=int(get("LIST_CHUNK") or ApiConfig.list_chunk_size or 0) or None,
        )
        pool_scaling = (get("POOL_SCALING") or cls.pool_scaling).lower()
        if pool_scaling not in POOL_SCALINGS:
            raise ValueError(
                f"PODIQ_POOL_SCALING is {pool_scaling!r}: set it to 'operator' (the operator scales TaskPools) or "
                "'keda' (KEDA ScaledObjects do; the chart's pools.scaling)."
            )
        metrics_port = get("METRICS_PORT")
        liveness = env.get("PODIQ_LIVENESS")
        return cls(
            jobs=jobs,
            api=api,
            store=store,
            namespace_setup=namespace_setup,
            namespaces=tuple(n.strip() for n in (get("WATCH_NAMESPACES") or "").split(",") if n.strip()),
            events=_flag(get("EVENTS"), default=True),
            metrics_port=cls.metrics_port if metrics_port is None else (int(metrics_port) or None),
            metrics_address=get("METRICS_ADDRESS") or cls.metrics_address,
            liveness_endpoint=cls.liveness_endpoint if liveness is None else (liveness or None),
            peering=get("PEERING"),
            pool_scaling=pool_scaling,
        )


def _names(value: str) -> set[str]:
    return {n.strip() for n in value.split(",") if n.strip()}


def _flag(value: str | None, *, default: bool) -> bool:
    return default if value is None else value.lower() not in ("0", "false", "no", "off")
