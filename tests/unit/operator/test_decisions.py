"""Every branch of the guard chain: done → refused → first → cancelled → not before → next → unreported
→ pending deadline → observe."""

from __future__ import annotations

from datetime import timedelta

import pytest

from podiq._result import ResultRecord
from podiq.kubernetes import ExitCode
from podiq.kubernetes.attempts import finish_attempt
from podiq.kubernetes.resources import Phase, Reason, TaskRun
from podiq_operator.decisions import (
    RECORD_PODLESS_AFTER,
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
from podiq_operator.observations import AttemptObservation, AttemptState

from .conftest import NOW, taskrun

MISSING = AttemptObservation(AttemptState.MISSING)
ACTIVE = AttemptObservation(AttemptState.ACTIVE, pod_name="p-1", pod_started=True)


def started(attempt: int = 1, **spec: object) -> TaskRun:
    run = taskrun(**spec)
    for n in range(1, attempt + 1):
        run.status.mark_attempt_started(n, f"add-1-a{n}", NOW - timedelta(minutes=1))
    run.status.observed_generation = 1
    return run


def finished(code: ExitCode = ExitCode.SUCCEEDED, **spec: object) -> TaskRun:
    run = started(**spec)
    run.status = finish_attempt(
        run.spec, run.status, code, NOW - timedelta(seconds=30), result={"is_err": code is not ExitCode.SUCCEEDED}
    )
    return run


class TestDone:
    def test_done_without_ttl_is_idle(self) -> None:
        assert decide(finished(), 1, ACTIVE, NOW) == Idle()

    def test_done_ignores_cancel_and_the_job(self) -> None:
        run = finished(cancelled=True)
        assert decide(run, 1, AttemptObservation(AttemptState.FAILED, exit_code=137), NOW) == Idle()

    def test_ttl_not_passed_wakes_up_later(self) -> None:
        assert decide(finished(ttlSecondsAfterFinished=60), 1, MISSING, NOW) == Wake(30.0)

    def test_ttl_passed_deletes(self) -> None:
        assert decide(finished(ttlSecondsAfterFinished=10), 1, MISSING, NOW) == DeleteTaskRun()
        assert decide(finished(ttlSecondsAfterFinished=0), 1, MISSING, NOW) == DeleteTaskRun()


class TestCancelled:
    def test_cancel_running_attempt_deletes_its_job(self) -> None:
        action = decide(started(cancelled=True), 1, ACTIVE, NOW)
        assert isinstance(action, Cancel) and action.job_name == "add-1-a1"
        assert action.status.phase is Phase.CANCELLED and action.status.is_done()
        assert action.status.completion_time == NOW and action.status.duration == "1m0s"
        assert ResultRecord.model_validate(action.status.result).error.type == "TaskCancelledError"  # type: ignore[union-attr]  # present here

    def test_cancel_before_any_attempt(self) -> None:
        action = decide(taskrun(cancelled=True), 0, MISSING, NOW)
        assert isinstance(action, Cancel) and action.job_name is None and action.status.is_cancelled()

    def test_cancel_wins_over_not_before(self) -> None:
        action = decide(taskrun(cancelled=True, notBefore="2030-01-01T00:00:00Z"), 0, MISSING, NOW)
        assert isinstance(action, Cancel)


class TestNotBefore:
    def test_future_not_before_writes_waiting_once(self) -> None:
        run = taskrun(notBefore=(NOW + timedelta(seconds=90)).isoformat())
        action = decide(run, 0, MISSING, NOW)
        assert isinstance(action, WriteStatus) and action.wake_after == 90.0
        assert action.status.reason is Reason.WAITING and action.status.phase is Phase.PENDING
        run.status = action.status
        assert decide(run, 0, MISSING, NOW + timedelta(seconds=30)) == Wake(60.0)

    def test_past_not_before_starts(self) -> None:
        run = taskrun(notBefore=(NOW - timedelta(seconds=1)).isoformat())
        assert isinstance(decide(run, 0, MISSING, NOW), StartAttempt)

    def test_not_before_only_holds_the_first_attempt(self) -> None:
        run = finished(ExitCode.REQUEUE, notBefore=(NOW + timedelta(hours=1)).isoformat())
        assert isinstance(decide(run, 1, MISSING, NOW), StartAttempt)


class TestStart:
    def test_first_attempt_is_only_its_job(self) -> None:
        action = decide(taskrun(), 0, MISSING, NOW)
        assert action == StartAttempt(1, Event("Started", "Attempt 1 started as Job add-1-a1."))

    def test_retry_after_a_task_error(self) -> None:
        run = finished(ExitCode.TASK_ERROR, retryOnError=True, maxRetries=2)
        assert run.status.reason is Reason.RETRYING
        action = decide(run, 1, AttemptObservation(AttemptState.FAILED, exit_code=1), NOW)
        assert isinstance(action, StartAttempt) and action.attempt == 2 and "retrying" in action.event.message

    def test_requeue_starts_the_next_attempt(self) -> None:
        run = finished(ExitCode.REQUEUE)
        action = decide(run, 1, AttemptObservation(AttemptState.FAILED, exit_code=4), NOW)
        assert isinstance(action, StartAttempt) and action.attempt == 2 and "requeued" in action.event.message

    def test_an_existing_job_is_never_started_again(self) -> None:
        run = finished(ExitCode.TASK_ERROR, retryOnError=True, maxRetries=2)
        assert not isinstance(decide(run, 2, ACTIVE, NOW), StartAttempt)
        assert not isinstance(decide(taskrun(), 1, JUST_CREATED, NOW), StartAttempt)


#: The Job of an attempt the status does not record yet, created 2 s ago, with no pod so far.
JUST_CREATED = AttemptObservation(AttemptState.ACTIVE, started=NOW - timedelta(seconds=2))


class TestRecordingAnAttempt:
    """The Job records an attempt; the status catches up when there is something to tell."""

    def test_waits_for_the_pod(self) -> None:
        assert decide(taskrun(), 1, JUST_CREATED, NOW) == Wake(RECORD_PODLESS_AFTER - 2)
        assert decide(taskrun(), 1, AttemptObservation(AttemptState.ACTIVE), NOW) == Wake(RECORD_PODLESS_AFTER)

    def test_records_when_the_pod_appears(self) -> None:
        obs = AttemptObservation(AttemptState.ACTIVE, pod_name="p-1", started=NOW - timedelta(seconds=2))
        action = decide(taskrun(), 1, obs, NOW)
        assert isinstance(action, WriteStatus)
        st = action.status
        assert (st.attempts, st.job_name, st.pod_name, st.phase, st.reason) == (
            1,
            "add-1-a1",
            "p-1",
            Phase.RUNNING,
            Reason.RUNNING,
        )
        assert st.start_time == NOW - timedelta(seconds=2), "the attempt started when its Job was made"

    def test_records_a_podless_job_after_a_while_and_only_once(self) -> None:
        obs = AttemptObservation(AttemptState.ACTIVE, started=NOW - timedelta(seconds=RECORD_PODLESS_AFTER))
        action = decide(taskrun(), 1, obs, NOW)
        assert isinstance(action, WriteStatus)
        assert (action.status.attempts, action.status.reason, action.status.pod_name) == (1, Reason.RUNNING, None)
        run = taskrun()
        run.status = action.status
        pending = AttemptObservation(AttemptState.ACTIVE, pod_name="p-1")
        assert decide(run, 1, pending, NOW) == Wake(600.0), "the pod adds no write; the pending deadline is kept"

    def test_records_a_stuck_attempt_at_once(self) -> None:
        obs = AttemptObservation(AttemptState.BLOCKED, Reason.UNSCHEDULABLE, message="0/1 nodes", started=NOW)
        action = decide(taskrun(), 1, obs, NOW)
        assert isinstance(action, WriteStatus)
        assert (action.status.attempts, action.status.reason) == (1, Reason.UNSCHEDULABLE)

    def test_records_the_next_attempt_too(self) -> None:
        run = finished(ExitCode.TASK_ERROR, retryOnError=True, maxRetries=2)
        obs = AttemptObservation(AttemptState.ACTIVE, pod_name="p-2", started=NOW)
        action = decide(run, 2, obs, NOW)
        assert isinstance(action, WriteStatus)
        st = action.status
        assert (st.attempts, st.job_name, st.pod_name, st.retries) == (2, "add-1-a2", "p-2", 1)
        assert st.start_time == NOW - timedelta(minutes=1), "start time stays the first attempt's"

    def test_an_unrecorded_attempt_that_died_is_recorded_with_its_failure(self) -> None:
        obs = AttemptObservation(AttemptState.FAILED, exit_code=137, failure="OOMKilled", pod_name="p", started=NOW)
        assert decide(taskrun(), 1, obs, NOW) == Refresh()
        action = decide(taskrun(), 1, obs, NOW, fresh=True)
        assert isinstance(action, WriteStatus)
        assert (action.status.attempts, action.status.reported_attempt, action.status.phase) == (1, 1, Phase.FAILED)

    def test_cancelling_an_unrecorded_attempt_deletes_its_job(self) -> None:
        action = decide(taskrun(cancelled=True), 1, JUST_CREATED, NOW)
        assert isinstance(action, Cancel) and action.job_name == "add-1-a1"
        assert (action.status.attempts, action.status.phase) == (1, Phase.CANCELLED)


class TestUnreportedEnd:
    def test_stale_view_is_refreshed_first(self) -> None:
        for obs in (
            AttemptObservation(AttemptState.SUCCEEDED, exit_code=0),
            AttemptObservation(AttemptState.FAILED, exit_code=137),
            MISSING,
        ):
            assert decide(started(), 1, obs, NOW) == Refresh()

    def write(self, run: TaskRun, obs: AttemptObservation) -> WriteStatus:
        action = decide(run, 1, obs, NOW, fresh=True)
        assert isinstance(action, WriteStatus)
        return action

    def test_killed_pod_is_an_infrastructure_failure(self) -> None:
        obs = AttemptObservation(AttemptState.FAILED, exit_code=137, failure="OOMKilled", message="", pod_name="p")
        action = self.write(started(), obs)
        st = action.status
        assert (st.phase, st.reason, st.reported_attempt, st.pod_name) == (Phase.FAILED, Reason.FAILED, 1, "p")
        error = ResultRecord.model_validate(st.result).error
        assert error is not None and error.type == "InfrastructureError" and "OOMKilled" in error.message
        assert action.event is not None and action.event.warning

    def test_oomkilled_names_the_memory_limit(self) -> None:
        obs = AttemptObservation(AttemptState.FAILED, exit_code=137, failure="OOMKilled", message="", pod_name="p")
        limited = self.write(started(resources={"limits": {"memory": "64Mi"}}), obs).status
        assert limited.message.startswith("Attempt 1: OOMKilled.") and "memory limit of 64Mi" in limited.message
        assert "64Mi" in ResultRecord.model_validate(limited.result).error.message  # type: ignore[union-attr]  # present here
        unlimited = self.write(started(), obs).status
        assert "no limit on the TaskRun" in unlimited.message

    def test_infrastructure_failure_is_retried_per_policy(self) -> None:
        obs = AttemptObservation(AttemptState.FAILED, failure="Evicted", message="node drained")
        action = self.write(started(retryOnError=True), obs)
        assert action.status.reason is Reason.RETRYING and action.status.retries == 1
        assert action.status.wants_next_attempt()

    def test_deleted_job(self) -> None:
        action = self.write(started(), MISSING)
        assert action.status.reason is Reason.FAILED and "JobDeleted" in action.status.message

    def test_deadline_is_a_timeout(self) -> None:
        obs = AttemptObservation(AttemptState.FAILED, failure="DeadlineExceeded", timed_out=True, message="late")
        action = self.write(started(timeoutSeconds=5), obs)
        assert action.status.reason is Reason.TIMED_OUT and action.status.phase is Phase.FAILED
        assert ResultRecord.model_validate(action.status.result).error.type == "TaskTimeoutError"  # type: ignore[union-attr]  # present here

    def test_exit_zero_without_result(self) -> None:
        action = self.write(started(), AttemptObservation(AttemptState.SUCCEEDED, exit_code=0))
        assert action.status.reason is Reason.FAILED and "NoResult" in action.status.message

    def test_exit_one_without_result_follows_the_retry_policy(self) -> None:
        action = self.write(started(retryOnError=True), AttemptObservation(AttemptState.FAILED, exit_code=1))
        assert action.status.reason is Reason.RETRYING

    def test_exit_three_is_rejected_never_retried(self) -> None:
        action = self.write(started(retryOnError=True), AttemptObservation(AttemptState.FAILED, exit_code=3))
        assert action.status.phase is Phase.REJECTED
        assert ResultRecord.model_validate(action.status.result).error.type == "TaskRejectedError"  # type: ignore[union-attr]  # present here

    def test_exit_four_requeues(self) -> None:
        action = self.write(started(), AttemptObservation(AttemptState.FAILED, exit_code=4))
        assert action.status.reason is Reason.REQUEUED and action.status.requeues == 1

    def test_reported_attempt_is_not_overwritten(self) -> None:
        run = started(1)
        run.status.reported_attempt = 1  # e.g. the runtime wrote a progress-only status... and its outcome
        assert decide(run, 1, AttemptObservation(AttemptState.FAILED, exit_code=1), NOW, fresh=True) == Idle()


class TestObserve:
    def test_running_as_written_needs_no_write(self) -> None:
        assert decide(started(), 1, ACTIVE, NOW) == Idle()

    @pytest.mark.parametrize(
        "reason", [Reason.UNSCHEDULABLE, Reason.IMAGE_PULL_BACK_OFF, Reason.QUOTA_EXCEEDED, Reason.QUEUED]
    )
    def test_stuck_attempt_says_why(self, reason: Reason) -> None:
        obs = AttemptObservation(AttemptState.BLOCKED, reason, "why not")
        action = decide(started(), 1, obs, NOW)
        assert isinstance(action, WriteStatus)
        assert (action.status.phase, action.status.reason, action.status.message) == (Phase.PENDING, reason, "why not")
        assert action.event is not None and action.event.warning
        run = started()
        run.status = action.status
        again = decide(run, 1, obs, NOW + timedelta(seconds=5))
        assert again == (Idle() if reason is Reason.QUEUED else Wake(600.0)), "written once"

    def test_unstuck_attempt_is_running_again(self) -> None:
        run = started()
        run.status.mark_blocked(Reason.UNSCHEDULABLE, "no nodes", NOW)
        action = decide(run, 1, ACTIVE, NOW)
        assert isinstance(action, WriteStatus) and action.status.phase is Phase.RUNNING
        assert action.status.pod_name == "p-1"

    def test_generation_alone_is_not_written(self) -> None:
        run = started()
        run.metadata.generation = 2
        assert decide(run, 1, ACTIVE, NOW) == Idle()


class TestPendingDeadline:
    def blocked(self, reason: Reason = Reason.SERVICE_ACCOUNT_MISSING, waited: float = 0) -> AttemptObservation:
        return AttemptObservation(
            AttemptState.BLOCKED,
            reason,
            'serviceaccount "podiq-runtime" not found',
            started=NOW - timedelta(seconds=waited),
        )

    def test_a_blocked_attempt_is_looked_at_again_at_its_deadline(self) -> None:
        action = decide(started(), 1, self.blocked(waited=100), NOW)
        assert isinstance(action, WriteStatus) and action.wake_after == 500.0
        assert action.status.reason is Reason.SERVICE_ACCOUNT_MISSING and action.status.phase is Phase.PENDING

    @pytest.mark.parametrize(
        "reason",
        [
            Reason.SERVICE_ACCOUNT_MISSING,
            Reason.UNSCHEDULABLE,
            Reason.IMAGE_PULL_BACK_OFF,
            Reason.QUOTA_EXCEEDED,
            Reason.INVALID_POD_SPEC,
            Reason.ADMISSION_DENIED,
        ],
    )
    def test_past_the_deadline_the_run_fails_with_the_reason_it_could_not_start(self, reason: Reason) -> None:
        action = decide(started(), 1, self.blocked(reason, waited=600), NOW)
        assert isinstance(action, Cancel) and action.job_name == "add-1-a1"
        status = action.status
        assert (status.phase, status.reason, status.is_done()) == (Phase.FAILED, reason, True)
        assert "did not start within 600 s" in status.message and "not found" in status.message
        assert status.result is not None and status.result["error"]["type"] == "InfrastructureError"
        assert reason.value in status.result["error"]["message"]
        assert action.event.reason == reason.value and action.event.warning

    def test_it_is_never_retried(self) -> None:
        action = decide(started(retryOnError=True, maxRetries=3), 1, self.blocked(waited=601), NOW)
        assert isinstance(action, Cancel) and action.status.phase is Phase.FAILED and action.status.retries == 0

    def test_the_task_may_set_its_own_deadline(self) -> None:
        action = decide(started(pendingDeadlineSeconds=30), 1, self.blocked(waited=31), NOW)
        assert isinstance(action, Cancel) and "within 30 s" in action.status.message

    def test_the_operator_setting_is_the_default(self) -> None:
        policy = Policy(pending_deadline_seconds=60)
        assert isinstance(decide(started(), 1, self.blocked(waited=61), NOW, policy=policy), Cancel)

    def test_a_pod_pending_without_a_reason_ends_as_not_started(self) -> None:
        pending = AttemptObservation(AttemptState.ACTIVE, pod_name="add-1-a1-xyz", started=NOW - timedelta(minutes=11))
        action = decide(started(), 1, pending, NOW)
        assert isinstance(action, Cancel) and action.status.reason is Reason.NOT_STARTED
        assert "add-1-a1-xyz is still pending" in action.status.message

    def test_a_started_pod_and_a_queued_job_are_not_counted(self) -> None:
        running = AttemptObservation(
            AttemptState.ACTIVE, pod_name="p", pod_started=True, started=NOW - timedelta(hours=2)
        )
        assert decide(started(), 1, running, NOW) == Idle()
        queued = self.blocked(Reason.QUEUED, waited=7200)
        action = decide(started(), 1, queued, NOW)
        assert isinstance(action, WriteStatus) and action.status.reason is Reason.QUEUED and action.wake_after is None


class TestExcludedNamespaces:
    def test_a_taskrun_there_is_refused_with_the_reason(self) -> None:
        policy = Policy(excluded_namespaces=frozenset({"jobs"}))
        action = decide(taskrun(), 0, MISSING, NOW, policy=policy)
        assert isinstance(action, WriteStatus)
        status = action.status
        assert (status.phase, status.reason) == (Phase.FAILED, Reason.NAMESPACE_EXCLUDED)
        assert "'jobs'" in status.message and "excludedNamespaces" in status.message
        assert status.result is not None and status.result["is_err"]

    def test_other_namespaces_run(self) -> None:
        policy = Policy(excluded_namespaces=frozenset({"kube-system"}))
        assert isinstance(decide(taskrun(), 0, MISSING, NOW, policy=policy), StartAttempt)
