"""The runtime's side of recording attempts: it runs when its Job exists, whatever the status says yet."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from podiq.kubernetes import ExitCode
from podiq.kubernetes.attempts import finish_attempt
from podiq.runtime.running import moved_on

from .conftest import NOW, taskrun


def test_an_attempt_the_status_does_not_record_yet_runs() -> None:
    assert not moved_on(taskrun(), 1)


def test_a_finished_run_a_reported_attempt_or_a_newer_one_does_not() -> None:
    run = taskrun(retryOnError=True, maxRetries=3)
    run.status.record_attempt(1, "add-1-a1", NOW)
    run.status = finish_attempt(run.spec, run.status, ExitCode.TASK_ERROR, NOW)
    assert moved_on(run, 1), "attempt 1 reported already"
    assert not moved_on(run, 2)
    run.status.record_attempt(2, "add-1-a2", NOW)
    assert moved_on(run, 1)
    run.status = finish_attempt(run.spec, run.status, ExitCode.SUCCEEDED, NOW)
    assert moved_on(run, 3)


def test_recording_keeps_the_first_start_and_never_goes_back() -> None:
    run = taskrun()
    assert run.status.record_attempt(1, "add-1-a1", NOW)
    assert not run.status.record_attempt(1, "add-1-a1", NOW + timedelta(seconds=5))
    assert run.status.record_attempt(2, "add-1-a2", NOW + timedelta(seconds=9))
    assert (run.status.attempts, run.status.job_name, run.status.start_time) == (2, "add-1-a2", NOW)


async def test_the_runtime_waits_out_an_api_server_that_is_away(monkeypatch: Any) -> None:
    import aiohttp
    from kubernetes_asyncio.client.exceptions import ApiException

    from podiq.runtime import running

    monkeypatch.setattr(running, "API_BACKOFF", (0.01, 0.02))
    failures = [
        aiohttp.ClientConnectionError("refused"),
        ApiException(status=503),
        TimeoutError(),
        ApiException(status=403),
    ]

    async def flaky() -> str:
        if failures:
            raise failures.pop(0)
        return "written"

    assert await running.patiently("report", flaky) == "written"

    async def invalid() -> None:
        raise ApiException(status=422)

    with pytest.raises(ApiException):
        await running.patiently("report", invalid)  # not transient: at once
    monkeypatch.setattr(running, "API_PATIENCE", 0.05)

    async def down() -> None:
        raise aiohttp.ClientConnectionError("refused")

    with pytest.raises(aiohttp.ClientConnectionError):
        await running.patiently("report", down)  # and not forever
