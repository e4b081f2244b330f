"""What an attempt is doing, read from its Job and Pod: a plain function, no API calls.

This is where "why is my task not running" is answered, from what Kubernetes itself
reports: a pod that cannot be scheduled (its PodScheduled condition), an image that cannot
be pulled or a container that cannot be made (its waiting reason), a Job that cannot create
its pod (the Job controller's FailedCreate Event: quota, LimitRange, missing service
account, Pod Security, admission, an invalid pod), a Job suspended by Kueue. Terminal states carry the exit code and the reason Kubernetes
gives (OOMKilled, DeadlineExceeded, Evicted, ...).
"""

from __future__ import annotations

import dataclasses
import enum
import signal
from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

from podiq.kubernetes.resources import Reason
from podiq_operator.jobs import CONTAINER_NAME

__all__ = ["AttemptObservation", "AttemptState", "failed_create_reason", "observe_attempt"]

#: Container waiting reasons that mean the image cannot be had.
IMAGE_PULL_REASONS = frozenset({"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull"})
#: Container waiting reasons that mean the kubelet cannot build the container from its spec.
CONTAINER_CONFIG_REASONS = frozenset({"CreateContainerConfigError", "CreateContainerError"})
#: A waiting container's reasons that block its attempt: podiq's reason, and the message when
#: the kubelet gives none.
_BLOCKED_WAITING = (
    (IMAGE_PULL_REASONS, Reason.IMAGE_PULL_BACK_OFF, "cannot pull the image"),
    (CONTAINER_CONFIG_REASONS, Reason.CONTAINER_CONFIG_ERROR, "cannot create the container"),
)

#: What the Job controller's FailedCreate message says, in the words of the API server's
#: admission plugins, checked in this order (a quota message also says "forbidden").
_FAILED_CREATE_REASONS: tuple[tuple[Reason, tuple[str, ...]], ...] = (
    (Reason.SERVICE_ACCOUNT_MISSING, ("error looking up service account",)),
    (Reason.QUOTA_EXCEEDED, ("exceeded quota", "failed quota")),
    (Reason.POD_SECURITY, ("violates podsecurity",)),
    (Reason.LIMIT_RANGE, ("usage per container", "usage per pod", "ratio per container", "limitrange")),
    (
        Reason.ADMISSION_DENIED,
        ("admission webhook", "validatingadmissionpolicy", "denied the request", "denied request"),
    ),
    (Reason.INVALID_POD_SPEC, ("is invalid",)),
    (Reason.ADMISSION_DENIED, ("is forbidden",)),
)


def failed_create_reason(message: str) -> Reason:
    """Why the Job controller could not create a pod, from its FailedCreate Event's message.

    The message is the API server's refusal, passed on; a message none of these match is
    :attr:`Reason.POD_CREATE_FAILED`, with the message as it is, rather than a guess.
    """
    text = message.lower()
    for reason, needles in _FAILED_CREATE_REASONS:
        if any(needle in text for needle in needles):
            return reason
    return Reason.POD_CREATE_FAILED


class AttemptState(str, enum.Enum):
    MISSING = "Missing"
    """No Job for the attempt (deleted, or not created yet)."""
    ACTIVE = "Active"
    """The Job exists and nothing says it is stuck."""
    BLOCKED = "Blocked"
    """The attempt cannot make progress; ``reason`` says why."""
    SUCCEEDED = "Succeeded"
    """The pod exited 0."""
    FAILED = "Failed"
    """The pod failed, or the Job gave up on it."""


@dataclasses.dataclass(frozen=True)
class AttemptObservation:
    state: AttemptState
    reason: Reason | None = None
    """For BLOCKED: one of podiq's BLOCKED_REASONS."""
    message: str = ""
    exit_code: int | None = None
    failure: str | None = None
    """For FAILED: Kubernetes' reason (OOMKilled, Error, DeadlineExceeded, Evicted, ...)."""
    timed_out: bool = False
    pod_name: str | None = None
    started: datetime | None = None
    """When the attempt's Job was created (None for a Job only this process has seen, just created)."""
    pod_started: bool = False
    """The pod's container has started (is running, or ran): the attempt is past its pending deadline's reach."""

    @property
    def finished(self) -> bool:
        return self.state in (AttemptState.SUCCEEDED, AttemptState.FAILED)


def _condition(obj: Mapping[str, Any] | None, kind: str) -> Mapping[str, Any] | None:
    for cond in (obj or {}).get("status", {}).get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            return cast(Mapping[str, Any], cond)
    return None


def _container_status(pod: Mapping[str, Any] | None) -> Mapping[str, Any]:
    statuses = (pod or {}).get("status", {}).get("containerStatuses") or []
    return next((s for s in statuses if s.get("name") == CONTAINER_NAME), statuses[0] if statuses else {})


def observe_attempt(
    job: Mapping[str, Any] | None,
    pod: Mapping[str, Any] | None = None,
    failed_create: str | None = None,
) -> AttemptObservation:
    """The attempt's state from its Job, its (newest) Pod, and the last FailedCreate event message."""
    if job is None:
        return AttemptObservation(AttemptState.MISSING)
    return dataclasses.replace(_observe(job, pod, failed_create), started=_created(job))


def _created(job: Mapping[str, Any]) -> datetime | None:
    value = job.get("metadata", {}).get("creationTimestamp")
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _observe(job: Mapping[str, Any], pod: Mapping[str, Any] | None, failed_create: str | None) -> AttemptObservation:
    pod_name = (pod or {}).get("metadata", {}).get("name")
    container = _container_status(pod)
    terminated = (container.get("state") or {}).get("terminated")
    waiting = (container.get("state") or {}).get("waiting")
    exit_code = terminated.get("exitCode") if terminated else None

    # The Job's verdict first: it is final. FailureTarget/SuccessCriteriaMet precede
    # Failed/Complete while the pod terminates, so they count already.
    if cond := (_condition(job, "Complete") or _condition(job, "SuccessCriteriaMet")):
        return AttemptObservation(
            AttemptState.SUCCEEDED, exit_code=exit_code if exit_code is not None else 0, pod_name=pod_name
        )
    if cond := (_condition(job, "Failed") or _condition(job, "FailureTarget")):
        reason = cond.get("reason") or "Failed"
        if reason == "DeadlineExceeded":
            return AttemptObservation(
                AttemptState.FAILED,
                failure=reason,
                timed_out=True,
                exit_code=exit_code,
                pod_name=pod_name,
                message=cond.get("message") or "The Job ran past its active deadline.",
            )
        return _failed_pod(pod, terminated, pod_name, fallback=(reason, cond.get("message") or ""))

    # Then the pod, which tells earlier (and more) than the Job's status.
    if terminated is not None:
        if exit_code == 0:
            return AttemptObservation(AttemptState.SUCCEEDED, exit_code=0, pod_name=pod_name)
        return _failed_pod(pod, terminated, pod_name)
    if (pod or {}).get("status", {}).get("phase") == "Failed":
        return _failed_pod(pod, None, pod_name)
    for reasons, blocked, default in _BLOCKED_WAITING:
        if waiting and waiting.get("reason") in reasons:
            return AttemptObservation(
                AttemptState.BLOCKED,
                blocked,
                pod_name=pod_name,
                message=f"{waiting.get('reason')}: {waiting.get('message') or default}",
            )
    for cond in (pod or {}).get("status", {}).get("conditions") or []:
        if (
            cond.get("type") == "PodScheduled"
            and cond.get("status") == "False"
            and cond.get("reason") == "Unschedulable"
        ):
            return AttemptObservation(
                AttemptState.BLOCKED,
                Reason.UNSCHEDULABLE,
                pod_name=pod_name,
                message=cond.get("message") or "The pod cannot be scheduled.",
            )
    if _condition(job, "Suspended"):
        return AttemptObservation(
            AttemptState.BLOCKED, Reason.QUEUED, message="The Job is suspended, waiting for admission."
        )
    if pod is None and failed_create:
        return AttemptObservation(AttemptState.BLOCKED, failed_create_reason(failed_create), message=failed_create)
    started = "running" in (container.get("state") or {}) or (pod or {}).get("status", {}).get("phase") == "Running"
    return AttemptObservation(AttemptState.ACTIVE, pod_name=pod_name, pod_started=started)


def _failed_pod(
    pod: Mapping[str, Any] | None,
    terminated: Mapping[str, Any] | None,
    pod_name: str | None,
    fallback: tuple[str, str] = ("PodLost", "The attempt's pod is gone."),
) -> AttemptObservation:
    status = (pod or {}).get("status", {})
    if terminated is not None:
        code = terminated.get("exitCode")
        failure = terminated.get("reason") or f"ExitCode{code}"
        message = (terminated.get("message") or "").strip()[-2000:]
        return AttemptObservation(
            AttemptState.FAILED,
            exit_code=code,
            failure=failure,
            pod_name=pod_name,
            message=message or _exit_message(code),
        )
    if status.get("phase") == "Failed":
        # Evicted, node lost, ...: the container never terminated on its own.
        return AttemptObservation(
            AttemptState.FAILED,
            failure=status.get("reason") or "PodFailed",
            pod_name=pod_name,
            message=status.get("message") or "The pod failed.",
        )
    return AttemptObservation(AttemptState.FAILED, failure=fallback[0], message=fallback[1], pod_name=pod_name)


def _exit_message(code: int | None) -> str:
    """What an exit code says, naming the signal for 128+N (how shells and runtimes report them)."""
    if isinstance(code, int) and code > 128:
        try:
            name = signal.Signals(code - 128).name
        except ValueError:
            name = f"signal {code - 128}"
        hint = {
            "SIGTERM": " (the pod was deleted, evicted or its Job's deadline passed)",
            "SIGKILL": " (killed: out of memory, or it did not stop within its grace period)",
        }.get(name, "")
        return f"The runtime was stopped by {name}{hint}; exit code {code}."
    return f"The runtime exited with code {code}."
