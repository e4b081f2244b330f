"""List-and-watch outside kopf: what the operator watches when standalone (TaskRuns, Jobs, Pods, Events).

kopf's per-event machinery (a worker task, a patch, a logger, the handler's keyword
arguments) is made for handlers that act on the object through kopf. For the Job the
operator has just created, whose echo changes nothing, it cost as much as handling the
TaskRun itself, and a running task brings ten more such events; for the TaskRuns it was
about four times podiq's own reconciliation. The handlers only feed the caches and trigger
the reconciler, so each kind gets one plain list-and-watch, like client-go's informers:
list once, then follow the changes from that resourceVersion, and list again when the
server says it is too old: podiq's one :class:`~podiq.kubernetes.watchloop.WatchLoop`,
over the gateway.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from kubernetes_asyncio import client

from podiq.kubernetes.api import ObjectApi, Resource
from podiq.kubernetes.watchloop import WatchLoop
from podiq_operator.caches import Key, key_of

__all__ = ["Handler", "Informer", "Source"]

logger = logging.getLogger(__name__)

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

    @property
    def resource(self) -> Resource:
        return Resource(self.group, self.version, self.plural)

    def path(self, namespace: str | None) -> str:
        return self.resource.path(namespace)


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
        self.source, self.namespace, self.handler = source, namespace, handler
        self.page_size = page_size
        self.objects = ObjectApi(api, source.resource, request_timeout=request_timeout)
        self._loop = WatchLoop(
            self.objects,
            namespace,
            relist=self._relist,
            handle=self._handle,
            label_selector=source.label_selector,
            field_selector=source.field_selector,
            watch_seconds=watch_seconds,
            what=repr(self),
        )
        self.synced = self._loop.ready
        """Set once the first list has been delivered."""
        self._known: dict[Key, dict[str, Any]] = {}

    def __repr__(self) -> str:
        return f"<Informer {self.source.path(self.namespace)}>"

    async def run(self) -> None:
        """List and watch until cancelled; errors are logged and retried, never raised."""
        await self._loop.run()

    async def _relist(self) -> str:
        seen: set[Key] = set()
        version = ""
        async for page in self.objects.pages(
            self.namespace,
            label_selector=self.source.label_selector,
            field_selector=self.source.field_selector,
            page_size=self.page_size,
        ):
            for item in page.get("items") or ():
                key = self._remember(item)
                seen.add(key)
                await self._deliver("ADDED", item)
            version = str(page["metadata"]["resourceVersion"])
        for key in self._known.keys() - seen:
            await self._deliver("DELETED", self._known.pop(key))
        return version

    async def _handle(self, kind: str, body: dict[str, Any]) -> None:
        if kind == "DELETED":
            self._known.pop(key_of(body), None)
        else:
            self._remember(body)
        await self._deliver(kind, body)

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
