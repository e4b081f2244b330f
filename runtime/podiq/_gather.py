from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from podiq._result import TaskiqResult
from podiq._task import AsyncTaskiqTask
from podiq.exceptions import TaskiqResultTimeoutError

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

    async def finish(item: Waitable) -> TaskiqResult[Any]:
        if not isinstance(item, (AsyncTaskiqTask, TaskiqResult)):
            item = await item
        if isinstance(item, TaskiqResult):
            if item._complete:  # a finished container, or a handle already waited for
                return item
            item._fill(await item.task.wait_result(check_interval=periodicity, with_logs=with_logs))
            return item
        return await item.wait_result(check_interval=periodicity, with_logs=with_logs)

    try:
        return tuple(await asyncio.wait_for(asyncio.gather(*(finish(t) for t in tasks)), None if timeout < 0 else timeout))
    except TimeoutError:
        raise TaskiqResultTimeoutError(f"gather() waited {timeout} s and not every task had finished.") from None
