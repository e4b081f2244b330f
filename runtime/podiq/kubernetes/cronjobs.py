"""CronJobs and held-back TaskRuns for schedules, built and read as plain data (no API calls).

A cron schedule is a CronJob whose every firing runs :mod:`podiq.kubernetes.firing`, which
creates one TaskRun; a one-shot ``time`` schedule is a TaskRun with ``spec.notBefore``.
:mod:`podiq.kubernetes.schedules` makes the API calls.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from podiq._labels import SCHEDULE_ID_LABEL
from podiq._message import TaskiqMessage
from podiq._problems import problems
from podiq._schedules import ScheduledTask, validate_timezone
from podiq.exceptions import InvalidScheduleError
from podiq.kubernetes.podsecurity import container_security_context, pod_security_context
from podiq.kubernetes.resources import GROUP, LABEL_TASK, TaskRun, is_dns_label, label_value

if TYPE_CHECKING:
    from podiq.kubernetes.broker import KubernetesBroker

__all__ = [
    "ANNOTATION_INTERVAL",
    "DEFAULT_FIRING_IMAGE",
    "DEFAULT_FIRING_RESOURCES",
    "DEFAULT_TIMEZONE",
    "FIRING_COMMAND",
    "LABEL_SCHEDULE_ID",
    "LABEL_TRIGGER",
    "MAX_SCHEDULE_ID",
    "SCHEDULER_SERVICE_ACCOUNT",
    "CronJobOptions",
    "ScheduleEntry",
    "cron_for_interval",
    "cronjob_body",
    "entry_from_cronjob",
    "entry_from_taskrun",
    "one_shot_taskrun_body",
    "taskrun_template",
    "timezone_for",
    "validate_schedule_id",
]

#: On CronJobs, their Jobs and pods, and on every TaskRun a schedule made.
LABEL_SCHEDULE_ID = f"{GROUP}/schedule-id"
#: On TaskRuns a schedule made: ``cron`` (a firing of a CronJob) or ``time`` (a one-shot run).
LABEL_TRIGGER = f"{GROUP}/schedule-trigger"
#: On CronJobs made from ``schedule_by_interval``: the interval in seconds, to list it back as one.
ANNOTATION_INTERVAL = f"{GROUP}/interval-seconds"

#: The CronJob controller appends ``-<minutes since the epoch>`` (11 characters) to name Jobs (≤63).
MAX_SCHEDULE_ID = 52

SCHEDULER_SERVICE_ACCOUNT = "podiq-scheduler"
#: The firing only needs podiq, not the task's code: the runtime image does.
DEFAULT_FIRING_IMAGE = "ghcr.io/podiq/runtime:latest"
DEFAULT_FIRING_RESOURCES: dict[str, Any] = {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}
FIRING_COMMAND = ["python", "-m", "podiq.kubernetes.firing"]
FIRING_CONTAINER = "fire"
#: Cron times without a zone are UTC, as with podiq's in-process scheduler.
DEFAULT_TIMEZONE = "Etc/UTC"
#: The firing's environment (read by podiq.kubernetes.firing): the TaskRun template as JSON (its
#: metadata labels and spec), the concurrency policy, the firing Job's name and namespace.
ENV_TEMPLATE = "PODIQ_SCHEDULE_TASKRUN"
ENV_WAIT = "PODIQ_SCHEDULE_CONCURRENCY"
ENV_JOB_NAME = "PODIQ_FIRING_JOB"
ENV_NAMESPACE = "PODIQ_FIRING_NAMESPACE"
#: Firing exit codes that fail the Job at once: the run ended without success; the API refused the TaskRun.
EXIT_RUN_FAILED = 3
EXIT_REFUSED = 4
#: Retries of a firing pod that could not reach the API; the TaskRun is created at most once anyway.
FIRING_BACKOFF_LIMIT = 3

_COMMON_LABELS = {"app.kubernetes.io/managed-by": "podiq", "app.kubernetes.io/component": "schedule"}


class CronJobOptions(BaseModel):
    """CronJob settings a schedule takes from its task's and call's labels (``timezone`` also from ``CronSpec``)."""

    model_config = ConfigDict(extra="ignore")

    timezone: str | None = None
    concurrency_policy: Literal["Allow", "Forbid", "Replace"] = "Allow"
    starting_deadline_seconds: StrictInt | None = Field(default=None, ge=1)
    successful_jobs_history_limit: StrictInt | None = Field(default=None, ge=0)
    failed_jobs_history_limit: StrictInt | None = Field(default=None, ge=0)

    @classmethod
    def from_labels(cls, labels: dict[str, Any]) -> CronJobOptions:
        try:
            options = cls.model_validate(labels)
            if options.timezone is not None:
                validate_timezone(options.timezone)
        except ValidationError as exc:
            raise InvalidScheduleError(f"Invalid schedule options: {problems(exc, noun='label')}.") from None
        except ValueError as exc:
            raise InvalidScheduleError(f"Invalid schedule options: label 'timezone': {exc}.") from None
        return options


def validate_schedule_id(schedule_id: str) -> str:
    if not is_dns_label(schedule_id, MAX_SCHEDULE_ID):
        raise InvalidScheduleError(
            f"schedule_id {schedule_id!r} cannot name a CronJob: use at most {MAX_SCHEDULE_ID} lowercase "
            "letters, digits and '-', starting and ending with a letter or digit."
        )
    return schedule_id


def timezone_for(schedule: ScheduledTask, options: CronJobOptions) -> str:
    """The CronJob's ``timeZone``: the CronSpec's (``cron_offset``), else the ``timezone`` label, else UTC.

    A ``timedelta`` offset of whole hours becomes the matching fixed ``Etc/GMT±h`` zone (whose sign
    is inverted, by the tz database's convention); other offsets cannot be expressed.
    """
    offset = schedule.cron_offset
    if isinstance(offset, str):
        return offset
    if isinstance(offset, timedelta):
        seconds = int(offset.total_seconds())
        hours, rest = divmod(abs(seconds), 3600)
        if rest or offset != timedelta(seconds=seconds) or not (-12 * 3600 <= seconds <= 14 * 3600):
            raise InvalidScheduleError(
                f"cron_offset {offset!r} cannot be a CronJob time zone: use an IANA name such as "
                "'Europe/Berlin', or a whole number of hours between -12 and +14."
            )
        if hours == 0:
            return DEFAULT_TIMEZONE
        return f"Etc/GMT{'-' if seconds > 0 else '+'}{hours}"
    return options.timezone or DEFAULT_TIMEZONE


_HOURLY_DIVISORS = {1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30}
_DAILY_DIVISORS = {1, 2, 3, 4, 6, 8, 12}


def cron_for_interval(interval: timedelta) -> str:
    """The cron string firing exactly every ``interval``, for intervals that divide an hour or a day.

    CronJobs fire on minute boundaries and restart their count each hour (for ``*/m``) or each day
    (for ``*/h``), so only those intervals are exact; anything else is refused.
    """
    seconds = int(interval.total_seconds())
    minutes, rest = divmod(seconds, 60)
    if rest == 0 and minutes in _HOURLY_DIVISORS:
        return "* * * * *" if minutes == 1 else f"*/{minutes} * * * *"
    if rest == 0 and minutes == 60:
        return "0 * * * *"
    hours, rest = divmod(minutes, 60)
    if rest == 0 and hours in _DAILY_DIVISORS:
        return f"0 */{hours} * * *"
    if rest == 0 and hours == 24:
        return "0 0 * * *"
    raise InvalidScheduleError(
        f"interval: {seconds} s cannot be a Kubernetes CronJob, which fires on minute boundaries: use an "
        "interval that divides an hour or a day (60, 120, 180, 240, 300, 360, 600, 720, 900, 1200, 1800, "
        "3600 s; 2, 3, 4, 6, 8, 12, 24 h), or schedule_by_cron."
    )


def _check_cron_for_kubernetes(cron: str) -> str:
    # croniter knows Quartz-style L, W and #; the CronJob controller's parser does not.
    if any(mark in cron for mark in ("L", "W", "#")):
        raise InvalidScheduleError(
            f"cron: {cron!r} uses L, W or #, which Kubernetes CronJobs do not understand; use plain "
            "five-field cron syntax."
        )
    return cron


def taskrun_template(broker: KubernetesBroker, schedule: ScheduledTask) -> dict[str, Any]:
    """The TaskRun a firing creates, without its name: ``{"labels": ..., "spec": ...}``.

    Built by the broker exactly as a ``kiq`` of the same call, so task name, labels and options
    are checked now, at the call.
    """
    body = broker.taskrun_body(_message(schedule, "template"))
    labels = {**body["metadata"]["labels"], LABEL_SCHEDULE_ID: schedule.schedule_id, LABEL_TRIGGER: "cron"}
    return {"labels": labels, "spec": body["spec"]}


def _message(schedule: ScheduledTask, task_id: str) -> TaskiqMessage:
    return TaskiqMessage(
        task_id=task_id,
        task_name=schedule.task_name,
        labels={**schedule.labels, SCHEDULE_ID_LABEL: schedule.schedule_id},
        args=schedule.args,
        kwargs=schedule.kwargs,
    )


def cronjob_body(
    schedule: ScheduledTask,
    template: dict[str, Any],
    *,
    namespace: str,
    image: str,
    service_account: str = SCHEDULER_SERVICE_ACCOUNT,
    resources: dict[str, Any] | None = None,
    image_pull_policy: str | None = None,
) -> dict[str, Any]:
    """The batch/v1 CronJob for a cron (or interval) schedule; raises InvalidScheduleError naming the field."""
    schedule_id = validate_schedule_id(schedule.schedule_id)
    options = CronJobOptions.from_labels(schedule.labels)
    annotations: dict[str, str] = {}
    if schedule.interval is not None:
        cron = cron_for_interval(schedule.interval)
        annotations[ANNOTATION_INTERVAL] = str(int(schedule.interval.total_seconds()))
    elif schedule.cron is not None:
        cron = _check_cron_for_kubernetes(schedule.cron)
    else:
        raise InvalidScheduleError("a CronJob needs a cron or interval schedule; one-shot times are TaskRuns.")
    zone = timezone_for(schedule, options)
    labels = {LABEL_SCHEDULE_ID: schedule_id, LABEL_TASK: label_value(schedule.task_name), **_COMMON_LABELS}

    container: dict[str, Any] = {
        "name": FIRING_CONTAINER,
        "image": image,
        "command": list(FIRING_COMMAND),
        "env": [
            {"name": ENV_TEMPLATE, "value": json.dumps(template, separators=(",", ":"), sort_keys=True)},
            {"name": ENV_WAIT, "value": options.concurrency_policy},
            {
                "name": ENV_JOB_NAME,
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['batch.kubernetes.io/job-name']"}},
            },
            {"name": ENV_NAMESPACE, "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        ],
        "securityContext": container_security_context(),
        "resources": resources if resources is not None else DEFAULT_FIRING_RESOURCES,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if image_pull_policy:
        container["imagePullPolicy"] = image_pull_policy
    spec: dict[str, Any] = {
        "schedule": cron,
        "timeZone": zone,
        "concurrencyPolicy": options.concurrency_policy,
        "jobTemplate": {
            "metadata": {"labels": labels},
            "spec": {
                "backoffLimit": FIRING_BACKOFF_LIMIT,
                # The run ended without success, or the API refused the TaskRun: retrying cannot help.
                "podFailurePolicy": {
                    "rules": [
                        {
                            "action": "FailJob",
                            "onExitCodes": {
                                "containerName": FIRING_CONTAINER,
                                "operator": "In",
                                "values": [EXIT_RUN_FAILED, EXIT_REFUSED],
                            },
                        }
                    ]
                },
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "restartPolicy": "Never",
                        "serviceAccountName": service_account,
                        "enableServiceLinks": False,
                        "securityContext": pod_security_context(),
                        "containers": [container],
                    },
                },
            },
        },
    }
    for field in ("starting_deadline_seconds", "successful_jobs_history_limit", "failed_jobs_history_limit"):
        value = getattr(options, field)
        if value is not None:
            spec[_camel(field)] = value
    metadata: dict[str, Any] = {"name": schedule_id, "namespace": namespace, "labels": labels}
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": metadata, "spec": spec}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def one_shot_taskrun_body(broker: KubernetesBroker, schedule: ScheduledTask, task_id: str) -> dict[str, Any]:
    """The TaskRun for ``schedule_by_time``: held back by ``spec.notBefore`` until the schedule's time."""
    assert schedule.time is not None
    validate_schedule_id(schedule.schedule_id)
    when = schedule.time if schedule.time.tzinfo else schedule.time.replace(tzinfo=UTC)
    body = broker.taskrun_body(_message(schedule, task_id))
    body["metadata"]["labels"].update({LABEL_SCHEDULE_ID: schedule.schedule_id, LABEL_TRIGGER: "time"})
    body["spec"]["notBefore"] = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return body


@dataclass
class ScheduleEntry:
    """A schedule as listed: the scheduled task plus what Kubernetes knows about it."""

    schedule: ScheduledTask
    kind: Literal["cron", "interval", "time"]
    resource: str  # "cronjob/<name>" or "taskrun/<name>"
    concurrency_policy: str | None = None
    suspended: bool = False
    last_fired: datetime | None = None
    active: int = 0

    @property
    def when(self) -> str:
        if self.schedule.time is not None:
            return self.schedule.time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        if self.schedule.interval is not None:
            return f"every {int(self.schedule.interval.total_seconds())} s"
        return f"{self.schedule.cron} ({self.schedule.cron_offset or DEFAULT_TIMEZONE})"


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def entry_from_cronjob(body: dict[str, Any]) -> ScheduleEntry | None:
    """The schedule a podiq CronJob holds (a dict as the API returns it); None if it is not one of podiq's."""
    metadata = body.get("metadata") or {}
    schedule_id = (metadata.get("labels") or {}).get(LABEL_SCHEDULE_ID)
    spec = body.get("spec") or {}
    try:
        container = spec["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in container.get("env") or []}
        template = json.loads(env[ENV_TEMPLATE])
        task_spec = template["spec"]
    except (KeyError, IndexError, TypeError, json.JSONDecodeError):
        return None
    if not schedule_id:
        return None
    interval = (metadata.get("annotations") or {}).get(ANNOTATION_INTERVAL)
    trigger: dict[str, Any] = (
        {"interval": timedelta(seconds=int(interval))}
        if interval
        else {"cron": spec.get("schedule"), "cron_offset": spec.get("timeZone")}
    )
    try:
        scheduled = ScheduledTask(
            task_name=task_spec["taskName"],
            labels=task_spec.get("labels") or {},
            args=task_spec.get("args") or [],
            kwargs=task_spec.get("kwargs") or {},
            schedule_id=schedule_id,
            **trigger,
        )
    except (InvalidScheduleError, KeyError):
        return None
    status = body.get("status") or {}
    return ScheduleEntry(
        schedule=scheduled,
        kind="interval" if interval else "cron",
        resource=f"cronjob/{metadata.get('name')}",
        concurrency_policy=spec.get("concurrencyPolicy", "Allow"),
        suspended=bool(spec.get("suspend")),
        last_fired=_time(status.get("lastScheduleTime")),
        active=len(status.get("active") or []),
    )


def entry_from_taskrun(body: dict[str, Any]) -> ScheduleEntry | None:
    """A one-shot schedule from its TaskRun, while that run has not started; None otherwise."""
    run = TaskRun.from_api(body)
    labels = run.metadata.labels or {}
    schedule_id = labels.get(LABEL_SCHEDULE_ID)
    if not schedule_id or labels.get(LABEL_TRIGGER) != "time" or run.spec.not_before is None:
        return None
    if run.is_done() or run.status.attempts > 0 or run.spec.cancelled:
        return None
    scheduled = ScheduledTask(
        task_name=run.spec.task_name,
        labels=run.spec.labels,
        args=run.spec.args,
        kwargs=run.spec.kwargs,
        schedule_id=schedule_id,
        time=run.spec.not_before,
    )
    return ScheduleEntry(schedule=scheduled, kind="time", resource=f"taskrun/{run.name}")
