from __future__ import annotations

import enum
from typing import Any


@enum.unique
class TaskiqEvents(enum.Enum):
    """Broker lifetime events, as in taskiq."""

    WORKER_STARTUP = "WORKER_STARTUP"
    WORKER_SHUTDOWN = "WORKER_SHUTDOWN"
    CLIENT_STARTUP = "CLIENT_STARTUP"
    CLIENT_SHUTDOWN = "CLIENT_SHUTDOWN"


class TaskiqState(dict[str, Any]):
    """Shared state of a broker: a dict that also allows attribute access."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"State has no attribute {name!r}; set it in a startup event handler.") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self) -> str:
        return f"TaskiqState({dict.__repr__(self)})"
