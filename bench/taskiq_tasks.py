"""The taskiq-redis side of bench/pools.py: a no-op task on RedisStreamBroker with
RedisAsyncResultBackend, served by one `taskiq worker bench.taskiq_tasks:broker` process."""

from __future__ import annotations

import os

from taskiq.serializers import JSONSerializer
from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker

URL = os.environ.get("BENCH_TASKIQ_REDIS_URL", "redis://127.0.0.1:6379/0")

# JSON rather than taskiq-redis's default pickle: nothing read from Redis is unpickled.
broker = RedisStreamBroker(URL, queue_name="bench-taskiq").with_result_backend(
    RedisAsyncResultBackend(URL, serializer=JSONSerializer(), result_ex_time=600)
)


@broker.task
async def noop() -> None:
    return None
