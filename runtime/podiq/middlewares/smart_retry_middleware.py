"""`taskiq.middlewares.smart_retry_middleware`, renamed."""

from podiq._retries import SmartRetryMiddleware

__all__ = ["SmartRetryMiddleware"]
