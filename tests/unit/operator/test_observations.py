"""Reading an attempt's state (and why it is stuck) from its Job and Pod."""

from __future__ import annotations

import pytest

from podiq.kubernetes.resources import Reason
from podiq_operator.observations import AttemptState, failed_create_reason, observe_attempt

from .conftest import job_body, pod_body, terminated


def cond(kind: str, status: str = "True", reason: str = "", message: str = "") -> dict:
    return {"type": kind, "status": status, "reason": reason, "message": message}


def test_no_job_is_missing() -> None:
    assert observe_attempt(None).state is AttemptState.MISSING


def test_job_without_pod_is_active() -> None:
    obs = observe_attempt(job_body())
    assert obs.state is AttemptState.ACTIVE and not obs.finished


def test_running_pod_is_active_and_named() -> None:
    obs = observe_attempt(job_body(), pod_body(state={"running": {}}))
    assert (obs.state, obs.pod_name) == (AttemptState.ACTIVE, "add-1-a1-xk2p9")


def test_complete_job_succeeded() -> None:
    obs = observe_attempt(job_body(conditions=[cond("Complete")]))
    assert (obs.state, obs.exit_code) == (AttemptState.SUCCEEDED, 0) and obs.finished


def test_success_criteria_met_counts_as_complete() -> None:
    assert observe_attempt(job_body(conditions=[cond("SuccessCriteriaMet")])).state is AttemptState.SUCCEEDED


def test_pod_exit_zero_is_seen_before_the_job_completes() -> None:
    obs = observe_attempt(job_body(), pod_body(phase="Succeeded", state=terminated(0, "Completed")))
    assert obs.state is AttemptState.SUCCEEDED


def test_failed_job_carries_the_exit_code_and_reason() -> None:
    obs = observe_attempt(
        job_body(conditions=[cond("Failed", reason="BackoffLimitExceeded")]),
        pod_body(phase="Failed", state=terminated(137, "OOMKilled")),
    )
    assert (obs.state, obs.exit_code, obs.failure) == (AttemptState.FAILED, 137, "OOMKilled")
    assert not obs.timed_out


def test_failure_target_counts_as_failed() -> None:
    obs = observe_attempt(
        job_body(conditions=[cond("FailureTarget", reason="BackoffLimitExceeded")]), pod_body(state=terminated(1))
    )
    assert (obs.state, obs.exit_code) == (AttemptState.FAILED, 1)


def test_deadline_exceeded_is_a_timeout() -> None:
    obs = observe_attempt(job_body(conditions=[cond("Failed", reason="DeadlineExceeded", message="too long")]))
    assert (obs.state, obs.timed_out, obs.failure, obs.message) == (
        AttemptState.FAILED,
        True,
        "DeadlineExceeded",
        "too long",
    )


def test_failed_job_with_pod_gone() -> None:
    obs = observe_attempt(job_body(conditions=[cond("Failed", reason="BackoffLimitExceeded", message="m")]))
    assert (obs.state, obs.failure, obs.exit_code) == (AttemptState.FAILED, "BackoffLimitExceeded", None)


def test_pod_exit_code_before_the_job_fails() -> None:
    obs = observe_attempt(job_body(), pod_body(phase="Failed", state=terminated(4)))
    assert (obs.state, obs.exit_code) == (AttemptState.FAILED, 4)


def test_crash_message_is_kept() -> None:
    obs = observe_attempt(job_body(), pod_body(state=terminated(2, "Error", "Traceback ...\nImportError: x\n")))
    assert obs.message.endswith("ImportError: x")


def test_evicted_pod_failed() -> None:
    obs = observe_attempt(job_body(), pod_body(phase="Failed", reason="Evicted", message="low on memory"))
    assert (obs.state, obs.failure, obs.message) == (AttemptState.FAILED, "Evicted", "low on memory")


def test_unschedulable() -> None:
    pod = pod_body(
        phase="Pending", conditions=[cond("PodScheduled", "False", "Unschedulable", "0/3 nodes: Insufficient cpu.")]
    )
    obs = observe_attempt(job_body(), pod)
    assert (obs.state, obs.reason, obs.message) == (
        AttemptState.BLOCKED,
        Reason.UNSCHEDULABLE,
        "0/3 nodes: Insufficient cpu.",
    )


def test_image_pull_back_off() -> None:
    for waiting in ("ImagePullBackOff", "ErrImagePull", "InvalidImageName"):
        pod = pod_body(phase="Pending", state={"waiting": {"reason": waiting, "message": "no such image"}})
        obs = observe_attempt(job_body(), pod)
        assert (obs.state, obs.reason) == (AttemptState.BLOCKED, Reason.IMAGE_PULL_BACK_OFF)
        assert obs.message == f"{waiting}: no such image"


def test_container_creating_is_not_stuck() -> None:
    pod = pod_body(phase="Pending", state={"waiting": {"reason": "ContainerCreating"}})
    assert observe_attempt(job_body(), pod).state is AttemptState.ACTIVE


def test_quota_exceeded_when_the_job_cannot_create_its_pod() -> None:
    message = 'pods "add-1-a1-x" is forbidden: exceeded quota: compute'
    obs = observe_attempt(job_body(), None, failed_create=message)
    assert (obs.state, obs.reason, obs.message) == (AttemptState.BLOCKED, Reason.QUOTA_EXCEEDED, message)


def test_stale_quota_message_ignored_once_a_pod_exists() -> None:
    obs = observe_attempt(job_body(), pod_body(state={"running": {}}), failed_create="exceeded quota")
    assert obs.state is AttemptState.ACTIVE


def test_suspended_job_is_queued() -> None:
    obs = observe_attempt(job_body(conditions=[cond("Suspended")]))
    assert (obs.state, obs.reason) == (AttemptState.BLOCKED, Reason.QUEUED)


def test_false_conditions_do_not_count() -> None:
    obs = observe_attempt(job_body(conditions=[cond("Failed", "False"), cond("Suspended", "False")]))
    assert obs.state is AttemptState.ACTIVE


def test_exit_codes_from_signals_are_named() -> None:
    from podiq_operator.observations import _exit_message

    assert "SIGTERM" in _exit_message(143) and "deleted" in _exit_message(143)
    assert "SIGKILL" in _exit_message(137) and "memory" in _exit_message(137)
    assert _exit_message(2) == "The runtime exited with code 2."


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (
            'Error creating: pods "add-1-a1-" is forbidden: error looking up service account jobs/podiq-runtime: '
            'serviceaccount "podiq-runtime" not found',
            Reason.SERVICE_ACCOUNT_MISSING,
        ),
        (
            'Error creating: pods "add-1-a1-x" is forbidden: exceeded quota: compute, requested: pods=1, used: pods=1, '
            "limited: pods=1",
            Reason.QUOTA_EXCEEDED,
        ),
        (
            'Error creating: pods "add-1-a1-x" is forbidden: failed quota: compute: must specify limits.cpu for: task',
            Reason.QUOTA_EXCEEDED,
        ),
        (
            'Error creating: pods "add-1-a1-x" is forbidden: maximum cpu usage per Container is 1, but limit is 2',
            Reason.LIMIT_RANGE,
        ),
        (
            'Error creating: pods "add-1-a1-x" is forbidden: violates PodSecurity "restricted:latest": '
            "allowPrivilegeEscalation != false",
            Reason.POD_SECURITY,
        ),
        ('Error creating: admission webhook "policy.example.com" denied the request: no', Reason.ADMISSION_DENIED),
        (
            "Error creating: pods \"add-1-a1-x\" is forbidden: ValidatingAdmissionPolicy 'p' with binding 'b' denied "
            "request: nope",
            Reason.ADMISSION_DENIED,
        ),
        (
            'Error creating: Pod "add-1-a1-x" is invalid: spec.containers[0].resources.requests[cpu]: Invalid value: "2": '
            "must be less than or equal to cpu limit",
            Reason.INVALID_POD_SPEC,
        ),
        ("Error creating: Internal error occurred: etcdserver: request timed out", Reason.POD_CREATE_FAILED),
    ],
)
def test_each_failed_create_has_its_own_reason_and_keeps_the_message(message: str, reason: Reason) -> None:
    assert failed_create_reason(message) is reason
    obs = observe_attempt(job_body(), None, failed_create=message)
    assert (obs.state, obs.reason, obs.message) == (AttemptState.BLOCKED, reason, message)


def test_a_container_that_cannot_be_made_is_stuck() -> None:
    waiting = {"waiting": {"reason": "CreateContainerConfigError", "message": 'secret "creds" not found'}}
    obs = observe_attempt(job_body(), pod_body(phase="Pending", state=waiting))
    assert (obs.state, obs.reason) == (AttemptState.BLOCKED, Reason.CONTAINER_CONFIG_ERROR)
    assert obs.message == 'CreateContainerConfigError: secret "creds" not found'


def test_pod_started_tells_a_running_container_from_a_pending_one() -> None:
    assert observe_attempt(job_body(), pod_body(state={"running": {}})).pod_started
    assert not observe_attempt(
        job_body(), pod_body(phase="Pending", state={"waiting": {"reason": "ContainerCreating"}})
    ).pod_started
    assert not observe_attempt(job_body(), None).pod_started
