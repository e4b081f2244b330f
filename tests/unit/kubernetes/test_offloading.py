"""What stays inline in a TaskRun and what goes to Redis, against a real redis-server."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from podiq import InMemoryBroker
from podiq._result import ResultRecord
from podiq.exceptions import ArgumentsTooLargeError, StoredValueExpiredError, StoreUnavailableError
from podiq.kubernetes.attempts import finish_attempt
from podiq.kubernetes.exitcodes import ExitCode
from podiq.kubernetes.offloading import (
    MAX_INLINE_ARGS_BYTES,
    load_arguments,
    offload_arguments,
    read_result,
    read_stored_log,
    store_log,
    store_result,
)
from podiq.kubernetes.resources import ResultTooLargeError, TaskRun, to_api
from podiq.kubernetes.storage import RedisStore, StoredValue, StoreSettings, args_key
from podiq.runtime.environment import RESERVED
from podiq.runtime.running import stored_outcome
from podiq_operator.config import JobConfig, OperatorConfig
from podiq_operator.jobs import build_job
from podiq_operator.storage import namespace_password, namespace_secret
from tests.cluster.procs import free_port
from tests.redisserver import RedisServer

broker = InMemoryBroker()


@broker.task("tests.unit.kubernetes.test_offloading:summarise")
async def summarise(title: str, table: list[int], *, note: str = "") -> int:
    return len(table)


SETTINGS = StoreSettings(args_inline_limit=1000, result_inline_limit=1000, ttl=600, log_tail=100)


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[RedisStore]:
    async with RedisStore(StoreSettings(url=redis_server.url, log_tail=100)) as store:
        yield store


def spec(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return {"taskName": "tests.unit.kubernetes.test_offloading:summarise", "args": list(args), "kwargs": kwargs}


def run_of(spec_body: dict[str, Any], name: str = "run-1", **status: Any) -> TaskRun:
    return TaskRun.from_api({"metadata": {"name": name, "namespace": "unit"}, "spec": spec_body, "status": status})


async def never_taken() -> bool:
    return False


async def test_small_arguments_stay_inline(store: RedisStore) -> None:
    body = spec("t", [1, 2])
    assert await offload_arguments(store, SETTINGS, "unit", "small", body, never_taken) is False
    assert body["args"] == ["t", [1, 2]] and "argsRef" not in body


async def test_large_arguments_go_to_redis_and_come_back_checked(store: RedisStore) -> None:
    body = spec("t", list(range(2000)), note="n")
    assert await offload_arguments(store, SETTINGS, "unit", "large", body, never_taken) is True
    assert body["args"] == [] and body["kwargs"] == {} and body["argsRef"]["key"] == args_key("unit", "large")
    run = run_of(body, "large")
    assert await load_arguments(store, run) == (["t", list(range(2000))], {"note": "n"})
    assert 590 <= await store.redis.ttl(body["argsRef"]["key"]) <= 600
    with pytest.raises(StoreUnavailableError, match="this pod has no PODIQ_REDIS_URL"):
        await load_arguments(None, run)


async def test_arguments_of_an_existing_taskrun_are_not_replaced(store: RedisStore) -> None:
    first = spec("t", list(range(2000)))
    await offload_arguments(store, SETTINGS, "unit", "same-id", first, never_taken)

    async def taken() -> bool:
        return True

    second = spec("other", list(range(3000)))
    assert await offload_arguments(store, SETTINGS, "unit", "same-id", second, taken) is None
    assert await load_arguments(store, run_of(first, "same-id")) == (["t", list(range(2000))], {})
    # A leftover of a deleted TaskRun of that name is replaced.
    assert await offload_arguments(store, SETTINGS, "unit", "same-id", second, never_taken) is True
    assert (await load_arguments(store, run_of(second, "same-id")))[0][0] == "other"


async def test_arguments_held_back_live_until_their_start(store: RedisStore) -> None:
    body = {**spec("t", list(range(2000))), "notBefore": datetime(2100, 1, 1, tzinfo=UTC).isoformat()}
    await offload_arguments(store, SETTINGS, "unit", "later", body, never_taken)
    assert await store.redis.ttl(body["argsRef"]["key"]) > 365 * 24 * 3600


async def test_without_redis_too_large_arguments_are_refused_by_name() -> None:
    huge = "x" * (MAX_INLINE_ARGS_BYTES + 10)
    with pytest.raises(ArgumentsTooLargeError) as refused:
        await offload_arguments(None, SETTINGS, "unit", "huge", spec("t", [1], note=huge), never_taken)
    message = str(refused.value)
    assert "'note'" in message and f"{MAX_INLINE_ARGS_BYTES}" in message and "redis_url=" in message
    assert "PODIQ_REDIS_URL" in message and "redis.enabled=true" in message
    with pytest.raises(ArgumentsTooLargeError, match="the largest is 'table'"):
        await offload_arguments(None, SETTINGS, "unit", "huge", spec("t", [huge]), never_taken)
    # Below the TaskRun's own limit, no Redis is needed.
    assert await offload_arguments(None, SETTINGS, "unit", "fits", spec("x" * 100_000, []), never_taken) is False


async def test_large_results_go_to_redis_and_expired_ones_say_so(store: RedisStore) -> None:
    run = run_of(spec(), "result", attempts=1)
    record = ResultRecord(return_value="y" * 5000, labels={"a": 1})
    inline, ref = await store_result(store, SETTINGS, run, 1, ResultRecord(return_value=3))
    assert inline is not None and inline["return_value"] == 3 and ref is None
    inline, ref = await store_result(store, SETTINGS, run, 1, record)
    assert inline is None and ref is not None and ref.key == "podiq:unit:result:result:1"
    run.status = finish_attempt(run.spec, run.status, ExitCode.SUCCEEDED, datetime.now(UTC), result_ref=ref)
    assert "result" not in to_api(run.status) and run.is_done()
    assert await read_result(store, run) == record
    with pytest.raises(StoreUnavailableError, match="kept in Redis .* pass redis_url="):
        await read_result(None, run)
    await store.delete([ref.key])
    with pytest.raises(StoredValueExpiredError, match="expired with its TaskRun's TTL"):
        await read_result(store, run)
    # An inline result replaces a stored one of an earlier attempt.
    run.status = finish_attempt(run.spec, run.status, ExitCode.SUCCEEDED, datetime.now(UTC), result={"return_value": 1})
    assert run.status.result_ref is None and (await read_result(store, run)).return_value == 1


async def test_results_take_the_taskruns_ttl(store: RedisStore) -> None:
    run = run_of({**spec(), "ttlSecondsAfterFinished": 30}, "short-lived")
    _, ref = await store_result(store, SETTINGS, run, 1, ResultRecord(return_value="y" * 5000))
    assert ref is not None and 80 <= await store.redis.ttl(ref.key) <= 90


async def test_without_redis_a_large_result_says_how_to_keep_it() -> None:
    run = run_of(spec(), "big")
    with pytest.raises(ResultTooLargeError, match="redis.enabled=true"):
        await store_result(None, SETTINGS, run, 1, ResultRecord(return_value="y" * 300_000))


async def test_a_result_redis_cannot_take_fails_the_attempt_with_the_reason() -> None:
    down = StoreSettings(url=f"redis://:pw@127.0.0.1:{free_port()}/0", result_inline_limit=1000, timeout=2)
    async with RedisStore(down) as store:
        outcome = await stored_outcome(
            store, down, run_of(spec(), "down"), 1, ExitCode.SUCCEEDED, ResultRecord(return_value="y" * 5000)
        )
    assert outcome.code is ExitCode.TASK_ERROR and outcome.result is not None and outcome.result["is_err"]
    assert outcome.result["error"]["type"] == "StoreUnavailableError"
    assert "could not be stored in Redis" in outcome.message and "cannot be reached" in outcome.message


TEE = """
import os, subprocess, sys
from podiq.runtime.output import OutputTail
tail = OutputTail(limit=int(sys.argv[2])).start()
print("from python", flush=True)
os.write(2, b"from the stderr descriptor\\n")
subprocess.run([sys.executable, "-c", "print('from a child process')"], check=True)
print("z" * 300)
print("last line")
kept, dropped = tail.stop()
open(sys.argv[1], "wb").write(kept)
print(f"dropped {dropped}")
"""


def tee(tmp_path: Any, limit: int) -> tuple[bytes, str, str]:
    """Run a process whose output is teed; returns what it kept, and what reached its stdout and stderr."""
    out = tmp_path / f"kept-{limit}"
    done = subprocess.run(
        [sys.executable, "-c", TEE, str(out), str(limit)], capture_output=True, check=True, timeout=60
    )
    return out.read_bytes(), done.stdout.decode(), done.stderr.decode()


async def test_the_output_tail_is_kept_and_read_back(store: RedisStore, tmp_path: Any) -> None:
    everything = "from python\nfrom the stderr descriptor\nfrom a child process\n" + "z" * 300 + "\nlast line\n"
    kept, stdout, stderr = tee(tmp_path, 100)
    # Everything still reaches the container log, stdout and stderr apart.
    assert stdout.startswith("from python\nfrom a child process\n") and "last line\n" in stdout
    assert stderr == "from the stderr descriptor\n"
    # stdout and stderr are two pipes: which of their last lines comes last depends on the threads
    text = kept.decode()
    assert "last line\n" in text and "from python" not in text and 100 <= len(kept) <= 200
    dropped = int(stdout.rsplit("dropped ", 1)[1])
    assert len(kept) + dropped == len(everything)
    run = run_of(spec(), "logs", attempts=1)
    ref = await store_log(store, SETTINGS, run, 1, kept, dropped)
    assert ref is not None
    run.status = finish_attempt(run.spec, run.status, ExitCode.SUCCEEDED, datetime.now(UTC), result={}, log_ref=ref)
    stored = await read_stored_log(store, run)
    assert stored == f"[podiq: the first {dropped} bytes of output are not kept]\n" + text
    kept, _, _ = tee(tmp_path, 10_000)
    assert sorted(kept.decode().splitlines()) == sorted(everything.splitlines())


def test_reference_fields_are_plain_json() -> None:
    ref = StoredValue.of("podiq:unit:r:args", b"[]")
    run = run_of({**spec(), "argsRef": ref.model_dump(mode="json")})
    assert run.spec.args_ref == ref and to_api(run.spec)["argsRef"] == {"key": ref.key, "size": 2, "sha256": ref.sha256}


def test_task_pods_get_redis_from_the_namespaces_secret_never_from_the_taskrun() -> None:
    config = OperatorConfig.from_env({"PODIQ_REDIS_URL": "redis://:admin@redis:6379/0", "PODIQ_REDIS_LOG_TAIL": "2048"})
    assert config.store.url == "redis://:admin@redis:6379/0" and config.jobs.store_secret == "podiq-redis"
    run = run_of(
        {
            **spec(),
            "env": [
                {"name": "PODIQ_REDIS_URL", "value": "redis://evil:6379"},
                {"name": "PODIQ_REDIS_TTL", "value": "1"},
                {"name": "MODE", "value": "x"},
            ],
        }
    )
    env = build_job(run, 1, config.jobs)["spec"]["template"]["spec"]["containers"][0]["env"]
    redis = [e for e in env if e["name"] == "PODIQ_REDIS_URL"]
    assert redis == [
        {
            "name": "PODIQ_REDIS_URL",
            "valueFrom": {"secretKeyRef": {"name": "podiq-redis", "key": "url", "optional": True}},
        }
    ]
    values = {e["name"]: e.get("value") for e in env}
    assert values["PODIQ_REDIS_LOG_TAIL"] == "2048" and values["PODIQ_REDIS_TTL"] == str(StoreSettings.ttl)
    assert values["MODE"] == "x" and "PODIQ_REDIS_URL" in RESERVED
    assert "admin" not in str(env)
    plain = build_job(run, 1, JobConfig())["spec"]["template"]["spec"]["containers"][0]["env"]
    assert not any(e["name"].startswith("PODIQ_REDIS") for e in plain)


def test_namespace_passwords_are_stable_and_distinct() -> None:
    url = "redis://:admin@redis:6379/0"
    assert namespace_password(url, "a") == namespace_password(url, "a") != namespace_password(url, "b")
    assert namespace_password(url, "a") != namespace_password("redis://:other@redis:6379/0", "a")
    assert namespace_secret("a", "redis://u:p@h:1/0")["data"]["url"] == "cmVkaXM6Ly91OnBAaDoxLzA="
