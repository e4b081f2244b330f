"""`taskiq.message`, renamed."""

from podiq._message import BrokerMessage, TaskiqMessage

__all__ = ["BrokerMessage", "TaskiqMessage"]
