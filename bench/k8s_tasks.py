"""The benchmark's task, imported by the runtime in each pod (bench.k8s_tasks via PYTHONPATH)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from podiq.kubernetes.broker import KubernetesBroker

REPO_ROOT = str(Path(__file__).resolve().parents[1])
broker = KubernetesBroker(namespace="bench-e2e", env={"PYTHONPATH": REPO_ROOT}, ttl=None)


def process_started_at() -> float:
    """When this process started (epoch seconds), from /proc: the pod's run begins here.

    The process's age (uptime minus its start in clock ticks since boot) is precise to a tick;
    /proc/stat's boot time is whole seconds, too coarse to add to."""
    ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return time.time() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))


@broker.task
async def noop() -> tuple[float, float]:
    """Returns (process start, task end): the pod's run time, measured on the same clock."""
    return process_started_at(), time.time()
