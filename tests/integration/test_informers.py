"""The operator's list-and-watch of the objects it only reads, against the real API server."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from podiq.kubernetes.connecting import api_client
from podiq_operator.informers import Informer, Source

pytestmark = pytest.mark.integration

LABEL = "podiq.io/informer-test"


@pytest.fixture
def namespace(cluster: Any) -> Any:
    name = f"inf-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []
        self.changed = asyncio.Event()

    async def __call__(self, kind: str, body: dict[str, Any]) -> None:
        self.events.append((kind, body["metadata"]["name"], body))
        self.changed.set()

    def seen(self) -> list[tuple[str, str]]:
        return [(kind, name) for kind, name, _ in self.events]

    async def wait_for(self, kind: str, name: str, timeout: float = 30) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                for event_kind, event_name, body in self.events:
                    if (event_kind, event_name) == (kind, name):
                        return body
                self.changed.clear()
                await self.changed.wait()


@contextlib.asynccontextmanager
async def informing(cluster: Any, namespace: str, recorder: Recorder) -> AsyncIterator[Informer]:
    api = await api_client(str(cluster.kubeconfig))
    informer = Informer(api, Source("", "v1", "configmaps", label_selector=LABEL), namespace, recorder, page_size=2)
    task = asyncio.create_task(informer.run())
    try:
        async with asyncio.timeout(30):
            await informer.synced.wait()
        yield informer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await api.close()


def configmap(cluster: Any, namespace: str, name: str, *, labelled: bool = True, value: str = "1") -> None:
    labels = f"\n  labels: {{{LABEL}: 'yes'}}" if labelled else ""
    cluster.apply(
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}{labels}\ndata: {{v: '{value}'}}\n", "-n", namespace
    )


async def test_lists_then_follows_changes_of_matching_objects_only(cluster: Any, namespace: str) -> None:
    for name in ("a", "b", "c"):  # three objects, two to a page: the list is paged
        configmap(cluster, namespace, name)
    configmap(cluster, namespace, "unlabelled", labelled=False)
    recorder = Recorder()
    async with informing(cluster, namespace, recorder):
        assert sorted(recorder.seen()) == [("ADDED", "a"), ("ADDED", "b"), ("ADDED", "c")]
        configmap(cluster, namespace, "d")
        await recorder.wait_for("ADDED", "d")
        configmap(cluster, namespace, "a", value="2")
        assert (await recorder.wait_for("MODIFIED", "a"))["data"] == {"v": "2"}
        cluster.kubectl("delete", "configmap", "b", "-n", namespace)
        await recorder.wait_for("DELETED", "b")
        configmap(cluster, namespace, "unlabelled", labelled=False, value="2")
        await asyncio.sleep(1)
    assert all(name != "unlabelled" for _, name in recorder.seen())


async def test_a_deletion_while_not_watching_is_delivered_after_listing_again(cluster: Any, namespace: str) -> None:
    configmap(cluster, namespace, "kept")
    configmap(cluster, namespace, "gone")
    recorder = Recorder()
    api = await api_client(str(cluster.kubeconfig))
    informer = Informer(api, Source("", "v1", "configmaps", label_selector=LABEL), namespace, recorder)
    try:
        for round_ in (1, 2):  # the same informer run twice, as across a dropped connection
            task = asyncio.create_task(informer.run())
            try:
                async with asyncio.timeout(30):
                    await informer.synced.wait()
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if round_ == 1:
                cluster.kubectl("delete", "configmap", "gone", "-n", namespace)
                recorder.events.clear()
                informer.synced.clear()
    finally:
        await api.close()
    assert sorted(recorder.seen()) == [("ADDED", "kept"), ("DELETED", "gone")]
    deleted = next(body for kind, _, body in recorder.events if kind == "DELETED")
    assert deleted["metadata"]["labels"] == {LABEL: "yes"}  # enough for the caches to tell which object it was
