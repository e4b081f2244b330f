"""TaskProgress(current, total, message) as the spec defines it (rule 4)."""

from __future__ import annotations

import pytest

from podiq import InvalidProgressError, TaskProgress


def test_positional() -> None:
    progress = TaskProgress(3, 10, "copying")
    assert (progress.current, progress.total, progress.message) == (3, 10, "copying")
    assert progress.fraction == pytest.approx(0.3)
    assert str(progress) == "3/10 copying"


def test_keywords_and_default_message() -> None:
    progress = TaskProgress(current=1, total=4)
    assert progress.message == ""
    assert str(progress) == "1/4"
    assert TaskProgress(total=4, current=1, message="m") == TaskProgress(1, 4, "m")
    assert TaskProgress(2, 4, message="half").message == "half"


def test_json_round_trip() -> None:
    progress = TaskProgress(5, 5, "done")
    assert progress.model_dump() == {"current": 5, "total": 5, "message": "done", "state": None, "meta": None}
    assert TaskProgress.model_validate_json(progress.model_dump_json()) == progress
    assert TaskProgress.model_validate({"current": 1, "total": 2}) == TaskProgress(1, 2)


def test_unknown_total() -> None:
    progress = TaskProgress(7, 0)
    assert progress.fraction == 0.0
    assert str(progress) == "7/0"


@pytest.mark.parametrize(
    ("args", "kwargs", "problem"),
    [
        ((-1, 5), {}, "greater than or equal to 0"),
        ((1, -5), {}, "greater than or equal to 0"),
        ((6, 5), {}, "current=6 is larger than total=5"),
        (("many", 5), {}, "valid integer"),
        ((1,), {}, "total"),
        ((), {"total": 1}, "current"),
        ((1, 2), {"message": 3}, "valid string"),
    ],
)
def test_validation(args, kwargs, problem: str) -> None:
    with pytest.raises(InvalidProgressError, match=f"Invalid progress .*{problem}.*0 <= current <= total"):
        TaskProgress(*args, **kwargs)


def test_progress_can_be_subscripted_as_the_spec_writes_it() -> None:
    from typing import Any, Optional

    assert TaskProgress[Any] is TaskProgress
    assert Optional[TaskProgress[Any]] == Optional[TaskProgress]
