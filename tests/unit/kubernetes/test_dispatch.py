"""Pool dispatch on a real redis-server: one entry per attempt, claims, reclaims, the backlog,
and a namespace's ACL user confined to its own pools."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from podiq.exceptions import StoreAccessDeniedError
from podiq.kubernetes.dispatch import PoolQueue, cancel_key, marker_key, stream_key
from podiq.kubernetes.storage import RedisStore, StoreSettings, namespace_user, with_credentials
from tests.redisserver import RedisServer


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[RedisStore]:
    async with RedisStore(StoreSettings(url=redis_server.url)) as store:
        yield store


def test_keys_stay_in_the_namespace_and_apart_from_taskrun_keys() -> None:
    assert stream_key("team-a", "fast") == "podiq:team-a:pool:fast:runs"
    assert marker_key("team-a", "run-1", 2) == "podiq:team-a:run-1:queued:2"
    assert cancel_key("team-a", "run-1") == "podiq:team-a:run-1:cancel"


async def test_an_attempt_is_enqueued_once_however_often_it_is_sent(store: RedisStore) -> None:
    queue = PoolQueue(store, "ns-once", "p")
    await queue.ensure_group()
    await queue.ensure_group()  # idempotent
    assert await queue.marker("run-1", 1) is None
    first = await queue.enqueue("run-1")
    assert first is not None and await queue.enqueue("run-1") is None
    assert (await queue.marker("run-1", 1) or "").startswith("queued")
    assert await queue.enqueue("run-1", 2) is not None  # the next attempt is a new entry
    assert await queue.depth() == (2, 0)

    claimed = await queue.claim("worker-a", 10, 100)
    assert [(e.taskrun, e.attempt, e.deliveries) for e in claimed] == [("run-1", 1, 1), ("run-1", 2, 1)]
    assert await queue.marker("run-1", 1) == "claimed:worker-a"
    assert await queue.depth() == (0, 2)
    await queue.ack(*(e.id for e in claimed))
    assert await queue.depth() == (0, 0)
    assert await queue.claim("worker-a", 10, 10) == []


async def test_the_markers_of_many_attempts_come_in_one_read_in_their_order(store: RedisStore) -> None:
    queue = PoolQueue(store, "ns-markers", "p")
    await queue.ensure_group()
    await queue.enqueue("run-1")
    await queue.enqueue("run-2")
    await queue.claim("worker-a", 1, 100)  # run-1's entry, the older
    asked = [("run-2", 1), ("run-3", 1), ("run-1", 1), ("run-1", 2)]
    markers = await queue.markers(asked)
    assert markers == [await queue.marker(name, attempt) for name, attempt in asked]
    assert markers[0] is not None and markers[0].startswith("queued:")
    assert markers[1:] == [None, "claimed:worker-a", None]
    assert await queue.markers([]) == []


async def test_a_stopped_workers_entry_is_reclaimed_after_the_visibility_timeout(store: RedisStore) -> None:
    queue = PoolQueue(store, "ns-reclaim", "p")
    await queue.ensure_group()
    await queue.enqueue("run-1")
    (lost,) = await queue.claim("worker-dead", 1, 100)
    assert await queue.reclaim("worker-b", idle_ms=300, count=5) == []  # not idle long enough
    await asyncio.sleep(0.4)
    (again,) = await queue.reclaim("worker-b", idle_ms=300, count=5)
    assert (again.id, again.taskrun, again.deliveries) == (lost.id, "run-1", 2)
    assert await queue.marker("run-1", 1) == "claimed:worker-b"


async def test_a_renewed_claim_is_not_reclaimed(store: RedisStore) -> None:
    queue = PoolQueue(store, "ns-touch", "p")
    await queue.ensure_group()
    await queue.enqueue("run-1")
    (entry,) = await queue.claim("worker-a", 1, 100)
    await asyncio.sleep(0.3)
    await queue.touch("worker-a", [entry.id])
    assert await queue.reclaim("worker-b", idle_ms=250, count=5) == []


async def test_foreign_entries_are_dropped(store: RedisStore) -> None:
    queue = PoolQueue(store, "ns-junk", "p")
    await queue.ensure_group()
    await store.redis.xadd(queue.key, {"something": "else"})
    await store.redis.xadd(queue.key, {"namespace": "other", "taskrun": "x", "attempt": "1"})
    assert await queue.claim("worker-a", 10, 100) == []
    assert await queue.depth() == (0, 0)


async def test_a_namespace_user_reaches_its_own_pools_only(store: RedisStore, redis_server: RedisServer) -> None:
    await store.set_namespace_user("pools-a", "pw-a")
    url = with_credentials(redis_server.url, namespace_user("pools-a"), "pw-a")
    async with RedisStore(StoreSettings(url=url)) as team_a:
        mine = PoolQueue(team_a, "pools-a", "p")
        await mine.ensure_group()
        assert await mine.enqueue("run-1") is not None
        (entry,) = await mine.claim("worker-a", 1, 100)
        await mine.touch("worker-a", [entry.id])
        assert await mine.reclaim("worker-a", 0, 1)
        await mine.ack(entry.id)
        assert await mine.depth() == (0, 0)
        await mine.signal_cancel("run-1")
        assert await mine.cancelled(["run-1", "run-2"]) == {"run-1"}
        assert await mine.markers([("run-1", 1)]) == ["claimed:worker-a"]
        with pytest.raises(StoreAccessDeniedError):
            await PoolQueue(team_a, "pools-b", "p").enqueue("run-1")
        with pytest.raises(StoreAccessDeniedError):
            await PoolQueue(team_a, "pools-b", "p").markers([("run-1", 1)])
