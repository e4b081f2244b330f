"""The one list-and-watch loop: list, then watch from the listing's resourceVersion, list again on
410 Gone, resume after a dropped connection or a restarted API server, with a bounded backoff.

What a listing means (deliver everything, catch up on a few names, read one object) is the
caller's ``relist``; what an event means is its ``handle``. The loop owns only the protocol,
like client-go's reflector, so that the client's shared watch, a firing's wait, the CLI's
``get --watch`` and the operator's informers resume the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from podiq.kubernetes.api import ExpiredError, ObjectApi

__all__ = ["BACKOFF", "WatchLoop"]

logger = logging.getLogger("podiq.kubernetes.watch")

#: Seconds between attempts after an error: doubling from the first up to the second.
BACKOFF = (0.2, 5.0)

Relist = Callable[[], Awaitable[str]]
"""Lists (however the caller needs) and returns the resourceVersion to watch from."""
Handle = Callable[[str, dict[str, Any]], Awaitable[None]]
"""Called with ``ADDED``, ``MODIFIED`` or ``DELETED`` and the object, one event at a time."""


class WatchLoop:
    """Runs ``relist`` then follows ``api``'s changes in ``namespace`` (``None``: all) until cancelled.

    Errors are logged (what watches, why, when it tries again) and retried, never raised:
    a watch that stops silently is a client that waits forever.
    """

    def __init__(
        self,
        api: ObjectApi,
        namespace: str | None,
        *,
        relist: Relist,
        handle: Handle,
        label_selector: str | None = None,
        field_selector: str | None = None,
        watch_seconds: int = 300,
        what: str | None = None,
    ) -> None:
        self.api, self.namespace = api, namespace
        self.relist, self.handle = relist, handle
        self.label_selector, self.field_selector = label_selector, field_selector
        self.watch_seconds = watch_seconds
        self.what = what or f"the watch of {api.resource.path(namespace)}"
        self.ready = asyncio.Event()
        """Set once the first listing has been handled."""
        self.relists = 0
        """Times the loop listed: once at the start, then after each 410 Gone."""

    def __repr__(self) -> str:
        return f"<WatchLoop {self.what}>"

    async def run(self) -> None:
        version: str | None = None
        delay = BACKOFF[0]
        while True:
            try:
                if version is None:
                    self.relists += 1
                    version = await self.relist()
                    self.ready.set()
                version = await self._follow(version)
                delay = BACKOFF[0]
                continue
            except ExpiredError:
                logger.info("%s: its resourceVersion is too old (410 Gone); listing again.", self.what)
                version = None
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the network or the API server: keep watching
                logger.warning("%s failed (%s); resuming in %.1f s.", self.what, exc or repr(exc), delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF[1])

    async def _follow(self, version: str) -> str:
        """Handle changes from ``version`` until the server ends the request; returns where it got to."""
        async for kind, body in self.api.watch(
            self.namespace,
            version,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            timeout_seconds=self.watch_seconds,
        ):
            version = body.get("metadata", {}).get("resourceVersion") or version
            if kind in ("ADDED", "MODIFIED", "DELETED"):  # a BOOKMARK only moves the resourceVersion
                await self.handle(kind, body)
        return version
