"""`podiq list` stays readable in a narrow terminal, as `kubectl get` does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console

from podiq.cli import listing
from podiq.cli.taskruns import listing_table
from podiq.kubernetes.resources import TaskRun

NOW = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)


def run(
    name: str,
    *,
    phase: str | None = None,
    progress: str | None = None,
    age: timedelta = timedelta(seconds=41),
    task: str = "app.reports.monthly:render_quarterly_summary",
    message: str = "",
) -> TaskRun:
    status: dict[str, object] = {"attempts": 1}
    if phase:
        status["phase"] = phase
    if progress:
        status["progressText"] = progress
    if message:
        status["conditions"] = [
            {
                "type": "Succeeded",
                "status": "Unknown",
                "reason": "Running",
                "message": message,
                "lastTransitionTime": NOW.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        ]
    return TaskRun.from_api(
        {
            "apiVersion": "podiq.io/v1alpha1",
            "kind": "TaskRun",
            "metadata": {
                "name": name,
                "namespace": "jobs",
                "creationTimestamp": (NOW - age).strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
            "spec": {"taskName": task},
            "status": status,
        }
    )


RUNS = [
    run("5f0c9a1e6b2d4c1f9e7a3b8d2c4e6f10", phase="Running", progress="1234/120000", message="x" * 200),
    run("0a1b2c3d4e5f60718293a4b5c6d7e8f9", phase="Succeeded", progress="3/3", age=timedelta(hours=5)),
    run("pending-one", age=timedelta(days=3)),
]


def rendered(width: int, *, wide: bool = False) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(listing_table(RUNS, wide=wide, now=NOW))
    return console.export_text()


@pytest.mark.parametrize("width", [80, 100, 160])
def test_phase_progress_attempts_and_age_are_never_cut(width: int) -> None:
    text = rendered(width)
    assert "…" not in text
    assert all(len(line) <= width for line in text.splitlines())
    for cell in ("Running", "Succeeded", "Pending", "1234/120000", "3/3", "41s", "5h", "3d", "ATTEMPTS"):
        assert cell in text, cell


def test_long_names_fold_rather_than_vanish() -> None:
    text = rendered(80).replace("\n", "")
    assert "5f0c9a1e6b2d4c1f9e7a3b8d2c4e6f10"[:12] in text


def test_wide_adds_reason_duration_job_and_message() -> None:
    text = rendered(200, wide=True)
    for header in ("REASON", "DURATION", "JOB", "MESSAGE"):
        assert header in text
    assert "x" * 50 in text.replace("\n", "")


def test_rows_are_oldest_first_and_filters_match_phase_and_task() -> None:
    names = [row[0] for row in listing.rows(RUNS, now=NOW)]
    assert names == ["pending-one", "0a1b2c3d4e5f60718293a4b5c6d7e8f9", "5f0c9a1e6b2d4c1f9e7a3b8d2c4e6f10"]
    assert listing.matches(RUNS[2], None, "Pending") and not listing.matches(RUNS[2], None, "Running")
    assert not listing.matches(RUNS[0], "other:task", None)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0s"), (59, "59s"), (60, "1m"), (119, "1m"), (7199, "119m"), (7200, "2h"), (172799, "47h"), (172800, "2d")],
)
def test_age_reads_like_kubectl(seconds: int, shown: str) -> None:
    assert listing.age(NOW - timedelta(seconds=seconds), NOW) == shown
