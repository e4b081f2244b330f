"""Large values in Redis: arguments, results and output tails that do not fit in a TaskRun.

A TaskRun travels through etcd and to every watcher on each status write, so it keeps
small values inline and holds a :class:`StoredValue` reference (key, size, sha256) for
the rest. Values are the JSON podiq already produces (output tails are UTF-8 text);
nothing is pickled, and every read is checked against its reference. Keys carry the
namespace and the TaskRun::

    podiq:<namespace>:<taskrun>:args
    podiq:<namespace>:<taskrun>:result:<attempt>
    podiq:<namespace>:<taskrun>:log:<attempt>

so that one ACL pattern (``~podiq:<namespace>:*``, see :func:`namespace_acl`) confines a
namespace's tasks to their own values. Redis is never the only copy of what decides a
run's fate: phase, attempts and reasons live in the TaskRun.

The ``redis`` package (``pip install 'podiq[redis]'``) is imported only when a
:class:`RedisStore` is made, so everything else here works without it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, overload
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field

from podiq.exceptions import (
    StoreAccessDeniedError,
    StoredValueCorruptError,
    StoredValueExpiredError,
    StoreError,
    StoreUnavailableError,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "ENV_REDIS_URL",
    "KEY_PREFIX",
    "RedisStore",
    "StoreSettings",
    "StoredValue",
    "args_key",
    "dump_json",
    "format_size",
    "log_key",
    "namespace_acl",
    "namespace_user",
    "redacted",
    "result_key",
    "run_keys",
    "with_credentials",
]

#: The Redis URL of clients and task pods, e.g. ``redis://:password@redis.podiq-system:6379/0``.
ENV_REDIS_URL = "PODIQ_REDIS_URL"
KEY_PREFIX = "podiq"

KiB = 1024
MiB = 1024 * KiB


class StoredValue(BaseModel):
    """A reference to a value kept in Redis, held by the TaskRun in place of the value."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    key: str = Field(min_length=1, max_length=1024, description="The Redis key.")
    size: int = Field(ge=0, strict=True, description="Bytes stored (UTF-8 JSON, or text for output).")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the stored bytes, hex.")

    @classmethod
    def of(cls, key: str, data: bytes) -> StoredValue:
        return cls(key=key, size=len(data), sha256=hashlib.sha256(data).hexdigest())


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name)
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a whole number.") from None
    if number < 0:
        raise ValueError(f"{name}={value!r} must not be negative.")
    return number


@dataclasses.dataclass(frozen=True)
class StoreSettings:
    """Where large values go and for how long. Client, operator and runtime read the same
    ``PODIQ_REDIS_*`` variables; the operator passes its own values on to task pods."""

    url: str | None = None
    """The Redis URL (``PODIQ_REDIS_URL``); ``None``: no Redis, values over the limits are refused."""

    args_inline_limit: int = 64 * KiB
    """Bytes of JSON above which a call's arguments go to Redis instead of the TaskRun's spec
    (``PODIQ_REDIS_ARGS_INLINE_LIMIT``). Every watcher of TaskRuns receives what stays inline."""

    result_inline_limit: int = 64 * KiB
    """Bytes of JSON above which a result goes to Redis instead of the TaskRun's status
    (``PODIQ_REDIS_RESULT_INLINE_LIMIT``)."""

    ttl: int = 7 * 24 * 3600
    """Seconds stored values live when their TaskRun has no ``ttl`` (``PODIQ_REDIS_TTL``). With a
    ``ttl``, results, output and (once the run is over) arguments expire with the TaskRun."""

    log_tail: int = 1 * MiB
    """Bytes of a pod's output kept, its last ones (``PODIQ_REDIS_LOG_TAIL``); 0 keeps none."""

    timeout: float = 10.0
    """Seconds to connect, and for one command (``PODIQ_REDIS_TIMEOUT``); a 20 MB value takes well under one."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, url: str | None = None) -> StoreSettings:
        env = os.environ if env is None else env
        timeout = env.get("PODIQ_REDIS_TIMEOUT")
        return cls(
            url=url or env.get(ENV_REDIS_URL) or None,
            args_inline_limit=_env_int(env, "PODIQ_REDIS_ARGS_INLINE_LIMIT", cls.args_inline_limit),
            result_inline_limit=_env_int(env, "PODIQ_REDIS_RESULT_INLINE_LIMIT", cls.result_inline_limit),
            ttl=_env_int(env, "PODIQ_REDIS_TTL", cls.ttl) or cls.ttl,
            log_tail=_env_int(env, "PODIQ_REDIS_LOG_TAIL", cls.log_tail),
            timeout=float(timeout) if timeout else cls.timeout,
        )

    def to_env(self) -> dict[str, str]:
        """The settings besides the URL, as the variables :meth:`from_env` reads (for task pods)."""
        return {
            "PODIQ_REDIS_ARGS_INLINE_LIMIT": str(self.args_inline_limit),
            "PODIQ_REDIS_RESULT_INLINE_LIMIT": str(self.result_inline_limit),
            "PODIQ_REDIS_TTL": str(self.ttl),
            "PODIQ_REDIS_LOG_TAIL": str(self.log_tail),
            "PODIQ_REDIS_TIMEOUT": str(self.timeout),
        }


# --- keys ---


def _prefix(namespace: str, taskrun: str) -> str:
    return f"{KEY_PREFIX}:{namespace}:{taskrun}:"


def args_key(namespace: str, taskrun: str) -> str:
    return _prefix(namespace, taskrun) + "args"


def result_key(namespace: str, taskrun: str, attempt: int) -> str:
    return _prefix(namespace, taskrun) + f"result:{attempt}"


def log_key(namespace: str, taskrun: str, attempt: int) -> str:
    return _prefix(namespace, taskrun) + f"log:{attempt}"


def run_keys(namespace: str, taskrun: str, attempts: int) -> list[str]:
    """Every key a run of ``attempts`` attempts may have written."""
    keys = [args_key(namespace, taskrun)]
    for attempt in range(1, max(attempts, 1) + 1):
        keys += [result_key(namespace, taskrun, attempt), log_key(namespace, taskrun, attempt)]
    return keys


# --- per-namespace users ---

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

#: What a namespace's tasks and clients may run: read and write values, nothing else.
NAMESPACE_COMMANDS = (
    "+get",
    "+set",
    "+getrange",
    "+strlen",
    "+exists",
    "+expire",
    "+ttl",
    "+del",
    "+unlink",
    "+ping",
    "+hello",
    # pool dispatch (podiq.kubernetes.dispatch): the enqueue script and the workers' stream commands
    "+eval",
    "+evalsha",
    "+mget",
    "+xadd",
    "+xreadgroup",
    "+xack",
    "+xdel",
    "+xautoclaim",
    "+xclaim",
    "+xpending",
    "+xlen",
    "+xinfo|groups",
    "+xgroup|create",
)


def namespace_user(namespace: str) -> str:
    return f"{KEY_PREFIX}-{namespace}"


def namespace_acl(namespace: str, password: str) -> list[str]:
    """``ACL SETUSER`` rules for a namespace's user: its own key prefix and value commands only."""
    if not _DNS_LABEL.match(namespace):  # a namespace name, so it cannot widen the key pattern
        raise ValueError(f"{namespace!r} is not a namespace name.")
    return [
        "reset",
        "on",
        f">{password}",
        f"~{KEY_PREFIX}:{namespace}:*",
        "resetchannels",
        "-@all",
        *NAMESPACE_COMMANDS,
    ]


def with_credentials(url: str, username: str, password: str) -> str:
    """``url`` with its user and password replaced (for a namespace's own URL)."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{quote(username, safe='')}:{quote(password, safe='')}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def redacted(url: str) -> str:
    """``url`` without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    netloc = f"{user}:***@" + parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=netloc))


# --- values ---


def dump_json(value: Any) -> bytes:
    """Compact UTF-8 JSON, as sizes and checksums are counted."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def format_size(size: int) -> str:
    """``size`` bytes for people: ``812 B``, ``3.0 MB`` (decimal), with the exact count for large ones."""
    if size < 1000:
        return f"{size} B"
    for unit, scale in (("kB", 1e3), ("MB", 1e6), ("GB", 1e9)):
        if size < scale * 1000 or unit == "GB":
            return f"{size / scale:.1f} {unit} ({size} bytes)"
    raise AssertionError("unreachable")


class RedisStore:
    """Values by reference in Redis, with redis-py's asyncio client.

    Every Redis error is translated here into podiq's :class:`~podiq.exceptions.StoreError`
    tree, with the URL (password hidden) and the key, so callers catch podiq's errors only.
    """

    def __init__(self, settings: StoreSettings) -> None:
        if not settings.url:
            raise StoreUnavailableError(
                f"No Redis URL: pass redis_url= or set {ENV_REDIS_URL} (e.g. redis://:password@host:6379/0)."
            )
        try:
            from redis.asyncio import Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import ExponentialBackoff
        except ImportError:
            raise StoreUnavailableError(
                "Storing large values needs the redis package: pip install 'podiq[redis]'."
            ) from None
        self.settings = settings
        self.url = settings.url
        self.redis: Redis = Redis.from_url(
            settings.url,
            socket_timeout=settings.timeout,
            socket_connect_timeout=settings.timeout,
            # A short retry for a dropped connection; a Redis that is down fails within seconds.
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.1), 2),
            health_check_interval=30,
        )

    async def close(self) -> None:
        await self.redis.aclose()

    async def __aenter__(self) -> RedisStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _translated(self, exc: Exception, what: str) -> StoreError:
        from redis import exceptions as e

        where = redacted(self.url)
        detail = str(exc).rstrip(". ") or type(exc).__name__
        if isinstance(exc, e.AuthenticationError | e.AuthorizationError):
            return StoreUnavailableError(f"Redis at {where} refused the credentials while {what}: {detail}.")
        if isinstance(exc, e.NoPermissionError):
            return StoreAccessDeniedError(
                f"Redis at {where} refused {what}: {detail}. A namespace's user may only use keys under "
                "podiq:<its namespace>:."
            )
        if isinstance(exc, e.ConnectionError | e.TimeoutError | OSError):
            return StoreUnavailableError(
                f"Redis at {where} cannot be reached while {what}: {detail}. "
                "Check that it runs and the URL (PODIQ_REDIS_URL, or the chart's redis values)."
            )
        return StoreError(f"Redis at {where} failed {what}: {detail}.")

    async def ping(self) -> None:
        try:
            await self.redis.ping()
        except Exception as exc:  # noqa: BLE001 - translated into podiq's StoreError here, at the boundary
            raise self._translated(exc, "answering a ping") from None

    @overload
    async def put(self, key: str, data: bytes, ttl: int) -> StoredValue: ...
    @overload
    async def put(self, key: str, data: bytes, ttl: int, *, replace: bool) -> StoredValue | None: ...

    async def put(self, key: str, data: bytes, ttl: int, *, replace: bool = True) -> StoredValue | None:
        """Store ``data`` at ``key`` for ``ttl`` seconds; without ``replace``, None if the key exists."""
        try:
            written = await self.redis.set(key, data, ex=max(int(ttl), 1), nx=not replace)
        except Exception as exc:  # noqa: BLE001 - translated into podiq's StoreError here, at the boundary
            raise self._translated(exc, f"storing {format_size(len(data))} at {key}") from None
        return StoredValue.of(key, data) if written else None

    async def put_json(self, key: str, value: Any, ttl: int) -> StoredValue:
        return await self.put(key, dump_json(value), ttl)

    async def get(self, ref: StoredValue) -> bytes:
        """The bytes ``ref`` points at, checked against its size and sha256."""
        try:
            data: bytes | None = await self.redis.get(ref.key)  # type: ignore[assignment]  # no decode_responses
        except Exception as exc:  # noqa: BLE001 - translated into podiq's StoreError here, at the boundary
            raise self._translated(exc, f"reading {ref.key}") from None
        if data is None:
            raise StoredValueExpiredError(
                f"The value at {ref.key} ({format_size(ref.size)}) is no longer in Redis at {redacted(self.url)}: "
                "it expired with its TaskRun's TTL, was evicted (maxmemory) or deleted."
            )
        if len(data) != ref.size or hashlib.sha256(data).hexdigest() != ref.sha256:
            raise StoredValueCorruptError(
                f"The value at {ref.key} does not match its reference: {len(data)} bytes with sha256 "
                f"{hashlib.sha256(data).hexdigest()[:12]}…, expected {ref.size} bytes with {ref.sha256[:12]}…. "
                "Something else wrote that key."
            )
        return data

    async def get_json(self, ref: StoredValue) -> Any:
        data = await self.get(ref)
        try:
            return json.loads(data)
        except ValueError as exc:
            raise StoredValueCorruptError(f"The value at {ref.key} is not JSON: {exc}.") from None

    async def exists(self, key: str) -> bool:
        try:
            return bool(await self.redis.exists(key))
        except Exception as exc:  # noqa: BLE001 - translated into podiq's StoreError here, at the boundary
            raise self._translated(exc, f"looking up {key}") from None

    async def expire(self, keys: Iterable[str], ttl: int) -> None:
        """Shorten or extend the life of ``keys`` (absent keys are fine)."""
        keys = list(keys)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.expire(key, max(int(ttl), 1))
                await pipe.execute()
        except Exception as exc:  # noqa: BLE001 - translated into podiq's StoreError here, at the boundary
            raise self._translated(exc, f"setting the TTL of {', '.join(keys)}") from None

    async def delete(self, keys: Iterable[str]) -> int:
        """Remove ``keys``; returns how many existed."""
        keys = list(keys)
        if not keys:
            return 0
        try:
            return int(await self.redis.unlink(*keys))
        except Exception as exc:  # noqa: BLE001 - translated into podiq's StoreError here, at the boundary
            raise self._translated(exc, f"deleting {', '.join(keys)}") from None

    async def put_tail(self, key: str, text: bytes, ttl: int, *, dropped: int = 0) -> StoredValue | None:
        """Store the last :attr:`StoreSettings.log_tail` bytes of ``text`` (after ``dropped``
        bytes not given), marking the cut; None when nothing is kept."""
        limit = self.settings.log_tail
        if limit <= 0:
            return None
        tail = text[-limit:]
        while tail and tail[0] & 0xC0 == 0x80:  # start at a UTF-8 character, not inside one
            tail = tail[1:]
        cut = dropped + len(text) - len(tail)
        if cut:
            tail = f"[podiq: the first {cut} bytes of output are not kept]\n".encode() + tail
        return await self.put(key, tail, ttl)

    async def set_namespace_user(self, namespace: str, password: str) -> None:
        """Create or update the ACL user of ``namespace`` (needs an admin connection)."""
        try:
            # Sent as the exact rules of namespace_acl (redis-py's acl_setuser builds its own).
            await self.redis.execute_command(  # type: ignore[no-untyped-call]  # untyped in redis-py
                "ACL", "SETUSER", namespace_user(namespace), *namespace_acl(namespace, password)
            )
        except Exception as exc:  # noqa: BLE001 - translated into podiq's StoreError here, at the boundary
            raise self._translated(exc, f"setting up the ACL user of namespace {namespace}") from None
