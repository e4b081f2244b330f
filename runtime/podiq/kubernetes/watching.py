"""One watch on TaskRuns per broker process, waking every waiter whose run finished."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from podiq.kubernetes.api import TaskRunApi
from podiq.kubernetes.resources import GROUP, PLURAL, VERSION, TaskRun

logger = logging.getLogger("podiq.kubernetes.watch")

#: Seconds a watch request stays open before it is renewed from the last resourceVersion.
WATCH_SECONDS = 240
#: Longest pause between reconnection attempts after an error, in seconds.
MAX_BACKOFF = 5.0
#: How many runs created here, and not yet awaited, the watch remembers.
MAX_TRACKED = 100_000
#: TaskRuns per page when listing again after the watch was lost.
LIST_PAGE = 500


class TaskRunGone(Exception):
    """The TaskRun was deleted before it finished."""


class TaskRunWatch:
    """Watches a namespace's TaskRuns and resolves the waits of runs that finished.

    No finish is missed: runs this process created after the watch began (`track`) have
    their finish kept until awaited; any other wait reads the run once after registering.
    A lost connection or a restarted API server resumes the watch from the last
    resourceVersion; when that is too old (410 Gone), one listing delivers what finished
    or was deleted meanwhile, to waiters and to runs created here.
    """

    def __init__(self, api_client: client.ApiClient, namespace: str) -> None:
        self._custom = client.CustomObjectsApi(api_client)
        self._taskruns = TaskRunApi(api_client)
        self.namespace = namespace
        self._waiters: dict[str, list[asyncio.Future[TaskRun]]] = {}
        # name -> what each waiter wants to hear of an unfinished run's changes (why it waits).
        self._listeners: dict[str, list[Callable[[TaskRun], None]]] = {}
        # name -> the newest unfinished state seen of a run someone waits for.
        self.latest: dict[str, TaskRun] = {}
        # name -> the watch epoch it was created in, or its finished TaskRun once seen.
        self._tracked: OrderedDict[str, int | TaskRun] = OrderedDict()
        self._runner: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._epoch = 0  # counts (re)starts of the watch; events may be missed only across one
        self._listing = False
        self.relists = 0
        """Times the watch started from a listing (once at start, then after each 410)."""

    async def start(self) -> None:
        if self._runner is None:
            self._runner = asyncio.create_task(self._run(), name="podiq-taskrun-watch")
        await self._ready.wait()

    async def stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.cancel()
        self._waiters.clear()

    def track(self, name: str) -> None:
        """`name` was just created by this process, while the watch is open."""
        # Created while listing again: the listing may predate it, so its waiter reads it once.
        self._tracked[name] = -1 if self._listing else self._epoch
        if len(self._tracked) > MAX_TRACKED:
            self._tracked.popitem(last=False)

    async def wait(
        self,
        name: str,
        timeout: float | None,
        on_update: Callable[[TaskRun], None] | None = None,
    ) -> TaskRun:
        """The TaskRun once it is done; raises TaskRunGone if it is deleted first.

        ``on_update`` is called with each unfinished state seen meanwhile (phase, reason, message).
        """
        await self.start()
        tracked = self._tracked.get(name)
        if isinstance(tracked, TaskRun):
            del self._tracked[name]
            return tracked
        waiter: asyncio.Future[TaskRun] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(name, []).append(waiter)
        if on_update is not None:
            self._listeners.setdefault(name, []).append(on_update)
        try:
            if tracked != self._epoch:
                self._deliver(await self._taskruns.get(self.namespace, name), name)
            return await asyncio.wait_for(waiter, timeout)
        finally:
            self._tracked.pop(name, None)
            waiters = self._waiters.get(name, [])
            if waiter in waiters:
                waiters.remove(waiter)
            listeners = self._listeners.get(name, [])
            if on_update in listeners:
                listeners.remove(on_update)
            if not listeners:
                self._listeners.pop(name, None)
            if not waiters:
                self._waiters.pop(name, None)
                self.latest.pop(name, None)

    def _deliver(self, body: dict[str, Any] | None, name: str, deleted: bool = False) -> None:
        waiters = self._waiters.get(name)
        if not waiters and name not in self._tracked:
            return
        if body is None or deleted:
            self._tracked.pop(name, None)
            error = TaskRunGone(f"TaskRun {self.namespace}/{name} was deleted before it finished.")
            for waiter in waiters or ():
                if not waiter.done():
                    waiter.set_exception(error)
            return
        taskrun = TaskRun.from_api(body)
        if not taskrun.is_done():
            if waiters:
                self.latest[name] = taskrun
                for listener in list(self._listeners.get(name, ())):
                    listener(taskrun)
            return
        self.latest.pop(name, None)
        if not waiters:
            self._tracked[name] = taskrun
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(taskrun)

    async def _run(self) -> None:
        backoff = 0.2
        version: str | None = None
        while True:
            try:
                if version is None:
                    version = await self._relist()
                    self._ready.set()
                version = await self._watch_from(version)
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except ApiException as exc:
                if exc.status == 410:  # our resourceVersion is too old: list again
                    version = None
                    continue
                logger.warning("TaskRun watch failed (%s); reconnecting in %.1f s.", exc.reason, backoff)
            except Exception as exc:  # noqa: BLE001 - network errors: keep the single watch alive
                logger.warning("TaskRun watch failed (%r); reconnecting in %.1f s.", exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def _relist(self) -> str:
        """Start (again) from a listing: what finished or vanished while no watch was open is
        delivered from it, to waiters and to runs created here alike. Returns its resourceVersion."""
        first = self._epoch == 0
        self._epoch += 1
        self.relists += 1
        if first:  # nothing to catch up on yet: the newest version is all it takes
            listing = await self._custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, limit=1)
            return str(listing["metadata"]["resourceVersion"])
        self._listing = True
        try:
            return await self._catch_up()
        finally:
            self._listing = False

    async def _catch_up(self) -> str:
        wanted = set(self._waiters) | {name for name, value in self._tracked.items() if not isinstance(value, TaskRun)}
        seen: set[str] = set()
        token: str | None = None
        while True:
            listing = await self._custom.list_namespaced_custom_object(
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                limit=LIST_PAGE,
                _request_timeout=60,
                _continue=token,  # type: ignore[arg-type]  # None is left out of the query
            )
            for body in listing.get("items") or ():
                name = body["metadata"]["name"]
                if name in wanted:
                    seen.add(name)
                    if isinstance(self._tracked.get(name), int) and self._tracked[name] != -1:
                        self._tracked[name] = self._epoch  # seen in this epoch: its waiter need not read it
                    self._deliver(body, name)
            token = listing.get("metadata", {}).get("continue")
            if not token:
                break
        for name in wanted - seen:  # deleted meanwhile
            self._deliver(None, name, deleted=True)
        return str(listing["metadata"]["resourceVersion"])

    async def _watch_from(self, version: str) -> str:
        """Follow events from `version` until the server closes the request; returns where it got to."""
        stream = watch.Watch()
        try:
            async for event in stream.stream(
                self._custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                resource_version=version,
                timeout_seconds=WATCH_SECONDS,
                allow_watch_bookmarks=True,
                # A connection that goes silent (a server that hangs, a dropped route) ends too.
                _request_timeout=WATCH_SECONDS + 30,
            ):
                body = event["raw_object"]
                version = body.get("metadata", {}).get("resourceVersion", version)
                if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                    self._deliver(body, body["metadata"]["name"], deleted=event["type"] == "DELETED")
        finally:
            await stream.close()
        return version
