from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable
from typing import Any

from podiq._result import TaskiqResult
from podiq._task import AsyncTaskiqTask
from podiq._timeouts import wait_seconds
from podiq.exceptions import InvalidArgumentsError, TaskiqResultTimeoutError

Waitable = AsyncTaskiqTask[Any] | TaskiqResult[Any] | Awaitable[AsyncTaskiqTask[Any] | TaskiqResult[Any]]


async def gather(
    *tasks: Waitable,
    timeout: float = -1,
    with_logs: bool = False,
    periodicity: float = 0.1,
) -> tuple[TaskiqResult[Any], ...]:
    """Wait for several runs at once; returns their finished results in input order.

    Accepts AsyncTaskiqTasks, TaskiqResult handles, and un-awaited `kiq()` calls. A failed run
    does not raise here: read `is_err` / `error`, or call `raise_for_error()`.
    """
    try:
        limit = wait_seconds(timeout, "gather()")
    except InvalidArgumentsError:
        for item in tasks:  # nothing is sent: close un-awaited kiq() calls instead of leaking them
            if inspect.iscoroutine(item):
                item.close()
        raise
    for item in tasks:
        if not isinstance(item, (AsyncTaskiqTask, TaskiqResult)) and not inspect.isawaitable(item):
            raise InvalidArgumentsError(
                f"gather() takes AsyncTaskiqTasks, TaskiqResult handles or un-awaited kiq() calls, not {item!r}."
            )
    # Sending is not waiting: un-awaited kiq() calls are sent first, outside the timeout.
    items = [item if isinstance(item, (AsyncTaskiqTask, TaskiqResult)) else await item for item in tasks]

    async def finish(item: AsyncTaskiqTask[Any] | TaskiqResult[Any]) -> TaskiqResult[Any]:
        if isinstance(item, TaskiqResult):
            if item._complete:  # a finished container, or a handle already waited for
                return item
            item._fill(await item.task.wait_result(check_interval=periodicity, with_logs=with_logs))
            return item
        return await item.wait_result(check_interval=periodicity, with_logs=with_logs)

    waiting = [asyncio.ensure_future(finish(item)) for item in items]
    if not waiting:
        return ()
    # asyncio.wait lets each waiter take its first step before a timeout of 0 expires, so
    # results that are already there count.
    _, pending = await asyncio.wait(waiting, timeout=limit)
    for waiter in pending:
        waiter.cancel()
    if pending:
        await asyncio.wait(pending)
        raise TaskiqResultTimeoutError(
            f"gather() waited {timeout} s and {len(pending)} of {len(waiting)} tasks had not finished."
        )
    return tuple(waiter.result() for waiter in waiting)
