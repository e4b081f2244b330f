"""Pool dispatch through Redis Streams: one stream per TaskPool, one consumer group of its workers.

::

    kiq ──create TaskRun (spec.pool)──▶ enqueue ──XADD──▶ podiq:<ns>:pool:<pool>:runs
    worker ──XREADGROUP (group "workers")──▶ run the attempt ──TaskRun status──▶ XACK
    worker ──XAUTOCLAIM (idle > visibility timeout)──▶ a dead worker's entry, run as a new attempt

An entry names a TaskRun, an attempt and the TaskRun's resourceVersion as its enqueuer saw it,
nothing else: what to run and what happened stay in the TaskRun (Redis is never the only copy of
what decides a run's fate, and a worker trusts only what the API server says). The version lets
a worker read the run from the API server's watch cache at that version, not from etcd. Every
enqueue goes through one script that also sets a marker ``podiq:<ns>:<taskrun>:queued:<attempt>``,
so enqueuing the same attempt twice (a client and the operator's backstop racing) adds one
entry. A worker that claims the entry overwrites the marker with its pod's name, which lets
the operator tell a run nobody enqueued (no marker) from one nobody claimed (``queued``).
When the operator cancels a pool run it also sets ``podiq:<ns>:<taskrun>:cancel``, which the
workers read for all their running runs at once each second (no API reads per run).

Keys carry the namespace, so the namespace's own ACL user (``~podiq:<ns>:*``) reaches its
pools and nothing else. Entries are plain strings; nothing is unpickled.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

from podiq.exceptions import StoreError
from podiq.kubernetes.storage import KEY_PREFIX, RedisStore

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "CLAIMED",
    "GROUP",
    "QUEUED",
    "Entry",
    "PoolQueue",
    "cancel_key",
    "marker_key",
    "stream_key",
]

#: The consumer group every worker of a pool reads in.
GROUP = "workers"
#: Marker values: ``queued:<unix time of the enqueue>``, then ``claimed:<pod>``.
QUEUED = "queued"
CLAIMED = "claimed"
#: Seconds a marker outlives its enqueue; longer than any claim deadline.
MARKER_TTL = 7 * 24 * 3600

# XADD only when the marker was not there: one entry per attempt, however many enqueue it.
_ENQUEUE = """
if redis.call('SET', KEYS[2], ARGV[4], 'NX', 'EX', ARGV[5]) then
  return redis.call('XADD', KEYS[1], '*', 'namespace', ARGV[1], 'taskrun', ARGV[2], 'attempt', ARGV[3], 'version', ARGV[6])
end
return false
"""


def stream_key(namespace: str, pool: str) -> str:
    # No TaskRun key ends in ":runs" (theirs end in args, or result/log and a number).
    return f"{KEY_PREFIX}:{namespace}:pool:{pool}:runs"


def marker_key(namespace: str, taskrun: str, attempt: int) -> str:
    return f"{KEY_PREFIX}:{namespace}:{taskrun}:queued:{attempt}"


def cancel_key(namespace: str, taskrun: str) -> str:
    return f"{KEY_PREFIX}:{namespace}:{taskrun}:cancel"


@dataclasses.dataclass(frozen=True)
class Entry:
    """One stream entry: run ``attempt`` of TaskRun ``namespace/taskrun``.

    ``deliveries`` counts how often the group handed it out: above one, a worker claimed it
    before and stopped answering. ``version`` is the TaskRun's resourceVersion when it was
    enqueued ("" when the enqueuer did not know it).
    """

    id: str
    namespace: str
    taskrun: str
    attempt: int
    deliveries: int = 1
    version: str = ""

    @classmethod
    def parse(cls, entry_id: Any, fields: dict[Any, Any], deliveries: int = 1) -> Entry | None:
        """The entry, or None when its fields are not podiq's (it is then acknowledged and dropped)."""
        text = {_text(k): _text(v) for k, v in fields.items()}
        try:
            return cls(
                _text(entry_id),
                text["namespace"],
                text["taskrun"],
                int(text["attempt"]),
                deliveries,
                text.get("version", ""),
            )
        except (KeyError, ValueError):
            return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class PoolQueue:
    """A pool's stream, over a :class:`RedisStore`'s connection; Redis errors become StoreError."""

    def __init__(self, store: RedisStore, namespace: str, pool: str) -> None:
        self.store = store
        self.namespace = namespace
        self.pool = pool
        self.key = stream_key(namespace, pool)

    @property
    def redis(self) -> Redis:
        return self.store.redis

    def _error(self, exc: Exception, what: str) -> StoreError:
        return self.store._translated(exc, f"{what} (pool {self.namespace}/{self.pool}, stream {self.key})")

    async def enqueue(self, taskrun: str, attempt: int = 1, *, version: str = "") -> str | None:
        """Add the attempt to the stream unless it was added before; the entry id, or None.
        ``version``: the TaskRun's resourceVersion as the caller last saw it."""
        try:
            added = await self.redis.eval(
                _ENQUEUE,
                2,
                self.key,
                marker_key(self.namespace, taskrun, attempt),
                self.namespace,
                taskrun,
                str(attempt),
                f"{QUEUED}:{int(time.time())}",
                str(MARKER_TTL),
                version,
            )
        except Exception as exc:  # noqa: BLE001 - translated into podiq's StoreError here, at the boundary
            raise self._error(exc, f"enqueuing TaskRun {taskrun}") from None
        return None if added is None else _text(added)

    async def marker(self, taskrun: str, attempt: int) -> str | None:
        """``queued:<unix time>``, ``claimed:<pod>``, or None when the attempt was never enqueued."""
        try:
            value = await self.redis.get(marker_key(self.namespace, taskrun, attempt))
        except Exception as exc:  # noqa: BLE001 - translated into podiq's StoreError here, at the boundary
            raise self._error(exc, f"reading the marker of TaskRun {taskrun}") from None
        return None if value is None else _text(value)

    async def markers(self, attempts: list[tuple[str, int]]) -> list[str | None]:
        """:meth:`marker` of each ``(taskrun, attempt)``, in order: one round trip for all of them."""
        if not attempts:
            return []
        try:
            values = await self.redis.mget([marker_key(self.namespace, name, attempt) for name, attempt in attempts])
        except Exception as exc:  # noqa: BLE001 - translated into podiq's StoreError here, at the boundary
            raise self._error(exc, f"reading the markers of {len(attempts)} TaskRuns") from None
        return [None if value is None else _text(value) for value in values]

    async def forget(self, taskrun: str, attempt: int) -> None:
        """Drop the attempt's marker, so that a later enqueue adds it again (a run not yet due)."""
        try:
            await self.redis.delete(marker_key(self.namespace, taskrun, attempt))
        except Exception as exc:  # noqa: BLE001 - translated into podiq's StoreError here, at the boundary
            raise self._error(exc, f"dropping the marker of TaskRun {taskrun}") from None

    async def signal_cancel(self, taskrun: str) -> None:
        """Tell the workers that the run was cancelled (the TaskRun says so already; this is the nudge)."""
        try:
            await self.redis.set(cancel_key(self.namespace, taskrun), "1", ex=MARKER_TTL)
        except Exception as exc:  # noqa: BLE001 - translated into podiq's StoreError here, at the boundary
            raise self._error(exc, f"signalling the cancellation of TaskRun {taskrun}") from None

    async def cancelled(self, taskruns: list[str]) -> set[str]:
        """Which of ``taskruns`` were signalled cancelled: one round trip for all of them."""
        if not taskruns:
            return set()
        try:
            values = await self.redis.mget([cancel_key(self.namespace, name) for name in taskruns])
        except Exception as exc:  # noqa: BLE001 - translated into podiq's StoreError here, at the boundary
            raise self._error(exc, "reading cancellations") from None
        return {name for name, value in zip(taskruns, values, strict=True) if value is not None}

    async def ensure_group(self) -> None:
        """Create the stream and its group if missing (workers call it at start)."""
        try:
            await self.redis.xgroup_create(self.key, GROUP, id="0", mkstream=True)
        except Exception as exc:  # noqa: BLE001 - translated into podiq's StoreError here, at the boundary
            if "BUSYGROUP" not in str(exc):
                raise self._error(exc, "creating the consumer group") from None

    async def claim(self, consumer: str, count: int, block_ms: int) -> list[Entry]:
        """New entries for ``consumer`` (XREADGROUP), waiting up to ``block_ms`` for one."""
        try:
            reply: Any = await self.redis.xreadgroup(GROUP, consumer, {self.key: ">"}, count=count, block=block_ms)
        except Exception as exc:  # noqa: BLE001 - translated into podiq's StoreError here, at the boundary
            raise self._error(exc, "reading new runs") from None
        entries = [item for _, items in reply or [] for item in items]
        return await self._parsed(consumer, [(entry_id, fields, 1) for entry_id, fields in entries if fields])

    async def reclaim(self, consumer: str, idle_ms: int, count: int) -> list[Entry]:
        """Entries whose worker has not acknowledged them for ``idle_ms`` (XAUTOCLAIM)."""
        try:
            _, claimed, *_ = await self.redis.xautoclaim(self.key, GROUP, consumer, idle_ms, "0-0", count=count)
            if not claimed:
                return []
            pending = await self.redis.xpending_range(
                self.key,
                GROUP,
                min=claimed[0][0],
                max=claimed[-1][0],
                count=len(claimed) + 16,
                consumername=consumer,
            )
        except Exception as exc:  # noqa: BLE001 - translated into podiq's StoreError here, at the boundary
            raise self._error(exc, "reclaiming runs of stopped workers") from None
        deliveries = {_text(p["message_id"]): int(p["times_delivered"]) for p in pending}
        return await self._parsed(
            consumer,
            [(entry_id, fields, deliveries.get(_text(entry_id), 2)) for entry_id, fields in claimed if fields],
        )

    async def _parsed(self, consumer: str, items: list[tuple[Any, dict[Any, Any], int]]) -> list[Entry]:
        entries, junk = [], []
        for entry_id, fields, deliveries in items:
            entry = Entry.parse(entry_id, fields, deliveries)
            if entry is None or entry.namespace != self.namespace:
                junk.append(_text(entry_id))
            else:
                entries.append(entry)
        if junk:
            await self.ack(*junk)
        await self.mark_claimed(entries, consumer)
        return entries

    async def mark_claimed(self, entries: list[Entry], consumer: str) -> None:
        """Overwrite the entries' markers with ``claimed:<consumer>``, in one round trip."""
        if not entries:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for entry in entries:
                    pipe.set(
                        marker_key(self.namespace, entry.taskrun, entry.attempt), f"{CLAIMED}:{consumer}", ex=MARKER_TTL
                    )
                await pipe.execute()
        except Exception as exc:  # noqa: BLE001 - translated into podiq's StoreError here, at the boundary
            raise self._error(exc, "marking runs claimed") from None

    async def touch(self, consumer: str, entry_ids: list[str]) -> None:
        """Reset the idle time of entries still running here, so that nobody reclaims them."""
        if not entry_ids:
            return
        try:
            await self.redis.xclaim(self.key, GROUP, consumer, 0, list[Any](entry_ids), justid=True)
        except Exception as exc:  # noqa: BLE001 - translated into podiq's StoreError here, at the boundary
            raise self._error(exc, "renewing claimed runs") from None

    async def ack(self, *entry_ids: str) -> None:
        """Acknowledge and delete entries: their runs reported (or need no running)."""
        if not entry_ids:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:  # one round trip; XACK then XDEL
                pipe.xack(self.key, GROUP, *entry_ids)
                pipe.xdel(self.key, *entry_ids)
                await pipe.execute()
        except Exception as exc:  # noqa: BLE001 - translated into podiq's StoreError here, at the boundary
            raise self._error(exc, "acknowledging runs") from None

    async def consumers(self) -> dict[str, int]:
        """Each worker (consumer) of the group and the runs it holds unacknowledged."""
        try:
            reply = await self.redis.xinfo_consumers(self.key, GROUP)
        except Exception as exc:  # noqa: BLE001 - translated into podiq's StoreError here, at the boundary
            if "no such key" in str(exc).lower():
                return {}
            raise self._error(exc, "reading the workers' runs") from None
        return {_text(c["name"]): int(c["pending"]) for c in reply}

    async def depth(self) -> tuple[int, int]:
        """(backlog, busy): entries not yet handed out, and handed out but not acknowledged."""
        try:
            groups = await self.redis.xinfo_groups(self.key)
        except Exception as exc:  # noqa: BLE001 - translated into podiq's StoreError here, at the boundary
            if "no such key" in str(exc).lower():
                return 0, 0
            raise self._error(exc, "reading the backlog") from None
        for group in groups:
            if _text(group["name"]) == GROUP:
                lag = group.get("lag")
                busy = int(group["pending"])
                if lag is None:  # Redis cannot tell after deletions: count entries not yet pending
                    lag = max(await self.redis.xlen(self.key) - busy, 0)
                return int(lag), busy
        return int(await self.redis.xlen(self.key)), 0
