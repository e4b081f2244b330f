"""`taskiq.acks`, renamed: the message type of taskiq brokers' `listen()`, so broker code written
for taskiq imports. podiq's brokers run what they are sent and do not listen."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable

from pydantic import BaseModel, ConfigDict


class AcknowledgeType(str, enum.Enum):
    """When a taskiq worker acknowledges a message."""

    WHEN_RECEIVED = "when_received"
    WHEN_EXECUTED = "when_executed"
    WHEN_SAVED = "when_saved"


class AckableMessage(BaseModel):
    """Bytes received by a broker with the function that acknowledges them."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    data: bytes | bytearray
    ack: Callable[[], Awaitable[None] | None]
