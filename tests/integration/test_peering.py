"""The operator with kopf peering (the chart's replicas > 1): kopf then watches Jobs, Pods and
Events too, so that pausing in favour of another replica stops every watch."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.integration.conftest import OperatorProcess, namespace_with_chart, recorded_running_from_its_pod

pytestmark = pytest.mark.integration

WAIT = 120


@pytest.fixture(scope="module")
def peering_namespace(podiq_crd: Any) -> Iterator[str]:
    namespace = namespace_with_chart(podiq_crd, "podiq-peer", peering=True)
    yield namespace
    podiq_crd.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture(scope="module")
def peering_operator(
    cluster: Any, peering_namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    operator = OperatorProcess(
        cluster, peering_namespace, tmp_path_factory.mktemp("peering"), env={"PODIQ_PEERING": peering_namespace}
    )
    operator.start()
    yield operator
    operator.stop()


@pytest.fixture
async def peering_broker(cluster: Any, peering_operator: OperatorProcess, peering_namespace: str) -> AsyncIterator[Any]:
    from tests.integration import k8s_tasks

    broker = k8s_tasks.broker
    namespace, kubeconfig = broker.namespace, broker.kubeconfig
    broker.namespace, broker.kubeconfig = peering_namespace, str(cluster.kubeconfig)
    try:
        async with broker:
            yield broker
    finally:
        broker.namespace, broker.kubeconfig = namespace, kubeconfig


async def test_tasks_run_through_kopf_watches_with_peering(
    peering_broker: Any,
    peering_operator: OperatorProcess,
    cluster: Any,
    peering_namespace: str,
) -> None:
    from tests.integration import k8s_tasks as t

    total, risky = await t.calculate_sum.kiq([2, 3]), await t.risky_operation.kiq(-1)
    assert await total.wait_result(timeout=WAIT) == 5
    with pytest.raises(ValueError, match="Negative values not allowed"):
        await risky.wait_result(timeout=WAIT)
    # The pod's events, which only kopf delivers with peering, are what records the attempt.
    slow = await t.slow_with_progress.kiq(16, 0.5)
    recorded_running_from_its_pod(cluster, peering_namespace, slow.task_id)
    assert await slow.wait_result(timeout=WAIT) == 16
    logs = peering_operator.logs()
    assert "Traceback" not in logs, logs
