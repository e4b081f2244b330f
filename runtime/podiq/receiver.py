"""`taskiq.receiver`, renamed: what runs one message for a broker (in-process, or in a task's pod)."""

from podiq._receiver import Receiver

__all__ = ["Receiver"]
