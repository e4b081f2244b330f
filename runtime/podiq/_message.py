from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class TaskiqMessage(BaseModel):
    """A task call as it travels from client to worker: JSON-compatible values only."""

    task_id: str
    task_name: str
    labels: dict[str, Any] = Field(default_factory=dict)
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
