"""When a failed run is retried: the built-in labels, and taskiq's retry middlewares on top.

podiq retries in the broker (in-process) or as a new attempt (on Kubernetes), so the
middlewares below resend nothing themselves: they only change the policy the broker applies.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from podiq._labels import EXCEPTION_TYPES_LABEL, LOCAL_LABELS, NEVER_RETRIED, RETRIES_LABEL, TaskOptions
from podiq._middleware import TaskiqMiddleware
from podiq._schedules import ScheduleSource

if TYPE_CHECKING:
    from podiq._broker import AsyncBroker
    from podiq._message import TaskiqMessage


class SimpleRetryMiddleware(TaskiqMiddleware):
    """taskiq's retry middleware, as settings for podiq's built-in retries.

    With it, tasks are retried when `retry_on_error` is set (default `default_retry_label`),
    running at most `max_retries` times in all (default `default_retry_count`), as taskiq counts;
    only for `types_of_exceptions` when given (a task's own `types_of_exceptions` label wins).
    `no_result_on_retry=False` stores each failed attempt's result before the retry runs.
    """

    def __init__(
        self,
        default_retry_count: int = 3,
        default_retry_label: bool = False,
        no_result_on_retry: bool = True,
        types_of_exceptions: Iterable[type[BaseException]] | None = None,
    ) -> None:
        super().__init__()
        self.default_retry_count = default_retry_count
        self.default_retry_label = default_retry_label
        self.no_result_on_retry = no_result_on_retry
        self.types_of_exceptions = None if types_of_exceptions is None else tuple(types_of_exceptions)

    def make_delay(self, message: TaskiqMessage, retries: int) -> float:
        """Seconds to wait before retry number `retries`."""
        return 0.0

    def waited_delay(self, message: TaskiqMessage, retries: int) -> float:
        """Seconds the in-process broker waits before retry number `retries`."""
        return 0.0


class SmartRetryMiddleware(SimpleRetryMiddleware):
    """SimpleRetryMiddleware with a delay before each retry (`delay` label, default
    `default_delay` seconds), growing linearly with the retry number up to `max_delay_exponent`
    when `use_delay_exponent`, plus up to a second of random jitter when `use_jitter`.

    As in taskiq, the delay is kept only when a `schedule_source` is given (taskiq schedules the
    retry on it; podiq's broker waits the delay instead, and the source itself is not used):
    without one taskiq sends the retry at once with a `delay` label, which its InMemoryBroker
    ignores, so podiq's in-process broker retries at once too.
    """

    def __init__(
        self,
        default_retry_count: int = 3,
        default_retry_label: bool = False,
        no_result_on_retry: bool = True,
        default_delay: float = 5,
        use_jitter: bool = False,
        use_delay_exponent: bool = False,
        max_delay_exponent: float = 60,
        schedule_source: ScheduleSource | None = None,
        types_of_exceptions: Iterable[type[BaseException]] | None = None,
    ) -> None:
        super().__init__(default_retry_count, default_retry_label, no_result_on_retry, types_of_exceptions)
        if not isinstance(schedule_source, (ScheduleSource, type(None))):
            raise TypeError("schedule_source must be a ScheduleSource or None.")
        self.default_delay = default_delay
        self.use_jitter = use_jitter
        self.use_delay_exponent = use_delay_exponent
        self.max_delay_exponent = max_delay_exponent
        self.schedule_source = schedule_source

    def make_delay(self, message: TaskiqMessage, retries: int) -> float:
        delay = float(message.labels.get("delay", self.default_delay))
        if self.use_delay_exponent:
            delay = min(delay * retries, self.max_delay_exponent)
        if self.use_jitter:
            delay += random.random()
        return delay

    def waited_delay(self, message: TaskiqMessage, retries: int) -> float:
        return self.make_delay(message, retries) if self.schedule_source is not None else 0.0


class RetryDecision:
    """What the broker does after a failed attempt: retry (after `delay` s) or not, and whether
    the failed attempt's result is stored first."""

    __slots__ = ("retry", "delay", "store_failure")

    def __init__(self, retry: bool, delay: float = 0.0, store_failure: bool = False) -> None:
        self.retry = retry
        self.delay = delay
        self.store_failure = store_failure


NO_RETRY = RetryDecision(False)


def decide_retry(broker: AsyncBroker, message: TaskiqMessage, error: BaseException) -> RetryDecision:
    """Whether the attempt that raised `error` is retried, by the labels and the broker's retry middleware."""
    name = type(error).__name__
    if name in NEVER_RETRIED or name == "NoResultError":
        return NO_RETRY
    task = broker.find_task(message.task_name)
    types = task.labels.get(EXCEPTION_TYPES_LABEL) if task is not None else None
    middleware = next((m for m in broker.middlewares if isinstance(m, SimpleRetryMiddleware)), None)
    if types is None and middleware is not None:
        types = middleware.types_of_exceptions
    if types is not None and not isinstance(error, tuple(types)):
        return NO_RETRY
    retries = int(message.labels.get(RETRIES_LABEL, 0))
    options = TaskOptions.from_labels(message.labels)
    if middleware is None:
        return RetryDecision(options.should_retry(name, retries))
    retry_on_error = options.retry_on_error if "retry_on_error" in message.labels else middleware.default_retry_label
    max_runs = options.max_retries if "max_retries" in message.labels else middleware.default_retry_count
    if not retry_on_error or retries + 1 >= max_runs:
        return NO_RETRY
    return RetryDecision(True, middleware.waited_delay(message, retries + 1), not middleware.no_result_on_retry)


def sendable_labels(labels: dict[str, Any]) -> dict[str, Any]:
    """A task's labels without those that only live in this process."""
    return {k: v for k, v in labels.items() if k not in LOCAL_LABELS}
