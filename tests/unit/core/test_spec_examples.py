"""The four usage examples of the spec, run as written (import line changed to podiq).

The example code sits at module level exactly as in the spec; the tests below drive it and check
what its comments and prints promise. The only edit besides the import line is the gather
example's loop, which reads `result.return_value[...]` (API contract, rule 3).
"""

import asyncio
import random
from typing import List

import pytest

from podiq import InMemoryBroker, TaskiqMiddleware, TaskRejectedError

# --- Basic Task Definition and Execution (as written) -----------------------------------------

broker = InMemoryBroker()


@broker.task
async def calculate_sum(numbers: List[int]) -> int:
    """Calculate sum of numbers with artificial delay."""
    await asyncio.sleep(1)  # Simulate work
    return sum(numbers)


# Execute task
async def main():
    await broker.startup()
    # Send task for execution
    result = await calculate_sum.kiq([1, 2, 3, 4, 5])
    # Wait for result
    total = await result.wait_result(timeout=10.0)
    print(f"Sum: {total}")  # Sum: 15
    await broker.shutdown()


# --- Error Handling and Result Inspection (as written) ----------------------------------------


@broker.task
async def risky_operation(value: int) -> int:
    if value < 0:
        raise ValueError("Negative values not allowed")
    return value * 2


async def handle_results():
    result = await risky_operation.kiq(-5)
    # Check if result is ready
    if await result.is_ready():
        try:
            value = await result.wait_result()
            print(f"Success: {value}")
        except ValueError as e:
            print(f"Task failed: {e}")
    # Inspect result metadata
    print(f"Execution time: {result.execution_time}s")
    print(f"Had error: {result.is_err}")
    if result.error:
        print(f"Error type: {type(result.error).__name__}")


# --- Context Usage in Tasks (as written) ------------------------------------------------------

from podiq import Context, TaskiqDepends


@broker.task
async def context_aware_task(
    data: str,
    context: Context = TaskiqDepends(),
) -> str:
    """Task that uses execution context."""
    # Access task metadata
    task_id = context.message.task_id
    requeue_count = context.message.labels.get("X-Taskiq-requeue", "0")
    # Conditional requeue logic
    if data == "retry_me" and int(requeue_count) < 2:
        print(f"Requeuing task {task_id} (attempt {int(requeue_count) + 1})")
        await context.requeue()
    # Reject invalid data
    if data == "invalid":
        context.reject()
    return f"Processed: {data} (ID: {task_id})"


# --- Multiple Task Coordination (as written, `.return_value` in the loop) ---------------------

from podiq import gather


@broker.task
async def fetch_data(url: str) -> dict:
    # Simulate API call
    await asyncio.sleep(random.uniform(0.5, 2.0))
    return {"url": url, "data": f"content from {url}"}


async def fetch_multiple_sources():
    # Start multiple tasks
    tasks = [
        fetch_data.kiq("https://api1.example.com"),
        fetch_data.kiq("https://api2.example.com"),
        fetch_data.kiq("https://api3.example.com"),
    ]
    # Wait for all results
    results = await gather(*tasks)
    # Process combined results
    all_data = {}
    for result in results:
        all_data[result.return_value["url"]] = result.return_value["data"]
    return all_data


# --- the tests --------------------------------------------------------------------------------


class CountExecutions(TaskiqMiddleware):
    def __init__(self) -> None:
        super().__init__()
        self.task_ids: list[str] = []

    def pre_execute(self, message):
        self.task_ids.append(message.task_id)
        return message


@pytest.fixture
def counter():
    middleware = CountExecutions()
    broker.add_middlewares(middleware)
    yield middleware
    broker.middlewares.remove(middleware)


async def test_basic_example_prints_the_sum(capsys: pytest.CaptureFixture[str]) -> None:
    await main()
    assert capsys.readouterr().out == "Sum: 15\n"
    assert broker.is_started is False


async def test_error_example_reports_the_failure(capsys: pytest.CaptureFixture[str]) -> None:
    await handle_results()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Task failed: Negative values not allowed"
    assert lines[1].startswith("Execution time: ") and lines[1].endswith("s")
    execution_time = float(lines[1].removeprefix("Execution time: ").removesuffix("s"))
    assert 0.0 <= execution_time < 1.0
    assert lines[2:] == ["Had error: True", "Error type: ValueError"]


async def test_error_example_success_path() -> None:
    result = await risky_operation.kiq(21)
    assert await result.wait_result(timeout=5) == 42
    assert result.is_err is False
    assert result.error is None
    assert isinstance(result.execution_time, float)


async def test_context_example_requeues_twice_then_processes(
    capsys: pytest.CaptureFixture[str], counter: CountExecutions
) -> None:
    result = await context_aware_task.kiq("retry_me")
    value = await result.wait_result(timeout=5)
    task_id = result.task_id
    assert capsys.readouterr().out.splitlines() == [
        f"Requeuing task {task_id} (attempt 1)",
        f"Requeuing task {task_id} (attempt 2)",
    ]
    assert value == f"Processed: retry_me (ID: {task_id})"
    assert result.labels["X-Taskiq-requeue"] == "2"
    assert counter.task_ids == [task_id] * 3


async def test_context_example_rejects_invalid_data_without_retrying(
    capsys: pytest.CaptureFixture[str], counter: CountExecutions
) -> None:
    task = await context_aware_task.kicker().with_labels(retry_on_error=True, max_retries=3).kiq("invalid")
    finished = await task.wait_result(timeout=5)
    assert finished.is_err is True
    assert isinstance(finished.error, TaskRejectedError)
    assert counter.task_ids == [task.task_id]  # run once: a rejection is never retried

    handle = await context_aware_task.kiq("invalid")
    with pytest.raises(TaskRejectedError):
        await handle
    assert capsys.readouterr().out == ""


async def test_context_example_processes_plain_data(capsys: pytest.CaptureFixture[str]) -> None:
    result = await context_aware_task.kiq("hello")
    assert await result == f"Processed: hello (ID: {result.task_id})"
    assert "X-Taskiq-requeue" not in result.labels
    assert capsys.readouterr().out == ""


async def test_gather_example_combines_three_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    delays: list[tuple[float, float]] = []

    def short_uniform(a: float, b: float) -> float:
        delays.append((a, b))
        return 0.01

    monkeypatch.setattr(random, "uniform", short_uniform)
    data = await fetch_multiple_sources()
    assert data == {
        "https://api1.example.com": "content from https://api1.example.com",
        "https://api2.example.com": "content from https://api2.example.com",
        "https://api3.example.com": "content from https://api3.example.com",
    }
    assert list(data) == [f"https://api{i}.example.com" for i in (1, 2, 3)]
    assert delays == [(0.5, 2.0)] * 3
