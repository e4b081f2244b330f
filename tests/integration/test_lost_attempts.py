"""An attempt taken away while it runs: its Job deleted by hand, its runtime SIGKILLed, its
TaskRun deleted. Each ends in a terminal phase with a reason that names what happened (or is
gone with everything it made); nothing stays Running."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from podiq.kubernetes.resources import InfrastructureError

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

WAIT = 90


async def running_pod(cluster: Any, namespace: str, name: str) -> str:
    for _ in range(120):
        pods = cluster.get("pods", "-n", namespace, "-l", f"podiq.io/taskrun={name}")["items"]
        if pods and pods[0]["status"].get("phase") == "Running":
            return str(pods[0]["metadata"]["name"])
        await asyncio.sleep(0.5)
    raise AssertionError(f"no running pod for {name}")


def runtime_pids(name: str) -> list[int]:
    """The local processes that run TaskRun ``name``'s pod (the node runs pods as processes)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if f"PODIQ_TASKRUN_NAME={name}".encode() in environ and proc.name.isdigit():
            found.append(int(proc.name))
    return found


async def test_a_job_deleted_by_hand_ends_the_attempt_saying_so(
    k8s_broker: Any, cluster: Any, podiq_namespace: str
) -> None:
    from tests.integration import k8s_tasks as t

    result = await t.slow_with_progress.kiq(120, 0.5)
    await running_pod(cluster, podiq_namespace, result.task_id)
    cluster.kubectl("delete", "job", f"{result.task_id}-a1", "-n", podiq_namespace, "--wait=false")
    with pytest.raises(InfrastructureError) as raised:
        await result.wait_result(timeout=WAIT)
    status = cluster.get("taskrun", result.task_id, "-n", podiq_namespace)["status"]
    assert status["phase"] == "Failed" and status["attempts"] == 1
    assert "JobDeleted" in str(raised.value) or "SIGTERM" in str(raised.value), raised.value


async def test_a_runtime_killed_with_sigkill_ends_the_attempt_naming_the_signal(
    k8s_broker: Any,
    cluster: Any,
    podiq_namespace: str,
) -> None:
    from tests.integration import k8s_tasks as t

    result = await t.slow_with_progress.kiq(120, 0.5)
    await running_pod(cluster, podiq_namespace, result.task_id)
    pids = runtime_pids(result.task_id)
    assert pids, "the runtime's process"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    with pytest.raises(InfrastructureError, match="SIGKILL") as raised:
        await result.wait_result(timeout=WAIT)
    assert "exit code 137" in str(raised.value)
    assert cluster.get("taskrun", result.task_id, "-n", podiq_namespace)["status"]["phase"] == "Failed"


async def test_a_taskrun_deleted_while_running_takes_its_job_and_pod_and_its_waiter_is_told(
    k8s_broker: Any,
    cluster: Any,
    podiq_namespace: str,
) -> None:
    from podiq import ResultGetError
    from tests.integration import k8s_tasks as t

    result = await t.slow_with_progress.kiq(120, 0.5)
    await running_pod(cluster, podiq_namespace, result.task_id)
    cluster.kubectl("delete", "taskrun", result.task_id, "-n", podiq_namespace, "--wait=false")
    with pytest.raises(ResultGetError, match="deleted before it finished"):
        await result.wait_result(timeout=WAIT)

    def gone() -> bool:
        selector = f"podiq.io/taskrun={result.task_id}"
        return not cluster.get("jobs", "-n", podiq_namespace, "-l", selector)["items"] and not [
            p
            for p in cluster.get("pods", "-n", podiq_namespace, "-l", selector)["items"]
            if p["status"].get("phase") in ("Pending", "Running")
        ]

    cluster.wait_for("its Job and pod to go", gone, timeout=60)
