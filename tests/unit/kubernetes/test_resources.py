"""The TaskRun models: API round trips, predicates, and the attempt/retry policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from podiq._result import ResultRecord
from podiq.kubernetes import ExitCode
from podiq.kubernetes.attempts import fail_attempt, fail_to_start, finish_attempt
from podiq.kubernetes.resources import (
    BLOCKED_REASONS,
    MAX_INLINE_RESULT_BYTES,
    REQUEUE_LABEL,
    ConditionStatus,
    Phase,
    Progress,
    Reason,
    ResultTooLargeError,
    TaskRun,
    TaskRunSpec,
    TaskRunStatus,
    encode_result,
    error_result,
    format_duration,
    label_value,
    to_api,
)

NOW = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def make_run(**spec: object) -> TaskRun:
    return TaskRun.from_api(
        {
            "apiVersion": "podiq.io/v1alpha1",
            "kind": "TaskRun",
            "metadata": {"name": "run-1", "namespace": "jobs", "uid": "u-1", "generation": 1},
            "spec": {"taskName": "app.tasks:add", **spec},
        }
    )


class TestApiForm:
    def test_round_trip_keeps_everything(self) -> None:
        body = {
            "apiVersion": "podiq.io/v1alpha1",
            "kind": "TaskRun",
            "metadata": {"name": "r", "namespace": "ns", "resourceVersion": "12", "ownerReferences": [{"x": 1}]},
            "spec": {
                "taskName": "app.tasks:add",
                "taskId": "abc",
                "args": [1, {"a": [2]}],
                "kwargs": {"k": None},
                "labels": {"timeout": 3},
                "image": "img:1",
                "resources": {"limits": {"cpu": "1", "memory": 1024}},
                "env": [{"name": "A", "value": "b"}],
                "serviceAccountName": "sa",
                "timeoutSeconds": 1.5,
                "retryOnError": True,
                "maxRetries": 2,
                "notBefore": "2026-01-02T03:04:05Z",
                "cancelled": False,
                "ttlSecondsAfterFinished": 60,
                "queueName": "q",
            },
            "status": {
                "phase": "Running",
                "attempts": 1,
                "retries": 0,
                "requeues": 0,
                "jobName": "r-a1",
                "conditions": [
                    {
                        "type": "Succeeded",
                        "status": "Unknown",
                        "reason": "Running",
                        "message": "m",
                        "lastTransitionTime": "2026-01-02T03:04:05Z",
                    }
                ],
                "progress": {"current": 3, "total": 10, "message": ""},
                "progressText": "3/10",
            },
        }
        run = TaskRun.from_api(body)
        assert run.spec.retry_on_error is True and run.spec.max_retries == 2
        assert run.status.phase is Phase.RUNNING and run.status.reason is Reason.RUNNING
        assert to_api(run) == body
        assert run.metadata.model_extra == {"ownerReferences": [{"x": 1}]}

    def test_optional_fields_are_absent_not_null(self) -> None:
        spec = to_api(TaskRunSpec(task_name="m:f"))
        assert spec == {
            "taskName": "m:f",
            "args": [],
            "kwargs": {},
            "labels": {},
            "retryOnError": False,
            "maxRetries": 3,
            "cancelled": False,
        }

    def test_timestamps_are_second_precision_utc(self) -> None:
        status = TaskRunStatus(start_time=NOW.astimezone(timezone_plus_2()))
        assert to_api(status)["startTime"] == "2026-01-02T03:04:05Z"

    def test_naive_timestamps_are_refused(self) -> None:
        with pytest.raises(ValueError):
            TaskRunSpec(task_name="m:f", not_before=datetime(2026, 1, 1))

    @pytest.mark.parametrize("name", ["m:f", "a.b.c:_f1", "_m:F"])
    def test_task_names_accepted(self, name: str) -> None:
        assert TaskRunSpec(task_name=name).task_name == name

    @pytest.mark.parametrize("name", ["", "m", "m:", ":f", "1m:f", "m:f.g", "m:f()", "m f:g", "é:f"])
    def test_task_names_refused(self, name: str) -> None:
        with pytest.raises(ValueError):
            TaskRunSpec(task_name=name)

    def test_unknown_fields_from_newer_writers_are_ignored(self) -> None:
        run = make_run(futureField=1)
        assert run.spec.task_name == "app.tasks:add"

    def test_task_id_defaults_to_name(self) -> None:
        assert make_run().task_id == "run-1"
        assert make_run(taskId="t-9").task_id == "t-9"


def timezone_plus_2():
    from datetime import timezone

    return timezone(timedelta(hours=2))


class TestCondition:
    def test_fresh_status_is_pending_and_not_done(self) -> None:
        status = TaskRunStatus()
        assert status.reason is Reason.PENDING and not status.is_done() and status.condition is None

    @pytest.mark.parametrize(
        ("reason", "cond", "phase"),
        [
            (Reason.PENDING, ConditionStatus.UNKNOWN, Phase.PENDING),
            (Reason.WAITING, ConditionStatus.UNKNOWN, Phase.PENDING),
            (Reason.QUEUED, ConditionStatus.UNKNOWN, Phase.PENDING),
            (Reason.UNSCHEDULABLE, ConditionStatus.UNKNOWN, Phase.PENDING),
            (Reason.IMAGE_PULL_BACK_OFF, ConditionStatus.UNKNOWN, Phase.PENDING),
            (Reason.QUOTA_EXCEEDED, ConditionStatus.UNKNOWN, Phase.PENDING),
            (Reason.RETRYING, ConditionStatus.UNKNOWN, Phase.PENDING),
            (Reason.REQUEUED, ConditionStatus.UNKNOWN, Phase.PENDING),
            (Reason.RUNNING, ConditionStatus.UNKNOWN, Phase.RUNNING),
            (Reason.SUCCEEDED, ConditionStatus.TRUE, Phase.SUCCEEDED),
            (Reason.FAILED, ConditionStatus.FALSE, Phase.FAILED),
            (Reason.TIMED_OUT, ConditionStatus.FALSE, Phase.FAILED),
            (Reason.REJECTED, ConditionStatus.FALSE, Phase.REJECTED),
            (Reason.CANCELLED, ConditionStatus.FALSE, Phase.CANCELLED),
            (Reason.NAMESPACE_EXCLUDED, ConditionStatus.FALSE, Phase.FAILED),
            *((reason, ConditionStatus.UNKNOWN, Phase.PENDING) for reason in sorted(BLOCKED_REASONS)),
        ],
    )
    def test_every_reason_has_a_status_and_phase(self, reason: Reason, cond: ConditionStatus, phase: Phase) -> None:
        status = TaskRunStatus()
        status.set_condition(reason, "m", NOW)
        assert status.condition is not None and status.condition.status is cond
        assert status.phase is phase
        assert status.is_done() is (cond is not ConditionStatus.UNKNOWN)

    def test_setting_the_same_condition_changes_nothing(self) -> None:
        status = TaskRunStatus()
        status.set_condition(Reason.RUNNING, "m", NOW)
        before = status.model_copy(deep=True)
        status.set_condition(Reason.RUNNING, "m", NOW + timedelta(minutes=1))
        assert status == before

    def test_a_new_reason_moves_the_transition_time(self) -> None:
        status = TaskRunStatus()
        status.set_condition(Reason.RUNNING, "m", NOW)
        status.set_condition(Reason.UNSCHEDULABLE, "m", NOW + timedelta(minutes=1))
        assert len(status.conditions) == 1
        assert status.conditions[0].last_transition_time == NOW + timedelta(minutes=1)

    def test_attempt_started(self) -> None:
        status = TaskRunStatus(pod_name="old")
        status.mark_attempt_started(2, "run-1-a2", NOW)
        assert (status.attempts, status.job_name, status.pod_name, status.start_time) == (2, "run-1-a2", None, NOW)
        assert status.phase is Phase.RUNNING
        status.mark_attempt_started(3, "run-1-a3", NOW + timedelta(hours=1))
        assert status.start_time == NOW, "start time is the first attempt's"

    def test_cancelled_holds_a_cancellation_error_result(self) -> None:
        status = TaskRunStatus(start_time=NOW)
        status.mark_cancelled(NOW + timedelta(seconds=75), labels={"a": 1})
        assert status.is_cancelled() and status.phase is Phase.CANCELLED
        assert status.duration == "1m15s"
        record = ResultRecord.model_validate(status.result)
        assert record.is_err and record.error is not None and record.error.type == "TaskCancelledError"
        assert record.labels == {"a": 1}

    def test_progress_text(self) -> None:
        status = TaskRunStatus()
        status.set_progress(Progress(current=3, total=10, message="x"))
        assert status.progress_text == "3/10"


class TestFinishAttempt:
    def started(self, **spec: object) -> TaskRun:
        run = make_run(**spec)
        run.status.mark_attempt_started(1, "run-1-a1", NOW)
        return run

    def test_success(self) -> None:
        run = self.started()
        result = encode_result(ResultRecord(return_value=3, execution_time=0.5))
        run.status = finish_attempt(
            run.spec, run.status, ExitCode.SUCCEEDED, NOW + timedelta(seconds=4), result=result, pod_name="p"
        )
        st = run.status
        assert st.is_succeeded() and st.phase is Phase.SUCCEEDED
        assert (st.completion_time, st.duration, st.pod_name, st.reported_attempt) == (
            NOW + timedelta(seconds=4),
            "4s",
            "p",
            1,
        )
        assert ResultRecord.model_validate(st.result).return_value == 3

    def test_task_error_without_retry_fails(self) -> None:
        run = self.started()
        run.status = finish_attempt(run.spec, run.status, ExitCode.TASK_ERROR, NOW, result={"is_err": True})
        assert run.status.phase is Phase.FAILED and run.status.reason is Reason.FAILED
        assert not run.status.wants_next_attempt()

    def test_task_error_message_says_what_the_task_raised(self) -> None:
        run = self.started()
        record = ResultRecord.failure(OSError(30, "Read-only file system"), {})
        run.status = finish_attempt(run.spec, run.status, ExitCode.TASK_ERROR, NOW, result=encode_result(record))
        assert run.status.message == "Attempt 1 failed: OSError: [Errno 30] Read-only file system."
        bare = self.started()
        bare.status = finish_attempt(bare.spec, bare.status, ExitCode.TASK_ERROR, NOW, result={"is_err": True})
        assert bare.status.message == "Attempt 1 failed."

    def test_a_failed_runs_condition_says_the_tasks_error(self) -> None:
        run = self.started(retryOnError=True, maxRetries=1)
        error = {"is_err": True, "error": {"type": "ValueError", "message": "Negative values not allowed"}}
        run.status = finish_attempt(run.spec, run.status, ExitCode.TASK_ERROR, NOW, result=error)
        assert run.status.message == "Attempt 1 failed: ValueError: Negative values not allowed. Retry 1 of 1."
        run.status.mark_attempt_started(2, "run-1-a2", NOW)
        run.status = finish_attempt(run.spec, run.status, ExitCode.TASK_ERROR, NOW, result=error)
        assert run.status.message == "Attempt 2 failed: ValueError: Negative values not allowed."

    def test_a_run_that_could_not_start_ends_failed_with_that_reason(self) -> None:
        run = self.started(retryOnError=True)
        run.status = fail_to_start(run.spec, run.status, Reason.UNSCHEDULABLE, "0/1 nodes are available", NOW)
        st = run.status
        assert (st.phase, st.reason, st.condition.status if st.condition else None) == (
            Phase.FAILED,
            Reason.UNSCHEDULABLE,
            ConditionStatus.FALSE,
        )
        assert st.is_done() and st.completion_time == NOW and st.retries == 0
        assert st.result is not None and st.result["error"]["message"] == "Unschedulable: 0/1 nodes are available"

    def test_task_error_with_retries_left_asks_for_another_attempt(self) -> None:
        run = self.started(retryOnError=True, maxRetries=1)
        run.status = finish_attempt(run.spec, run.status, ExitCode.TASK_ERROR, NOW, result={"is_err": True})
        assert run.status.reason is Reason.RETRYING and run.status.retries == 1
        assert run.status.wants_next_attempt() and not run.is_done()
        run.status.mark_attempt_started(2, "run-1-a2", NOW)
        assert not run.status.wants_next_attempt()
        run.status = finish_attempt(run.spec, run.status, ExitCode.TASK_ERROR, NOW, result={"is_err": True})
        assert run.status.reason is Reason.FAILED, "retries exhausted"

    def test_rejected_is_never_retried(self) -> None:
        run = self.started(retryOnError=True)
        run.status = finish_attempt(run.spec, run.status, ExitCode.REJECTED, NOW)
        assert run.status.phase is Phase.REJECTED and run.is_done()

    def test_requeue_counts_and_feeds_the_label(self) -> None:
        run = self.started(labels={REQUEUE_LABEL: "2", "x": 1})
        run.status = finish_attempt(run.spec, run.status, ExitCode.REQUEUE, NOW)
        assert run.status.reason is Reason.REQUEUED and run.status.requeues == 1
        assert run.status.wants_next_attempt() and run.status.retries == 0
        assert run.message_labels() == {REQUEUE_LABEL: "3", "x": 1}

    def test_infrastructure_failure_writes_an_error_result(self) -> None:
        run = self.started(retryOnError=True, maxRetries=0)
        run.status = fail_attempt(run.spec, run.status, "OOMKilled", "container used too much memory", NOW)
        record = ResultRecord.model_validate(run.status.result)
        assert record.is_err and record.error is not None
        assert (record.error.type, record.error.module) == ("InfrastructureError", "podiq.kubernetes.resources")
        assert "OOMKilled" in record.error.message
        assert run.status.reason is Reason.FAILED and run.status.reported_attempt == 1

    def test_timeout_failure(self) -> None:
        run = self.started()
        run.status = fail_attempt(run.spec, run.status, "DeadlineExceeded", "", NOW, timed_out=True)
        assert run.status.reason is Reason.TIMED_OUT and run.status.phase is Phase.FAILED
        assert ResultRecord.model_validate(run.status.result).error.type == "TaskTimeoutError"  # type: ignore[union-attr]  # present here


class TestResultSize:
    def test_small_results_pass(self) -> None:
        assert encode_result({"return_value": "x"}) == {"return_value": "x"}

    def test_large_results_are_refused_clearly(self) -> None:
        with pytest.raises(ResultTooLargeError, match=str(MAX_INLINE_RESULT_BYTES)):
            encode_result(ResultRecord(return_value="x" * MAX_INLINE_RESULT_BYTES))

    def test_error_result_is_a_valid_record(self) -> None:
        ResultRecord.model_validate(error_result(RuntimeError, "boom"))


@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (59.9, "59s"), (60, "1m0s"), (3725, "1h2m"), (90000, "1d1h")])
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == text


@pytest.mark.parametrize("text", ["app.tasks:add", "x" * 100 + ":f", "-a:b-"])
def test_label_value_is_valid(text: str) -> None:
    import re

    value = label_value(text)
    assert len(value) <= 63 and re.fullmatch(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]", value)


def test_label_values_of_long_names_stay_distinct() -> None:
    assert label_value("x" * 100 + ":f") != label_value("x" * 100 + ":g")


def test_exit_codes() -> None:
    assert [int(c) for c in ExitCode] == [0, 1, 3, 4]
    assert ExitCode.parse(4) is ExitCode.REQUEUE
    assert ExitCode.parse(2) is None and ExitCode.parse(137) is None and ExitCode.parse(None) is None
