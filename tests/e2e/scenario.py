"""The end-to-end scenario, the same on the local control plane and on kind: install the
chart, then run tasks through the operator it deployed."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any, Protocol

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "charts" / "podiq"
RELEASE = "podiq"
OPERATOR_NAMESPACE = "podiq-system"
TASK_NAMESPACE = "podiq-e2e"
RESTRICTED = ["pod-security.kubernetes.io/enforce=restricted", "pod-security.kubernetes.io/enforce-version=latest"]


class Tools(Protocol):
    def kubectl(self, *args: str, check: bool = True, timeout: float = 60, input: str | None = None) -> Any: ...
    def helm(self, *args: str, check: bool = True, timeout: float = 180, input: str | None = None) -> Any: ...


def install(
    tools: Tools,
    *helm_sets: str,
    operator_namespace: str = OPERATOR_NAMESPACE,
    task_namespaces: tuple[str, ...] = (TASK_NAMESPACE,),
) -> None:
    """Every namespace enforces Pod Security "restricted", so every pod podiq makes must comply."""
    for namespace in (operator_namespace, *task_namespaces):
        tools.kubectl("create", "namespace", namespace)
        tools.kubectl("label", "namespace", namespace, *RESTRICTED)
    args = [
        "install",
        RELEASE,
        str(CHART),
        "--namespace",
        operator_namespace,
        "--set",
        f"watchNamespaces={{{','.join(task_namespaces)}}}",
        "--wait",
        "--timeout",
        "180s",
    ]
    for item in helm_sets:
        args += ["--set", item]
    tools.helm(*args, timeout=240)


def uninstall(
    tools: Tools, *, operator_namespace: str = OPERATOR_NAMESPACE, task_namespaces: tuple[str, ...] = (TASK_NAMESPACE,)
) -> None:
    tools.helm("uninstall", RELEASE, "--namespace", operator_namespace, "--wait", check=False)
    for namespace in (*task_namespaces, operator_namespace):
        tools.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def operator_pod(tools: Tools, namespace: str = OPERATOR_NAMESPACE, component: str = "operator") -> dict[str, Any]:
    """The one pod of a component of the chart (the operator, or its Redis)."""
    pods = json.loads(tools.kubectl("get", "pods", "-n", namespace, "-o", "json").stdout)["items"]
    (pod,) = [p for p in pods if p["metadata"]["labels"].get("app.kubernetes.io/component") == component]
    return pod


async def run_tasks(kubeconfig: str) -> dict[str, Any]:
    """Sends tasks through the installed operator; returns what came back, for the test to check."""
    os.environ["PODIQ_TEST_NAMESPACE"] = TASK_NAMESPACE
    from tests.integration import k8s_tasks as t

    t.broker.namespace = TASK_NAMESPACE
    t.broker.kubeconfig = kubeconfig
    async with t.broker:
        total = await (await t.calculate_sum.kiq([1, 2, 3])).wait_result(timeout=120)
        failed = await t.risky_operation.kiq(-1)
        try:
            await failed.wait_result(timeout=120)
            error: BaseException | None = None
        except ValueError as exc:
            error = exc
        requeued = await (await t.context_aware_task.kiq("retry_me")).wait_result(timeout=120)
        steps = await (await t.slow_with_progress.kiq(3, 0.3)).wait_result(timeout=120)
        return {"total": total, "error": error, "requeued": requeued, "steps": steps}


def wait(coro: Any) -> Any:
    return asyncio.run(coro)
