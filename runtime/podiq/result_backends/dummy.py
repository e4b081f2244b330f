"""`taskiq.result_backends.dummy`, renamed: the backend of a broker made without one."""

from podiq._result_backend import DummyResultBackend

__all__ = ["DummyResultBackend"]
