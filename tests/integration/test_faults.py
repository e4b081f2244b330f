"""The API server and etcd go away while runs are in flight and clients wait: the shared
watch, the operator's watches and the runtimes resume, and every waiter gets its result."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from podiq import gather

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

RUNS = 8


@pytest.mark.parametrize("component", ["apiserver", "etcd"])
async def test_every_waiter_gets_its_result_across_a_restart(
    k8s_broker: Any,
    cluster: Any,
    podiq_namespace: str,
    component: str,
) -> None:
    from tests.integration import k8s_tasks as t

    # No retry policy: the node agent, like a kubelet, waits for the API server while it sets
    # a pod up, so a pod caught by the outage still runs and no run needs a second attempt.
    runs = [await t.slow_with_progress.kiq(6, 0.5) for _ in range(RUNS)]
    waiting = asyncio.ensure_future(gather(*runs, timeout=180))
    await asyncio.sleep(2)
    relists = k8s_broker.watch.relists
    started = time.monotonic()
    await asyncio.to_thread(cluster.control_plane.restart, component, down_for=3, hard=True)
    outage = time.monotonic() - started
    done = await waiting
    assert [r.return_value for r in done] == [6] * RUNS, [r.error for r in done if r.is_err]
    for run in runs:
        jobs = cluster.get("jobs", "-n", podiq_namespace, "-l", f"podiq.io/taskrun={run.task_id}")["items"]
        attempts = cluster.get("taskrun", run.task_id, "-n", podiq_namespace)["status"]["attempts"]
        assert attempts == 1, f"{run.task_id} took {attempts} attempts"
        assert [j["metadata"]["name"] for j in jobs] == [f"{run.task_id}-a1"]
    print(
        f"\n{component} down {outage:.1f} s: {RUNS}/{RUNS} results, the watch listed again "
        f"{k8s_broker.watch.relists - relists} times"
    )
