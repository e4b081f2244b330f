"""`taskiq.abc.middleware`, renamed."""

from podiq._middleware import TaskiqMiddleware

__all__ = ["TaskiqMiddleware"]
