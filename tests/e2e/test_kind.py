"""The end-to-end scenario on a kind cluster: real containers on a real kubelet.

tests/kind builds the node image and podiq's images from their Dockerfiles offline, creates
the cluster and loads the images with `kind load docker-image`; here the chart is installed
into namespaces that enforce Pod Security "restricted" and tasks run through it. These
tests run with PODIQ_KIND=1 (tests/kind/README.md); in CI a missing prerequisite fails them.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import kind_tasks as kt
from tests.e2e import scenario
from tests.kind import images
from tests.kind.cluster import KindCluster

pytestmark = [pytest.mark.e2e, pytest.mark.kind, pytest.mark.timeout(900)]


def helm_sets() -> list[str]:
    """The chart values the kind test installs with: the locally built images, never pulled."""
    operator, operator_tag = images.OPERATOR.split(":")
    runtime, runtime_tag = images.TASKS.split(":")
    return [
        f"operator.image.repository={operator}",
        f"operator.image.tag={operator_tag}",
        f"runtime.image.repository={runtime}",
        f"runtime.image.tag={runtime_tag}",
        # A user's default: the loaded tag is present, so nothing is pulled; a missing image is.
        "operator.image.pullPolicy=IfNotPresent",
        "runtime.image.pullPolicy=IfNotPresent",
    ]


@pytest.fixture(scope="module")
def installed(kind_cluster: KindCluster) -> Iterator[KindCluster]:
    scenario.install(kind_cluster, *helm_sets())
    yield kind_cluster
    scenario.uninstall(kind_cluster)


def test_operator_runs_in_a_restricted_namespace(installed: Any) -> None:
    pod = scenario.operator_pod(installed)
    assert pod["status"]["phase"] == "Running"
    assert pod["spec"]["containers"][0]["image"] == images.OPERATOR


def test_tasks_run_through_the_chart_on_kind(installed: Any) -> None:
    outcome = scenario.wait(scenario.run_tasks(str(installed.kubeconfig)))
    assert outcome["total"] == 6
    assert isinstance(outcome["error"], ValueError) and "Negative values not allowed" in str(outcome["error"])
    assert outcome["requeued"].startswith("Processed: retry_me")
    assert outcome["steps"] == 3


# --- What only a real node shows: users, file systems, memory, images, probes, restarts. ---


def taskrun(cluster: KindCluster, name: str) -> dict[str, Any]:
    return json.loads(cluster.kubectl("get", "taskrun", name, "-n", scenario.TASK_NAMESPACE, "-o", "json").stdout)


def succeeded_condition(run: dict[str, Any]) -> dict[str, Any]:
    return next((c for c in run.get("status", {}).get("conditions") or [] if c["type"] == "Succeeded"), {})


def wait_for_taskrun(cluster: KindCluster, name: str, check: Any, timeout: float, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run = taskrun(cluster, name)
        if check(run):
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"TaskRun {name} not {what} after {timeout:.0f}s: {json.dumps(run.get('status'))}")
        time.sleep(1)


def outcome(run: dict[str, Any]) -> tuple[str, str, str]:
    condition = succeeded_condition(run)
    return run["status"].get("phase", ""), condition.get("reason", ""), condition.get("message", "")


async def _send(cluster: KindCluster, task: Any, *args: Any) -> Any:
    """Sends one task and waits for it: the finished TaskiqResult (its error not raised)."""
    kt.broker.kubeconfig = str(cluster.kubeconfig)
    async with kt.broker:
        sent = await task.kicker().kiq(*args)
        return await sent.wait_result(timeout=240, with_logs=True)


def send(cluster: KindCluster, task: Any, *args: Any) -> Any:
    return asyncio.run(_send(cluster, task, *args))


def test_tasks_resolve_service_names_through_the_clusters_coredns(installed: KindCluster) -> None:
    def cluster_ip(namespace: str, service: str) -> str:
        return str(
            installed.kubectl("get", "service", service, "-n", namespace, "-o", "jsonpath={.spec.clusterIP}").stdout
        )

    # A full name, and one completed by the pod's search path as the chart's Redis URL is.
    resolved = send(installed, kt.resolve, ["kubernetes.default.svc.cluster.local", "kube-dns.kube-system.svc"])
    assert not resolved.is_err, resolved.error
    assert resolved.return_value == {
        "kubernetes.default.svc.cluster.local": [cluster_ip("default", "kubernetes")],
        "kube-dns.kube-system.svc": [cluster_ip("kube-system", "kube-dns")],
    }


def test_tasks_run_as_uid_10001_on_a_read_only_root_filesystem(installed: KindCluster) -> None:
    identity = send(installed, kt.identity)
    assert not identity.is_err, identity.error
    assert identity.return_value == {"uid": 10001, "gid": 10001, "root_read_only": True, "tmp": "written"}

    refused = send(installed, kt.write_outside_tmp)
    assert refused.is_err and isinstance(refused.error, OSError)
    assert refused.error.errno == errno.EROFS and "Read-only file system" in str(refused.error)
    phase, reason, message = outcome(taskrun(installed, refused.task_id))
    assert (phase, reason) == ("Failed", "Failed")
    assert "Read-only file system" in message, message
    # The node and the operator carry on: the next run is unaffected.
    assert send(installed, kt.identity).return_value["uid"] == 10001


def test_a_task_over_its_memory_limit_is_oomkilled_and_retried_per_policy(installed: KindCluster) -> None:
    result = send(installed, kt.eat_memory)
    assert result.is_err
    run = taskrun(installed, result.task_id)
    phase, reason, message = outcome(run)
    assert (phase, reason) == ("Failed", "Failed"), message
    assert "OOMKilled" in message and kt.MEMORY_LIMIT in message, message
    # max_retries=1: two attempts, each killed.
    assert (run["status"]["attempts"], run["status"]["retries"]) == (2, 1)
    assert "OOMKilled" in str(result.error) and kt.MEMORY_LIMIT in str(result.error)


# Seconds the unpullable image's run may wait before it ends Failed (its pending_deadline label).
PENDING_DEADLINE = 20


@contextmanager
def missing_image_run(cluster: KindCluster, **labels: Any) -> Iterator[str]:
    """A TaskRun of a task whose image cannot be pulled; deleted afterwards, so that it waits no more."""

    async def kick() -> str:
        kt.broker.kubeconfig = str(cluster.kubeconfig)
        async with kt.broker:
            return (await kt.from_missing_image.kicker().with_labels(**labels).kiq()).task_id

    name = asyncio.run(kick())
    try:
        yield name
    finally:
        cluster.kubectl("delete", "taskrun", name, "-n", scenario.TASK_NAMESPACE, "--wait=false", check=False)


def test_an_image_that_cannot_be_pulled_shows_the_pull_error_while_pending(installed: KindCluster) -> None:
    with missing_image_run(installed) as name:
        run = wait_for_taskrun(
            installed,
            name,
            lambda r: succeeded_condition(r).get("reason") == "ImagePullBackOff",
            120,
            "waiting on its image",
        )
        phase, reason, message = outcome(run)
        assert phase in ("", "Pending"), phase
        assert kt.MISSING_IMAGE in message, message


def test_an_image_that_cannot_be_pulled_ends_failed_after_the_pending_deadline(installed: KindCluster) -> None:
    with missing_image_run(installed, pending_deadline=PENDING_DEADLINE) as name:
        run = wait_for_taskrun(
            installed, name, lambda r: r.get("status", {}).get("phase") == "Failed", PENDING_DEADLINE + 60, "Failed"
        )
        phase, reason, message = outcome(run)
        assert (phase, reason) == ("Failed", "ImagePullBackOff"), message
        assert f"did not start within {PENDING_DEADLINE} s" in message and kt.MISSING_IMAGE in message, message
        assert run["status"]["attempts"] == 1


def test_operator_probes_pass_and_deleting_its_pod_mid_run_loses_nothing(installed: KindCluster) -> None:
    pod = scenario.operator_pod(installed)
    container = pod["spec"]["containers"][0]
    assert {"startupProbe", "livenessProbe", "readinessProbe"} <= set(container)
    status = pod["status"]["containerStatuses"][0]
    assert status["ready"] and status["restartCount"] == 0, status

    async def run_through_restart() -> tuple[Any, str]:
        kt.broker.kubeconfig = str(installed.kubeconfig)
        async with kt.broker:
            sent = await kt.slow.kicker().kiq(12)
            await asyncio.to_thread(
                wait_for_taskrun,
                installed,
                sent.task_id,
                lambda r: r.get("status", {}).get("phase") == "Running",
                120,
                "Running",
            )
            installed.kubectl(
                "delete", "pod", pod["metadata"]["name"], "-n", scenario.OPERATOR_NAMESPACE, "--wait=false"
            )
            return await sent.wait_result(timeout=240), sent.task_id

    result, name = asyncio.run(run_through_restart())
    assert not result.is_err, result.error
    assert result.return_value == "slept 12s", result.return_value
    run = taskrun(installed, name)
    assert (outcome(run)[:2], run["status"]["attempts"]) == (("Succeeded", "Succeeded"), 1)
    installed.kubectl("rollout", "status", "deployment", "-n", scenario.OPERATOR_NAMESPACE, "--timeout=120s")
    replacement = scenario.operator_pod(installed)
    assert replacement["metadata"]["name"] != pod["metadata"]["name"]


def test_logs_of_a_finished_run(installed: KindCluster) -> None:
    result = send(installed, kt.chatty, 3)
    assert result.return_value == 3
    assert [f"chatty line {n}" for n in range(3)] == [ln for ln in result.log.splitlines() if ln.startswith("chatty")]
    printed = subprocess.run(
        [
            str(Path(sys.executable).parent / "podiq"),
            "logs",
            result.task_id,
            "-n",
            scenario.TASK_NAMESPACE,
            "--kubeconfig",
            str(installed.kubeconfig),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert printed.returncode == 0, printed.stderr
    assert "chatty line 2" in printed.stdout


def test_podiq_demo_against_kind(installed: KindCluster, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(installed.kubeconfig.read_text())
    installed.kubectl(
        "config", "set-context", "--current", f"--namespace={scenario.TASK_NAMESPACE}", "--kubeconfig", str(kubeconfig)
    )
    demo = subprocess.run(
        [str(Path(sys.executable).parent / "podiq"), "demo", "--broker", "kubernetes"],
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, KUBECONFIG=str(kubeconfig), COLUMNS="160"),
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "5 tasks" in demo.stdout and "4 succeeded, 1 failed as designed (divide(1, 0))" in demo.stdout, demo.stdout
