"""Each pool run's own output, while a worker runs many at once in one process.

A Job's pod tees its file descriptors (:mod:`podiq.runtime.output`): everything the process
writes is its one run's. A worker's process serves many runs, so its descriptors are
everyone's; instead ``sys.stdout`` and ``sys.stderr`` are routed by a context variable that
each run sets for its own asyncio task. ``print``, ``logging`` (through a handler made after
:func:`install`) and sync tasks in the worker's threads (the receiver copies the context into
them) all land in the right run's tail, and still reach the container log.

What bypasses ``sys.stdout`` (C extensions writing to descriptor 1, child processes) reaches
the container log only: descriptors cannot tell runs apart.
"""

from __future__ import annotations

import contextvars
import sys
import threading
from typing import TextIO

__all__ = ["RunTail", "current_tail", "install"]


class RunTail:
    """The last ``limit`` bytes a run wrote, and how many bytes before them were dropped."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.dropped = 0
        self._buffer = bytearray()
        self._lock = threading.Lock()  # sync tasks write from the worker's threads

    def write(self, text: str) -> None:
        if self.limit <= 0 or not text:
            return
        data = text.encode(errors="replace")
        with self._lock:
            self._buffer += data
            excess = len(self._buffer) - 2 * self.limit  # trim now and then, not on every write
            if excess > 0:
                cut = len(self._buffer) - self.limit
                self.dropped += cut
                del self._buffer[:cut]

    def value(self) -> tuple[bytes, int]:
        with self._lock:
            extra = max(len(self._buffer) - self.limit, 0)
            return bytes(self._buffer[extra:]), self.dropped + extra


#: The tail of the run whose code is running in this context, if any.
current_tail: contextvars.ContextVar[RunTail | None] = contextvars.ContextVar("podiq_run_tail", default=None)


class _RoutedStream:
    """A text stream that writes through to the original and into the current run's tail."""

    def __init__(self, original: TextIO) -> None:
        self._original = original

    def write(self, text: str) -> int:
        tail = current_tail.get()
        if tail is not None:
            tail.write(text)
        return self._original.write(text)

    def flush(self) -> None:
        self._original.flush()

    def __getattr__(self, name: str) -> object:  # fileno, encoding, isatty, ...: the original's
        return getattr(self._original, name)


def install() -> None:
    """Route ``sys.stdout`` and ``sys.stderr`` (once per process); call before logging is set up."""
    if not isinstance(sys.stdout, _RoutedStream):
        sys.stdout = _RoutedStream(sys.stdout)
    if not isinstance(sys.stderr, _RoutedStream):
        sys.stderr = _RoutedStream(sys.stderr)
