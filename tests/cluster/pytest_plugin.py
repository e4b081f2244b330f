"""pytest plugin: a session-scoped ``cluster`` fixture.

Enable with ``pytest_plugins = ["tests.cluster.pytest_plugin"]`` in a conftest.
The fixture builds the binaries if they are not cached yet and FAILS (never
skips) when that is impossible, so a CI run cannot go green without the
cluster tests having run.  Set PODIQ_KEEP_CLUSTER=1 to keep the state
directory (logs, pod output) after the session.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

from . import building
from .cluster import Cluster
from .controlplane import ControlPlane, new_state_dir, remove_state_dir, run_root


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "integration: needs the local Kubernetes test cluster")


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    try:
        bin_dir = building.build()
    except building.BuildError as exc:
        pytest.fail(
            f"cannot build the test cluster binaries: {exc}\n"
            f"(run `python -m tests.cluster build` to see the whole output)",
            pytrace=False,
        )
    # Not under /tmp: pods mount an emptyDir there, which would hide the node's files from them.
    state = new_state_dir(run_root())
    control_plane = ControlPlane(bin_dir=bin_dir, state_dir=state)
    try:
        control_plane.start()
    except Exception as exc:  # noqa: BLE001 - fail with the components' logs
        logs = Cluster(control_plane).component_logs() if control_plane.kubeconfig else ""
        remove_state_dir(state)
        pytest.fail(f"the test cluster did not start: {exc}\n{logs}", pytrace=False)
    handle = Cluster(control_plane)
    try:
        yield handle
    finally:
        control_plane.stop()
        if os.environ.get("PODIQ_KEEP_CLUSTER"):
            print(f"\ntest cluster state kept in {state}", file=sys.stderr)
        else:
            remove_state_dir(state)
