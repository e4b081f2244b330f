"""`taskiq.abc.result_backend`, renamed."""

from podiq._result_backend import AsyncResultBackend

__all__ = ["AsyncResultBackend"]
