"""The attempt policy the runtime and the operator share: how an attempt's end shapes the run.

Pure functions of a TaskRun's ``spec`` and ``status`` that return a NEW status and leave the
given one as it was, so that a caller can diff the two (:func:`~podiq.kubernetes.resources.status_patch`)
without copying the whole TaskRun, whose spec holds the task's arguments. The runtime applies
:func:`finish_attempt` to its own attempt before exiting; the operator applies
:func:`fail_attempt` when a pod died without reporting, :func:`fail_to_start` when an attempt
never started, :func:`refuse` when it will not run the task at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from podiq.exceptions import TaskTimeoutError
from podiq.kubernetes.exitcodes import ExitCode
from podiq.kubernetes.resources import (
    InfrastructureError,
    Reason,
    TaskRunSpec,
    TaskRunStatus,
    error_result,
    message_labels,
)
from podiq.kubernetes.storage import StoredValue

__all__ = ["can_retry", "fail_attempt", "fail_to_start", "finish_attempt", "refuse"]


def can_retry(spec: TaskRunSpec, status: TaskRunStatus) -> bool:
    """A failed attempt is retried while the spec allows retries and some are left."""
    return spec.retry_on_error and status.retries < spec.max_retries


def finish_attempt(
    spec: TaskRunSpec,
    status: TaskRunStatus,
    code: ExitCode,
    now: datetime,
    *,
    result: Mapping[str, Any] | None = None,
    result_ref: StoredValue | None = None,
    log_ref: StoredValue | None = None,
    message: str = "",
    pod_name: str | None = None,
) -> TaskRunStatus:
    """How the current attempt ended (by its exit code) and what follows, by the retry policy."""
    new = _copy(status)
    attempt = new.attempts
    new.reported_attempt = attempt
    if pod_name is not None:
        new.pod_name = pod_name
    if result is not None or result_ref is not None:
        new.result, new.result_ref = (dict(result) if result is not None else None), result_ref
    new.log_ref = log_ref
    if code is ExitCode.SUCCEEDED:
        new.mark_finished(Reason.SUCCEEDED, message or f"Attempt {attempt} succeeded.", now)
    elif code is ExitCode.REJECTED:
        new.mark_finished(Reason.REJECTED, message or f"Attempt {attempt} rejected the task.", now)
    elif code is ExitCode.REQUEUE:
        new.requeues += 1
        new.set_condition(Reason.REQUEUED, message or f"Attempt {attempt} requeued the task.", now)
    else:
        _fail(spec, new, Reason.FAILED, message or f"Attempt {attempt} failed{_error_text(new.result)}.", now)
    return new


def fail_attempt(
    spec: TaskRunSpec, status: TaskRunStatus, reason: str, message: str, now: datetime, *, timed_out: bool = False
) -> TaskRunStatus:
    """The current attempt died without reporting: an error result, and a retry per the policy."""
    new = _copy(status)
    new.reported_attempt = new.attempts
    new.result_ref = new.log_ref = None
    new.result = error_result(
        TaskTimeoutError if timed_out else InfrastructureError,
        f"{reason}: {message}" if message else reason,
        labels=message_labels(spec, status),
    )
    _fail(
        spec,
        new,
        Reason.TIMED_OUT if timed_out else Reason.FAILED,
        f"Attempt {new.attempts}: {reason}. {message}".strip(),
        now,
    )
    return new


def fail_to_start(
    spec: TaskRunSpec, status: TaskRunStatus, reason: Reason, message: str, now: datetime
) -> TaskRunStatus:
    """The current attempt could not start by its pending deadline: the run ends Failed with
    ``reason`` (never retried: another attempt would meet the same obstacle)."""
    new = refuse(spec, status, reason, message, now)
    new.reported_attempt = new.attempts
    return new


def refuse(spec: TaskRunSpec, status: TaskRunStatus, reason: Reason, message: str, now: datetime) -> TaskRunStatus:
    """The run ends before any attempt: the operator will not run it."""
    new = _copy(status)
    new.result = error_result(InfrastructureError, f"{reason.value}: {message}", labels=message_labels(spec, status))
    new.mark_finished(reason, message, now)
    return new


def _copy(status: TaskRunStatus) -> TaskRunStatus:
    # Shallow is enough, and spares copying a 256 KiB result: the status's transitions only
    # assign fields (a new conditions list, a new result), never change a nested value in place.
    return status.model_copy()


def _fail(spec: TaskRunSpec, new: TaskRunStatus, final: Reason, message: str, now: datetime) -> None:
    """Retry when the policy allows, else end the run with ``final``; ``new`` is this module's own copy."""
    if can_retry(spec, new):
        new.retries += 1
        new.set_condition(Reason.RETRYING, f"{message} Retry {new.retries} of {spec.max_retries}.", now)
    else:
        new.mark_finished(final, message, now)


def _error_text(result: Mapping[str, Any] | None) -> str:
    """``: ValueError: Negative values not allowed`` from an error result, for the condition's message."""
    error = (result or {}).get("error") or {}
    kind, text = error.get("type"), str(error.get("message") or "").strip()
    if not kind:
        return ""
    text = text if len(text) <= 1000 else text[:999] + "…"
    return f": {kind}: {text}" if text else f": {kind}"
