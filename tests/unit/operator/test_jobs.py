"""Building an attempt's Job from a TaskRun."""

from __future__ import annotations

import re

import pytest

from podiq_operator.config import JobConfig
from podiq_operator.jobs import RUNTIME_COMMAND, attempt_of, build_job, job_name

from .conftest import taskrun

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class TestJobName:
    def test_short_names_are_readable(self) -> None:
        assert job_name("add-1", 1) == "add-1-a1"
        assert job_name("add-1", 12) == "add-1-a12"

    @pytest.mark.parametrize("length", [50, 59, 60, 61, 63, 100, 253])
    @pytest.mark.parametrize("attempt", [1, 10, 101])
    def test_names_fit_a_label_and_are_stable(self, length: int, attempt: int) -> None:
        name = ("r" * (length - 5)) + "-abcd"
        job = job_name(name, attempt)
        assert len(job) <= 63 and DNS_LABEL.match(job)
        assert job == job_name(name, attempt)
        assert job.endswith(f"-a{attempt}")

    def test_long_names_stay_distinct(self) -> None:
        a, b = "x" * 80 + "a", "x" * 80 + "b"
        assert job_name(a, 1) != job_name(b, 1)
        assert job_name(a, 1) != job_name(a, 2)


def test_attempt_of() -> None:
    assert attempt_of({"metadata": {"labels": {"podiq.io/attempt": "3"}}}) == 3
    assert attempt_of({"metadata": {"labels": {"podiq.io/attempt": "x"}}}) is None
    assert attempt_of({"metadata": {}}) is None


class TestBuildJob:
    def build(self, attempt: int = 1, config: JobConfig | None = None, **spec: object) -> dict:
        return build_job(taskrun(**spec), attempt, config or JobConfig(runtime_image="rt:1"))

    def test_identity_and_ownership(self) -> None:
        job = self.build(attempt=2)
        meta = job["metadata"]
        assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
        assert (meta["name"], meta["namespace"]) == ("add-1-a2", "jobs")
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "podiq.io/v1alpha1",
                "kind": "TaskRun",
                "name": "add-1",
                "uid": "uid-add-1",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        assert meta["labels"]["podiq.io/taskrun"] == "add-1"
        assert meta["labels"]["podiq.io/task"] == "app.tasks.add"
        assert meta["labels"]["podiq.io/attempt"] == "2"
        assert job["spec"]["template"]["metadata"]["labels"]["podiq.io/taskrun"] == "add-1"

    def test_podiq_counts_attempts_not_the_job(self) -> None:
        spec = self.build()["spec"]
        assert spec["backoffLimit"] == 0 and spec["completions"] == 1
        assert spec["template"]["spec"]["restartPolicy"] == "Never"
        assert "activeDeadlineSeconds" not in spec

    def test_deadline_from_timeout_plus_grace(self) -> None:
        job = self.build(timeoutSeconds=10.2, config=JobConfig(deadline_grace_seconds=30))
        assert job["spec"]["activeDeadlineSeconds"] == 41

    def test_kueue_label_only_with_a_queue(self) -> None:
        assert "kueue.x-k8s.io/queue-name" not in self.build()["metadata"]["labels"]
        job = self.build(queueName="team-a")
        assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
        assert "kueue.x-k8s.io/queue-name" not in job["spec"]["template"]["metadata"]["labels"]

    def test_restricted_pod_security(self) -> None:
        pod = self.build()["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        (container,) = pod["containers"]
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["runAsNonRoot"] is True
        assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
        assert pod["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}]

    def test_container_runs_the_runtime(self) -> None:
        (container,) = self.build()["spec"]["template"]["spec"]["containers"]
        assert container["command"] == RUNTIME_COMMAND == ["python", "-m", "podiq.runtime"]
        assert container["image"] == "rt:1"
        assert "imagePullPolicy" not in container and "resources" not in container

    def test_image_resources_and_pull_policy(self) -> None:
        job = self.build(
            image="me/app:2",
            resources={"limits": {"memory": "1Gi"}, "requests": {"cpu": 1}},
            config=JobConfig(image_pull_policy="IfNotPresent"),
        )
        (container,) = job["spec"]["template"]["spec"]["containers"]
        assert container["image"] == "me/app:2"
        assert container["imagePullPolicy"] == "IfNotPresent"
        assert container["resources"] == {"limits": {"memory": "1Gi"}, "requests": {"cpu": 1}}

    def test_env_for_the_runtime_then_the_users(self) -> None:
        job = self.build(attempt=3, env=[{"name": "MODE", "value": "x"}, {"name": "PODIQ_ATTEMPT", "value": "9"}])
        (container,) = job["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e for e in container["env"]}
        assert env["PODIQ_TASKRUN_NAME"] == {"name": "PODIQ_TASKRUN_NAME", "value": "add-1"}
        assert env["PODIQ_TASKRUN_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
        assert env["PODIQ_POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
        assert env["PODIQ_ATTEMPT"]["value"] == "3", "users cannot override the runtime's variables"
        assert env["PODIQ_JOB_NAME"]["value"] == job["metadata"]["name"]
        assert env["MODE"]["value"] == "x"
        assert len(container["env"]) == 6

    def test_service_account(self) -> None:
        assert self.build()["spec"]["template"]["spec"]["serviceAccountName"] == "podiq-runtime"
        assert self.build(serviceAccountName="mine")["spec"]["template"]["spec"]["serviceAccountName"] == "mine"

    def test_long_taskrun_names_give_valid_labels(self) -> None:
        job = build_job(taskrun("t" * 200), 1, JobConfig())
        for value in job["metadata"]["labels"].values():
            assert len(value) <= 63
        assert len(job["metadata"]["name"]) <= 63
        assert job["metadata"]["ownerReferences"][0]["name"] == "t" * 200
