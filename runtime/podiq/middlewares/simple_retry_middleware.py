"""`taskiq.middlewares.simple_retry_middleware`, renamed."""

from podiq._retries import SimpleRetryMiddleware

__all__ = ["SimpleRetryMiddleware"]
