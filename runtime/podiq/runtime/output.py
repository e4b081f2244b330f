"""The tail of the pod's own output, kept while it still goes to the container log.

File descriptors 1 and 2 are redirected into pipes; a thread per pipe copies every byte on
to the original descriptor (so ``kubectl logs`` sees everything, stdout and stderr apart)
and keeps the last bytes in memory. Working on descriptors rather than ``sys.stdout``
catches what C extensions and child processes write too.
"""

from __future__ import annotations

import os
import sys
import threading

__all__ = ["OutputTail", "TailBuffer"]

_CHUNK = 64 * 1024


class TailBuffer:
    """The last ``limit`` bytes written (from any thread), and how many bytes before them were dropped."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.dropped = 0
        self._buffer = bytearray()
        self._lock = threading.Lock()

    def add(self, data: bytes) -> None:
        if self.limit <= 0 or not data:
            return
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


class OutputTail:
    """Tees stdout and stderr into a bounded buffer of their last ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.kept = TailBuffer(limit)
        self._saved: list[tuple[int, int]] = []  # (fd, copy of the original)
        self._threads: list[threading.Thread] = []

    def start(self) -> OutputTail:
        if self.limit <= 0:
            return self
        for fd in (1, 2):
            _flush()
            original = os.dup(fd)
            read, write = os.pipe()
            os.dup2(write, fd)
            os.close(write)
            self._saved.append((fd, original))
            thread = threading.Thread(target=self._copy, args=(read, original), name=f"podiq-output-{fd}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _copy(self, read: int, original: int) -> None:
        try:
            while chunk := os.read(read, _CHUNK):
                _write_all(original, chunk)
                self.kept.add(chunk)
        finally:
            os.close(read)

    def stop(self, timeout: float = 2.0) -> tuple[bytes, int]:
        """Put the descriptors back; returns the output kept and how many bytes before it were dropped.

        A child process that still holds a pipe keeps its thread alive; after ``timeout``
        seconds the output so far is returned.
        """
        _flush()
        for fd, original in self._saved:
            os.dup2(original, fd)
        for thread in self._threads:
            thread.join(timeout)
        for _, original in self._saved:
            os.close(original)
        self._saved, self._threads = [], []
        return self.kept.value()


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except OSError:  # the log went away; keep the tail anyway
            return
        view = view[written:]
