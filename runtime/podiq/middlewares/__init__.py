"""`taskiq.middlewares`, renamed: the retry middlewares (settings for podiq's built-in retries)."""

from podiq._retries import SimpleRetryMiddleware, SmartRetryMiddleware

__all__ = ["SimpleRetryMiddleware", "SmartRetryMiddleware"]
