"""The Redis store of large values, against a real redis-server (tests/redisserver.py)."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from podiq.exceptions import (
    StoreAccessDeniedError,
    StoredValueCorruptError,
    StoredValueExpiredError,
    StoreUnavailableError,
)
from podiq.kubernetes.storage import (
    RedisStore,
    StoredValue,
    StoreSettings,
    args_key,
    format_size,
    log_key,
    namespace_acl,
    namespace_user,
    redacted,
    result_key,
    run_keys,
    with_credentials,
)
from tests.cluster.procs import free_port
from tests.redisserver import RedisServer


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[RedisStore]:
    async with RedisStore(StoreSettings(url=redis_server.url, log_tail=64)) as store:
        yield store


def test_keys_carry_namespace_taskrun_and_attempt() -> None:
    assert args_key("jobs", "run-1") == "podiq:jobs:run-1:args"
    assert result_key("jobs", "run-1", 2) == "podiq:jobs:run-1:result:2"
    assert log_key("jobs", "run-1", 2) == "podiq:jobs:run-1:log:2"
    assert run_keys("jobs", "r", 2) == [
        "podiq:jobs:r:args",
        "podiq:jobs:r:result:1",
        "podiq:jobs:r:log:1",
        "podiq:jobs:r:result:2",
        "podiq:jobs:r:log:2",
    ]


def test_settings_read_their_variables_and_pass_them_on() -> None:
    env = {
        "PODIQ_REDIS_URL": "redis://r:6379/0",
        "PODIQ_REDIS_ARGS_INLINE_LIMIT": "1000",
        "PODIQ_REDIS_RESULT_INLINE_LIMIT": "2000",
        "PODIQ_REDIS_TTL": "60",
        "PODIQ_REDIS_LOG_TAIL": "0",
        "PODIQ_REDIS_TIMEOUT": "2.5",
    }
    settings = StoreSettings.from_env(env)
    assert settings == StoreSettings("redis://r:6379/0", 1000, 2000, 60, 0, 2.5)
    assert StoreSettings.from_env({**settings.to_env(), "PODIQ_REDIS_URL": "redis://r:6379/0"}) == settings
    assert StoreSettings.from_env({}) == StoreSettings()
    assert StoreSettings.from_env({}, url="redis://x").url == "redis://x"
    with pytest.raises(ValueError, match="PODIQ_REDIS_TTL='soon' is not a whole number"):
        StoreSettings.from_env({"PODIQ_REDIS_TTL": "soon"})


def test_urls_hide_passwords_and_take_a_namespace_user() -> None:
    assert redacted("redis://:s3cret@h:6379/0") == "redis://:***@h:6379/0"
    assert redacted("redis://h:6379/0") == "redis://h:6379/0"
    assert with_credentials("redis://:admin@h:6379/1", "podiq-a", "p/w") == "redis://podiq-a:p%2Fw@h:6379/1"
    assert format_size(999) == "999 B" and format_size(3_000_000) == "3.0 MB (3000000 bytes)"


def test_namespace_acl_confines_to_the_prefix_and_refuses_patterns() -> None:
    rules = namespace_acl("team-a", "pw")
    assert "~podiq:team-a:*" in rules and "-@all" in rules and ">pw" in rules
    assert not any(rule.startswith("~") and rule != "~podiq:team-a:*" for rule in rules)
    with pytest.raises(ValueError):
        namespace_acl("a*", "pw")


async def test_put_then_get_checks_size_and_checksum(store: RedisStore) -> None:
    value = {"rows": list(range(1000)), "text": "é" * 100}
    ref = await store.put_json("podiq:unit:rt:args", value, ttl=60)
    assert ref.key == "podiq:unit:rt:args"
    assert ref.size == len(await store.get(ref))
    assert ref.sha256 == hashlib.sha256(await store.get(ref)).hexdigest()
    assert await store.get_json(ref) == value
    assert 55 <= await store.redis.ttl(ref.key) <= 60
    # The reference is what the TaskRun holds: plain JSON.
    assert StoredValue.model_validate(ref.model_dump(mode="json")) == ref


async def test_a_changed_value_is_refused(store: RedisStore) -> None:
    ref = await store.put("podiq:unit:corrupt:args", b"[1,2,3]", ttl=60)
    await store.redis.set(ref.key, b"[1,2,4]")
    with pytest.raises(StoredValueCorruptError, match="does not match its reference"):
        await store.get(ref)
    await store.redis.set(ref.key, b"[1,2,3,4]")
    with pytest.raises(StoredValueCorruptError):
        await store.get(ref)


async def test_an_expired_value_says_so(store: RedisStore) -> None:
    ref = await store.put("podiq:unit:expiring:result:1", b'"x"', ttl=1)
    await asyncio.sleep(1.2)
    with pytest.raises(StoredValueExpiredError, match="expired with its TaskRun's TTL, was evicted"):
        await store.get(ref)


async def test_expire_and_delete_by_taskrun(store: RedisStore) -> None:
    keys = run_keys("unit", "gone", 2)
    for key in keys:
        await store.put(key, b"1", ttl=600)
    await store.put("podiq:unit:other:args", b"1", ttl=600)
    await store.expire(keys[:1], ttl=5)
    assert 0 < await store.redis.ttl(keys[0]) <= 5
    assert await store.delete(keys) == len(keys)
    assert not any([await store.exists(key) for key in keys])
    assert await store.exists("podiq:unit:other:args")
    assert await store.delete([]) == 0


async def test_the_log_tail_keeps_the_last_bytes(store: RedisStore) -> None:
    short = await store.put_tail("podiq:unit:logs:log:1", b"hello\n", ttl=60)
    assert short is not None and await store.get(short) == b"hello\n"
    long = "".join(f"line {i}\n" for i in range(100)).encode()
    ref = await store.put_tail("podiq:unit:logs:log:2", long, ttl=60)
    assert ref is not None
    kept = (await store.get(ref)).decode()
    assert kept.startswith("[podiq: the first ") and kept.endswith("line 99\n") and "line 0\n" not in kept
    assert kept.split("]\n", 1)[1] == long[-64:].decode()
    accents = await store.put_tail("podiq:unit:logs:log:4", ("é" * 100).encode() + b"\xff end", ttl=60)
    assert accents is not None  # cut at a character; other bytes are kept as they are
    assert (await store.get(accents)).split(b"]\n", 1)[1] == ("é" * 29).encode() + b"\xff end"
    async with RedisStore(StoreSettings(url=store.url, log_tail=0)) as none_kept:
        assert await none_kept.put_tail("podiq:unit:logs:log:3", long, ttl=60) is None


async def test_redis_down_fails_fast_and_clearly() -> None:
    url = f"redis://:pw@127.0.0.1:{free_port()}/0"
    async with RedisStore(StoreSettings(url=url, timeout=2)) as store:
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError, match=r"redis://:\*\*\*@127.0.0.1:\d+/0 cannot be reached"):
            await store.put("podiq:unit:down:args", b"1", ttl=60)
        assert time.monotonic() - started < 10
        with pytest.raises(StoreUnavailableError):
            await store.get(StoredValue.of("podiq:unit:down:args", b"1"))


async def test_wrong_credentials_are_named(redis_server: RedisServer) -> None:
    async with RedisStore(StoreSettings(url=f"redis://:wrong@127.0.0.1:{redis_server.port}/0")) as store:
        with pytest.raises(StoreUnavailableError, match="refused the credentials"):
            await store.ping()


def test_no_url_says_how_to_configure() -> None:
    with pytest.raises(StoreUnavailableError, match="PODIQ_REDIS_URL"):
        RedisStore(StoreSettings())


async def test_a_namespace_user_reads_only_its_own_namespace(store: RedisStore, redis_server: RedisServer) -> None:
    await store.set_namespace_user("team-a", "pw-a")
    await store.set_namespace_user("team-a", "pw-a")  # idempotent
    await store.set_namespace_user("team-b", "pw-b")
    theirs = await store.put("podiq:team-b:run:result:1", b'"secret"', ttl=60)
    url_a = with_credentials(redis_server.url, namespace_user("team-a"), "pw-a")
    async with RedisStore(StoreSettings(url=url_a)) as team_a:
        mine = await team_a.put("podiq:team-a:run:args", b"[1]", ttl=60)
        assert await team_a.get(mine) == b"[1]"
        await team_a.expire([mine.key], 30)
        assert await team_a.delete([mine.key]) == 1
        with pytest.raises(StoreAccessDeniedError, match="podiq:<its namespace>"):
            await team_a.get(theirs)
        with pytest.raises(StoreAccessDeniedError):
            await team_a.put("podiq:team-b:run:result:1", b'"overwritten"', ttl=60)
        with pytest.raises(StoreAccessDeniedError):
            await team_a.delete([theirs.key])
        for command in (("KEYS", "*"), ("FLUSHALL",), ("ACL", "LIST"), ("CONFIG", "GET", "*")):
            with pytest.raises(Exception, match="no permissions"):
                await team_a.redis.execute_command(*command)
    assert await store.get(theirs) == b'"secret"'
    url_wrong: Any = with_credentials(redis_server.url, namespace_user("team-a"), "pw-b")
    async with RedisStore(StoreSettings(url=url_wrong)) as impostor:
        with pytest.raises(StoreUnavailableError, match="refused the credentials"):
            await impostor.ping()
