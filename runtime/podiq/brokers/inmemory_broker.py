"""`taskiq.brokers.inmemory_broker`, renamed."""

from podiq._inmemory import InMemoryBroker, InMemoryResultBackend

__all__ = ["InMemoryBroker", "InMemoryResultBackend"]
