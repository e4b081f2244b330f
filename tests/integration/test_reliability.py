"""The issue's reliability suite at full size, on the local control plane: bench/chaos.py's
scenario (the same code), with its figures printed for the record and asserted on.

- R1: 1,000 TaskRuns while the operator is SIGKILLed 10 times at random moments: every one
  ends Succeeded, none lost, no attempt with two Jobs, no result written twice.
- R2: kube-apiserver restarted (and, separately, etcd) while 200 runs are in flight and
  every client waits: none lost, every waiter gets its result, each run in one attempt.

Each task is a pod, a Python process on the same cores, so R1 is the suite's longest test
(about twelve minutes on 2 busy cores). ``PODIQ_R1_RUNS`` makes it smaller for a quick local try.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.chaos import Figures, chaos, report
from tests.integration.conftest import chart_namespace

pytestmark = [pytest.mark.integration]

R1_RUNS = int(os.environ.get("PODIQ_R1_RUNS", "1000"))
R1_KILLS = 10
R2_RUNS = 200


@pytest.fixture
def chaos_namespace(podiq_crd: Any) -> Iterator[str]:
    with chart_namespace(podiq_crd, "podiq-chaos") as namespace:
        yield namespace


def assert_nothing_lost(figures: Figures, runs: int) -> None:
    assert figures.lost == 0
    assert figures.errors == []
    assert figures.results == runs
    assert dict(figures.phases) == {"Succeeded": runs}
    assert figures.max_jobs == 1 and figures.two_jobs == 0
    assert figures.extra_attempts == 0
    # Every result was seen written, and none was written over by a second one.
    assert figures.results_seen == runs
    assert figures.overwritten == []


@pytest.mark.timeout(2400)
async def test_r1_operator_sigkilled_ten_times_loses_nothing(
    cluster: Any, chaos_namespace: str, tmp_path: Path
) -> None:
    figures = await chaos(cluster, tmp_path, runs=R1_RUNS, kills=R1_KILLS, namespace=chaos_namespace, timeout=2000)
    report(figures, f"R1: {R1_RUNS} runs, operator SIGKILLed {R1_KILLS}x")
    assert_nothing_lost(figures, R1_RUNS)
    # Every kill happened, each while runs were in flight.
    assert [kind for kind, _ in figures.faults] == ["kill"] * R1_KILLS
    assert all(in_flight > 0 for _, in_flight in figures.faults)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("component", ["apiserver", "etcd"])
async def test_r2_a_restart_under_200_waiting_clients_loses_nothing(
    cluster: Any, chaos_namespace: str, tmp_path: Path, component: str
) -> None:
    figures = await chaos(
        cluster, tmp_path, runs=R2_RUNS, restarts=1, component=component, namespace=chaos_namespace, timeout=600
    )
    report(figures, f"R2: {R2_RUNS} runs, {component} restarted")
    assert_nothing_lost(figures, R2_RUNS)
    [(kind, in_flight)] = figures.faults
    assert kind == component and in_flight > 0
