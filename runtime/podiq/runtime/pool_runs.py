"""A pool worker's view of its pool's TaskRuns, fed by one watch (label ``podiq.io/pool``).

A claimed run is taken from this view instead of being read with a GET: that read was a
seventh of the API server's work per pool run, and the watch brings each run anyway, before
its entry is claimed as a rule. The view is only as new as the watch: a run is taken from it
once it shows at least the resourceVersion its stream entry names, and read from the API
when the watch does not catch up within :data:`CATCH_UP` (or names no version, or the watch is
refused). Either way the worker's status write is conditional on the version it read, so an
old view never overwrites anything; at worst it is read again on the conflict.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from podiq.kubernetes.api import ApiError, TaskRunApi
from podiq.kubernetes.resources import LABEL_POOL
from podiq.kubernetes.watchloop import WatchLoop

__all__ = ["CATCH_UP", "PoolRuns"]

logger = logging.getLogger("podiq.worker")

#: Seconds a claim waits for the watch to show its run's version before reading the run.
CATCH_UP = 1.0
#: Finished runs kept (for a late or repeated claim of one); unfinished runs are all kept.
FINISHED_KEPT = 1024
#: Seconds each watch request stays open.
WATCH_SECONDS = 240


def _version(body: dict[str, Any]) -> str:
    return str((body.get("metadata") or {}).get("resourceVersion") or "")


def _at_least(body: dict[str, Any] | None, version: str) -> bool:
    """Whether ``body`` is at ``version`` or newer (etcd's versions are increasing integers; where
    either is not one, it cannot tell, and the run is read instead)."""
    if body is None:
        return False
    try:
        return int(_version(body)) >= int(version)
    except ValueError:
        return False


def _finished(body: dict[str, Any]) -> bool:
    return bool((body.get("status") or {}).get("completionTime"))


class PoolRuns:
    """The newest state the watch has shown of each TaskRun of one pool in one namespace.

    ``on_cancelled`` is called with the name of each run seen with ``spec.cancelled``, so that a
    worker stops it without waiting for the operator's signal.
    """

    def __init__(
        self,
        api: TaskRunApi,
        namespace: str,
        pool: str,
        on_cancelled: Callable[[str], None] = lambda name: None,
    ) -> None:
        self.api, self.namespace = api, namespace
        self.on_cancelled = on_cancelled
        self._unfinished: dict[str, dict[str, Any]] = {}
        self._finished: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._changed: dict[str, asyncio.Event] = {}
        self._refused = False
        self.taken = 0
        """Claims served from the watch."""
        self.read = 0
        """Claims that read the run from the API."""
        self._loop = WatchLoop(
            api,
            namespace,
            relist=self._relist,
            handle=self._handle,
            label_selector=f"{LABEL_POOL}={pool}",
            watch_seconds=WATCH_SECONDS,
            what=f"The watch of pool {namespace}/{pool}'s TaskRuns",
        )
        self._runner: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._runner = asyncio.create_task(self._loop.run(), name="podiq-worker-runs")

    async def stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner

    async def get(self, name: str, version: str) -> dict[str, Any] | None:
        """The TaskRun at ``version`` or newer: from the watch, or read; None if there is none."""
        body = self._body(name)
        if not _at_least(body, version) and version and self._loop.ready.is_set() and not self._refused:
            changed = self._changed.setdefault(name, asyncio.Event())
            deadline = asyncio.get_running_loop().time() + CATCH_UP
            try:
                while not _at_least(body := self._body(name), version):
                    left = deadline - asyncio.get_running_loop().time()
                    if left <= 0:
                        break
                    changed.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(changed.wait(), left)
            finally:
                self._changed.pop(name, None)
        if _at_least(body, version):
            self.taken += 1
            return body
        self.read += 1
        return await self.api.get(self.namespace, name)

    def _body(self, name: str) -> dict[str, Any] | None:
        return self._unfinished.get(name) or self._finished.get(name)

    async def _relist(self) -> str:
        try:
            listing = await self.api.list(self.namespace, label_selector=self._loop.label_selector)
        except ApiError as exc:
            if exc.status != 403:
                raise
            # A pool with its own service account, not granted list and watch: the worker reads
            # each run instead, as it would without the view. Said once, then the watch ends.
            logger.warning(
                "The worker may not watch TaskRuns (%s); it reads each claimed run instead. Grant list and "
                "watch on taskruns.podiq.io to the pool's service account (the chart's runtime role has them).",
                exc.message,
            )
            self._refused = True
            raise asyncio.CancelledError from None
        self._unfinished.clear()
        self._finished.clear()
        for body in listing.items:
            self._put(body)
        return listing.resource_version

    async def _handle(self, kind: str, body: dict[str, Any]) -> None:
        name = str(body["metadata"]["name"])
        if kind == "DELETED":
            self._unfinished.pop(name, None)
            self._finished.pop(name, None)
        else:
            self._put(body)
        changed = self._changed.get(name)
        if changed is not None:
            changed.set()

    def _put(self, body: dict[str, Any]) -> None:
        name = str(body["metadata"]["name"])
        if (body.get("spec") or {}).get("cancelled"):
            self.on_cancelled(name)
        if not _finished(body):
            self._unfinished[name] = body
            return
        self._unfinished.pop(name, None)
        self._finished[name] = body
        self._finished.move_to_end(name)
        while len(self._finished) > FINISHED_KEPT:
            self._finished.popitem(last=False)
