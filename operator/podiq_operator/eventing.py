"""Kubernetes Events on TaskRuns: what ``kubectl describe taskrun`` and ``kubectl get events`` show.

Posted through the API directly rather than kopf's poster, which works only inside kopf's
own handlers: reconciliations triggered by a Job, Pod or FailedCreate event (the ones that
say a run is stuck) run outside them. Posting never holds up a reconciliation: each Event
is sent in the background, a bounded number at a time, and dropped (with a log line) when
too many are waiting, since Events are a courtesy and the status is the record.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from podiq.kubernetes.resources import API_VERSION, KIND
from podiq_operator.decisions import Event

__all__ = ["EventPoster", "event_body"]

logger = logging.getLogger(__name__)

COMPONENT = "podiq-operator"
#: Events being sent at once, and waiting to be, before new ones are dropped.
CONCURRENT, BACKLOG = 4, 1000


class EventsApi(Protocol):
    async def create_event(self, body: dict[str, Any]) -> None: ...


def event_body(
    taskrun: Mapping[str, Any], event: Event, now: datetime, instance: str = "", kind: str = KIND
) -> dict[str, Any]:
    """A core/v1 Event about ``taskrun`` (or another podiq object of ``kind``: a TaskPool)."""
    meta = taskrun.get("metadata", {})
    stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta.get('name')}.", "namespace": meta.get("namespace") or "default"},
        "involvedObject": {
            "apiVersion": API_VERSION,
            "kind": kind,
            "name": meta.get("name"),
            "namespace": meta.get("namespace") or "default",
            "uid": meta.get("uid"),
        },
        "reason": event.reason,
        "message": event.message[:1024],
        "type": "Warning" if event.warning else "Normal",
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": instance,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


class EventPoster:
    """The reconciler's event sink: ``poster(taskrun_body, event)`` returns at once."""

    def __init__(self, api: EventsApi, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.api, self.clock = api, clock
        self.instance = os.environ.get("HOSTNAME", "")
        self._slots = asyncio.Semaphore(CONCURRENT)
        self._pending: set[asyncio.Task[None]] = set()

    def __call__(self, body: dict[str, Any], event: Event) -> None:
        if len(self._pending) >= BACKLOG:
            logger.warning(
                "Too many Events waiting to be posted; dropped %s on %s.", event.reason, body["metadata"].get("name")
            )
            return
        task = asyncio.get_running_loop().create_task(self._post(event_body(body, event, self.clock(), self.instance)))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _post(self, event: dict[str, Any]) -> None:
        async with self._slots:
            try:
                await self.api.create_event(event)
            except Exception as exc:  # noqa: BLE001 - an Event is a courtesy: never fail anything over one
                logger.debug("Could not post Event %s on %s: %s", event["reason"], event["involvedObject"]["name"], exc)

    async def close(self) -> None:
        """Send what is waiting (briefly), then stop."""
        if self._pending:
            await asyncio.wait(self._pending, timeout=5)
        for task in self._pending:
            task.cancel()
