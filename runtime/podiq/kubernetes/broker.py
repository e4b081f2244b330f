"""KubernetesBroker: every kiq() is one TaskRun; results come back through one shared watch."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio import client

from podiq._broker import AsyncBroker
from podiq._message import TaskiqMessage
from podiq._progress import TaskProgress
from podiq._result import ResultRecord
from podiq._result_backend import AsyncResultBackend
from podiq._schedules import ScheduledTask
from podiq.exceptions import (
    BrokerError,
    InvalidArgumentsError,
    ResultGetError,
    ResultSetError,
    SendTaskError,
    StoreError,
    TaskiqResultTimeoutError,
)
from podiq.kubernetes.api import PODS, ApiError, ConflictError, NotFoundError, ObjectApi, TaskRunApi
from podiq.kubernetes.connecting import api_client, default_namespace
from podiq.kubernetes.dispatch import PoolQueue
from podiq.kubernetes.offloading import offload_arguments, read_result, read_stored_log
from podiq.kubernetes.options import KubernetesOptions, taskrun_spec
from podiq.kubernetes.resources import (
    API_VERSION,
    BLOCKED_REASONS,
    KIND,
    LABEL_POOL,
    LABEL_TASK,
    TASK_NAME_PATTERN,
    TaskRun,
    is_dns_label,
    label_value,
    to_api,
)
from podiq.kubernetes.storage import RedisStore, StoreSettings
from podiq.kubernetes.watching import TaskRunGone, TaskRunWatch

logger = logging.getLogger("podiq.kubernetes")

#: Seconds after which a run that no operator has touched is reported in the log.
UNATTENDED_AFTER = 30.0
#: Pool enqueues in flight at once: each holds a Redis connection, and a burst of kiq calls
#: must not open thousands (redis-py refuses past its pool's limit).
ENQUEUE_CONCURRENCY = 32
_TASK_NAME = re.compile(TASK_NAME_PATTERN)


def _not_started() -> BrokerError:
    return BrokerError("KubernetesBroker is not started: call `await broker.startup()` or use `async with broker`.")


class KubernetesBroker(AsyncBroker):
    """Sends every task call as a TaskRun; the podiq operator runs it as a Job.

    `image`, `resources`, `env`, `service_account` and `queue_name` are defaults for every
    task; tasks and calls override them with labels of the same names. Connects with
    `kubeconfig`/`context`, or in-cluster config inside a pod.

    `redis_url` (default: `PODIQ_REDIS_URL`) is where arguments and results too large for a
    TaskRun are kept, and pods' output after they are gone (see :mod:`podiq.kubernetes.storage`).

    `pool` (or a task's or call's `pool` label) names a TaskPool: such runs go to the pool's
    warm workers through its Redis stream instead of starting a Job (:mod:`podiq.kubernetes.dispatch`).
    """

    def __init__(
        self,
        namespace: str | None = None,
        *,
        image: str | None = None,
        resources: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        service_account: str | None = None,
        queue_name: str | None = None,
        ttl: int | None = None,
        kubeconfig: str | None = None,
        context: str | None = None,
        redis_url: str | None = None,
        pool: str | None = None,
        result_backend: AsyncResultBackend | None = None,
        task_id_generator: Callable[[], str] | None = None,
    ) -> None:
        self.namespace = namespace or default_namespace(kubeconfig, context)
        self.kubeconfig = kubeconfig
        self.context = context
        self.defaults = KubernetesOptions.model_validate(
            {
                "image": image,
                "resources": resources,
                "env": env,
                "service_account": service_account,
                "queue_name": queue_name,
                "ttl": ttl,
                "pool": pool,
            }
        )
        self.store_settings = StoreSettings.from_env(url=redis_url)
        self.store: RedisStore | None = None
        self.api_client: client.ApiClient | None = None
        self.watch: TaskRunWatch | None = None
        self._taskruns: TaskRunApi | None = None
        self._enqueues = asyncio.Semaphore(ENQUEUE_CONCURRENCY)
        super().__init__(result_backend=result_backend, task_id_generator=task_id_generator)

    def default_result_backend(self) -> AsyncResultBackend:
        return KubernetesResultBackend(self)

    @property
    def taskruns(self) -> TaskRunApi:
        if self._taskruns is None:
            raise _not_started()
        return self._taskruns

    async def connect(self) -> None:
        """Open the API connection (startup does this; the runtime calls it without a watch)."""
        if self.api_client is None:
            self.api_client = await api_client(self.kubeconfig, self.context)
            self._taskruns = TaskRunApi(self.api_client)
        if self.store is None and self.store_settings.url:
            self.store = RedisStore(self.store_settings)

    async def apply_label_schedules(self, schedules: list[ScheduledTask]) -> bool:
        """Label schedules become CronJobs (or held-back TaskRuns); nothing has to keep running."""
        from podiq.kubernetes.schedules import apply_label_schedules

        await apply_label_schedules(self, schedules)
        return True

    async def startup(self) -> None:
        await self.connect()
        if not self.is_worker_process:
            assert self.api_client is not None
            self.watch = TaskRunWatch(self.api_client, self.namespace)
            await self.watch.start()
        await super().startup()

    async def shutdown(self) -> None:
        await super().shutdown()
        if self.watch is not None:
            await self.watch.stop()
            self.watch = None
        if self.api_client is not None:
            await self.api_client.close()
            self.api_client, self._taskruns = None, None
        if self.store is not None:
            await self.store.close()
            self.store = None

    async def kick(self, message: TaskiqMessage) -> None:
        """Create the TaskRun: one API write (and one Redis write for large arguments);
        a pool run is then added to its pool's stream."""
        body = self.taskrun_body(message)
        pool = body["spec"].get("pool")
        if pool and self.store is None:
            raise SendTaskError(
                f"Task {message.task_name!r} runs on TaskPool {pool!r}, which needs Redis: pass "
                "KubernetesBroker(redis_url=...) or set PODIQ_REDIS_URL (the chart's redis values say where it is)."
            )
        offloaded = await self._offload(message, body)
        try:
            version = await self._create(message, body)
        except BaseException:
            if offloaded and self.store is not None:  # the key is this call's: none was there, or a leftover
                with contextlib.suppress(StoreError):
                    await self.store.delete([body["spec"]["argsRef"]["key"]])
            raise
        if self.watch is not None:
            self.watch.track(message.task_id)
        if pool and not _held_back(body):
            await self._enqueue(message, pool, version)  # a held-back run is enqueued by the operator once it is due

    async def _enqueue(self, message: TaskiqMessage, pool: str, version: str) -> None:
        """The TaskRun exists, so a failure here is not lost: the operator enqueues what nobody did."""
        assert self.store is not None
        try:
            async with self._enqueues:
                await PoolQueue(self.store, self.namespace, pool).enqueue(message.task_id, version=version)
        except StoreError as exc:
            logger.warning(
                "TaskRun %s/%s was created but not added to pool %r (%s); the operator will enqueue it.",
                self.namespace,
                message.task_id,
                pool,
                exc,
            )

    async def _create(self, message: TaskiqMessage, body: dict[str, Any]) -> str:
        """Create the TaskRun; its resourceVersion as created."""
        try:
            created = await self.taskruns.create(self.namespace, body)
        except NotFoundError:
            raise SendTaskError(
                f"Cannot create TaskRun {message.task_id} in namespace {self.namespace!r}: the namespace or the "
                "TaskRun CRD is missing. Install podiq with `helm install podiq charts/podiq` and check the namespace."
            ) from None
        except ConflictError:
            raise _taken(message, self.namespace) from None
        except ApiError as exc:
            raise _refused(exc, message) from None
        return str(created["metadata"].get("resourceVersion") or "")

    async def _offload(self, message: TaskiqMessage, body: dict[str, Any]) -> bool:
        """Arguments over the inline limit go to Redis, unless a TaskRun of that name holds them."""

        async def taken() -> bool:
            return await self.taskruns.get(self.namespace, message.task_id) is not None

        try:
            moved = await offload_arguments(
                self.store, self.store_settings, self.namespace, message.task_id, body["spec"], taken
            )
        except StoreError as exc:
            raise SendTaskError(f"Cannot send {message.task_name!r}: {exc}") from exc
        if moved is None:
            raise _taken(message, self.namespace)
        return moved

    def taskrun_body(self, message: TaskiqMessage) -> dict[str, Any]:
        if not _TASK_NAME.match(message.task_name) or message.task_name.startswith("__main__:"):
            raise InvalidArgumentsError(
                f"Task {message.task_name!r} cannot run on Kubernetes: the runtime imports tasks by their "
                "`module:function` name, so define the task in an importable module (not __main__) and "
                "keep the default task name."
            )
        if not is_dns_label(message.task_id):
            raise InvalidArgumentsError(
                f"Task id {message.task_id!r} cannot name a TaskRun: use at most 63 lowercase letters, "
                "digits and '-', starting and ending with a letter or digit."
            )
        spec = taskrun_spec(message.task_name, message.labels, message.args, message.kwargs, self.defaults)
        labels = {LABEL_TASK: label_value(message.task_name)}
        if spec.pool is not None:  # a pool's runs are selected by it
            labels[LABEL_POOL] = spec.pool
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": message.task_id, "namespace": self.namespace, "labels": labels},
            "spec": to_api(spec),
        }

    async def requeue(self, message: TaskiqMessage) -> None:
        """Nothing to send: the runtime reports the requeue and the operator starts the next attempt."""

    async def cancel(self, task_id: str) -> None:
        """Ask the operator to stop the run (sets `spec.cancelled`); waiters get TaskCancelledError."""
        try:
            await self.taskruns.patch_spec(self.namespace, task_id, {"cancelled": True})
        except NotFoundError:
            raise ResultGetError(f"No TaskRun {self.namespace}/{task_id} to cancel.") from None


def _held_back(body: dict[str, Any]) -> bool:
    """Whether the TaskRun's ``spec.notBefore`` is still ahead (only then is the body parsed)."""
    if not body["spec"].get("notBefore"):
        return False
    return TaskRun.from_api(body).time_until_start(datetime.now(UTC)) is not None


def _taken(message: TaskiqMessage, namespace: str) -> SendTaskError:
    return SendTaskError(
        f"A TaskRun named {message.task_id!r} exists already in {namespace!r}; task ids must be unique."
    )


def _refused(exc: ApiError, message: TaskiqMessage) -> Exception:
    """The API server's refusal of a TaskRun, as an error that says what to change."""
    detail = exc.message
    if exc.status in (400, 422):
        return InvalidArgumentsError(f"The API server refused the TaskRun for {message.task_name!r}: {detail}")
    if exc.status in (401, 403):
        return SendTaskError(
            f"Not allowed to create TaskRuns: {detail}. Grant this identity `create` on taskruns.podiq.io."
        )
    return SendTaskError(f"Creating the TaskRun for {message.task_name!r} failed ({exc.status}): {detail}")


class KubernetesResultBackend(AsyncResultBackend):
    """Results and progress read from TaskRun status; waiting uses the broker's single watch."""

    def __init__(self, broker: KubernetesBroker) -> None:
        self.broker = broker

    async def _read(self, task_id: str) -> TaskRun:
        body = await self.broker.taskruns.get(self.broker.namespace, task_id)
        if body is None:
            raise ResultGetError(f"No TaskRun {self.broker.namespace}/{task_id}: it was never created, or was deleted.")
        return TaskRun.from_api(body)

    async def is_result_ready(self, task_id: str) -> bool:
        return (await self._read(task_id)).is_done()

    async def get_result(self, task_id: str, with_logs: bool = False) -> ResultRecord:
        return await self._record(await self._read(task_id), with_logs)

    async def wait_for_result(
        self, task_id: str, timeout: float | None = None, check_interval: float = 0.2, with_logs: bool = False
    ) -> ResultRecord:
        watch = self.broker.watch
        if watch is None:
            raise _not_started()
        warner = asyncio.create_task(self._warn_if_unattended(task_id))
        told: set[tuple[Any, ...]] = set()
        seen: list[TaskRun] = []

        def tell(taskrun: TaskRun) -> None:
            """Say why a run waits, once per reason: the operator's status, not a silent wait."""
            seen[:] = [taskrun]
            status = taskrun.status
            if status.reason in BLOCKED_REASONS and (status.reason, status.message) not in told:
                told.add((status.reason, status.message))
                logger.warning("TaskRun %s/%s is waiting: %s", taskrun.namespace, task_id, describe(taskrun))

        try:
            taskrun = await watch.wait(task_id, timeout, on_update=tell)
        except TimeoutError:
            state = f"; it is {describe(seen[0])}" if seen else ""
            raise TaskiqResultTimeoutError(f"TaskRun {task_id} did not finish within {timeout} s{state}.") from None
        except TaskRunGone as exc:
            raise ResultGetError(str(exc)) from None
        finally:
            warner.cancel()
        return await self._record(taskrun, with_logs)

    async def _warn_if_unattended(self, task_id: str) -> None:
        """Say so when no operator has looked at the run: waiting would otherwise be silent."""
        await asyncio.sleep(UNATTENDED_AFTER)
        taskrun = await self._read(task_id)
        if taskrun.status.phase is None:
            logger.warning(
                "TaskRun %s/%s has no status after %s s: either no podiq operator serves namespace %r "
                "(install it with `helm install podiq charts/podiq`; watchNamespaces must include it), or the "
                "operator and the cluster are busy (`kubectl get jobs -l podiq.io/taskrun` shows whether its "
                "Job exists; the status follows once the pod shows up). The operator's logs tell which.",
                taskrun.namespace,
                task_id,
                UNATTENDED_AFTER,
                taskrun.namespace,
            )

    async def _record(self, taskrun: TaskRun, with_logs: bool) -> ResultRecord:
        record = await read_result(self.broker.store, taskrun)
        if with_logs and self.broker.api_client is not None:
            record.log = await taskrun_logs(self.broker.api_client, self.broker.store, taskrun)
        return record

    async def set_result(self, task_id: str, result: ResultRecord) -> None:
        raise ResultSetError("On Kubernetes, results are written by the podiq runtime in the task's pod.")

    async def set_progress(self, task_id: str, progress: TaskProgress) -> None:
        raise ResultSetError("On Kubernetes, progress is written by the podiq runtime in the task's pod.")

    async def get_progress(self, task_id: str) -> TaskProgress | None:
        progress = (await self._read(task_id)).status.progress
        return None if progress is None else progress.as_task_progress()


def describe(taskrun: TaskRun) -> str:
    """``Pending (ServiceAccountMissing: ...)``: a run's phase, reason and message, for people."""
    status = taskrun.status
    if status.phase is None:
        return "not yet seen by an operator"
    message = f": {status.message}" if status.message else ""
    return f"{status.phase.value} ({status.reason.value}{message})"


async def pod_logs(connection: client.ApiClient, taskrun: TaskRun) -> str | None:
    """The output of the run's latest pod, or None if there is no pod (any more)."""
    pods = ObjectApi(connection, PODS)
    pod = taskrun.status.pod_name
    if pod is None and taskrun.status.job_name:
        listed = (await pods.list(taskrun.namespace, label_selector=f"job-name={taskrun.status.job_name}")).items
        pod = listed[-1]["metadata"]["name"] if listed else None
    if pod is None:
        return None
    try:
        return await pods.text(taskrun.namespace, pod, "log")
    except ApiError:  # a pod that cannot show its log (not started yet, its node gone) has none to give
        return None


async def taskrun_logs(connection: client.ApiClient, store: RedisStore | None, taskrun: TaskRun) -> str | None:
    """The run's output: its latest pod's whole log while the pod exists, else the tail kept in Redis.

    A pool run's pod is a worker that serves many runs: its log is everyone's, so a pool run's
    output is always the tail its worker kept in Redis for that run alone.
    """
    logs = None if taskrun.spec.pool is not None else await pod_logs(connection, taskrun)
    if logs is None and taskrun.status.log_ref is not None:
        try:
            logs = await read_stored_log(store, taskrun)
        except StoreError as exc:  # a missing log does not hide a result
            logger.warning("The output of TaskRun %s/%s cannot be read: %s", taskrun.namespace, taskrun.name, exc)
    return logs


__all__ = ["KubernetesBroker", "KubernetesResultBackend", "describe", "pod_logs", "taskrun_logs"]
