"""`taskiq.brokers.shared_broker`, renamed: tasks declared without a broker."""

from podiq._shared_broker import AsyncSharedBroker, SharedDecoratedTask, async_shared_broker, shared_task

__all__ = ["AsyncSharedBroker", "SharedDecoratedTask", "async_shared_broker", "shared_task"]
