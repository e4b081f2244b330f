"""List-and-watch of the objects the operator only reads (Jobs, Pods, Events), outside kopf.

kopf's per-event machinery (a worker task, a patch, a logger, the handler's keyword
arguments) is made for handlers that act on the object; for the Job the operator has just
created, whose echo changes nothing, it cost as much as handling the TaskRun itself, and a
running task brings ten more such events. These objects only feed the caches, so each
kind gets one plain list-and-watch, like client-go's informers: list once, then follow the
changes from that resourceVersion, and list again when the server says it is too old.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from kubernetes_asyncio import client

from podiq_operator.caches import Key, key_of

__all__ = ["Handler", "Informer", "Source"]

logger = logging.getLogger(__name__)

#: Seconds between reconnection attempts after an error: doubling up to the last.
BACKOFF = (0.2, 5.0)

Handler = Callable[[str, dict[str, Any]], Awaitable[None]]
"""Called with ``ADDED``, ``MODIFIED`` or ``DELETED`` and the object, one event at a time."""


@dataclasses.dataclass(frozen=True)
class Source:
    """Which objects: a kind (``group`` empty for the core API) with server-side selectors."""

    group: str
    version: str
    plural: str
    label_selector: str | None = None
    field_selector: str | None = None

    def path(self, namespace: str | None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        return f"{base}/namespaces/{namespace}/{self.plural}" if namespace else f"{base}/{self.plural}"


class ResourceExpired(Exception):
    """The watch's resourceVersion is too old (410 Gone): list again."""


class Informer:
    """Feeds ``handler`` every change of ``source`` in ``namespace`` (``None``: all namespaces).

    After a re-list, objects that vanished while no watch was open are delivered as
    ``DELETED`` (with their metadata only), so no deletion is missed.
    """

    def __init__(
        self,
        api: client.ApiClient,
        source: Source,
        namespace: str | None,
        handler: Handler,
        *,
        page_size: int | None = 500,
        watch_seconds: int = 300,
        request_timeout: float = 30.0,
    ) -> None:
        self.api, self.source, self.namespace, self.handler = api, source, namespace, handler
        self.page_size, self.watch_seconds, self.request_timeout = page_size, watch_seconds, request_timeout
        self.synced = asyncio.Event()
        """Set once the first list has been delivered."""
        self._known: dict[Key, dict[str, Any]] = {}

    def __repr__(self) -> str:
        return f"<Informer {self.source.path(self.namespace)}>"

    async def run(self) -> None:
        """List and watch until cancelled; errors are logged and retried, never raised."""
        version: str | None = None
        delay = BACKOFF[0]
        while True:
            try:
                if version is None:
                    version = await self._relist()
                    self.synced.set()
                version = await self._watch(version)
                delay = BACKOFF[0]
                continue
            except ResourceExpired:
                version = None
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the network or the API server: keep watching
                logger.warning("%r failed (%s); trying again in %.1f s.", self, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF[1])

    async def _relist(self) -> str:
        seen: set[Key] = set()
        token: str | None = None
        while True:
            query = {"limit": self.page_size, "continue": token}
            page = json.loads(await (await self._get(query, timeout=self.request_timeout)).read())
            for item in page.get("items") or ():
                key = self._remember(item)
                seen.add(key)
                await self._deliver("ADDED", item)
            token = page.get("metadata", {}).get("continue")
            if not token:
                break
        for key in self._known.keys() - seen:
            await self._deliver("DELETED", self._known.pop(key))
        return str(page["metadata"]["resourceVersion"])

    async def _watch(self, version: str) -> str:
        """Follow changes from ``version`` until the server ends the request; returns where it got to."""
        query = {
            "watch": "true",
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": self.watch_seconds,
        }
        response = await self._get(query, timeout=self.watch_seconds + self.request_timeout)
        async with response:
            async for line in _lines(response.content):
                event = json.loads(line)
                kind, body = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if body.get("code") == 410:
                        raise ResourceExpired(body.get("message"))
                    raise RuntimeError(f"watch error {body.get('code')}: {body.get('message')}")
                version = body.get("metadata", {}).get("resourceVersion") or version
                if kind == "DELETED":
                    self._known.pop(key_of(body), None)
                elif kind in ("ADDED", "MODIFIED"):
                    self._remember(body)
                else:  # BOOKMARK: only moves the resourceVersion
                    continue
                await self._deliver(kind, body)
        return version

    async def _get(self, query: dict[str, Any], *, timeout: float) -> Any:
        params = [
            ("labelSelector", self.source.label_selector),
            ("fieldSelector", self.source.field_selector),
            *query.items(),
        ]
        response = await self.api.call_api(
            self.source.path(self.namespace),
            "GET",
            query_params=[(k, v) for k, v in params if v is not None],
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=timeout,
        )
        if response.status == 410:
            response.release()
            raise ResourceExpired()
        if response.status != 200:
            text = (await response.read()).decode(errors="replace")[:500]
            raise RuntimeError(f"HTTP {response.status}: {text}")
        return response

    def _remember(self, body: dict[str, Any]) -> Key:
        # Enough of the object to tell the caches which one is gone, should it vanish unseen.
        metadata = body.get("metadata", {})
        key = key_of(body)
        self._known[key] = {
            "metadata": {k: metadata[k] for k in ("name", "namespace", "labels", "ownerReferences") if k in metadata}
        }
        return key

    async def _deliver(self, kind: str, body: dict[str, Any]) -> None:
        try:
            await self.handler(kind, body)
        except Exception:  # one bad object must not stop the stream
            logger.exception("%r: handling %s %s failed.", self, kind, key_of(body))


async def _lines(stream: Any) -> AsyncIterator[bytes]:
    """Newline-separated events of any length (aiohttp's readline refuses lines over 128 KiB)."""
    buffer = b""
    async for chunk in stream.iter_any():
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        for line in complete:
            if line.strip():
                yield line
    if buffer.strip():
        yield buffer
