"""What KubernetesBroker sends: the TaskRun body for a call, and the refusals before sending."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from podiq import InvalidArgumentsError, TaskiqMessage
from podiq.kubernetes.broker import KubernetesBroker
from podiq.kubernetes.resources import TaskRun
from podiq.runtime.environment import RuntimeEnvironment


@pytest.fixture
def broker() -> KubernetesBroker:
    return KubernetesBroker(
        "jobs", image="registry.example/app:1", env={"MODE": "prod"}, resources={"limits": {"cpu": "1"}}
    )


def message(task_name: str = "app.tasks:add", task_id: str = "0f3a", **labels: object) -> TaskiqMessage:
    return TaskiqMessage(task_id=task_id, task_name=task_name, labels=labels, args=[1, 2], kwargs={"c": 3})


def test_body_carries_the_call_and_the_broker_defaults(broker: KubernetesBroker) -> None:
    body = broker.taskrun_body(message(timeout=30, retry_on_error=True, max_retries=2))
    run = TaskRun.from_api(body)
    assert body["metadata"] == {"name": "0f3a", "namespace": "jobs", "labels": {"podiq.io/task": "app.tasks.add"}}
    assert (run.spec.task_name, run.spec.args, run.spec.kwargs) == ("app.tasks:add", [1, 2], {"c": 3})
    assert run.spec.image == "registry.example/app:1"
    assert [(e.name, e.value) for e in run.spec.env or []] == [("MODE", "prod")]
    assert run.spec.resources is not None and run.spec.resources.limits == {"cpu": "1"}
    assert (run.spec.timeout_seconds, run.spec.retry_on_error, run.spec.max_retries) == (30, True, 2)


def test_labels_override_and_extend_the_defaults(broker: KubernetesBroker) -> None:
    when = (datetime.now(UTC) + timedelta(minutes=5)).replace(microsecond=0)  # the API keeps seconds
    body = broker.taskrun_body(
        message(image="other:2", env={"EXTRA": "1"}, queue_name="batch", ttl=60, service_account="etl", not_before=when)
    )
    spec = TaskRun.from_api(body).spec
    assert spec.image == "other:2" and spec.queue_name == "batch" and spec.ttl_seconds_after_finished == 60
    assert spec.service_account_name == "etl" and spec.not_before == when
    assert {(e.name, e.value) for e in spec.env or []} == {("MODE", "prod"), ("EXTRA", "1")}


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (message(task_name="__main__:add"), "importable module"),
        (message(task_name="custom-name"), "module:function"),
        (message(task_id="Not_A_Name"), "cannot name a TaskRun"),
        (message(task_id="x" * 64), "cannot name a TaskRun"),
        (message(ttl=-1), "ttl"),
        (message(service_account="Bad Name"), "service_account"),
        (message(not_before="tomorrow"), "not_before"),
    ],
)
def test_calls_that_cannot_become_taskruns_are_refused_before_sending(
    broker: KubernetesBroker, call: TaskiqMessage, fragment: str
) -> None:
    with pytest.raises(InvalidArgumentsError, match=fragment):
        broker.taskrun_body(call)


def test_waiting_before_startup_says_to_start_the_broker(broker: KubernetesBroker) -> None:
    with pytest.raises(Exception, match="startup"):
        broker.taskruns


def test_runtime_environment_is_read_from_the_operators_variables() -> None:
    env = RuntimeEnvironment.from_environ(
        {
            "PODIQ_TASKRUN_NAME": "run1",
            "PODIQ_TASKRUN_NAMESPACE": "jobs",
            "PODIQ_ATTEMPT": "2",
            "PODIQ_POD_NAME": "run1-a2-xyz",
            "PODIQ_IMPORTS": "app.tasks, app.more",
        }
    )
    assert (env.taskrun_name, env.namespace, env.attempt, env.pod_name) == ("run1", "jobs", 2, "run1-a2-xyz")
    assert env.imports == ["app.tasks", "app.more"]
    with pytest.raises(ValueError, match="PODIQ_TASKRUN_NAME"):
        RuntimeEnvironment.from_environ({"PODIQ_ATTEMPT": "1"})


async def test_a_pool_is_chosen_per_broker_task_or_call_and_needs_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    from podiq import SendTaskError

    monkeypatch.delenv("PODIQ_REDIS_URL", raising=False)
    pooled = KubernetesBroker("jobs", pool="fast")
    assert pooled.taskrun_body(message())["spec"]["pool"] == "fast"
    assert pooled.taskrun_body(message(pool="slow"))["spec"]["pool"] == "slow"
    assert "pool" not in KubernetesBroker("jobs").taskrun_body(message())["spec"]
    with pytest.raises(InvalidArgumentsError, match="pool"):
        pooled.taskrun_body(message(pool="Not_A_Name"))
    with pytest.raises(SendTaskError, match="TaskPool 'fast', which needs Redis.*PODIQ_REDIS_URL"):
        await pooled.kick(message())  # refused before anything is written


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "InvalidError"),
        (404, "NotFoundError"),
        (409, "ConflictError"),
        (410, "ExpiredError"),
        (422, "InvalidError"),
        (503, "ApiError"),
    ],
)
def test_the_api_servers_refusals_are_translated_once_with_its_own_words(status: int, kind: str) -> None:
    from kubernetes_asyncio.client.exceptions import ApiException

    from podiq.exceptions import BrokerError
    from podiq.kubernetes.api import api_error

    error = api_error(status, "Reason", b'{"kind": "Status", "message": "what the server said"}')
    assert type(error).__name__ == kind and error.status == status and error.message == "what the server said"
    assert isinstance(error, BrokerError) and isinstance(error, ApiException)  # status-based retry rules still hold
    assert api_error(502, "Bad Gateway", b"<html>proxy</html>").message == "Bad Gateway"


def test_resources_name_their_collections() -> None:
    from podiq.kubernetes.api import CRONJOBS, TASKRUNS, Resource

    assert TASKRUNS.path("jobs", "run-1", "status") == "/apis/podiq.io/v1alpha1/namespaces/jobs/taskruns/run-1/status"
    assert CRONJOBS.path(None) == "/apis/batch/v1/cronjobs"
    assert Resource("", "v1", "events").path("ns") == "/api/v1/namespaces/ns/events"
