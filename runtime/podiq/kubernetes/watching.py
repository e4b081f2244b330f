"""Watching TaskRuns to their end: one watch per broker process that wakes every waiter whose run
finished (:class:`TaskRunWatch`), and :func:`follow` for a single run (a firing, ``podiq get -w``).
Both are :class:`~podiq.kubernetes.watchloop.WatchLoop` loops over the gateway."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from kubernetes_asyncio import client

from podiq.kubernetes.api import TaskRunApi
from podiq.kubernetes.resources import TaskRun
from podiq.kubernetes.watchloop import WatchLoop

__all__ = ["TaskRunGone", "TaskRunWatch", "follow"]

logger = logging.getLogger("podiq.kubernetes.watch")

#: Seconds a watch request stays open before it is renewed from the last resourceVersion.
WATCH_SECONDS = 240
#: Seconds one watch of a single run stays open before it is renewed.
FOLLOW_SECONDS = 60
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
        self._epoch = 0  # counts (re)starts of the watch; events may be missed only across one
        self._listing = False
        self._loop = WatchLoop(
            self._taskruns,
            namespace,
            relist=self._relist,
            handle=self._handle,
            watch_seconds=WATCH_SECONDS,
            what=f"The TaskRun watch of {namespace}",
        )

    @property
    def relists(self) -> int:
        """Times the watch started from a listing (once at start, then after each 410)."""
        return self._loop.relists

    async def start(self) -> None:
        if self._runner is None:
            self._runner = asyncio.create_task(self._loop.run(), name="podiq-taskrun-watch")
        await self._loop.ready.wait()

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

    async def _handle(self, kind: str, body: dict[str, Any]) -> None:
        self._deliver(body, body["metadata"]["name"], deleted=kind == "DELETED")

    async def _relist(self) -> str:
        """Start (again) from a listing: what finished or vanished while no watch was open is
        delivered from it, to waiters and to runs created here alike. Returns its resourceVersion."""
        first = self._epoch == 0
        self._epoch += 1
        if first:  # nothing to catch up on yet: the newest version is all it takes
            return (await self._taskruns.list(self.namespace, limit=1)).resource_version
        self._listing = True
        try:
            return await self._catch_up()
        finally:
            self._listing = False

    async def _catch_up(self) -> str:
        wanted = set(self._waiters) | {name for name, value in self._tracked.items() if not isinstance(value, TaskRun)}
        seen: set[str] = set()
        version = ""
        async for page in self._taskruns.pages(self.namespace, page_size=LIST_PAGE, timeout=60):
            for body in page.get("items") or ():
                name = body["metadata"]["name"]
                if name in wanted:
                    seen.add(name)
                    if isinstance(self._tracked.get(name), int) and self._tracked[name] != -1:
                        self._tracked[name] = self._epoch  # seen in this epoch: its waiter need not read it
                    self._deliver(body, name)
            version = str(page["metadata"]["resourceVersion"])
        for name in wanted - seen:  # deleted meanwhile
            self._deliver(None, name, deleted=True)
        return version


async def follow(
    api: TaskRunApi,
    namespace: str,
    name: str,
    on_update: Callable[[TaskRun], None] | None = None,
    *,
    watch_seconds: int = FOLLOW_SECONDS,
) -> TaskRun | None:
    """The TaskRun once it is done, or None if it is deleted first; ``on_update`` sees each
    unfinished state. It reads the run, then watches it by name from there: a get and a watch
    are all it needs (the scheduler's identity may not list TaskRuns)."""
    outcome: asyncio.Future[TaskRun | None] = asyncio.get_running_loop().create_future()

    def settle(taskrun: TaskRun | None) -> None:
        if outcome.done():
            return
        if taskrun is None or taskrun.is_done():
            outcome.set_result(taskrun)
        elif on_update is not None:
            on_update(taskrun)

    async def relist() -> str:
        body = await api.get(namespace, name)
        settle(None if body is None else TaskRun.from_api(body))
        return str(body["metadata"]["resourceVersion"]) if body is not None else "0"

    async def handle(kind: str, body: dict[str, Any]) -> None:
        settle(None if kind == "DELETED" else TaskRun.from_api(body))

    loop = WatchLoop(
        api,
        namespace,
        relist=relist,
        handle=handle,
        field_selector=f"metadata.name={name}",
        watch_seconds=watch_seconds,
        what=f"The watch of TaskRun {namespace}/{name}",
    )
    runner = asyncio.create_task(loop.run(), name=f"podiq-follow-{name}")
    try:
        return await outcome
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
