"""The TaskRun resource: one set of models shared by the client, the operator and the runtime.

A TaskRun (``podiq.io/v1alpha1``, namespaced) is one call of a task. Like Tekton's
TaskRun, its spec is *intent* (what to run, how, the retry policy, cancellation)
and its status is *observation* (what happened so far). The CRD in
``crds/taskrun.yaml`` is generated from these models (see :mod:`podiq.kubernetes.crd`)
and a unit test keeps the two identical.

Python attributes are snake_case; the API sees camelCase aliases. Always dump with
:func:`to_api` (``by_alias``, ``exclude_none``, JSON mode) so that optional fields
are absent rather than ``null`` on the server.

Who writes what in ``status``:

* the **operator** writes it when an attempt starts (attempts, jobName, Running),
  when a run is held back (Waiting) or stuck (Unschedulable, ImagePullBackOff, ...),
  when it is cancelled, and when an attempt dies without reporting;
* the **runtime** in the pod writes progress while the task runs, and once at the end
  the attempt's outcome (result, condition, completion time) through
  :meth:`TaskRun.finish_attempt`, the same policy function the operator uses.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer
from pydantic.alias_generators import to_camel

from podiq._labels import REQUEUE_LABEL
from podiq._progress import TaskProgress
from podiq.exceptions import ResultSetError, TaskCancelledError, TaskiqError
from podiq.kubernetes.storage import StoredValue

__all__ = [
    "API_VERSION",
    "BLOCKED_REASONS",
    "GROUP",
    "KIND",
    "KUEUE_QUEUE_LABEL",
    "LABEL_ATTEMPT",
    "LABEL_POOL",
    "LABEL_TASK",
    "LABEL_TASKRUN",
    "MAX_INLINE_RESULT_BYTES",
    "PLURAL",
    "REQUEUE_LABEL",
    "is_dns_label",
    "SHORT_NAMES",
    "SINGULAR",
    "SUCCEEDED",
    "TASK_NAME_PATTERN",
    "VERSION",
    "Condition",
    "ConditionStatus",
    "EnvVar",
    "InfrastructureError",
    "ObjectMeta",
    "Phase",
    "Progress",
    "Reason",
    "ResourceRequirements",
    "ResultTooLargeError",
    "StoredValue",
    "TaskRun",
    "TaskRunSpec",
    "TaskRunStatus",
    "encode_result",
    "error_result",
    "format_duration",
    "label_value",
    "message_labels",
    "status_patch",
    "to_api",
]

GROUP = "podiq.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "TaskRun"
PLURAL = "taskruns"
SINGULAR = "taskrun"
#: ``tr`` belongs to Tekton; ``pqr`` is short and unclaimed.
SHORT_NAMES = ("pqr",)
CATEGORIES = ("podiq",)

#: Labels the operator puts on Jobs and Pods, and the client may put on TaskRuns.
LABEL_TASKRUN = f"{GROUP}/taskrun"
LABEL_TASK = f"{GROUP}/task"
LABEL_ATTEMPT = f"{GROUP}/attempt"
#: A pool run's pool, on its TaskRun (``kubectl get taskruns -l podiq.io/pool=<pool>``) and on the pool's worker pods.
LABEL_POOL = f"{GROUP}/pool"
#: Kueue admits a Job into a queue by this label.
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
#: The taskiq label counting requeues (a string holding an int, as in taskiq).

#: ``module.path:function``: the runtime imports the module and looks the function up.
#: Written for Go's regexp (the API server) and Python alike: ASCII classes, no ``\\w``.
TASK_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$"

#: The largest result kept inline in ``status.result``, as compact UTF-8 JSON.
#: etcd refuses objects above ~1.5 MiB and every watcher receives the whole object on
#: each status write, so results stay well below that; larger ones must go elsewhere.
MAX_INLINE_RESULT_BYTES = 256 * 1024

#: The type of the TaskRun's only condition (Tekton's convention).
SUCCEEDED = "Succeeded"

_LABEL_VALUE_MAX = 63
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_DNS_LABEL_MATCH = re.compile(DNS_LABEL).match
_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


class ResultTooLargeError(ResultSetError, ValueError):
    """A task result is too large to be kept inline in the TaskRun's status."""


class InfrastructureError(TaskiqError):
    """An attempt ended without the task reporting: the pod was killed, evicted,
    timed out, deleted, or the runtime crashed. Raised on the client from the
    error result the operator writes in that case."""


def _timestamp(value: datetime) -> str:
    # Kubernetes' metav1.Time is second-precision RFC 3339 in UTC.
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


Timestamp = Annotated[AwareDatetime, PlainSerializer(_timestamp, return_type=str, when_used="json")]


class _Model(BaseModel):
    # Unknown fields are ignored, not rejected: an older client or runtime must be able
    # to read a TaskRun written by a newer operator.
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        use_enum_values=False,
        validate_assignment=True,
    )


class Phase(str, enum.Enum):
    """A TaskRun's coarse state, for people and ``kubectl get``; the condition has the detail."""

    PENDING = "Pending"
    """No attempt is running: not started yet, held back, queued, stuck, or between attempts."""
    RUNNING = "Running"
    """An attempt's Job exists and nothing says it is stuck."""
    SUCCEEDED = "Succeeded"
    """The task returned; ``status.result`` holds its return value."""
    FAILED = "Failed"
    """The task raised (or its attempts died) and no retry is left; ``status.result`` holds the error."""
    REJECTED = "Rejected"
    """The task rejected its message (``Context.reject()``); never retried."""
    CANCELLED = "Cancelled"
    """``spec.cancelled`` was set before the run finished; its Job was deleted."""


class ConditionStatus(str, enum.Enum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Reason(str, enum.Enum):
    """Why the ``Succeeded`` condition has its status. One documented list, used by everyone."""

    # --- Unknown: not finished ---
    PENDING = "Pending"
    """Accepted; the first attempt has not been started yet."""
    WAITING = "Waiting"
    """Held back until ``spec.notBefore``."""
    QUEUED = "Queued"
    """The attempt's Job is suspended, waiting for admission by a queue (Kueue)."""
    RUNNING = "Running"
    """An attempt's Job was created and is running (or its pod is starting)."""
    RETRYING = "Retrying"
    """An attempt failed and the retry policy allows another; the next attempt is being started."""
    REQUEUED = "Requeued"
    """The task asked to be requeued; the next attempt is being started."""
    UNSCHEDULABLE = "Unschedulable"
    """The attempt's pod cannot be scheduled (PodScheduled=False): resources, selectors, taints."""
    IMAGE_PULL_BACK_OFF = "ImagePullBackOff"
    """The attempt's pod cannot pull its image (ImagePullBackOff, ErrImagePull, InvalidImageName)."""
    QUOTA_EXCEEDED = "QuotaExceeded"
    """The Job cannot create its pod: a ResourceQuota forbids it (exceeded, or it needs requests/limits)."""
    LIMIT_RANGE = "LimitRange"
    """The Job cannot create its pod: the namespace's LimitRange forbids its resources."""
    SERVICE_ACCOUNT_MISSING = "ServiceAccountMissing"
    """The Job cannot create its pod: its service account does not exist in the namespace."""
    POD_SECURITY = "PodSecurity"
    """The Job cannot create its pod: the namespace's Pod Security level forbids it."""
    ADMISSION_DENIED = "AdmissionDenied"
    """The Job cannot create its pod: an admission webhook or policy denied it."""
    INVALID_POD_SPEC = "InvalidPodSpec"
    """The Job cannot create its pod: the API server finds the pod invalid (resources, env, names)."""
    POD_CREATE_FAILED = "PodCreateFailed"
    """The Job cannot create its pod for another reason; the message is the Job controller's."""
    CONTAINER_CONFIG_ERROR = "CreateContainerConfigError"
    """The pod cannot start its container: a ConfigMap, Secret or setting it needs is missing."""
    NOT_STARTED = "NotStarted"
    """The attempt's pod did not start within the pending deadline, and Kubernetes said nothing why."""
    # --- True ---
    SUCCEEDED = "Succeeded"
    """The task returned."""
    # --- False: finished without success ---
    FAILED = "Failed"
    """The task raised, or its pod died, and no retry is left."""
    TIMED_OUT = "TimedOut"
    """The last attempt ran past ``spec.timeoutSeconds`` and no retry is left."""
    REJECTED = "Rejected"
    """The task rejected its message."""
    CANCELLED = "Cancelled"
    """Cancelled by ``spec.cancelled``."""
    NAMESPACE_EXCLUDED = "NamespaceExcluded"
    """The operator does not run tasks in this namespace (the chart's ``excludedNamespaces``)."""


_DONE_PHASE = {
    Reason.SUCCEEDED: Phase.SUCCEEDED,
    Reason.FAILED: Phase.FAILED,
    Reason.TIMED_OUT: Phase.FAILED,
    Reason.REJECTED: Phase.REJECTED,
    Reason.CANCELLED: Phase.CANCELLED,
    Reason.NAMESPACE_EXCLUDED: Phase.FAILED,
}
#: Reasons under which an attempt cannot start. Each is also how a run ends (False, Failed)
#: when it stays so past its pending deadline.
BLOCKED_REASONS = frozenset(
    {
        Reason.QUEUED,
        Reason.UNSCHEDULABLE,
        Reason.IMAGE_PULL_BACK_OFF,
        Reason.QUOTA_EXCEEDED,
        Reason.LIMIT_RANGE,
        Reason.SERVICE_ACCOUNT_MISSING,
        Reason.POD_SECURITY,
        Reason.ADMISSION_DENIED,
        Reason.INVALID_POD_SPEC,
        Reason.POD_CREATE_FAILED,
        Reason.CONTAINER_CONFIG_ERROR,
        Reason.NOT_STARTED,
    }
)
#: Reasons under which an attempt is in flight; every other unfinished reason is Pending.
_RUNNING_REASONS = frozenset({Reason.RUNNING})
#: Unfinished reasons after which the operator must start the next attempt.
_NEXT_ATTEMPT_REASONS = frozenset({Reason.RETRYING, Reason.REQUEUED})


class Condition(_Model):
    """The ``Succeeded`` condition: Unknown while running, True or False once done."""

    type: str = Field(default=SUCCEEDED, max_length=64)
    status: ConditionStatus
    reason: Reason
    message: str = Field(default="", max_length=32768)
    last_transition_time: Timestamp | None = None


class EnvVar(_Model):
    """An environment variable for the task's container (literal values only)."""

    name: str = Field(pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$", max_length=256)
    value: str = Field(default="", max_length=32768)


class ResourceRequirements(_Model):
    """The container's resource requests and limits (Kubernetes quantities)."""

    limits: dict[str, int | str] | None = None
    requests: dict[str, int | str] | None = None


class Progress(_Model):
    """A running task's progress, as reported through its Context (``podiq.TaskProgress``)."""

    current: int = Field(strict=True, ge=0)
    total: int = Field(strict=True, ge=0)
    message: str = Field(default="", max_length=4096)

    @property
    def text(self) -> str:
        return f"{self.current}/{self.total}"

    @classmethod
    def of(cls, progress: TaskProgress) -> Progress:
        """A task's reported progress as the status holds it (the message cut to fit)."""
        return cls(current=progress.current, total=progress.total, message=progress.message[:4096])

    def as_task_progress(self) -> TaskProgress:
        return TaskProgress(self.current, self.total, self.message)


class TaskRunSpec(_Model):
    """What to run and how: written by the client, read by the operator and the runtime.

    Only ``cancelled`` is meant to change after creation.
    """

    task_name: str = Field(
        pattern=TASK_NAME_PATTERN, max_length=512, description="The task, as `module.path:function`."
    )
    task_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="taskiq's task id; defaults to the TaskRun's name.",
    )
    args: list[Any] = Field(default_factory=list, description="Positional arguments (JSON).")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments (JSON).")
    args_ref: StoredValue | None = Field(
        default=None,
        description="Arguments kept in Redis (`{args, kwargs}` as JSON) when too large for the spec.",
    )
    labels: dict[str, Any] = Field(default_factory=dict, description="taskiq message labels (JSON values).")
    image: str | None = Field(
        default=None, max_length=1024, description="The runtime image; the operator's default if absent."
    )
    resources: ResourceRequirements | None = None
    env: list[EnvVar] | None = Field(default=None, max_length=256)
    service_account_name: str | None = Field(default=None, pattern=_DNS_SUBDOMAIN, max_length=253)
    timeout_seconds: float | None = Field(
        default=None,
        gt=0,
        description="Per attempt; the runtime cancels the task after it, the Job is killed a little later.",
    )
    pending_deadline_seconds: int | None = Field(
        default=None,
        strict=True,
        ge=1,
        le=7 * 24 * 3600,
        description="Per attempt: end the run Failed when its pod has not started this long after its Job was "
        "created (the operator's default if absent; a Job queued by Kueue is not counted).",
    )
    retry_on_error: bool = Field(
        default=False, strict=True, description="Retry attempts that fail (task errors and pod failures)."
    )
    max_retries: int = Field(
        default=3, strict=True, ge=0, le=100, description="Retries after the first attempt, when retryOnError."
    )
    not_before: Timestamp | None = Field(default=None, description="Do not start before this time (RFC 3339).")
    cancelled: bool = Field(default=False, strict=True, description="Set to true to cancel the run.")
    ttl_seconds_after_finished: int | None = Field(
        default=None,
        strict=True,
        ge=0,
        description="Delete the TaskRun this long after it finished.",
    )
    queue_name: str | None = Field(
        default=None, pattern=_DNS_SUBDOMAIN, max_length=253, description="Kueue LocalQueue."
    )
    pool: str | None = Field(
        default=None,
        pattern=DNS_LABEL,
        max_length=40,
        description="Run on the warm workers of this TaskPool (through its Redis stream) instead of as a Job.",
    )


class TaskRunStatus(_Model):
    """What happened so far: written by the operator and the runtime, never by the client."""

    phase: Phase | None = None
    conditions: list[Condition] = Field(default_factory=list, max_length=8)
    start_time: Timestamp | None = Field(default=None, description="When the first attempt started.")
    completion_time: Timestamp | None = None
    duration: str | None = Field(default=None, max_length=32, description="completionTime - startTime, for people.")
    attempts: int = Field(default=0, strict=True, ge=0, description="Attempts started so far.")
    retries: int = Field(default=0, strict=True, ge=0, description="Failed attempts that were retried.")
    requeues: int = Field(
        default=0, strict=True, ge=0, description="Attempts that ended by requeueing; the X-Taskiq-requeue label."
    )
    reported_attempt: int | None = Field(
        default=None,
        ge=1,
        description="The attempt whose outcome is recorded here (written with the outcome).",
    )
    job_name: str | None = Field(default=None, max_length=63)
    pod_name: str | None = Field(
        default=None, max_length=253, description="The attempt's pod: its Job's, or the pool worker's."
    )
    progress: Progress | None = None
    progress_text: str | None = Field(default=None, max_length=64, description="progress as `current/total`.")
    result: dict[str, Any] | None = Field(
        default=None,
        description="The attempt's TaskiqResult as JSON (podiq's ResultRecord); at most 256 KiB.",
    )
    result_ref: StoredValue | None = Field(
        default=None,
        description="The attempt's result kept in Redis when too large for `result`, which is then absent.",
    )
    log_ref: StoredValue | None = Field(
        default=None, description="The tail of the reported attempt's output, kept in Redis."
    )
    observed_generation: int | None = Field(default=None, ge=0)

    # --- predicates ---

    @property
    def condition(self) -> Condition | None:
        return next((c for c in self.conditions if c.type == SUCCEEDED), None)

    @property
    def reason(self) -> Reason:
        cond = self.condition
        return cond.reason if cond is not None else Reason.PENDING

    @property
    def message(self) -> str:
        cond = self.condition
        return cond.message if cond is not None else ""

    def is_done(self) -> bool:
        """True once the run finished, whichever way (Tekton's ``IsDone``)."""
        cond = self.condition
        return cond is not None and cond.status is not ConditionStatus.UNKNOWN

    def is_succeeded(self) -> bool:
        cond = self.condition
        return cond is not None and cond.status is ConditionStatus.TRUE

    def is_cancelled(self) -> bool:
        """True once the operator observed the cancellation and stopped the run."""
        return self.reason is Reason.CANCELLED and self.is_done()

    def wants_next_attempt(self) -> bool:
        """The current attempt reported a retry or a requeue, and no newer attempt exists yet."""
        return not self.is_done() and self.reason in _NEXT_ATTEMPT_REASONS and self.reported_attempt == self.attempts

    def has_report_for(self, attempt: int) -> bool:
        return self.reported_attempt is not None and self.reported_attempt >= attempt

    # --- mutators (each leaves the status coherent; none touches the API) ---

    def set_condition(self, reason: Reason, message: str, now: datetime, *, final: bool = False) -> None:
        """Set the ``Succeeded`` condition and the phase that follows from it.

        ``final`` ends the run with a reason that otherwise means "not yet" (an attempt that
        could not start by its deadline ends Failed, with the reason it could not).
        The transition time moves only when something changed, so that setting the
        same condition twice leaves the status equal and nothing is written.
        """
        status = (
            ConditionStatus.TRUE
            if reason is Reason.SUCCEEDED
            else ConditionStatus.FALSE
            if reason in _DONE_PHASE or final
            else ConditionStatus.UNKNOWN
        )
        current = self.condition
        if current is None or (current.status, current.reason, current.message) != (status, reason, message):
            new = Condition(status=status, reason=reason, message=message, last_transition_time=now)
            self.conditions = [c for c in self.conditions if c.type != SUCCEEDED] + [new]
        self.phase = (
            _DONE_PHASE.get(reason)
            or (Phase.FAILED if final else None)
            or (Phase.RUNNING if reason in _RUNNING_REASONS else Phase.PENDING)
        )

    def mark_waiting(self, not_before: datetime, now: datetime) -> None:
        self.set_condition(Reason.WAITING, f"Not starting before {_timestamp(not_before)}.", now)

    def mark_attempt_started(self, attempt: int, job_name: str | None, now: datetime) -> None:
        """The operator created the Job for ``attempt``."""
        self.attempts = attempt
        self.job_name = job_name
        self.pod_name = None
        if self.start_time is None:
            self.start_time = now
        where = f"as Job {job_name}" if job_name else "on a pool worker"
        self.set_condition(Reason.RUNNING, f"Attempt {attempt} is running {where}.", now)

    def record_attempt(self, attempt: int, job_name: str | None, started: datetime) -> bool:
        """Record ``attempt`` unless the status already does; True if it did.

        The Job is the record that an attempt started, and the status catches up lazily:
        the operator when the pod shows up, the runtime with its outcome, whichever is first.
        """
        if self.attempts >= attempt:
            return False
        self.mark_attempt_started(attempt, job_name, started)
        return True

    def mark_blocked(self, reason: Reason, message: str, now: datetime) -> None:
        """The current attempt cannot start (one of :data:`BLOCKED_REASONS`)."""
        self.set_condition(reason, message, now)

    def mark_cancelled(
        self, now: datetime, message: str = "Cancelled.", *, labels: Mapping[str, Any] | None = None
    ) -> None:
        """Cancelled before finishing: the result is a TaskCancelledError, so waiting clients raise it."""
        self.result, self.result_ref = error_result(TaskCancelledError, message, labels=labels), None
        self.mark_finished(Reason.CANCELLED, message, now)

    def set_progress(self, progress: Progress) -> None:
        self.progress = progress
        self.progress_text = progress.text

    def mark_finished(self, reason: Reason, message: str, now: datetime) -> None:
        """The run is over: set the final condition, completion time and duration."""
        self.set_condition(reason, message, now, final=True)
        self.completion_time = now
        if self.start_time is not None:
            self.duration = format_duration(now - self.start_time)


class ObjectMeta(_Model):
    """The parts of ``metadata`` podiq reads; everything else is kept as it is."""

    model_config = ConfigDict(extra="allow", alias_generator=to_camel, populate_by_name=True)

    name: str | None = None
    generate_name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: Timestamp | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class TaskRun(_Model):
    """A whole TaskRun object, as the API server stores it."""

    api_version: str = API_VERSION
    kind: str = KIND
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: TaskRunSpec
    status: TaskRunStatus = Field(default_factory=TaskRunStatus)

    @classmethod
    def from_api(cls, body: Mapping[str, Any]) -> TaskRun:
        return cls.model_validate(dict(body))

    @property
    def name(self) -> str:
        assert self.metadata.name, "a TaskRun read from the API has a name"
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace or "default"

    @property
    def task_id(self) -> str:
        return self.spec.task_id or self.name

    def message_labels(self) -> dict[str, Any]:
        """The labels the task sees: the spec's, plus the requeue count once it requeued."""
        return message_labels(self.spec, self.status)

    def is_done(self) -> bool:
        return self.status.is_done()

    def cancel_requested(self) -> bool:
        """Cancellation was asked for (intent), whether or not it has been carried out."""
        return self.spec.cancelled

    def time_until_start(self, now: datetime) -> timedelta | None:
        """How long until ``spec.notBefore``, if it is in the future."""
        if self.spec.not_before is None or self.spec.not_before <= now:
            return None
        return self.spec.not_before - now


def message_labels(spec: TaskRunSpec, status: TaskRunStatus) -> dict[str, Any]:
    """The labels the task sees: the spec's, plus the requeue count once it requeued."""
    labels = dict(spec.labels)
    if status.requeues:
        labels[REQUEUE_LABEL] = str(_int_label(labels.get(REQUEUE_LABEL)) + status.requeues)
    return labels


def _int_label(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def to_api(model: BaseModel) -> dict[str, Any]:
    """The model as the API server wants it: camelCase, JSON types, no nulls."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def status_patch(old: TaskRunStatus, new: TaskRunStatus) -> dict[str, Any]:
    """A JSON merge patch for ``status`` turning ``old`` into ``new``; empty when nothing changed.

    Only changed top-level fields are sent (a progress update does not resend a 256 KiB
    result); fields that became unset are sent as ``null``, which a merge patch deletes.
    """
    before, after = to_api(old), to_api(new)
    patch: dict[str, Any] = {k: v for k, v in after.items() if before.get(k) != v}
    patch.update({k: None for k in before if k not in after})
    return patch


def encode_result(record: BaseModel | Mapping[str, Any]) -> dict[str, Any]:
    """A result as the JSON object to store in ``status.result``, checked against the inline limit.

    Raises :class:`ResultTooLargeError` above :data:`MAX_INLINE_RESULT_BYTES`, naming the size,
    so that the runtime can record an error result instead of failing the status write.
    """
    data = record.model_dump(mode="json") if isinstance(record, BaseModel) else dict(record)
    size = len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_INLINE_RESULT_BYTES:
        raise ResultTooLargeError(
            f"the task's result is {size} bytes as JSON; at most {MAX_INLINE_RESULT_BYTES} bytes "
            "are kept inline in a TaskRun's status. Return a smaller value, e.g. a reference to "
            "where the data is stored."
        )
    return data


def error_result(
    exc_type: type[BaseException],
    message: str,
    *,
    labels: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An error result (the JSON form of a failed TaskiqResult) for a failure outside the task."""
    return {
        "is_err": True,
        "return_value": None,
        "execution_time": 0.0,
        "labels": dict(labels or {}),
        "error": {
            "type": exc_type.__qualname__,
            "module": exc_type.__module__,
            "message": message,
            "args": [message],
            "attributes": {},
            "traceback": "",
        },
        "log": None,
    }


def format_duration(delta: timedelta) -> str:
    """A short human duration like ``4s``, ``3m12s``, ``2h5m`` (kubectl's style)."""
    seconds = max(0, math.floor(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h"


_LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def is_dns_label(value: object, max_length: int = 63) -> bool:
    """An RFC 1123 label, as names of TaskRuns, Jobs and CronJobs must be."""
    return isinstance(value, str) and len(value) <= max_length and _DNS_LABEL_MATCH(value) is not None


def label_value(text: str) -> str:
    """``text`` as a valid label value (≤63 chars of ``[A-Za-z0-9_.-]``, alphanumeric ends).

    Task names contain ``:``, which labels forbid; long names keep a hash suffix so that
    distinct names stay distinct.
    """
    value = _LABEL_UNSAFE.sub(".", text).strip("._-")
    if len(value) > _LABEL_VALUE_MAX:
        digest = hashlib.sha256(text.encode()).hexdigest()[:10]
        value = value[: _LABEL_VALUE_MAX - len(digest) - 1].rstrip("._-") + "-" + digest
    return value
