"""What goes inline in a TaskRun and what goes to Redis: the policy, shared by client and runtime.

Arguments over :attr:`StoreSettings.args_inline_limit` are written to Redis at ``kiq`` and the
spec holds their reference; results over :attr:`StoreSettings.result_inline_limit` likewise
in the status. Without Redis, values up to what a TaskRun can carry stay inline and larger
ones are refused with an error that names the value, its size, the limit and the way out.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from podiq._broker import find_registered_task
from podiq._result import ResultRecord
from podiq.exceptions import ArgumentsTooLargeError, ResultGetError, StoreError, StoreUnavailableError
from podiq.kubernetes.resources import MAX_INLINE_RESULT_BYTES, ResultTooLargeError, TaskRun, TaskRunSpec
from podiq.kubernetes.storage import (
    ENV_REDIS_URL,
    RedisStore,
    StoredValue,
    StoreSettings,
    args_key,
    dump_json,
    format_size,
    log_key,
    result_key,
)

__all__ = [
    "ENABLE_REDIS",
    "MAX_INLINE_ARGS_BYTES",
    "load_arguments",
    "offload_arguments",
    "read_result",
    "read_stored_log",
    "store_log",
    "store_result",
    "stored_ttl",
]

logger = logging.getLogger("podiq.kubernetes")

#: The largest arguments (compact UTF-8 JSON) a TaskRun carries inline when no Redis is
#: configured: etcd refuses requests above about 1.5 MiB, and the status comes on top.
MAX_INLINE_ARGS_BYTES = 1024 * 1024
#: Seconds that stored values outlive their TaskRun's ``ttl``, so a slow deletion finds them.
TTL_GRACE = 60

ENABLE_REDIS = (
    f"To pass larger values, configure Redis: KubernetesBroker(..., redis_url=...) or {ENV_REDIS_URL} "
    "for clients, and the chart's redis.enabled=true (or redis.url) for the operator and task pods."
)


def stored_ttl(spec: TaskRunSpec, settings: StoreSettings) -> int:
    """Seconds a finished run's stored values live: the TaskRun's ``ttl`` (and a little), else the setting."""
    if spec.ttl_seconds_after_finished is not None:
        return spec.ttl_seconds_after_finished + TTL_GRACE
    return settings.ttl


def _argument_sizes(task_name: str, args: list[Any], kwargs: dict[str, Any]) -> list[tuple[str, int]]:
    """Each argument's name (from the task's signature when it is registered here) and JSON size."""
    task = find_registered_task(task_name)
    names: list[str] = []
    if task is not None:
        names = [
            p.name
            for p in inspect.signature(task.original_func).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    sized = [
        (names[i] if i < len(names) else f"positional argument {i}", len(dump_json(v))) for i, v in enumerate(args)
    ]
    return sized + [(name, len(dump_json(v))) for name, v in kwargs.items()]


async def offload_arguments(
    store: RedisStore | None,
    settings: StoreSettings,
    namespace: str,
    name: str,
    spec: dict[str, Any],
    taken: Callable[[], Awaitable[bool]],
) -> bool | None:
    """Move the arguments of a TaskRun ``spec`` (API form) to Redis if they are over the limit.

    Returns whether they were moved, or None when their key is in use by an existing TaskRun
    (``taken()``; a leftover of a deleted one is replaced). Raises
    :class:`ArgumentsTooLargeError` when they are too large and no store is configured,
    naming the largest argument.
    """
    data = dump_json({"args": spec.get("args", []), "kwargs": spec.get("kwargs", {})})
    limit = settings.args_inline_limit if store is not None else MAX_INLINE_ARGS_BYTES
    if len(data) <= limit:
        return False
    if store is None:
        largest, size = max(
            _argument_sizes(spec["taskName"], spec.get("args", []), spec.get("kwargs", {})), key=lambda a: a[1]
        )
        raise ArgumentsTooLargeError(
            f"The arguments of {spec['taskName']!r} are {format_size(len(data))} as JSON, over the "
            f"{format_size(limit)} a TaskRun carries inline; the largest is {largest!r}, {format_size(size)}. "
            + ENABLE_REDIS
        )
    ttl = settings.ttl
    not_before = spec.get("notBefore")
    if not_before:  # the arguments must still be there when the run may start
        ttl += max(int((datetime.fromisoformat(not_before) - datetime.now(UTC)).total_seconds()), 0)
    key = args_key(namespace, name)
    ref = await store.put(key, data, ttl, replace=False)
    if ref is None:
        if await taken():
            return None
        ref = await store.put(key, data, ttl)
    spec["args"], spec["kwargs"], spec["argsRef"] = [], {}, ref.model_dump(mode="json")
    return True


async def load_arguments(store: RedisStore | None, taskrun: TaskRun) -> tuple[list[Any], dict[str, Any]]:
    """The run's arguments, from its spec or from Redis (checked against the reference)."""
    spec = taskrun.spec
    if spec.args_ref is None:
        return spec.args, spec.kwargs
    if store is None:
        raise StoreUnavailableError(
            f"The arguments of TaskRun {taskrun.name} are kept in Redis ({format_size(spec.args_ref.size)}), "
            f"but this pod has no {ENV_REDIS_URL}: the operator sets it from its Redis settings "
            "(the chart's redis values)."
        )
    data = await store.get_json(spec.args_ref)
    if not isinstance(data, dict) or not isinstance(data.get("args"), list) or not isinstance(data.get("kwargs"), dict):
        raise StoreError(f"The value at {spec.args_ref.key} is not a TaskRun's arguments ({{args, kwargs}}).")
    return data["args"], data["kwargs"]


async def store_result(
    store: RedisStore | None,
    settings: StoreSettings,
    taskrun: TaskRun,
    attempt: int,
    record: ResultRecord,
) -> tuple[dict[str, Any] | None, StoredValue | None]:
    """The result as ``(inline, None)`` or ``(None, reference)``.

    Raises :class:`ResultTooLargeError` over the inline limit without a store, and
    :class:`StoreError` when the store cannot take it.
    """
    inline = record.model_dump(mode="json")
    data = dump_json(inline)
    limit = settings.result_inline_limit if store is not None else MAX_INLINE_RESULT_BYTES
    if len(data) <= limit:
        return inline, None
    if store is None:
        raise ResultTooLargeError(
            f"the task's result is {format_size(len(data))} as JSON; at most {format_size(limit)} are kept "
            "inline in a TaskRun's status. Return a smaller value (e.g. a reference to where the data is "
            "stored), or let podiq keep it in Redis: the chart's redis.enabled=true (or redis.url)."
        )
    ttl = stored_ttl(taskrun.spec, settings)
    return None, await store.put(result_key(taskrun.namespace, taskrun.name, attempt), data, ttl)


async def store_log(
    store: RedisStore,
    settings: StoreSettings,
    taskrun: TaskRun,
    attempt: int,
    output: bytes,
    dropped: int = 0,
) -> StoredValue | None:
    """Keep the tail of the attempt's output; a failure is logged, never fatal (logs decide nothing)."""
    key = log_key(taskrun.namespace, taskrun.name, attempt)
    try:
        return await store.put_tail(key, output, stored_ttl(taskrun.spec, settings), dropped=dropped)
    except StoreError as exc:
        logger.warning("The output of attempt %s is not kept: %s", attempt, exc)
        return None


def _needs_store(store: RedisStore | None, taskrun: TaskRun, what: str, ref: StoredValue) -> RedisStore:
    if store is None:
        raise StoreUnavailableError(
            f"The {what} of TaskRun {taskrun.namespace}/{taskrun.name} is kept in Redis ({format_size(ref.size)}, "
            f"key {ref.key}): pass redis_url= to KubernetesBroker or set {ENV_REDIS_URL} to read it."
        )
    return store


async def read_result(store: RedisStore | None, taskrun: TaskRun) -> ResultRecord:
    """The finished run's result record, inline or from Redis."""
    status = taskrun.status
    if not taskrun.is_done() or (status.result is None and status.result_ref is None):
        raise ResultGetError(f"TaskRun {taskrun.name} has not finished (phase {status.phase}); wait for it first.")
    if status.result is not None:
        return ResultRecord.model_validate(status.result)
    assert status.result_ref is not None
    data = await _needs_store(store, taskrun, "result", status.result_ref).get_json(status.result_ref)
    return ResultRecord.model_validate(data)


async def read_stored_log(store: RedisStore | None, taskrun: TaskRun) -> str | None:
    """The tail of the reported attempt's output kept in Redis, or None if none was kept."""
    ref = taskrun.status.log_ref
    if ref is None:
        return None
    return (await _needs_store(store, taskrun, "output", ref).get(ref)).decode(errors="replace")
