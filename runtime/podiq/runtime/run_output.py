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
from typing import TextIO

from podiq.runtime.output import TailBuffer

__all__ = ["RunTail", "current_tail", "install"]


class RunTail(TailBuffer):
    """The last ``limit`` bytes a run wrote, and how many bytes before them were dropped."""

    def write(self, text: str) -> None:
        self.add(text.encode(errors="replace"))


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
