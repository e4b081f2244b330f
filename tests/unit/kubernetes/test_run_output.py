"""A pool worker's per-run output: print, logging and sync threads land in the run's own tail."""

from __future__ import annotations

import asyncio
import contextvars
import io
import logging
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from podiq.runtime import run_output
from podiq.runtime.run_output import RunTail, current_tail


def routed(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """sys.stdout and sys.stderr routed, over one buffer standing for the container log (in the
    test's body: pytest sets its own capture again between a fixture and the test)."""
    log = io.StringIO()
    monkeypatch.setattr(sys, "stdout", log)
    monkeypatch.setattr(sys, "stderr", log)
    run_output.install()
    return log


async def test_runs_at_once_each_keep_only_their_own_output(monkeypatch: pytest.MonkeyPatch) -> None:
    log = routed(monkeypatch)
    logger = logging.getLogger("tests.run_output")
    handler = logging.StreamHandler(sys.stderr)  # made after install, as the worker's logging is
    logger.addHandler(handler)
    executor = ThreadPoolExecutor(2)

    def sync_part(name: str) -> None:
        print(f"{name} from a thread")

    async def run(name: str) -> RunTail:
        tail = RunTail(1024)
        current_tail.set(tail)
        for step in range(3):
            print(f"{name} step {step}")
            await asyncio.sleep(0.01)  # interleaved with the other run
        logger.warning("%s logs", name)
        # As the receiver runs sync tasks: in a thread, with the caller's context.
        await asyncio.get_running_loop().run_in_executor(executor, contextvars.copy_context().run, sync_part, name)
        return tail

    try:
        one, two = await asyncio.gather(run("one"), run("two"))
    finally:
        logger.removeHandler(handler)
        executor.shutdown()
    kept_one, kept_two = one.value()[0].decode(), two.value()[0].decode()
    assert kept_one.splitlines() == ["one step 0", "one step 1", "one step 2", "one logs", "one from a thread"]
    assert "two" not in kept_one and "one" not in kept_two and "two from a thread" in kept_two
    print("outside any run")  # the container log still gets everything, and no run gets this
    assert "one step 0" in log.getvalue() and "two logs" in log.getvalue()
    assert "outside" not in kept_one + kept_two


def test_a_tail_keeps_the_last_bytes_and_counts_the_dropped() -> None:
    tail = RunTail(10)
    for i in range(10):
        tail.write(f"line {i}\n")
    kept, dropped = tail.value()
    assert kept == b"\nline 8\nline 9\n"[-10:]
    assert len(kept) == 10 and dropped == 70 - 10
    off = RunTail(0)
    off.write("nothing kept")
    assert off.value() == (b"", 0)
