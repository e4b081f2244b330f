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
    #: taskiq sends labels as strings and their types here, to turn them back; podiq's labels
    #: keep their JSON types, so there is never anything to turn back (taskiq's None means that
    #: too). Not part of the message podiq sends.
    labels_types: None = Field(default=None, exclude=True)

    @property
    def message(self) -> bytes:
        """The message as JSON bytes, which taskiq's brokers send as `BrokerMessage.message`
        (podiq hands brokers the TaskiqMessage itself, so a broker written for taskiq can
        still put these bytes on its queue)."""
        return self.model_dump_json().encode()


class BrokerMessage(BaseModel):
    """A message as a broker transports it, as in taskiq: the encoded call plus what routing needs.

    podiq's brokers receive the TaskiqMessage in `kick()`, which has the same `task_id`,
    `task_name`, `labels` and `message` attributes.
    """

    task_id: str
    task_name: str
    message: bytes
    labels: dict[str, Any] = Field(default_factory=dict)
