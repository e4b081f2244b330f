"""The rows of `podiq list`: which columns, in what words, like `kubectl get -o wide`.

Pure: TaskRuns in, rows of strings out, so the table stays readable at any width and is
tested without a cluster.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from podiq.kubernetes.resources import TaskRun

__all__ = ["COLUMNS", "WIDE_COLUMNS", "Column", "age", "matches", "rows"]


@dataclass(frozen=True)
class Column:
    header: str
    #: Long values fold onto more lines instead of pushing the short columns off the screen.
    folds: bool = False


COLUMNS = (
    Column("NAME", folds=True),
    Column("TASK", folds=True),
    Column("PHASE"),
    Column("PROGRESS"),
    Column("ATTEMPTS"),
    Column("AGE"),
)
WIDE_COLUMNS = (
    *COLUMNS,
    Column("REASON"),
    Column("DURATION"),
    Column("JOB", folds=True),
    Column("MESSAGE", folds=True),
)


def age(since: datetime | None, now: datetime) -> str:
    """kubectl's short age: 41s, 5m, 3h, 2d."""
    if since is None:
        return "-"
    seconds = max(0, int((now - since).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= 2 * size or (unit == "m" and seconds >= size):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def matches(run: TaskRun, task: str | None, phase: str | None) -> bool:
    shown = run.status.phase.value if run.status.phase else "Pending"
    return (not task or run.spec.task_name == task) and (not phase or shown == phase)


def rows(runs: Iterable[TaskRun], *, wide: bool = False, now: datetime | None = None) -> list[tuple[str, ...]]:
    """One row per TaskRun, oldest first, with the cells of ``WIDE_COLUMNS`` or ``COLUMNS``."""
    now = now or datetime.now(UTC)
    table = []
    for run in sorted(runs, key=lambda r: r.metadata.creation_timestamp or now):
        status = run.status
        row: tuple[str, ...] = (
            run.name,
            run.spec.task_name,
            status.phase.value if status.phase else "Pending",
            status.progress_text or "-",
            str(status.attempts),
            age(run.metadata.creation_timestamp, now),
        )
        if wide:
            row += (status.reason.value, status.duration or "-", status.job_name or "-", status.message or "-")
        table.append(row)
    return table
