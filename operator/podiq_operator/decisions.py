"""What to do next for a TaskRun: one straight chain of guards, like Tekton's reconciler.

    done → refused namespace → first attempt → cancelled → not before → next attempt
         → unreported end → pending deadline → observe

An attempt starts when its Job is created, and the Job (its name is derived from the
TaskRun and the attempt) is the record of it: starting an attempt is one write. The status
catches up afterwards, when there is something to tell: the pod appeared, the attempt is
stuck or ended, or no pod came within :data:`RECORD_PODLESS_AFTER`. A fast task's runtime
records its attempt together with its outcome, so the operator may never write at all.

:func:`decide` is pure: it gets the TaskRun, the observation of its newest attempt and
the time, and returns one :class:`Action`. The reconciler carries the action out and asks
again, so every branch is a unit test and a restarted operator simply asks again.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from podiq.exceptions import TaskRejectedError
from podiq.kubernetes.attempts import fail_attempt, fail_to_start, finish_attempt, refuse
from podiq.kubernetes.exitcodes import ExitCode
from podiq.kubernetes.resources import BLOCKED_REASONS, Reason, TaskRun, TaskRunStatus, error_result, message_labels
from podiq_operator.jobs import job_name
from podiq_operator.observations import AttemptObservation, AttemptState

__all__ = [
    "Action",
    "Cancel",
    "DeleteTaskRun",
    "Event",
    "Idle",
    "Policy",
    "Refresh",
    "StartAttempt",
    "Wake",
    "WriteStatus",
    "decide",
]


@dataclasses.dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post on the TaskRun."""

    reason: str
    message: str
    warning: bool = False


@dataclasses.dataclass(frozen=True)
class Idle:
    """Nothing to do until something changes."""


@dataclasses.dataclass(frozen=True)
class Wake:
    """Nothing to write now; look again after ``after`` seconds."""

    after: float


@dataclasses.dataclass(frozen=True)
class Refresh:
    """Read the TaskRun and the Job again from the API before deciding.

    Watches of different resources are not ordered: the Job may be seen finished before
    the runtime's status write on the TaskRun arrives. Deciding "the pod died without
    reporting" on a stale copy would overwrite a real result.
    """


@dataclasses.dataclass(frozen=True)
class WriteStatus:
    status: TaskRunStatus
    event: Event | None = None
    wake_after: float | None = None


@dataclasses.dataclass(frozen=True)
class StartAttempt:
    """Create the attempt's Job (409 Conflict means it exists: fine); the status catches up later."""

    attempt: int
    event: Event


@dataclasses.dataclass(frozen=True)
class Cancel:
    """Stop the attempt: delete its Job (if any), then write the final status (Cancelled, or
    Failed because it could not start by its pending deadline)."""

    job_name: str | None
    status: TaskRunStatus
    event: Event


@dataclasses.dataclass(frozen=True)
class DeleteTaskRun:
    """``ttlSecondsAfterFinished`` passed."""


Action = Idle | Wake | Refresh | WriteStatus | StartAttempt | Cancel | DeleteTaskRun


@dataclasses.dataclass(frozen=True)
class Policy:
    """The operator's settings that decisions depend on."""

    pending_deadline_seconds: float = 600.0
    """How long an attempt's pod may take to start, for TaskRuns that do not set their own."""

    excluded_namespaces: frozenset[str] = frozenset()
    """Namespaces whose TaskRuns are refused."""


#: The Job controller makes a Job's pod within milliseconds, but a busy one (it writes at a
#: limited rate) can take seconds; after this many, the attempt is recorded without its pod.
RECORD_PODLESS_AFTER = 10.0


def _seconds(delta: timedelta) -> float:
    return max(delta.total_seconds(), 0.0)


def decide(
    run: TaskRun,
    attempt: int,
    observation: AttemptObservation,
    now: datetime,
    *,
    fresh: bool = False,
    policy: Policy = Policy(),
) -> Action:
    """The next action for ``run``.

    ``attempt`` is the newest attempt known (from the status or from an existing Job) and
    ``observation`` what its Job and Pod show. ``fresh`` says the TaskRun and the Job were
    just read from the API rather than from the watch caches.
    """
    status = run.status

    # 1. Done: nothing but the TTL.
    if run.is_done():
        ttl = run.spec.ttl_seconds_after_finished
        if ttl is None or status.completion_time is None:
            return Idle()
        expires = status.completion_time + timedelta(seconds=ttl)
        return DeleteTaskRun() if expires <= now else Wake(_seconds(expires - now))

    # 2. A namespace podiq must not run in: refuse before anything runs, in a pool or as a Job.
    if attempt == 0 and run.namespace in policy.excluded_namespaces:
        return WriteStatus(
            refuse(
                run.spec,
                run.status,
                Reason.NAMESPACE_EXCLUDED,
                f"podiq does not run tasks in namespace {run.namespace!r}: it is among the operator's excluded "
                "namespaces (the chart's excludedNamespaces, PODIQ_EXCLUDED_NAMESPACES). Send the task to another namespace.",
                now,
            )
        )
    if run.spec.pool is not None:  # pool runs get no Job: their workers and the pool keeper run them
        from podiq_operator.pool_decisions import decide_pool_run

        return decide_pool_run(run, now)

    # 3. Never started, and neither cancelled nor held back: start (the Job records it, no write).
    if attempt == 0 and not run.cancel_requested() and run.time_until_start(now) is None:
        return _start(run, 1)

    # Shallow: the status's transitions only assign fields, so ``status`` stays as read and the
    # result it may hold (up to 256 KiB of the task's data) is not copied at every decision.
    new = status.model_copy()
    new.observed_generation = run.metadata.generation
    # The attempt's Job exists but the status does not record it yet (see the module's doc).
    unrecorded = new.record_attempt(attempt, job_name(run.name, attempt), observation.started or now)

    # 4. Cancelled: stop the attempt, whatever it is doing.
    if run.cancel_requested():
        new.mark_cancelled(now, "Cancelled by spec.cancelled.", labels=run.message_labels())
        running = observation.state is not AttemptState.MISSING and not observation.finished
        return Cancel(
            job_name(run.name, attempt) if running and attempt else None,
            new,
            Event("Cancelled", f"Cancelled; attempt {attempt} stopped." if running else "Cancelled."),
        )

    # 5. Not before: hold the first attempt back.
    if attempt == 0 and (wait := run.time_until_start(now)) is not None:
        assert run.spec.not_before is not None
        new.mark_waiting(run.spec.not_before, now)
        if new == status:
            return Wake(_seconds(wait))
        return WriteStatus(new, Event("Waiting", new.message), wake_after=_seconds(wait))

    # 6. The current attempt reported a retry or a requeue: start the next one.
    if not unrecorded and status.wants_next_attempt():
        return _start(run, attempt + 1, "requeued" if status.reason is Reason.REQUEUED else "retrying")

    # 7. The attempt ended (or its Job vanished) without the runtime reporting.
    if (observation.finished or observation.state is AttemptState.MISSING) and not status.has_report_for(attempt):
        if not fresh:
            return Refresh()
        final = _record_unreported_end(run, new, observation, now)
        return WriteStatus(final, Event(final.reason.value, final.message, warning=not final.is_succeeded()))

    # 8. Not started by its pending deadline: give up, with the reason it could not start.
    pending_left = _pending_left(run, observation, now, policy)
    if pending_left is not None and pending_left <= 0:
        return _give_up(run, new, attempt, observation, now, _deadline(run, policy))

    # 9. Observe: running, or stuck and why.
    if observation.state is AttemptState.BLOCKED and observation.reason is not None:
        new.mark_blocked(observation.reason, observation.message, now)
    elif observation.state is AttemptState.ACTIVE and (unrecorded or status.reason is not Reason.RUNNING):
        if unrecorded and observation.pod_name is None:
            waited = _seconds(now - (observation.started or now))
            if waited < RECORD_PODLESS_AFTER:
                return Wake(RECORD_PODLESS_AFTER - waited)
        new.mark_attempt_started(attempt, job_name(run.name, attempt), now)
        new.pod_name = observation.pod_name or status.pod_name
    if new == status or (new.model_copy(update={"observed_generation": status.observed_generation}) == status):
        # Only the observed generation moved: not worth a write on its own.
        return Idle() if pending_left is None else Wake(pending_left)
    blocked = observation.state is AttemptState.BLOCKED
    if unrecorded and new.reason is Reason.RUNNING:
        return WriteStatus(new, wake_after=pending_left)  # the "Started" Event told it already
    return WriteStatus(new, Event(new.reason.value, new.message, warning=blocked), wake_after=pending_left)


def _pending_left(run: TaskRun, observation: AttemptObservation, now: datetime, policy: Policy) -> float | None:
    """Seconds until the attempt's pending deadline, or None when it does not apply: the pod
    started, or the Job waits for a queue's admission (waiting there is what queues are for)."""
    if observation.state is AttemptState.BLOCKED:
        if observation.reason is Reason.QUEUED:
            return None
    elif observation.state is not AttemptState.ACTIVE or observation.pod_started:
        return None
    return _deadline(run, policy) - _seconds(now - (observation.started or now))


def _deadline(run: TaskRun, policy: Policy) -> float:
    return run.spec.pending_deadline_seconds or policy.pending_deadline_seconds


def _give_up(
    run: TaskRun,
    new: TaskRunStatus,
    attempt: int,
    observation: AttemptObservation,
    now: datetime,
    deadline: float,
) -> Cancel:
    if observation.state is AttemptState.BLOCKED and observation.reason in BLOCKED_REASONS:
        reason, why = observation.reason, observation.message or observation.reason.value
    else:
        reason = Reason.NOT_STARTED
        why = (f"pod {observation.pod_name} is still pending" if observation.pod_name else "the Job created no pod") + (
            " and Kubernetes reported no reason (`kubectl describe pod` and the namespace's Events may tell)"
        )
    ended = fail_to_start(run.spec, new, reason, f"Attempt {attempt} did not start within {deadline:g} s: {why}.", now)
    return Cancel(job_name(run.name, attempt), ended, Event(reason.value, ended.message, warning=True))


def _start(run: TaskRun, attempt: int, why: str = "") -> StartAttempt:
    message = f"Attempt {attempt} started as Job {job_name(run.name, attempt)}{f' ({why})' if why else ''}."
    return StartAttempt(attempt, Event("Started", message))


def _record_unreported_end(
    run: TaskRun, status: TaskRunStatus, observation: AttemptObservation, now: datetime
) -> TaskRunStatus:
    """The exit-code contract applied to an attempt whose runtime did not write its outcome."""
    if observation.pod_name:
        status = status.model_copy(update={"pod_name": observation.pod_name})
    spec = run.spec
    if observation.state is AttemptState.MISSING:
        return fail_attempt(spec, status, "JobDeleted", "The attempt's Job was deleted before it reported.", now)
    if observation.timed_out:
        return fail_attempt(spec, status, "DeadlineExceeded", observation.message, now, timed_out=True)
    code = ExitCode.parse(observation.exit_code)
    if code is ExitCode.REQUEUE:
        return finish_attempt(spec, status, code, now, message=f"Attempt {status.attempts} requeued the task.")
    if code is ExitCode.REJECTED:
        message = f"Attempt {status.attempts} rejected the task."
        result = error_result(TaskRejectedError, message, labels=message_labels(spec, status))
        return finish_attempt(spec, status, code, now, result=result, message=message)
    if code is ExitCode.SUCCEEDED:
        return fail_attempt(spec, status, "NoResult", "The runtime exited 0 without writing a result.", now)
    if code is ExitCode.TASK_ERROR:
        return fail_attempt(spec, status, "NoResult", "The task failed and the runtime did not write its error.", now)
    if observation.failure == "OOMKilled":
        return fail_attempt(spec, status, "OOMKilled", _oom_message(run, observation.exit_code), now)
    return fail_attempt(spec, status, observation.failure or "Failed", observation.message, now)


def _oom_message(run: TaskRun, exit_code: int | None) -> str:
    """The kernel killed the task for memory: say which limit, the one thing to change."""
    limits = run.spec.resources.limits if run.spec.resources else None
    limit = (limits or {}).get("memory")
    over = (
        f"its memory limit of {limit}"
        if limit
        else "the memory it may use (no limit on the TaskRun: the namespace's LimitRange or the node's memory)"
    )
    return (
        f"The task went over {over} and the kernel killed it; exit code {exit_code}. "
        "Raise resources.limits.memory or use less."
    )
