"""podiq's and taskiq's InMemoryBroker side by side, in one run.

    python bench/inmemory.py [--tasks 10000] [--round-trips 1000]

Scenarios: N no-op tasks sent with kiq and then all awaited (batch throughput); M sequential
kiq-then-wait round trips (latency; taskiq polls at `--taskiq-check-interval`, podiq is woken
by the result); peak Python memory of the batch scenario (tracemalloc). Figures only: this
asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table


@dataclass
class Contender:
    name: str
    batch: Callable[[int], Awaitable[None]]
    round_trips: Callable[[int], Awaitable[None]]


def podiq_contender() -> Contender:
    import podiq

    broker = podiq.InMemoryBroker()

    @broker.task
    async def noop() -> None:
        return None

    async def batch(n: int) -> None:
        handles = [await noop.kiq() for _ in range(n)]
        for handle in handles:
            await handle.wait_result()

    async def round_trips(n: int) -> None:
        for _ in range(n):
            await (await noop.kiq()).wait_result()

    return Contender(f"podiq {podiq.__version__}", batch, round_trips)


def taskiq_contender(check_interval: float) -> Contender:
    import taskiq

    broker = taskiq.InMemoryBroker(max_stored_results=1_000_000)

    @broker.task
    async def noop() -> None:
        return None

    async def batch(n: int) -> None:
        tasks = [await noop.kiq() for _ in range(n)]
        for task in tasks:
            await task.wait_result(check_interval=check_interval)

    async def round_trips(n: int) -> None:
        for _ in range(n):
            await (await noop.kiq()).wait_result(check_interval=check_interval)

    return Contender(f"taskiq {taskiq.__version__} (polls every {check_interval * 1000:g} ms)", batch, round_trips)


async def timed(run: Callable[[int], Awaitable[None]], n: int) -> float:
    gc.collect()
    started = time.perf_counter()
    await run(n)
    return time.perf_counter() - started


async def peak_memory(run: Callable[[int], Awaitable[None]], n: int) -> int:
    gc.collect()
    tracemalloc.start()
    await run(n)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


async def measure(contender: Contender, tasks: int, trips: int) -> dict[str, float]:
    await contender.batch(200)  # warm up imports, caches and the event loop
    batch_s = await timed(contender.batch, tasks)
    trips_s = await timed(contender.round_trips, trips)
    peak = await peak_memory(contender.batch, tasks)
    return {
        "batch_rate": tasks / batch_s,
        "trip_rate": trips / trips_s,
        "trip_us": trips_s / trips * 1e6,
        "peak_mib": peak / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--round-trips", type=int, default=1_000)
    parser.add_argument("--taskiq-check-interval", type=float, default=0.001, help="seconds (taskiq's default is 0.2)")
    args = parser.parse_args()

    contenders = [podiq_contender(), taskiq_contender(args.taskiq_check_interval)]
    results = {c.name: asyncio.run(measure(c, args.tasks, args.round_trips)) for c in contenders}
    ours, theirs = (results[c.name] for c in contenders)

    table = Table(title=f"InMemoryBroker: {args.tasks:,} no-op tasks, {args.round_trips:,} sequential round trips")
    table.add_column("")
    for name in results:
        table.add_column(name, justify="right")
    table.add_column("podiq / taskiq", justify="right")
    rows = [
        (
            "batch: tasks/s (kiq all, then await all)",
            "batch_rate",
            "{:,.0f}",
            ours["batch_rate"] / theirs["batch_rate"],
        ),
        (
            "round trips/s (kiq then wait, one at a time)",
            "trip_rate",
            "{:,.0f}",
            ours["trip_rate"] / theirs["trip_rate"],
        ),
        ("round trip latency, µs", "trip_us", "{:,.1f}", ours["trip_us"] / theirs["trip_us"]),
        ("batch peak Python memory, MiB", "peak_mib", "{:,.1f}", ours["peak_mib"] / theirs["peak_mib"]),
    ]
    for label, key, fmt, ratio in rows:
        table.add_row(label, *(fmt.format(r[key]) for r in results.values()), f"{ratio:.2f}x")
    Console().print(table)


if __name__ == "__main__":
    main()
