"""The parts of the informers that need no API server (the rest: tests/integration/test_informers.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from podiq.kubernetes.api import lines as _lines
from podiq_operator.informers import Informer, Source


class Chunks:
    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks

    async def iter_any(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk


async def test_events_split_across_chunks_and_longer_than_aiohttp_lines_are_whole() -> None:
    long = b'{"type":"ADDED","object":{"data":"' + b"x" * 300_000 + b'"}}'
    stream = Chunks(b'{"a":1}\n{"b"', b":2}\n\n" + long[:1000], long[1000:] + b"\n", b'{"c":3}')
    assert [line async for line in _lines(stream)] == [b'{"a":1}', b'{"b":2}', long, b'{"c":3}']


def test_paths_of_core_and_group_kinds_in_a_namespace_or_all() -> None:
    assert Source("", "v1", "pods").path("ns") == "/api/v1/namespaces/ns/pods"
    assert Source("batch", "v1", "jobs").path(None) == "/apis/batch/v1/jobs"


class Response:
    status = 200

    def __init__(self, *events: dict[str, Any]) -> None:
        self.content = Chunks(*(json.dumps(event).encode() + b"\n" for event in events))

    async def __aenter__(self) -> Response:
        return self

    async def __aexit__(self, *_: Any) -> None:
        pass


async def test_an_expired_resource_version_ends_the_watch_and_lists_again() -> None:
    """The server says 410 Gone in the stream when the watch's resourceVersion was compacted away."""
    delivered: list[tuple[str, str]] = []

    async def handler(kind: str, body: dict[str, Any]) -> None:
        delivered.append((kind, body["metadata"]["name"]))

    informer = Informer(None, Source("", "v1", "pods"), "ns", handler)  # type: ignore[arg-type]  # deliberately the wrong type, to see it refused
    lists = watches = 0

    async def relist() -> str:
        nonlocal lists
        lists += 1
        return "10"

    async def get(method: str, path: str, **_: Any) -> Response:
        nonlocal watches
        watches += 1
        if watches == 1:  # an event, then the server's 410
            return Response(
                {"type": "ADDED", "object": {"metadata": {"name": "a", "resourceVersion": "11"}}},
                {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old resource version"}},
            )
        await asyncio.sleep(3600)
        raise AssertionError

    informer._loop.relist = relist  # the listing is not what this test is about
    informer.objects.request = get  # type: ignore[method-assign]  # the server's answer, patched for this test
    task = asyncio.create_task(informer.run())
    async with asyncio.timeout(5):
        while watches < 2:
            await asyncio.sleep(0.01)
    task.cancel()
    assert (lists, delivered) == (2, [("ADDED", "a")])
