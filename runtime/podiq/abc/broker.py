"""`taskiq.abc.broker`, renamed: podiq's broker base class."""

from podiq._broker import AsyncBroker
from podiq._decor import AsyncTaskiqDecoratedTask

__all__ = ["AsyncBroker", "AsyncTaskiqDecoratedTask"]
