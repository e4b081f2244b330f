"""The ``kind_cluster`` session fixture, and the kind tier's selection.

Tests marked ``kind`` run when PODIQ_KIND=1 (scripts/test sets it); otherwise they are
deselected, with a line in the report header saying so. Once selected, a missing
prerequisite fails the session in CI (CI=true) with what to install; elsewhere it skips
with the same message.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from . import harness
from .cluster import KindCluster
from .steps import KindError


def selected() -> bool:
    return os.environ.get("PODIQ_KIND") == "1"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing_prerequisite() -> str | None:
    if shutil.which("go") is None:
        return "the kind tier builds its tool chain with Go: put Go >= 1.26 on PATH"
    if os.geteuid() != 0 and shutil.which("dockerd") is None:
        return "the kind tier needs root (to install and start Docker) or Docker installed (apt-get install docker.io)"
    return None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "kind: needs a kind cluster (tests/kind); runs with PODIQ_KIND=1")


def pytest_report_header(config: pytest.Config) -> str:
    return "kind tier: " + ("selected" if selected() else "not selected (PODIQ_KIND=1 runs tests marked kind)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if selected():
        # Last, so that the cluster (a node running a whole control plane) is up only at the
        # end of the session and takes no CPU from the other tiers.
        items.sort(key=lambda item: item.get_closest_marker("kind") is not None)
        return
    kept = [i for i in items if i.get_closest_marker("kind") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i.get_closest_marker("kind") is not None])
        items[:] = kept


@pytest.fixture(scope="session")
def kind_cluster() -> Iterator[KindCluster]:
    problem = missing_prerequisite()
    if problem is not None:
        if in_ci():
            pytest.fail(problem, pytrace=False)
        pytest.skip(problem)
    try:
        with harness.session() as cluster:
            yield cluster
    except KindError as exc:
        pytest.fail(f"the kind cluster could not be set up: {exc}", pytrace=False)
