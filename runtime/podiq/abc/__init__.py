"""taskiq's `taskiq.abc` import paths: the base classes to build brokers, backends, middlewares and sources on."""

from podiq._broker import AsyncBroker
from podiq._result_backend import AsyncResultBackend

__all__ = ["AsyncBroker", "AsyncResultBackend"]
